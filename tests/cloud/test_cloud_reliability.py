"""Issue 24: many clients at once, a server killed in the middle of publishing, and rankings that are the local
catalogue's (on the server and after a pull), against a real server process."""
from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
import uuid
from contextlib import redirect_stdout

import httpx
import numpy as np
import pytest

from core.catalogue.store import load_catalogue
from core.cloud.client import CloudClient, CloudClientError
from core.fingerprint.fingerprint import Fingerprint
from tests.cloud.cloud_harness import SHIPPED, fingerprint_bytes, make_tokens

pytestmark = pytest.mark.slow
TASKS = ("busi_3class", "covid_ct", "bccd_cells", "ph2_3class")


def body(task: str, name: str, request_id: str | None = None) -> dict:
    return {"request_id": request_id or uuid.uuid4().hex, "card": {"name": name},
            "fingerprint": base64.b64encode(fingerprint_bytes(task)).decode()}


def test_fifty_concurrent_publishers_and_queriers_lose_and_duplicate_nothing(database, server_factory):
    tokens = make_tokens(database, "Hospital A", "Hospital B", admin=("Consortium",))
    server = server_factory(database)
    with CloudClient(server.url, tokens["Hospital A"]) as a:
        a.publish(fingerprint_bytes("busi_3class"), {"name": "seed task"})  # so that every query has something
    names = [f"concurrent task {i:02d}" for i in range(25)]
    published, answers, failures = [], [], []
    start = threading.Barrier(50)

    def publisher(index: int) -> None:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=300,
                          headers={"Authorization": f"Bearer {tokens['Hospital A']}"}) as http:
            payload = body(TASKS[index % len(TASKS)], names[index])
            start.wait()
            answer = http.post("/tasks", json=payload)
            (published if answer.status_code == 201 else failures).append((answer.status_code, answer.text[:200]))

    def querier(index: int) -> None:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=300,
                          headers={"Authorization": f"Bearer {tokens['Hospital B']}"}) as http:
            payload = {"fingerprint": base64.b64encode(fingerprint_bytes(TASKS[index % 4], half=True)).decode()}
            start.wait()
            answer = http.post("/query", json=payload)
            (answers if answer.status_code == 200 else failures).append(answer.json())

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(25)]
    threads += [threading.Thread(target=querier, args=(i,)) for i in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not failures, failures[:3]
    assert len(published) == 25 and len(answers) == 25
    with CloudClient(server.url, tokens["Consortium"]) as admin:
        listed = admin.tasks()
        assert sorted(t["card"]["name"] for t in listed) == sorted(names + ["seed task"])
        assert len({t["id"] for t in listed}) == 26
        publishes = [e for e in admin.audit() if e["action"] == "task.publish"]
        assert sorted(e["task_id"] for e in publishes) == sorted(t["id"] for t in listed)
    for answer in answers:  # each query saw a consistent set: no task twice, only published tasks
        ids = [row["task_id"] for row in answer["tasks"]]
        assert len(ids) == len(set(ids)) and set(ids) <= {t["id"] for t in listed}
        assert [row["rank"] for row in answer["tasks"]] == list(range(1, len(ids) + 1))
    # a retried publish (same request id) returns the task it made, never a second one
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=120,
                      headers={"Authorization": f"Bearer {tokens['Hospital A']}"}) as http:
        payload = body("covid_ct", "retried", request_id="retry-0000000001")
        first, again = http.post("/tasks", json=payload), http.post("/tasks", json=payload)
        assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]


