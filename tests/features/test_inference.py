"""Inference backends: the ONNX export of the verified weights (cache, check against PyTorch, refusal and fallback)
and that fingerprints of both backends are the same fingerprint for every purpose of the tool."""
from __future__ import annotations

import copy
import io
import json
import zipfile
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.errors import FingerprintFileError
from core.features import inference
from core.features.backbones import load_backbone
from core.features.extract import decode_in_background_default
from core.features.inference import TOLERANCE, backend_of, check_images, engine_for, make_engine, onnx_path
from core.features.onnx_export import export_onnx
from core.features.sampling import SamplingProtocol
from core.fingerprint.fingerprint import Fingerprint, check_comparable
from core.fingerprint.pipeline import fingerprint_folder
from tests.helpers import link_files, require_shared, task_halves
from tests.reference import bkld

RUN_PROBES = ("preact", "postact")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty ONNX cache folder for this test only."""
    monkeypatch.setenv(inference.CACHE_ENV, str(tmp_path))
    return tmp_path / "onnx"


def test_export_is_cached_keyed_by_weights_and_probes_and_matches_torch(backbone, cache):
    first = make_engine(backbone, RUN_PROBES, "onnxruntime")
    assert first.name == "onnxruntime" and first.verification.exported
    path = first.verification.path
    assert path.parent == cache and path.is_file()
    assert backbone.weights_sha256[:16] in path.name and "preact+postact" in path.name
    assert not list(cache.glob("*.tmp"))  # written to a temporary file, then renamed
    assert 0 < first.verification.max_abs_diff <= TOLERANCE

    again = make_engine(backbone, RUN_PROBES, "onnxruntime")
    assert not again.verification.exported and again.verification.path == path  # read from the cache, re-checked

    images = check_images()
    onnx = again.probe_features(images)
    reference = make_engine(backbone, RUN_PROBES, "torch").probe_features(images)
    assert set(onnx) == set(RUN_PROBES)
    for probe in RUN_PROBES:
        assert onnx[probe].shape == (len(images), 1280) and onnx[probe].dtype == np.float32
        np.testing.assert_allclose(onnx[probe], reference[probe], atol=1e-4, rtol=0)
    assert float(onnx["preact"].min()) < 0 <= float(onnx["postact"].min())  # each output is the probe it names

    blocks = make_engine(backbone, ("blocks",), "onnxruntime")  # another probe set: its own file
    assert blocks.verification.path != path and blocks.probe_features(images[:2])["blocks"].shape == (2, 320)


def test_corrupt_cache_file_is_exported_again(backbone, cache):
    path = onnx_path(backbone.spec, backbone.weights_sha256, RUN_PROBES)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx model" * 100)
    engine = make_engine(backbone, RUN_PROBES, "onnxruntime")
    assert engine.name == "onnxruntime" and engine.verification.exported
    assert engine.verification.max_abs_diff <= TOLERANCE and path.stat().st_size > 1_000_000


def test_cached_model_of_other_weights_is_never_trusted(backbone, cache):
    """A valid ONNX file under the right name that computes something else (here: one weight changed) is found by
    the check against PyTorch and replaced by a fresh export."""
    impostor = SimpleNamespace(spec=backbone.spec, model=copy.deepcopy(backbone.model))
    with torch.no_grad():
        impostor.model.conv_head.weight.mul_(1.5)
    path = onnx_path(backbone.spec, backbone.weights_sha256, RUN_PROBES)
    export_onnx(impostor, RUN_PROBES, path)
    engine = make_engine(backbone, RUN_PROBES, "onnxruntime")
    assert engine.verification.exported and engine.verification.max_abs_diff <= TOLERANCE


def test_model_beyond_the_tolerance_is_refused_and_torch_is_used(backbone, cache, monkeypatch):
    monkeypatch.setattr(inference, "TOLERANCE", 1e-12)  # no export can pass: the refusal path
    with pytest.warns(RuntimeWarning, match="ONNX Runtime refused, using PyTorch instead: .* differs from PyTorch"):
        engine = make_engine(backbone, RUN_PROBES, "auto")
    assert engine.name == "torch" and "fallback" in engine.describe()
    assert not list(cache.glob("*.onnx"))  # a refused export is not left in the cache


def test_backend_choice_on_other_devices_and_unknown_names(backbone):
    gpu = SimpleNamespace(spec=backbone.spec, model=backbone.model, device=torch.device("cuda"))
    assert make_engine(gpu, RUN_PROBES, "auto").name == "torch"  # a GPU run stays on PyTorch (no GPU needed here)
    with pytest.raises(ValueError, match="runs on the CPU.*--device cpu"):
        make_engine(gpu, RUN_PROBES, "onnxruntime")
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        load_backbone(device="cpu", backend="tensorrt")


def test_default_backend_is_onnxruntime_and_torch_can_be_chosen(backbone, monkeypatch):
    assert backend_of(backbone) == "onnxruntime"  # the conftest fixture loads with the defaults
    torch_backbone = load_backbone(device="cpu", backend="torch")
    assert backend_of(torch_backbone) == "torch" and engine_for(torch_backbone).describe() == "torch on cpu"
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert decode_in_background_default(backbone)  # decoding overlaps ONNX Runtime's forward pass
    assert not decode_in_background_default(torch_backbone)  # PyTorch eager uses both cores itself


def test_engines_are_kept_per_backbone_and_probe_set_and_go_with_the_backbone():
    """The engine cache lives beside the engines (core.features.inference), not on the backbone: one engine per
    backbone and probe set, made once, and dropped when the backbone is no longer referenced."""
    import gc
    import weakref

    loaded = load_backbone(device="cpu", backend="torch")
    first = engine_for(loaded)
    assert engine_for(loaded) is first and first.probes == ("preact", "postact")
    assert engine_for(loaded, ("blocks",)) is not first
    assert inference.submit(loaded, check_images()[:2], ("postact",)).result()["postact"].shape == (2, 1280)
    assert len(inference._ENGINES[loaded]) == 2  # postact alone is served by the run probes' engine
    gone = weakref.ref(loaded)
    del loaded
    gc.collect()
    assert gone() is None  # the engines (which keep the model, not the backbone) do not keep it alive


def test_backend_is_recorded_and_optional_when_loading(backbone, edges, tmp_path):
    root = require_shared() / "ph2_3class"
    files = [p for c in sorted(root.iterdir()) for p in sorted(c.iterdir())[:4]]
    fingerprint = fingerprint_folder(link_files(files, tmp_path / "t", root), backbone, edges,
                                     SamplingProtocol(n=16)).fingerprint
    assert fingerprint.meta.backend == "onnxruntime"
    assert Fingerprint.from_bytes(fingerprint.to_bytes()).meta.backend == "onnxruntime"
    # a file written before the backend was recorded (all shipped catalogue files) loads as torch
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(fingerprint.to_bytes())) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            payload = source.read(info)
            if info.filename == "meta.json":
                meta = json.loads(payload)
                del meta["backend"]
                payload = json.dumps(meta).encode()
            target.writestr(info, payload)
    old = Fingerprint.from_bytes(buffer.getvalue())
    assert old.meta.backend == "torch"
    assert check_comparable(fingerprint, old) == []  # the backend is no reason to refuse a comparison
    with pytest.raises(FingerprintFileError, match="field .backend. must be one of"):
        Fingerprint.from_bytes(replace(fingerprint, meta=replace(fingerprint.meta, backend="")).to_bytes())


def _excess_bkld(target: Fingerprint, source: Fingerprint) -> float:
    """bKLD small (source -> target) minus the formula's value for the target with itself: how much farther the
    source is than an exact copy (the tool reports 0 for exact copies by convention)."""
    p, q, own = target.probabilities(), source.probabilities(), target.probabilities()
    return bkld(p, q, target.mean) - bkld(p, own, target.mean)


@pytest.mark.slow
def test_both_backends_give_the_same_fingerprint_and_the_same_ranking(backbone, catalogue, tmp_path):
    """The same catalogue task (200 samples of brain_mri_4class's first half) fingerprinted with PyTorch and with
    ONNX Runtime: bKLD between the two below 1e-4 both ways (other tasks are ~1e-2 and more away); a held-out
    folder (lc25000_lung's second half) gets the identical ranking of the shipped catalogue from both."""
    torch_backbone = load_backbone(device="cpu", backend="torch")
    assert backend_of(backbone) == "onnxruntime" and backend_of(torch_backbone) == "torch"
    root = require_shared()
    task_files, _ = task_halves("brain_mri_4class")
    _, held_out_files = task_halves("lc25000_lung")
    task = link_files(task_files, tmp_path / "task", root / "brain_mri_4class")
    held_out = link_files(held_out_files, tmp_path / "held_out", root / "lc25000_lung")
    protocol = SamplingProtocol(n=200, seed=5)

    made = {name: fingerprint_folder(task, model, catalogue.edges, protocol, name=name).fingerprint
            for name, model in (("torch", torch_backbone), ("onnxruntime", backbone))}
    assert made["torch"].meta.backend == "torch" and made["onnxruntime"].meta.backend == "onnxruntime"
    check_comparable(made["torch"], made["onnxruntime"])
    assert abs(_excess_bkld(made["torch"], made["onnxruntime"])) < 1e-4
    assert abs(_excess_bkld(made["onnxruntime"], made["torch"])) < 1e-4
    changed = np.abs(made["torch"].counts.astype(np.int64) - made["onnxruntime"].counts).sum() / 2
    assert changed <= 1e-3 * made["torch"].counts.sum()  # at most 0.1 % of the (sample, feature) values move a bin
    np.testing.assert_allclose(made["torch"].mean, made["onnxruntime"].mean, atol=1e-4)
    np.testing.assert_allclose(made["torch"].postact_mean, made["onnxruntime"].postact_mean, atol=1e-4)

    rankings = {}
    for name, model in (("torch", torch_backbone), ("onnxruntime", backbone)):
        target = fingerprint_folder(held_out, model, catalogue.edges, protocol, name="held out").fingerprint
        distances = catalogue.distances_to(target, "bkld-small")
        rankings[name] = [catalogue.ids[i] for i in np.argsort(distances, kind="stable")]
        gaps = np.diff(np.sort(distances))
    assert rankings["torch"] == rankings["onnxruntime"]
    assert gaps.min() > 0  # a tie would make "identical ranking" an accident of sorting
