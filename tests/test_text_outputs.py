"""Issue 22: one rule for text from files and fingerprints at every output. Terminal: control characters shown
escaped, never executed or taken as a line break; CSV (compare --csv, cotrain --csv, the app's downloads): cells
starting with = + - @, tab or CR are prefixed with ' (OWASP); Markdown: every significant character escaped; JSON:
data, unchanged."""
from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.cli import EXIT_OK
from core.images.dataset import open_dataset
from core.text import csv_cell, escaped, markdown_literal
from tests.synthetic import make_catalogue, make_fingerprint, run_main
from ui.text import csv_bytes

FORMULAS = ["=HYPERLINK(\"http://127.0.0.1:9/x\",\"click\")", "=1+1", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_terminal_text_shows_control_characters_escaped():
    assert escaped("a\nb\r\tc") == "a\\nb\\r\\tc"
    assert escaped("ok\x1b[8mhidden") == "ok\\x1b[8mhidden"
    assert escaped("rtl\u202eevil") == "rtl\\u202eevil"
    assert escaped(b"caf\xe9".decode("utf-8", "surrogateescape")) == "caf\ufffd"
    assert escaped("back\\slash") == "back\\\\slash"  # an escape in the name cannot pass for one of ours


@pytest.mark.parametrize("value", FORMULAS)
def test_formula_cells_are_neutralised(value):
    assert csv_cell(value) == "'" + value.replace("\r", "\n")


@pytest.mark.parametrize("value", ["plain", "a=b", "MR", -0.25, 3, None])
def test_other_cells_are_unchanged(value):
    assert csv_cell(value) == value  # negative numbers stay numbers


def test_markdown_literal_escapes_every_construct():
    name = "[a](http://x) ![i](http://y.png) :red[x] $x^2$ **b** `c` <b> www.x.org a@b.co"
    shown = markdown_literal(name)
    unescaped = re.sub(r"\\.", "", shown.replace("\u2060", ""))  # what is left once every \X pair is taken out
    assert not set(unescaped) & set("[]()!:$*`<>@.\\"), unescaped
    assert "http\u2060\\:" in shown and "www\u2060\\." in shown and "a\u2060\\@" in shown  # no bare address
    assert re.sub(r"\\(.)", r"\1", shown.replace("\u2060", "")) == name  # reads as the name


def test_app_csv_download_neutralises_formulas():
    frame = pd.DataFrame({"task": FORMULAS, "distance": np.linspace(-1, 1, len(FORMULAS))})
    rows = list(csv.reader(io.StringIO(csv_bytes(frame).decode(), newline="")))
    assert [row[0] for row in rows[1:]] == ["'" + value.replace("\r", "\n") for value in FORMULAS]
    assert float(rows[1][1]) == -1.0  # numbers are left as numbers


def test_compare_and_cotrain_csv_neutralise_names_and_modalities(tmp_path, capsys):
    shipped = make_catalogue(tmp_path / "shipped", n_tasks=3)
    mine = make_fingerprint(seed=4, name="=HYPERLINK(\"http://127.0.0.1:9/x\",\"click\")").save(tmp_path / "m.npz")
    local = tmp_path / "local"
    code, _, err = run_main(capsys, "catalogue", "add", str(mine), "--local", str(local), "--catalogue",
                            str(shipped), "--modality", "+1+1", "--anatomy", "@SUM(A1)", "--licence=-2+3")
    assert code == EXIT_OK, err
    target = make_fingerprint(seed=5, name="target").save(tmp_path / "t.npz")
    code, _, err = run_main(capsys, "compare", str(target), "--catalogue", str(local), "--csv",
                            str(tmp_path / "compare.csv"))
    assert code == EXIT_OK, err
    code, _, err = run_main(capsys, "cotrain", str(target), "--catalogue", str(local), "--k", "4", "--csv",
                            str(tmp_path / "plan.csv"), "--json", str(tmp_path / "plan.json"),
                            "--paper", str(tmp_path / "no-paper"))
    assert code == EXIT_OK, err
    for name in ("compare.csv", "plan.csv"):
        cells = [cell for row in csv.reader(open(tmp_path / name, newline="")) for cell in row]
        assert any(cell.startswith("'=HYPERLINK") for cell in cells), cells
        assert not any(cell[:1] in ("=", "+", "@") for cell in cells), (name, cells)
        assert not any(cell.startswith("-") and not _is_number(cell) for cell in cells), (name, cells)
    plan = json.loads((tmp_path / "plan.json").read_text())  # JSON carries the name as data, unchanged
    assert any(task["task"].startswith("=HYPERLINK") for task in plan["tasks"])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def png(path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)).save(path)


def test_read_report_escapes_names_that_forge_lines_or_hide_text(tmp_path):
    root = tmp_path / "task"
    png(root / "benign" / "a.png", 1)
    png(root / "PNG    tumour     9999 files\nwrote verified.npz" / "b.png", 2)
    (root / "benign" / "broken\x1b[8m.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with open_dataset(root) as dataset:
        text = dataset.report.to_text()
    assert "\x1b" not in text and "\\x1b[8m" in text
    assert "wrote verified.npz" not in text.splitlines()[-1]
    assert not any(line.startswith("wrote") for line in text.splitlines())
    assert "9999 files\\nwrote verified.npz" in text