def test_sigkill_during_publishing_leaves_each_publish_whole_or_absent(database, server_factory):
    tokens = make_tokens(database, "Hospital A", admin=("Consortium",))
    server = server_factory(database)
    with CloudClient(server.url, tokens["Hospital A"]) as a:
        before = a.publish(fingerprint_bytes("busi_3class"), {"name": "published before the crash"})
        a.add_experience(before["id"], {"scenario": "architecture", "transferred": {"architecture": "resnet18"},
                                        "metric": "AUROC", "value_without": 0.8, "value_with": 0.83,
                                        "repetitions": 3})
    acknowledged, sent, stop = {}, set(), threading.Event()
    lock = threading.Lock()

    def keep_publishing(worker: int) -> None:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60,
                          headers={"Authorization": f"Bearer {tokens['Hospital A']}"}) as http:
            count = 0
            while not stop.is_set():
                name = f"storm {worker}-{count}"
                count += 1
                with lock:
                    sent.add(name)
                try:
                    answer = http.post("/tasks", json=body(TASKS[count % 4], name))
                except httpx.HTTPError:
                    return  # the server is gone
                if answer.status_code == 201:
                    with lock:
                        acknowledged[name] = answer.json()["id"]

    workers = [threading.Thread(target=keep_publishing, args=(i,)) for i in range(8)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # SIGKILL while eight publishes are under way
    stop.set()
    for worker in workers:
        worker.join(timeout=120)
    assert len(acknowledged) >= 6

    restarted = server_factory(database)
    with CloudClient(restarted.url, tokens["Consortium"]) as admin:
        listed = {t["card"]["name"]: t for t in admin.tasks()}
        assert listed["published before the crash"]["experiences"][0]["transferred"] == \
            {"source_task": "", "architecture": "resnet18", "policy": ""}
        for name, task_id in acknowledged.items():  # every acknowledged publish survived
            assert listed[name]["id"] == task_id
        storm = {name: task for name, task in listed.items() if name.startswith("storm")}
        assert set(storm) <= sent and len(storm) - len(acknowledged) <= 8  # at most the in-flight ones more
        audit = admin.audit(100_000)
        published = [e["task_id"] for e in audit if e["action"] == "task.publish"]
        assert sorted(published) == sorted(t["id"] for t in listed.values())  # no task without its entry, and back
        for task in storm.values():  # each one wholly there: its fingerprint is complete and valid
            data = admin.fingerprint(task["id"])
            assert hashlib.sha256(data).hexdigest() == task["fingerprint"]["sha256"]
            Fingerprint.from_bytes(data, task["id"])
        fresh = CloudClient(restarted.url, tokens["Hospital A"])
        assert fresh.publish(fingerprint_bytes("covid_ct"), {"name": "after the restart"})["id"]
        fresh.close()
    if database.startswith("sqlite"):
        import sqlite3
        with sqlite3.connect(database.removeprefix("sqlite:///")) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_ranking_is_the_local_catalogues_on_the_server_and_after_a_pull(sqlite_database, server_factory, tmp_path):
    from core.cli import main

    tokens = make_tokens(sqlite_database, "Hospital A", "Hospital B")
    server = server_factory(sqlite_database)
    shipped = load_catalogue()
    query_path = SHIPPED / "halves" / "busi_3class.a.npz"
    query = Fingerprint.load(query_path)
    with CloudClient(server.url, tokens["Hospital A"]) as a, CloudClient(server.url, tokens["Hospital B"]) as b:
        ids = {task: a.publish(fingerprint_bytes(task), {"name": f"cloud {task}"})["id"] for task in TASKS}
        a.add_experience(ids["busi_3class"], {"scenario": "co-training data",
                                              "transferred": {"source_task": ids["ph2_3class"]}, "metric": "Dice",
                                              "value_without": 0.7, "value_with": 0.74, "repetitions": 3})
        result = b.query(query_path.read_bytes())
        # the same distances as the shipped catalogue computes for the same fingerprints
        reference = shipped.distances_to(query, "bkld-small")
        expected = {ids[task]: reference[shipped.ids.index(task)] for task in TASKS}
        got = {row["task_id"]: row["distance"] for row in result["tasks"]}
        assert got.keys() == expected.keys()
        np.testing.assert_allclose([got[i] for i in expected], list(expected.values()), rtol=1e-9)
        assert result["tasks"][0]["task_id"] == ids["busi_3class"]
        assert result["tasks"][0]["experiences"][0]["metric"] == "Dice"
        assert "nearest source" in result["verdict"]

        # pull: the same ranking on this machine, through 'compare --catalogue'
        folder = tmp_path / "pulled"
        from core.cloud.snapshot import pull
        pulled = pull(b, folder, SHIPPED)
        assert sorted(pulled.ids) == sorted(ids.values())
        printed = io.StringIO()
        with redirect_stdout(printed):
            assert main(["compare", str(query_path), "--catalogue", str(folder)]) == 0
        ranked = [line.split()[1] for line in printed.getvalue().splitlines()[1:] if line[:3].strip().isdigit()]
        assert ranked == [row["task_id"] for row in result["tasks"]]
        local = pulled.distances_to(query, "bkld-small")
        np.testing.assert_allclose([local[pulled.ids.index(i)] for i in got], list(got.values()), rtol=1e-9)
        cloud_record = __import__("json").loads((folder / "cloud.json").read_text())
        assert cloud_record["tasks"][ids["busi_3class"]]["experiences"][0]["value_with"] == 0.74

        # a withdrawn task leaves the next pull; an unrelated folder is never overwritten
        a.withdraw(ids["covid_ct"])
        assert ids["covid_ct"] not in pull(b, folder, SHIPPED).ids
        unrelated = tmp_path / "notes"
        unrelated.mkdir()
        (unrelated / "mine.txt").write_text("keep me")
        with pytest.raises(Exception, match="not an earlier pull"):
            pull(b, unrelated, SHIPPED)
        assert (unrelated / "mine.txt").read_text() == "keep me"

        # a fingerprint made with another probe is refused clearly, not ranked against incomparable tasks
        other_probe = SHIPPED / "probes" / "postact" / "fingerprints" / "busi_3class.npz"
        with pytest.raises(CloudClientError) as caught:
            b.query(other_probe.read_bytes())
        assert caught.value.status == 409 and "probe postact" in str(caught.value)
        assert "3 task(s) were made with other settings and cannot be compared" in str(caught.value)
