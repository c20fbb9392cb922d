"""The backbone cut in two: a frozen trunk whose outputs are cached once per task, and a trainable head.

For EfficientNet-Lite0 with ``cached_blocks = c`` and ``frozen_blocks = k`` the trunk is ``conv_stem, bn1,
blocks[:c]`` (its outputs cached on disk), the bridge ``blocks[c:k]`` (frozen, run in memory once per task) and the
head ``blocks[k:], conv_head, bn2``, global average pooling and a new linear classifier. ``k = -1`` leaves trunk and
bridge empty: the cache then holds the preprocessed images and the whole network trains.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.features.preprocess import CROP, RESIZED, prepare


class Head(torch.nn.Module):
    """Trainable part: the backbone's modules after the cut, then pooling and a linear classifier."""

    def __init__(self, body: torch.nn.Sequential, width: int, n_classes: int) -> None:
        super().__init__()
        self.body = body
        self.classifier = torch.nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x).mean(dim=(2, 3)))


def split_model(model: torch.nn.Module, frozen_blocks: int,
                cached_blocks: int) -> tuple[torch.nn.Sequential, torch.nn.Sequential, torch.nn.Sequential, int]:
    """(trunk, bridge, head body, head width) of a timm EfficientNet; trunk and bridge are in eval mode without
    gradients."""
    model = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format)
    stem = [model.conv_stem, model.bn1]
    tail = [model.conv_head, model.bn2]
    blocks = list(model.blocks)
    if frozen_blocks < 0:
        trunk, bridge, body = torch.nn.Sequential(), torch.nn.Sequential(), torch.nn.Sequential(*stem, *blocks, *tail)
    else:
        if not 0 <= cached_blocks <= frozen_blocks <= len(blocks):
            raise ValueError(f"need 0 <= cached_blocks ({cached_blocks}) <= frozen_blocks ({frozen_blocks}) <= "
                             f"{len(blocks)}")
        trunk = torch.nn.Sequential(*stem, *blocks[:cached_blocks])
        bridge = torch.nn.Sequential(*blocks[cached_blocks:frozen_blocks])
        body = torch.nn.Sequential(*blocks[frozen_blocks:], *tail)
    trunk.eval().requires_grad_(False)
    bridge.eval().requires_grad_(False)
    return trunk, bridge, body, int(model.num_features)


def small_image(path: Path, size: int) -> np.ndarray:
    """(size, size, 3) uint8: the probe's pipeline (pad to a square, centre 224 crop) resized to ``size``."""
    with Image.open(path) as picture:
        rgb = np.asarray(picture.convert("RGB"))
    prepared = prepare(rgb)
    top = (RESIZED - CROP) // 2
    window = prepared[top:top + CROP, top:top + CROP]
    if size != CROP:
        window = np.asarray(Image.fromarray(window).resize((size, size), Image.BILINEAR))
    return np.ascontiguousarray(window)


def normalise(batch: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 normalised."""
    tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
    return (tensor - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@torch.inference_mode()
def trunk_outputs(task_dir: Path, ids: list[str], trunk: torch.nn.Sequential, size: int,
                  mean: tuple[float, ...], std: tuple[float, ...], batch_size: int = 32,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, list[str]]:
    """(trunk outputs of the readable images as float16 (N, C, h, w), their ids). With an empty trunk the
    outputs are the uint8 images (N, 3, size, size), normalised later. An unreadable image is reported on stderr
    and skipped."""
    kept, outputs, pending = [], [], []

    def flush():
        if not pending:
            return
        batch = np.stack(pending)
        if len(trunk) == 0:
            outputs.append(torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous())
        else:
            outputs.append(trunk(normalise(batch, mean, std).to(device)).to("cpu", torch.float16))
        pending.clear()

    for image_id in ids:
        try:
            pending.append(small_image(Path(task_dir) / image_id, size))
            kept.append(image_id)
        except (OSError, ValueError) as err:
            print(f"{Path(task_dir) / image_id}: skipped, not a readable image ({err})", file=sys.stderr)
        if len(pending) == batch_size:
            flush()
    flush()
    if not outputs:
        raise ValueError(f"{task_dir}: none of the {len(ids)} images could be read")
    return torch.cat(outputs), kept


@torch.inference_mode()
def through_bridge(cached: torch.Tensor, bridge: torch.nn.Sequential, batch_size: int = 256) -> torch.Tensor:
    """Cached trunk outputs through the frozen bridge blocks, as float32 (unchanged when the bridge is empty)."""
    if len(bridge) == 0:
        return cached
    device = next(bridge.parameters()).device
    return torch.cat([bridge(cached[i:i + batch_size].to(device).float()).cpu()
                      for i in range(0, len(cached), batch_size)])


def head_input(cached: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Cached trunk outputs as the head's float32 input (uint8 images are normalised here)."""
    if cached.dtype == torch.uint8:
        scaled = cached.float().div_(255.0)
        return (scaled - torch.tensor(mean, device=cached.device).view(1, 3, 1, 1)) / \
            torch.tensor(std, device=cached.device).view(1, 3, 1, 1)
    return cached.float()
