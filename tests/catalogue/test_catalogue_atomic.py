"""Issue 15, case 1: every catalogue write is atomic and task ids made from names are bounded and safe; hostile
names (250 characters, undecodable bytes, control characters) never break a catalogue."""
from __future__ import annotations

import errno

import pytest

from core.catalogue.store import MAX_TASK_ID_CHARS, TaskInfo, add_to_local_copy, load_catalogue, task_id_for
from core.cli import EXIT_OK
from core.errors import CatalogueError
from core.fingerprint.fingerprint import Fingerprint
from tests.synthetic import make_catalogue, make_fingerprint, run_main, snapshot


def user_task(name: str) -> TaskInfo:
    return TaskInfo(id=task_id_for(name), name=name, modality="CT", anatomy="chest", classes={}, n_images=0,
                    kind="user")


@pytest.mark.parametrize("name", ["x" * 250, "caf\udce9 study", "\x1b[2J\nrank 1", "脑部 扫描", "../../etc", ""])
def test_task_ids_are_bounded_and_file_name_safe(name):
    task_id = task_id_for(name)
    assert len(task_id) <= MAX_TASK_ID_CHARS
    assert task_id.replace("_", "").isalnum() and task_id.isascii() and task_id.startswith("user_")


def test_long_names_keep_distinct_ids():
    assert task_id_for("a" * 250 + "1") != task_id_for("a" * 250 + "2")
    assert task_id_for("my task") == "user_my_task"  # short names keep the readable id they always had


def test_a_failing_write_leaves_the_catalogue_as_it_was(tmp_path, monkeypatch):
    shipped = make_catalogue(tmp_path / "shipped")
    local = tmp_path / "local"
    add_to_local_copy(make_fingerprint(seed=5), user_task("first"), local, shipped)
    before = snapshot(local)
    original_save = Fingerprint.save

    def failing_save(self, path, overwrite=False):
        if self.name == "second":
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(path))
        return original_save(self, path, overwrite)

    monkeypatch.setattr(Fingerprint, "save", failing_save)
    with pytest.raises(OSError, match="too long"):
        add_to_local_copy(make_fingerprint(seed=6), user_task("second"), local, shipped)
    assert snapshot(local) == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["local", "shipped"]
    assert load_catalogue(local).ids[-1] == "user_first"


def test_local_copy_carries_over_other_files_and_keeps_the_shipped_one_untouched(tmp_path):
    shipped = make_catalogue(tmp_path / "shipped")
    before = snapshot(shipped)
    local = add_to_local_copy(make_fingerprint(seed=5), user_task("mine"), tmp_path / "local", shipped)
    assert (local.root / "SOURCES.json").read_bytes() == b"{}\n"
    assert snapshot(shipped) == before


def test_interrupted_swap_is_restored_by_a_reader_or_reported_with_where_the_old_catalogue_is(tmp_path):
    from core.catalogue.lock import writer_lock

    root = make_catalogue(tmp_path / "cat")
    with writer_lock(root):  # a writer is at work (here: this thread): the reader does not touch the folders
        root.rename(tmp_path / ".cat.old-abc")  # ... and is between its two renames
        with pytest.raises(CatalogueError, match=r"\.cat\.old-abc"):
            load_catalogue(root)
    assert load_catalogue(root).ids == ["task_0", "task_1"]  # no writer: the previous catalogue is put back
    assert not (tmp_path / ".cat.old-abc").exists()


def test_cli_add_with_a_250_character_name_then_compare_replace_refresh(tmp_path, capsys):
    shipped = make_catalogue(tmp_path / "shipped")
    mine = make_fingerprint(seed=9, name="mine").save(tmp_path / "mine.npz")
    local = tmp_path / "local"
    name = "very long study name " * 12
    code, _, err = run_main(capsys, "catalogue", "add", str(mine), "--name", name, "--local", str(local),
                            "--catalogue", str(shipped))
    assert code == EXIT_OK, err
    catalogue = load_catalogue(local)
    assert catalogue.tasks[-1].name == name.strip() and len(catalogue.ids[-1]) <= MAX_TASK_ID_CHARS
    for args in (("compare", str(mine), "--catalogue", str(local)),
                 ("catalogue", "add", str(mine), "--name", name, "--local", str(local), "--catalogue",
                  str(shipped), "--replace"),
                 ("catalogue", "refresh", str(local))):
        code, _, err = run_main(capsys, *args)
        assert code == EXIT_OK, (args, err)


def test_non_utf8_folder_name_is_added_and_compared(tmp_path, capsys):
    shipped = make_catalogue(tmp_path / "shipped")
    latin1 = make_fingerprint(seed=3, name=b"caf\xe9".decode("utf-8", "surrogateescape"))
    path = latin1.save(tmp_path / "cafe.npz")
    local = tmp_path / "local"
    code, _, err = run_main(capsys, "catalogue", "add", str(path), "--local", str(local), "--catalogue", str(shipped))
    assert code == EXIT_OK, err
    code, out, err = run_main(capsys, "compare", str(path), "--catalogue", str(local))
    assert code == EXIT_OK, err
    assert "caf\ufffd" in out
    out.encode("utf-8")  # printable on any UTF-8 terminal: no lone surrogates left
