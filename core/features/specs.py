"""Backbone and probe specs: the registry of known backbones (``backbones.json``) and the pooled probe features of
one forward pass. What the engines (:mod:`core.features.inference`, :mod:`core.features.onnx_export`) and the
backbone loader (:mod:`core.features.backbones`) share, so that neither imports the other's module to get it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from core.errors import WeightsError

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
_REGISTRY_FILE = Path(__file__).with_name("backbones.json")
#: the probe P2L always uses: timm's pooled pre-logits (post-activation, non-negative, as P2L needs)
POSTACT = "postact"
#: what may run a backbone's forward pass (:mod:`core.features.inference`)
BACKEND_CHOICES = ("auto", "onnxruntime", "torch")


def resolve_backend_choice(choice: str | None) -> str:
    """Validate a backend name ("auto", "onnxruntime", "torch"; None means "auto")."""
    choice = (choice or "auto").lower()
    if choice not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend '{choice}': choose one of {', '.join(BACKEND_CHOICES)}")
    return choice


@dataclass(frozen=True)
class ProbeSpec:
    """A layer whose average-pooled output is a feature vector. ``module``: dotted module path inside the timm
    model whose output is pooled (captured by a forward hook), or None for timm's own pooled pre-logits."""

    name: str
    module: str | None
    feature_dim: int | None
    about: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    """Everything that identifies a backbone's features: architecture, weights, input normalisation."""

    name: str
    timm_tag: str
    feature_dim: int | None
    weights_sha256: str | None
    package_file: tuple[str, str] | None
    key_mapping: str  # "by_order" (foreign key names, same order) or "timm" (timm's own names)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    licence: str = ""
    probes: dict[str, ProbeSpec] = field(default_factory=dict)
    default_probe: str = POSTACT

    def probe_spec(self, name: str | None) -> ProbeSpec:
        """The named probe (None: the default); a clear error naming the known ones otherwise."""
        name = name or self.default_probe
        if name not in self.probes:
            raise WeightsError(f"backbone '{self.name}' has no probe '{name}'; known probes: "
                               f"{', '.join(self.probes)}")
        return self.probes[name]


def postact_only(feature_dim: int | None) -> dict[str, ProbeSpec]:
    return {POSTACT: ProbeSpec(POSTACT, None, feature_dim, "timm's pooled pre-logits")}


@lru_cache(maxsize=1)
def registry() -> dict[str, BackboneSpec]:
    """The known backbones, read from ``backbones.json`` (config kept apart from code)."""
    raw = json.loads(_REGISTRY_FILE.read_text())
    specs = {}
    for name, entry in raw.items():
        if name.startswith("_"):
            continue
        specs[name] = BackboneSpec(
            name=name, timm_tag=entry["timm_tag"], feature_dim=entry.get("feature_dim"),
            weights_sha256=entry.get("weights_sha256"),
            package_file=tuple(entry["package_file"]) if entry.get("package_file") else None,
            key_mapping=entry.get("key_mapping", "timm"), mean=tuple(entry["mean"]), std=tuple(entry["std"]),
            licence=entry.get("licence", ""),
            probes={probe: ProbeSpec(probe, spec.get("module"), spec.get("feature_dim"), spec.get("about", ""))
                    for probe, spec in entry.get("probes", {}).items()} or postact_only(entry.get("feature_dim")),
            default_probe=entry.get("default_probe", POSTACT))
    return specs



def pooled_probes(model: torch.nn.Module, spec: BackboneSpec, batch: torch.Tensor,
                  probes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """{probe: (N, dim) pooled features} of a normalised batch (N, 3, 224, 224) from one forward pass of a timm
    ``model``; probes inside the network are pooled by forward hooks. Also traced for the ONNX export (so no
    inference-mode decorator here)."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name in probes:
        module_path = spec.probe_spec(name).module
        if module_path is None:
            continue
        module = model.get_submodule(module_path)

        def pool(_module, _inputs, output, name=name):  # pooled at once: a later in-place activation
            captured[name] = output.mean(dim=(2, 3))      # (ReLU6(inplace=True)) would change the tensor
        handles.append(module.register_forward_hook(pool))
    try:
        pooled = model.forward_head(model.forward_features(batch), pre_logits=True)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (pooled if spec.probe_spec(name).module is None else captured[name]) for name in probes}
