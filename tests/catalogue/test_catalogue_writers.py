"""Issue 22, data loss: writers of one local catalogue are serialised (two real ``catalogue add`` processes started
together both land), a write killed between its two renames is restored instead of starting over from the shipped
catalogue, and what killed writers leave behind is removed at the next run, never while a live writer holds the
lock."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.catalogue.lock import lock_path, recover, writer_lock
from core.catalogue.store import load_catalogue
from core.cli import EXIT_FINGERPRINT, EXIT_OK
from core.errors import CatalogueError
from tests.synthetic import make_catalogue, make_fingerprint, run_main, snapshot

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    """``python -m core ARGS`` as a real process (own interpreter, own file descriptors, own locks)."""
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def add_args(fingerprint: Path, local: Path, shipped: Path, name: str) -> tuple[str, ...]:
    return ("catalogue", "add", str(fingerprint), "--name", name, "--local", str(local), "--catalogue", str(shipped))


@pytest.fixture()
def setup(tmp_path):
    shipped = make_catalogue(tmp_path / "shipped", n_tasks=1)  # 1 + 2 additions: the map stays MDS (fast)
    files = [make_fingerprint(seed=10 + i, name=f"mine {i}").save(tmp_path / f"mine{i}.npz") for i in range(2)]
    return shipped, tmp_path / "local", files


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


def test_two_concurrent_cli_additions_both_land(setup):
    shipped, local, (first, second) = setup
    runs = [cli(*add_args(first, local, shipped, "first")), cli(*add_args(second, local, shipped, "second"))]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    for code, err in results:
        assert code == EXIT_OK, err
    assert load_catalogue(local).ids == ["task_0", "user_first", "user_second"] or \
        load_catalogue(local).ids == ["task_0", "user_second", "user_first"]
    assert leftovers(local.parent) == []


def test_a_held_lock_says_who_holds_it_and_writes_nothing(setup):
    shipped, local, (first, _) = setup
    with writer_lock(local):  # this test process is the "other writer"
        run = cli(*add_args(first, local, shipped, "first"), env={"TFE_CATALOGUE_LOCK_TIMEOUT_S": "0.5"})
        code, err = run.wait(timeout=60), run.stderr.read()
    assert code == EXIT_FINGERPRINT
    assert f"catalogue {local} is being written by another process (pid {os.getpid()}); try again" in err
    assert not local.exists()


def test_kill_between_the_two_renames_is_restored_not_started_over(setup, capsys):
    shipped, local, (first, second) = setup
    code, _, err = run_main(capsys, *add_args(first, local, shipped, "first"))
    assert code == EXIT_OK, err
    before = snapshot(local)
    local.rename(local.parent / ".local.old-k1ll3d")  # the state a kill between the renames leaves
    code, _, err = run_main(capsys, *add_args(second, local, shipped, "second"))
    assert code == EXIT_OK, err
    assert "restored" in err and ".local.old-k1ll3d" in err
    assert load_catalogue(local).ids == ["task_0", "user_first", "user_second"]  # the first addition survived
    assert leftovers(local.parent) == []
    local.rename(local.parent / ".local.old-again")
    code, out, err = run_main(capsys, "compare", str(first), "--catalogue", str(local))  # a reader restores too
    assert code == EXIT_OK, err
    assert load_catalogue(local).ids == ["task_0", "user_first", "user_second"]
    assert before != snapshot(local)


WRITER_KILLED_MID_WRITE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from core.catalogue.store import replace_folder

    def write(staging: Path) -> None:
        (staging / "big.bin").write_bytes(bytes(20 * 2**20))  # the 20 MB a killed 'add' used to leave behind
        print("staged", flush=True)
        time.sleep(600)

    replace_folder(Path(sys.argv[1]), write, carry_from=Path(sys.argv[1]))
""")


