"""Making the ONNX model of a backbone: uint8 crops in, pooled probes out, exported from the *verified* weights.

The export is shaped for ONNX Runtime on the CPU, one image per run (measured with bench/extract.py, see the README):

1. timm's TensorFlow-style "same" padding (``Conv2dSame``: the 5 stride-2 convolutions of EfficientNet-Lite0) pads
   by an amount computed from the input's size at run time; exported as such it costs 30 shape-arithmetic nodes
   and 5 ``Pad`` nodes per image. Crops are always 224 x 224, so each of these layers gets its padding fixed for
   that size (:func:`fix_same_padding`).
2. ONNX Runtime's constant folding (its portable "basic" level) then turns the padding into constants, and
   :func:`fold_zero_pads` moves each zero ``Pad`` into its convolution's own (asymmetric) ``pads``, so no ``Pad``
   and no layout reorder around it is left.

Both steps are exact: the features are bit-identical to the plain export's, and every load is still checked
against PyTorch (core/features/inference.py).
"""
from __future__ import annotations

import collections
import copy
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from core.features.preprocess import CROP
from core.features.specs import pooled_probes

if TYPE_CHECKING:
    from core.features.backbones import LoadedBackbone

#: part of the cache file name: change it whenever the exported graph changes, so old cached files are not reused
EXPORT_RECIPE = "x2"
_OPSET = 17
log = logging.getLogger(__name__)


class _FixedPadConv(torch.nn.Module):
    """A ``Conv2dSame`` whose input size is known: zero padding of fixed amounts (left, right, top, bottom), then
    the same convolution without padding."""

    def __init__(self, conv: torch.nn.Conv2d, pads: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv, self.pads = conv, pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        return F.conv2d(F.pad(x, self.pads), conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)


def fix_same_padding(model: torch.nn.Module, size: int = CROP) -> int:
    """Replace, in place, each timm ``Conv2dSame`` of ``model`` by a :class:`_FixedPadConv` with the padding it
    computes for a (size x size) input; returns how many were replaced."""
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.padding import get_same_padding
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [module.register_forward_pre_hook(lambda _m, inputs, name=name: sizes.__setitem__(
        name, tuple(inputs[0].shape[-2:]))) for name, module in model.named_modules() if isinstance(module, Conv2dSame)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    for name, (height, width) in sizes.items():
        conv = model.get_submodule(name)
        pad_h = get_same_padding(height, conv.kernel_size[0], conv.stride[0], conv.dilation[0])
        pad_w = get_same_padding(width, conv.kernel_size[1], conv.stride[1], conv.dilation[1])
        parent, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attribute,
                _FixedPadConv(conv, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)))
    return len(sizes)


