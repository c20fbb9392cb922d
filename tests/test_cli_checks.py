"""Issue 15, case 6: the command line checks options and output paths before a run, never shows a traceback, and
removes its temporary extraction folder on SIGTERM as on Ctrl-C."""
from __future__ import annotations

import os
import signal
import zipfile
from types import SimpleNamespace

import pytest

from core.cli import EXIT_TERMINATED, EXIT_USAGE
from tests.hostile_inputs import _gradient, _png_bytes, write_anchor
from tests.synthetic import WEIGHTS, make_catalogue, make_fingerprint, run_main


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    write_anchor(images)
    return images


def never_load_anything(monkeypatch):
    """Option and path checks must come before the catalogue or the backbone is loaded."""
    import core.catalogue.store
    monkeypatch.setattr(core.catalogue.store, "load_catalogue", lambda *a, **k: pytest.fail("loaded the catalogue"))


@pytest.mark.parametrize("output, message", [
    ("missing/x.npz", "does not exist"),
    ("/proc/x.npz", "cannot write into /proc"),
    (".", "is a folder"),
])
def test_unusable_output_paths_are_refused_before_the_run(output, message, folder, tmp_path, capsys, monkeypatch):
    never_load_anything(monkeypatch)
    target = output if output.startswith("/") else str(tmp_path / output)
    code, _, err = run_main(capsys, "fingerprint", str(folder), "-o", target)
    assert code == EXIT_USAGE and message in err and "Traceback" not in err


@pytest.mark.parametrize("options, message", [
    (["--batch-size", str(10**9)], "--batch-size"),
    (["--batch-size", "0"], "--batch-size"),
    (["--n", "0"], "--n"),
    (["--device", "tpu"], "choose auto, cpu"),
] + ([(["--device", "cuda"], "no CUDA GPU")] if not __import__("torch").cuda.is_available() else []))
def test_bad_options_are_refused_before_the_run(options, message, folder, tmp_path, capsys, monkeypatch):
    never_load_anything(monkeypatch)
    try:
        code, _, err = run_main(capsys, "fingerprint", str(folder), "-o", str(tmp_path / "x.npz"), *options)
    except SystemExit as exit_:  # argparse refuses by exiting with 2
        code, err = exit_.code, capsys.readouterr().err
    assert code == EXIT_USAGE and message in err and "Traceback" not in err


@pytest.mark.parametrize("top", ["-1", "0"])
def test_compare_top_must_be_positive(top, tmp_path, capsys):
    path = make_fingerprint().save(tmp_path / "mine.npz")
    with pytest.raises(SystemExit) as exit_:
        run_main(capsys, "compare", str(path), "--top", top)
    assert exit_.value.code == EXIT_USAGE and "--top" in capsys.readouterr().err


def test_compare_csv_path_is_checked_before_comparing(tmp_path, capsys):
    path = make_fingerprint().save(tmp_path / "mine.npz")
    code, out, err = run_main(capsys, "compare", str(path), "--csv", str(tmp_path / "no" / "r.csv"))
    assert code == EXIT_USAGE and "does not exist" in err and out == ""


def test_sigterm_during_a_zip_run_removes_the_extracted_images(tmp_path, capsys, monkeypatch):
    import core.features.backbones
    import core.features.inference
    import core.fingerprint.pipeline
    catalogue = make_catalogue(tmp_path / "cat")
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for i in range(3):
            bundle.writestr(f"{i}.png", _png_bytes(_gradient()))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)
    backbone = SimpleNamespace(weights_sha256=WEIGHTS, spec=SimpleNamespace(name="tf_efficientnet_lite0"),
                               device="cpu", probe="postact", backend="torch")
    monkeypatch.setattr(core.features.backbones, "load_backbone", lambda *a, **k: backbone)
    monkeypatch.setattr(core.features.inference, "engine_for",
                        lambda *a, **k: SimpleNamespace(name="torch", describe=lambda: "torch (test double)"))
    seen = []

    def terminated_mid_run(dataset, *args, **kwargs):
        seen.extend(p.name for p in scratch.iterdir())
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises here, as a kill from outside would
        pytest.fail("SIGTERM did not stop the run")

    monkeypatch.setattr(core.fingerprint.pipeline, "fingerprint_dataset", terminated_mid_run)
    code, _, err = run_main(capsys, "fingerprint", str(archive), "-o", str(tmp_path / "x.npz"), "--catalogue",
                            str(catalogue))
    assert code == EXIT_TERMINATED and "terminated" in err, err
    assert any(name.startswith("fingerprint-zip-") for name in seen)  # the extraction existed during the run
    assert list(scratch.iterdir()) == []  # and is gone