def test_leftovers_of_a_killed_writer_are_removed_at_the_next_run_not_while_it_lives(setup, capsys):
    shipped, local, (first, second) = setup
    assert run_main(capsys, *add_args(first, local, shipped, "first"))[0] == EXIT_OK
    writer = subprocess.Popen([sys.executable, "-c", WRITER_KILLED_MID_WRITE, str(local)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "staged"
        staged = [p for p in local.parent.iterdir() if p.name.startswith(".local.new-")]
        assert len(staged) == 1 and (staged[0] / "big.bin").stat().st_size == 20 * 2**20
        with pytest.raises(CatalogueError, match=rf"being written by another process \(pid {writer.pid}\)"):
            recover(local, timeout_s=0.3)  # a live writer's staging folder is not touched
        assert staged[0].is_dir()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    (local.parent / ".local.old-finished").mkdir()  # a write that renamed both but was killed before removing it
    assert staged[0].is_dir()
    started = time.monotonic()
    code, _, err = run_main(capsys, *add_args(second, local, shipped, "second"))
    assert code == EXIT_OK, err
    assert time.monotonic() - started < 60  # the kernel released the dead writer's lock: nobody waited it out
    assert f"removed {staged[0].name}" in err and "removed .local.old-finished" in err
    assert leftovers(local.parent) == []
    assert load_catalogue(local).ids == ["task_0", "user_first", "user_second"]


def test_the_lock_file_sits_beside_the_catalogue_and_is_reentrant(tmp_path):
    root = tmp_path / "cat"
    assert lock_path(root) == tmp_path / ".cat.lock"
    with writer_lock(root):
        with writer_lock(root) as notes:  # a writer calling another writer of the same folder does not deadlock
            assert notes == []
        assert lock_path(root).read_text().strip() == str(os.getpid())


def test_synthetic_catalogue_from_the_command_line(tmp_path, capsys):
    """`catalogue synthetic` writes a loadable catalogue of random tasks made like the shipped one, into a new
    folder only."""
    from core.catalogue.store import DEFAULT_CATALOGUE
    from core.cli import EXIT_USAGE
    code, _, err = run_main(capsys, "catalogue", "synthetic", str(tmp_path / "many"), "--tasks", "60")
    assert code == EXIT_OK and "60 synthetic tasks" in err
    made, shipped = load_catalogue(tmp_path / "many"), load_catalogue(DEFAULT_CATALOGUE)
    assert len(made.ids) == 60 and sum(t.kind == "control" for t in made.tasks) == 1
    assert made.edges.identity == shipped.edges.identity and made.weights_sha256 == shipped.weights_sha256
    assert made.bkld_small.shape == (60, 60)
    code, _, err = run_main(capsys, "catalogue", "synthetic", str(tmp_path / "many"), "--tasks", "60")
    assert code == EXIT_USAGE and "already exists" in err
    # the large layout: a source store and no pairwise matrix; the catalogue opens without reading a fingerprint
    code, _, err = run_main(capsys, "catalogue", "synthetic", str(tmp_path / "big"), "--tasks", "60",
                            "--layout", "store")
    assert code == EXIT_OK and "60 synthetic tasks" in err
    big = load_catalogue(tmp_path / "big")
    assert type(big).__name__ == "LargeCatalogue" and len(big.tasks) == 60
    assert (tmp_path / "big" / "store").is_dir() and not (tmp_path / "big" / "matrices.npz").exists()
    around = big.neighbourhood(shipped.fingerprints[shipped.ids[0]])
    assert around.neighbourhood_of["total"] == 60 and around.bkld_small.shape[0] == len(around.ids) < 60


def test_a_new_stored_distance_is_one_registry_entry(monkeypatch, tmp_path):
    """What the README's architecture section promises: a registry entry with ``stored_as`` is stored in
    matrices.npz, read back and served as that distance's matrix, with no change to the catalogue code."""
    from dataclasses import replace

    import numpy as np

    from core.distances import registry
    from core.distances.bank import bank_for

    stored_p2l = replace(registry.P2L, name="p2l-stored", stored_as="p2l_stored")
    monkeypatch.setitem(registry.DISTANCES, stored_p2l.name, stored_p2l)
    catalogue = load_catalogue(make_catalogue(tmp_path / "catalogue", 3))
    assert list(catalogue.matrices) == ["bkld_small", "bkld_large", "p2l_stored"]
    with np.load(tmp_path / "catalogue" / "matrices.npz") as data:
        assert data.files == ["task_ids", "bkld_small", "bkld_large", "p2l_stored", "coords"]
    expected = bank_for("p2l", [catalogue.fingerprints[i] for i in catalogue.ids]).pairwise()
    np.testing.assert_allclose(catalogue.matrix("p2l-stored"), expected, rtol=1e-12)
    assert catalogue.matrix("p2l-stored") is catalogue.matrices["p2l_stored"]  # read, not computed
    monkeypatch.delitem(registry.DISTANCES, stored_p2l.name)
    older = load_catalogue(make_catalogue(tmp_path / "older", 3))  # written before the entry existed
    assert list(older.matrices) == ["bkld_small", "bkld_large"]
    monkeypatch.setitem(registry.DISTANCES, stored_p2l.name, stored_p2l)
    np.testing.assert_allclose(load_catalogue(tmp_path / "older").matrix("p2l-stored"), expected, rtol=1e-12)
