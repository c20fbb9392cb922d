"""Issue 24's reliability and security points against a real server process: tokens, ownership, body limits,
hostile fingerprints, text that stays text."""
from __future__ import annotations

import base64
import csv
import json
import socket
import time
import uuid

import httpx
import pytest

from core.cloud.client import CloudClient, CloudClientError
from core.cloud.output import query_lines, query_rows, write_csv
from core.errors import FingerprintFileError
from core.fingerprint.fingerprint import Fingerprint
from tests.cloud.cloud_harness import fingerprint_bytes, make_tokens
from tests.fingerprint.test_untrusted_fingerprints import HOSTILE

pytestmark = pytest.mark.slow


def publish_body(data: bytes, name: str = "task", **card) -> dict:
    return {"request_id": uuid.uuid4().hex, "card": {"name": name, **card},
            "fingerprint": base64.b64encode(data).decode()}


def test_missing_wrong_malformed_and_revoked_tokens_are_refused(database, server_factory):
    from core.cloud.database import create_cloud_engine
    from core.cloud.service import CloudService

    tokens = make_tokens(database, "Hospital A", read_only=("Reader",))
    server = server_factory(database)
    tasks = f"{server.url}/api/v1/tasks"
    assert httpx.get(tasks).status_code == 401
    assert httpx.get(tasks, headers={"Authorization": "Bearer nonsense"}).status_code == 401
    public_id = tokens["Hospital A"].split("_")[1]
    forged = f"tfe_{public_id}_{'A' * 43}"  # a real id with a wrong secret
    answer = httpx.get(tasks, headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401 and answer.json()["detail"] == "the token is not valid for this cloud"
    assert httpx.get(tasks, headers={"Authorization": f"Basic {tokens['Hospital A']}"}).status_code == 401
    good = {"Authorization": f"Bearer {tokens['Hospital A']}"}
    assert httpx.get(tasks, headers=good).json() == []
    reader = {"Authorization": f"Bearer {tokens['Reader']}"}
    refused = httpx.post(tasks, headers=reader, json=publish_body(fingerprint_bytes("busi_3class")), timeout=60)
    assert refused.status_code == 403 and "may not publish" in refused.json()["detail"]

    engine = create_cloud_engine(database)
    CloudService(engine).revoke_token(public_id)  # as 'cloud token revoke' does, while the server runs
    engine.dispose()
    revoked = httpx.get(tasks, headers=good)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]


def test_only_the_publisher_or_an_admin_changes_or_withdraws(sqlite_database, server_factory):
    tokens = make_tokens(sqlite_database, "Hospital A", "Hospital B", admin=("Consortium",))
    server = server_factory(sqlite_database)
    with CloudClient(server.url, tokens["Hospital A"]) as a, CloudClient(server.url, tokens["Hospital B"]) as b, \
            CloudClient(server.url, tokens["Consortium"]) as admin:
        task = a.publish(fingerprint_bytes("busi_3class"), {"name": "A's task"})
        for attempt in (lambda: b.update_card(task["id"], {"name": "B's now"}), lambda: b.withdraw(task["id"])):
            with pytest.raises(CloudClientError) as caught:
                attempt()
            assert caught.value.status == 403
        assert a.update_card(task["id"], {"name": "A's task, renamed"})["card"]["name"] == "A's task, renamed"
        assert admin.update_card(task["id"], {"name": "fixed by the admin"})["card"]["name"] == "fixed by the admin"
        admin.withdraw(task["id"])
        assert b.tasks() == []
        with pytest.raises(CloudClientError) as caught:
            a.withdraw(task["id"])  # already gone
        assert caught.value.status == 404
        actions = [(entry["action"], entry["institution"]) for entry in admin.audit()
                   if entry["task_id"] == task["id"]]
        assert actions == [("task.withdraw", "Consortium"), ("task.update", "Consortium"),
                           ("task.update", "Hospital A"), ("task.publish", "Hospital A")]
        with pytest.raises(CloudClientError) as caught:
            a.audit()
        assert caught.value.status == 403