def fold_zero_pads(model) -> int:
    """Move each zero, constant ``Pad`` into the ``Conv`` it feeds, in place on an ``onnx.ModelProto``; returns how
    many Pads were folded. Folded only when the Pad pads the spatial axes of an NCHW tensor by non-negative amounts
    given as an initializer (no ``axes`` input), fills with zeros, and feeds only the data input of one Conv that has
    no padding of its own. The initializers only those Pads used are dropped.

    ONNX Runtime's own Pad fusion does not fire on this export: after its basic level the 5 Pads are still there
    (measured with onnxruntime 1.32), which is why this exists."""
    from onnx import helper, numpy_helper
    graph = model.graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    users = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            users[name].append(node)
    graph_outputs = {output.name for output in graph.output}
    folded, released = 0, set()
    for pad in [node for node in graph.node if node.op_type == "Pad"]:
        attributes = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
        if attributes.get("mode", b"constant") != b"constant" or len(pad.input) < 2 or pad.input[1] not in constants:
            continue
        if len(pad.input) > 3 and pad.input[3]:  # an axes input: pads then name only some axes
            continue
        value = pad.input[2] if len(pad.input) > 2 else ""
        if value and not (value in constants and np.all(constants[value] == 0)):
            continue
        pads = [int(v) for v in np.ravel(constants[pad.input[1]])]
        if len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:
            continue
        consumers = users[pad.output[0]]
        if len(consumers) != 1 or consumers[0].op_type != "Conv" or pad.output[0] in graph_outputs:
            continue
        conv = consumers[0]
        if conv.input[0] != pad.output[0] or pad.output[0] in conv.input[1:]:
            continue
        conv_attributes = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        if conv_attributes.get("auto_pad", b"NOTSET") != b"NOTSET" or any(conv_attributes.get("pads", ())):
            continue
        for attribute in [a for a in conv.attribute if a.name == "pads"]:
            conv.attribute.remove(attribute)
        conv.attribute.append(helper.make_attribute("pads", [pads[2], pads[3], pads[6], pads[7]]))
        conv.input[0] = pad.input[0]
        graph.node.remove(pad)
        for info in [info for info in graph.value_info if info.name == pad.output[0]]:
            graph.value_info.remove(info)
        released.update(name for name in pad.input[1:] if name)
        folded += 1
    still_used = {name for node in graph.node for name in node.input} | graph_outputs | {i.name for i in graph.input}
    for tensor in [t for t in graph.initializer if t.name in released and t.name not in still_used]:
        graph.initializer.remove(tensor)
    return folded


class _ExportModule(torch.nn.Module):
    """What is exported: uint8 crops (N, 224, 224, 3) -> normalised NCHW -> the backbone (same-padding fixed for
    224 x 224) -> a tuple of pooled probes (N, dim) in the order of ``probes``."""

    def __init__(self, backbone: "LoadedBackbone", probes: tuple[str, ...]) -> None:
        super().__init__()
        self.model = copy.deepcopy(backbone.model).to("cpu", memory_format=torch.contiguous_format).eval()
        fix_same_padding(self.model)
        self.spec, self.probes = backbone.spec, probes
        std, mean = backbone.spec.std, backbone.spec.mean
        self.register_buffer("scale", torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.tensor([m / s for m, s in zip(mean, std)]).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = image.permute(0, 3, 1, 2).float().mul(self.scale).sub(self.shift)
        pooled = pooled_probes(self.model, self.spec, batch, self.probes)
        return tuple(pooled[name] for name in self.probes)


def _constant_folded(source: str, target: str) -> None:
    """ONNX Runtime's basic (portable) graph optimisations of ``source`` written to ``target``."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = target
    options.log_severity_level = 3
    ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def export_onnx(backbone: "LoadedBackbone", probes: tuple[str, ...], path: Path) -> Path:
    """Export the backbone with ``probes`` as outputs to ``path`` (see the module docstring; temporary files in
    ``path``'s folder, then an atomic rename, so a reader never sees half a file)."""
    import onnx
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _ExportModule(backbone, probes)
    example = torch.zeros((2, CROP, CROP, 3), dtype=torch.uint8)
    temporaries: list[str] = []
    try:
        for step in ("traced", "folded", "final"):
            handle, name = tempfile.mkstemp(prefix=f"{path.stem}.{step}.", suffix=".tmp", dir=path.parent)
            os.close(handle)
            temporaries.append(name)
        traced, folded, final = temporaries
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module, (example,), traced, input_names=["image"], output_names=list(probes),
                              dynamic_axes={"image": {0: "n"}, **{p: {0: "n"} for p in probes}},
                              opset_version=_OPSET, dynamo=False)
        _constant_folded(traced, folded)
        model = onnx.load(folded)
        log.info("ONNX export of %s: %d zero Pads folded into convolutions", backbone.spec.name,
                 fold_zero_pads(model))
        onnx.checker.check_model(model)
        onnx.save(model, final)
        os.chmod(final, 0o644)  # mkstemp makes it private; a shared cache folder may serve several users
        os.replace(final, path)
    finally:
        for name in temporaries:
            Path(name).unlink(missing_ok=True)
    return path
