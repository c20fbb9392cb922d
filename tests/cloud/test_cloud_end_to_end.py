"""Issue 24's 'done when': two institutions on one cloud, on SQLite and on PostgreSQL, through the command line
against a real server process."""
from __future__ import annotations

import csv
import json

import pytest

from core.cloud.client import CloudClient, CloudClientError
from tests.cloud.cloud_harness import SHIPPED, cli_env, run_cli


def last_line(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_two_institutions_end_to_end(database, server_factory, tmp_path):
    token_a = last_line(run_cli("cloud", "token", "create", "--database", database, "--institution", "Hospital A"))
    token_b = last_line(run_cli("cloud", "token", "create", "--database", database, "--institution", "Hospital B"))
    assert token_a.startswith("tfe_") and token_b.startswith("tfe_") and token_a != token_b
    server = server_factory(database)
    as_a = dict(cli_env(), TFE_CLOUD_URL=server.url, TFE_CLOUD_TOKEN=token_a)  # A uses the variables, B the flags
    as_b = ["--server", server.url, "--token", token_b]

    card = tmp_path / "card.json"
    card.write_text(json.dumps({"modality": "ultrasound", "anatomy": "breast", "terms_of_reuse": "CC BY 4.0",
                                "contact": "ai-lab@hospital-a.example"}))
    task_id = last_line(run_cli("cloud", "publish", str(SHIPPED / "fingerprints" / "busi_3class.npz"), "--name",
                                "Breast ultrasound, A", "--card", str(card), env=as_a))
    other_id = last_line(run_cli("cloud", "publish", str(SHIPPED / "fingerprints" / "covid_ct.npz"), "--name",
                                 "Lung CT, A", env=as_a))
    experience = tmp_path / "experience.json"
    experience.write_text(json.dumps({"scenario": "pretraining data",
                                      "transferred": {"source_task": "RadImageNet subset", "architecture": "resnet50"},
                                      "metric": "AUROC", "value_without": 0.812, "value_with": 0.861,
                                      "repetitions": 5, "note": "5-fold cross-validation"}))
    run_cli("cloud", "experience", "add", task_id, "--json", str(experience), env=as_a).check_returncode()

    # B queries with half of the same task's images: A's task comes first, with A's experience
    ranking = tmp_path / "ranking.csv"
    query = run_cli("cloud", "query", str(SHIPPED / "halves" / "busi_3class.a.npz"), "--csv", str(ranking), *as_b)
    assert query.returncode == 0, query.stderr
    lines = query.stdout.splitlines()
    first = next(line for line in lines if line.lstrip().startswith("1 "))
    assert task_id in first and "published by Hospital A" in first
    assert "AUROC 0.812 without, 0.861 with (+0.049, 5 run(s)), reported by Hospital A" in query.stdout
    rows = list(csv.DictReader(ranking.open()))
    assert [r["task_id"] for r in rows] == [task_id, other_id]
    assert rows[0]["publisher"] == "Hospital A" and "resnet50" in rows[0]["experiences"]

    # B may neither withdraw nor change A's task
    refused = run_cli("cloud", "withdraw", task_id, *as_b)
    assert refused.returncode == 6 and len(refused.stderr.strip().splitlines()) == 1
    assert "published by another institution" in refused.stderr
    with CloudClient(server.url, token_b) as client_b:
        with pytest.raises(CloudClientError) as caught:
            client_b.update_card(task_id, {"name": "taken over by B"})
        assert caught.value.status == 403
        assert client_b.task(task_id)["card"]["name"] == "Breast ultrasound, A"

        # A withdraws; B no longer sees it anywhere
        assert last_line(run_cli("cloud", "withdraw", task_id, env=as_a)) == task_id
        after = run_cli("cloud", "query", str(SHIPPED / "halves" / "busi_3class.a.npz"), *as_b)
        assert after.returncode == 0 and task_id not in after.stdout and other_id in after.stdout
        assert [t["id"] for t in client_b.tasks()] == [other_id]
        with pytest.raises(CloudClientError) as caught:
            client_b.task(task_id)
        assert caught.value.status == 404
