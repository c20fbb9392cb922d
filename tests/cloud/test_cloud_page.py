"""The Knowledge cloud page through AppTest, against a real cloud server process."""
from __future__ import annotations

import pytest

from core.cloud.client import CloudClient
from core.fingerprint.fingerprint import Fingerprint
from tests.cloud.cloud_harness import SHIPPED, fingerprint_bytes, make_tokens
from tests.helpers import app, find_table, no_exceptions
from ui.cloud import outgoing


def test_page_without_a_connection_says_what_to_do():
    at = app("pages/7_Knowledge_cloud.py").run()
    no_exceptions(at)
    assert any("Connect to a cloud" in info.value for info in at.info)
    assert any("never leaves it" in markdown.value for markdown in at.markdown)


def test_what_leaves_the_machine_is_the_card_and_the_fingerprint_file():
    fingerprint = Fingerprint.load(SHIPPED / "fingerprints" / "busi_3class.npz")
    shown = outgoing(fingerprint, {"name": "mine"})
    assert shown["card"] == {"name": "mine"}
    assert shown["fingerprint file"]["bytes"] == len(fingerprint.to_bytes())
    assert shown["fingerprint file"]["meta.json"]["class_counts"] == fingerprint.meta.class_counts
    assert shown["fingerprint file"]["counts.npy"].startswith(f"{fingerprint.counts.shape[0]} features x 1000 bins")


@pytest.mark.slow
def test_page_browses_publishes_and_ranks(sqlite_database, server_factory):
    tokens = make_tokens(sqlite_database, "Hospital A", "Hospital B")
    server = server_factory(sqlite_database)
    hostile_name = "<script>alert(1)</script> **x** =1+1"
    with CloudClient(server.url, tokens["Hospital A"]) as a:
        task = a.publish(fingerprint_bytes("busi_3class"), {"name": hostile_name, "modality": "ultrasound"})
        a.add_experience(task["id"], {"scenario": "architecture", "transferred": {"architecture": "resnet18"},
                                      "metric": "AUROC", "value_without": 0.8, "value_with": 0.84,
                                      "repetitions": 3})
    mine = Fingerprint.load(SHIPPED / "halves" / "busi_3class.a.npz").renamed("my ultrasound")
    at = app("pages/7_Knowledge_cloud.py", fingerprint=mine, cloud_url=server.url,
             cloud_token=tokens["Hospital B"]).run()
    no_exceptions(at)
    assert any("1 published task" in success.value for success in at.success)
    listed = find_table(at, "task", "publisher", "experiences")
    assert listed.iloc[0]["task"] == hostile_name and listed.iloc[0]["publisher"] == "Hospital A"
    assert find_table(at, "scenario", "architecture").iloc[0]["with"] == 0.84

    at.button(key="cloud_rank").click().run()
    no_exceptions(at)
    ranking = find_table(at, "rank", "distance", "experiences")
    assert ranking.iloc[0]["id"] == task["id"] and "resnet18" in ranking.iloc[0]["experiences"]

    assert at.button(key="cloud_publish").disabled  # nothing leaves before the confirmation
    at.text_input(key="cloud_modality").set_value("ultrasound").run()
    at.checkbox(key="cloud_agree").check().run()
    at.button(key="cloud_publish").click().run()
    no_exceptions(at)
    assert any("Published as ct" in success.value for success in at.success)
    with CloudClient(server.url, tokens["Hospital A"]) as a:
        names = {(t["card"]["name"], t["publisher"]) for t in a.tasks()}
    assert names == {(hostile_name, "Hospital A"), ("my ultrasound", "Hospital B")}
