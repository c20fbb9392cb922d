"""The command line: progress, files, rankings and exit codes scripts can rely on."""
from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from core.cli import EXIT_FINGERPRINT, EXIT_INPUT, EXIT_OK, EXIT_USAGE, EXIT_WEIGHTS
from tests.helpers import ROOT, link_files, require_shared


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def small_task(tmp_path_factory):
    root = require_shared() / "ph2_3class"
    files = [p for c in sorted(root.iterdir()) for p in sorted(c.iterdir())[:8]]
    return link_files(files, tmp_path_factory.mktemp("cli") / "ph2_subset", root)


@pytest.mark.slow
def test_fingerprint_then_compare_ranks_the_same_modality_first(small_task, tmp_path):
    output = tmp_path / "mine.npz"
    done = run_cli("fingerprint", str(small_task), "-o", str(output), "--n", "96")
    assert done.returncode == EXIT_OK, done.stderr
    assert output.is_file() and "samples" in done.stderr and "read 24 files" in done.stderr
    again = run_cli("fingerprint", str(small_task), "-o", str(output), "--n", "96")
    assert again.returncode == EXIT_USAGE and "already exists" in again.stderr
    table = tmp_path / "ranking.csv"
    compared = run_cli("compare", str(output), "--top", "5", "--csv", str(table))
    assert compared.returncode == EXIT_OK, compared.stderr
    rows = list(csv.DictReader(table.open()))
    candidates = [r for r in rows if r["reference_control"] == "False"]
    assert len(candidates) == 5 and candidates[0]["task_id"] == "ph2_3class"
    assert len(rows) == 7 and {r["kind"] for r in rows if r["reference_control"] == "True"} == {"control"}
    lines = compared.stdout.splitlines()
    assert lines[0].split(":")[0] in ("Strong match", "Several public tasks are about equally close to your images (")
    assert "ph2_3class" in lines[2]
    for distance in ("bkld-large", "p2l", "vdna"):
        assert run_cli("compare", str(output), "--distance", distance).returncode == EXIT_OK


@pytest.mark.slow
def test_exit_codes_for_bad_input(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("fingerprint", str(empty), "-o", str(tmp_path / "x.npz"), "--n", "8")
    assert result.returncode == EXIT_INPUT and "no readable image" in result.stderr
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a fingerprint")
    result = run_cli("compare", str(broken))
    assert result.returncode == EXIT_FINGERPRINT and "broken.npz" in result.stderr
    result = run_cli("fingerprint", str(empty), "-o", str(tmp_path / "y.npz"), "--backbone", "resnet34")
    assert result.returncode == EXIT_WEIGHTS and "--weights" in result.stderr
    assert run_cli("compare").returncode == EXIT_USAGE
    assert "Traceback" not in result.stderr