def _raw_request(port: int, head: bytes, body_chunks: list[bytes] = (), pause_s: float = 0.0) -> bytes:
    """Send ``head`` (and optionally body chunks) on a plain socket; return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(head)
        try:
            for chunk in body_chunks:
                time.sleep(pause_s)
                connection.sendall(chunk)
        except OSError:  # the server answered and closed while we were still sending: that is the point
            pass
        answer = b""
        while True:  # the server closes the connection after a 413 (connection: close)
            try:
                part = connection.recv(65536)
            except OSError:
                break
            if not part:
                break
            answer += part
    return answer


def test_oversized_body_is_refused_before_it_is_read(sqlite_database, server_factory):
    tokens = make_tokens(sqlite_database, "Hospital A")
    server = server_factory(sqlite_database, max_body_mb=1)
    auth = f"Authorization: Bearer {tokens['Hospital A']}\r\n".encode()
    # a declared 1 GB body, of which not one byte is sent: the answer comes anyway, at once
    started = time.monotonic()
    answer = _raw_request(server.port, b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\n" + auth +
                          b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than this cloud accepts (1,048,576 bytes)" in answer
    assert time.monotonic() - started < 10
    # a chunked body without a length: cut off at the first chunk past the limit, long before its end
    chunk = b"%x\r\n%s\r\n" % (256 * 1024, b"x" * 256 * 1024)
    answer = _raw_request(server.port, b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\n" + auth +
                          b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", [chunk] * 400)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    with CloudClient(server.url, tokens["Hospital A"]) as client:
        assert client.tasks() == []  # and the server still works
        with pytest.raises(CloudClientError) as caught:
            client.publish(b"\0" * 2 * 1024**2, {"name": "too large"})
        assert caught.value.status == 413


def test_every_hostile_fingerprint_is_refused_with_the_validators_message(sqlite_database, server_factory):
    tokens = make_tokens(sqlite_database, "Hospital A")
    server = server_factory(sqlite_database)
    headers = {"Authorization": f"Bearer {tokens['Hospital A']}"}
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=120) as http:
        for case, (data, _expected) in sorted(HOSTILE.items()):
            with pytest.raises(FingerprintFileError) as local:
                Fingerprint.from_bytes(data, "uploaded fingerprint")
            answer = http.post("/tasks", json=publish_body(data, name=case))
            assert answer.status_code == 422, (case, answer.text[:300])
            assert answer.json()["detail"] == str(local.value), case
            query = http.post("/query", json={"fingerprint": base64.b64encode(data).decode()})
            assert query.status_code == 422 and query.json()["detail"] == \
                str(local.value).replace("uploaded fingerprint", "query fingerprint"), case
        not_base64 = http.post("/tasks", json=dict(publish_body(b""), fingerprint="***"))
        assert not_base64.status_code == 422 and "not base64" in not_base64.json()["detail"]
        assert http.get("/tasks").json() == []


HOSTILE_TEXT = {
    "name": "x'); DROP TABLE tasks; -- \" OR 1=1",
    "modality": "<script>alert('modality')</script><img src=x onerror=alert(1)>",
    "anatomy": "**bold** _it_ [link](javascript:alert(1)) <!-- --> | table | `code`",
    "terms_of_reuse": "=HYPERLINK(\"http://evil.example\",\"click\")",
    "contact": "+1-555 @SUM(A1:A9) \x1b[31mred\x1b[0m\u202eevil\nsecond line\ttab",
}


def test_card_text_comes_back_as_the_same_text_and_is_never_interpreted(database, server_factory, tmp_path):
    tokens = make_tokens(database, "Hospital A", "Hospital B")
    server = server_factory(database)
    with CloudClient(server.url, tokens["Hospital A"]) as a, CloudClient(server.url, tokens["Hospital B"]) as b:
        classes = {"=cmd|' /C calc'!A0": 3, "<b>benign</b>": 5}
        task = a.publish(fingerprint_bytes("busi_3class"), dict(HOSTILE_TEXT, classes=classes))
        a.add_experience(task["id"], {"scenario": "augmentation policy", "transferred": {"policy": "-2+3 <i>"},
                                      "metric": "@AUROC", "value_without": 0.5, "value_with": 0.75,
                                      "repetitions": 2, "note": "'; DELETE FROM experiences; --"})
        seen = b.task(task["id"])
        assert {key: seen["card"][key] for key in HOSTILE_TEXT} == HOSTILE_TEXT
        assert seen["card"]["classes"] == classes
        assert seen["experiences"][0]["note"] == "'; DELETE FROM experiences; --"
        result = b.query(fingerprint_bytes("busi_3class", half=True))
    assert result["tasks"][0]["card"]["name"] == HOSTILE_TEXT["name"]
    # the terminal: one line per row, no escape sequence, no bidi override, no forged second line
    printed = "\n".join(query_lines(result, server.url))
    assert "\x1b" not in printed and "\u202e" not in printed and "\nsecond line" not in printed
    # CSV: formulas neutralised with an apostrophe, everything else exactly as sent
    path = tmp_path / "ranking.csv"
    write_csv(query_rows(result), path)
    row = next(csv.DictReader(path.open(encoding="utf-8")))
    assert row["terms_of_reuse"] == "'" + HOSTILE_TEXT["terms_of_reuse"]
    assert row["contact"] == "'" + HOSTILE_TEXT["contact"]
    assert row["task"] == HOSTILE_TEXT["name"] and row["modality"] == HOSTILE_TEXT["modality"]
    assert row["anatomy"] == HOSTILE_TEXT["anatomy"]


def test_text_that_no_database_can_store_is_refused_alike(database, server_factory):
    """PostgreSQL cannot store NUL in text and no database stores an unpaired surrogate as UTF-8: both are refused
    with 422 before the database is touched, so SQLite and PostgreSQL behave the same."""
    tokens = make_tokens(database, "Hospital A")
    server = server_factory(database)
    headers = {"Authorization": f"Bearer {tokens['Hospital A']}", "Content-Type": "application/json"}
    body = json.dumps(publish_body(fingerprint_bytes("busi_3class")))
    for bad, expected in (("nul\\u0000inside", "NUL character"), ("lone \\ud800 surrogate", "unicode")):
        text = body.replace('"name": "task"', f'"name": "{bad}"')
        answer = httpx.post(f"{server.url}/api/v1/tasks", content=text.encode(), headers=headers, timeout=60)
        assert answer.status_code == 422 and expected in answer.json()["detail"], answer.text[:300]
    assert httpx.get(f"{server.url}/api/v1/tasks", headers=headers).json() == []


def test_public_reads_open_reading_but_not_writing(sqlite_database, server_factory):
    tokens = make_tokens(sqlite_database, "Hospital A")
    server = server_factory(sqlite_database, public_reads=True)
    with CloudClient(server.url, tokens["Hospital A"]) as a:
        task = a.publish(fingerprint_bytes("busi_3class"), {"name": "open task"})
    with CloudClient(server.url, None) as anonymous:
        assert [t["id"] for t in anonymous.tasks()] == [task["id"]]
        assert anonymous.query(fingerprint_bytes("busi_3class", half=True))["tasks"][0]["task_id"] == task["id"]
        with pytest.raises(CloudClientError) as caught:
            anonymous.publish(fingerprint_bytes("covid_ct"), {"name": "anonymous"})
        assert caught.value.status == 401
    assert httpx.get(f"{server.url}/openapi.json").json()["info"]["title"].endswith("knowledge cloud")
