"""The fixed budget of a transfer experiment, recorded with every result so numbers are never read out of context.

On a CPU the backbone's early blocks are frozen (their outputs cached once per task) and only the last block, the
1 x 1 head convolution and the classifier train, on small images; with a GPU the same experiment fine-tunes the whole
network at the paper's 224 px.
"""
from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path

#: bumped whenever what a run computes changes (results of different versions are never mixed)
PROTOCOL_VERSION = "transfer-v1"


@dataclass(frozen=True)
class Protocol:
    """``frozen_blocks``: EfficientNet blocks (0-6) frozen after the stem (7: all of them); -1 freezes nothing (full
    fine-tuning). ``cached_blocks`` (<= frozen_blocks): the trunk whose outputs are cached on disk (float16) once
    per task; the frozen blocks after it run once per task in memory.
    Steps are optimiser steps of ``batch_size`` images; ``lr`` is Adam's fixed learning rate for every trainable
    parameter. ``train_per_class``: cap of target training images per class (at most half of each class)."""

    image_size: int = 128
    frozen_blocks: int = 7
    cached_blocks: int = 6
    source_steps: int = 150
    target_steps: int = 32
    batch_size: int = 16
    lr: float = 5e-4
    train_per_class: int = 80
    seeds: tuple[int, ...] = (0, 1, 2)
    split_seed: int = 0
    backbone: str = "tf_efficientnet_lite0"
    version: str = PROTOCOL_VERSION

    @property
    def trainable(self) -> str:
        """Human-readable name of what trains."""
        if self.frozen_blocks < 0:
            return "all layers"
        blocks = "block 6" if self.frozen_blocks == 6 else f"blocks {self.frozen_blocks}-6"
        return f"{blocks}, conv_head, classifier" if self.frozen_blocks < 7 else "conv_head, classifier"

    def as_dict(self) -> dict:
        out = asdict(self)
        out["seeds"] = list(self.seeds)
        out["trainable"] = self.trainable
        return out

    def budget_key(self) -> dict:
        """What must match for two runs to be comparable (everything but the list of seeds)."""
        out = self.as_dict()
        out.pop("seeds")
        return out


CPU_PROTOCOL = Protocol()
GPU_PROTOCOL = Protocol(image_size=224, frozen_blocks=-1, cached_blocks=-1, source_steps=600, target_steps=100,
                        batch_size=32)


def default_protocol(device_type: str) -> Protocol:
    """The CPU budget on a CPU, full fine-tuning at 224 px on a GPU (``device_type`` from torch.device.type)."""
    return GPU_PROTOCOL if device_type == "cuda" else CPU_PROTOCOL


def with_seeds(protocol: Protocol, seeds: tuple[int, ...]) -> Protocol:
    return replace(protocol, seeds=tuple(seeds))


def code_version() -> str:
    """The git commit of this code (with '+dirty' for uncommitted changes), or 'unknown' outside a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "core/transfer"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")
