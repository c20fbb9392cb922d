"""The ONNX export's shaping for ONNX Runtime (fixed same-padding, zero Pads folded into convolutions) computes
exactly what the plain model computes, and the engine's concurrent single-image runs return rows in batch order."""
from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from core.features.inference import OnnxEngine, PendingFeatures, check_images, make_engine
from core.features.onnx_export import _FixedPadConv, fix_same_padding, fold_zero_pads

RUN_PROBES = ("preact", "postact")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    from core.features import inference
    monkeypatch.setenv(inference.CACHE_ENV, str(tmp_path))
    return tmp_path / "onnx"


def test_fixed_same_padding_computes_what_timm_computes(backbone):
    from timm.layers.conv2d_same import Conv2dSame
    fixed = copy.deepcopy(backbone.model).to(memory_format=torch.contiguous_format).eval()
    assert fix_same_padding(fixed) == 5  # EfficientNet-Lite0's stem and four stride-2 depthwise convolutions
    wrapped = {id(module.conv) for module in fixed.modules() if isinstance(module, _FixedPadConv)}
    assert all(id(module) in wrapped for module in fixed.modules() if isinstance(module, Conv2dSame))
    batch = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = backbone.model.to(memory_format=torch.contiguous_format)(batch)
        backbone.model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(fixed(batch), plain, rtol=0, atol=1e-5)


def _pad_conv_model(pad_value: float | None, pads=(0, 0, 0, 1, 0, 0, 1, 2)) -> onnx.ModelProto:
    """x (1, 2, 6, 7) -> Pad(pads, value) -> Conv 3x3 stride 2 (no padding of its own) -> y."""
    rng = np.random.default_rng(3)
    initializers = [numpy_helper.from_array(np.array(pads, np.int64), "pads"),
                    numpy_helper.from_array(rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "w")]
    pad_inputs = ["x", "pads"]
    if pad_value is not None:
        initializers.append(numpy_helper.from_array(np.array(pad_value, np.float32), "value"))
        pad_inputs.append("value")
    nodes = [helper.make_node("Pad", pad_inputs, ["padded"], mode="constant"),
             helper.make_node("Conv", ["padded", "w"], ["y"], strides=[2, 2], kernel_shape=[3, 3])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 4])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # what the graph says, as is
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]


@pytest.mark.parametrize("pad_value", [None, 0.0])
def test_zero_pad_is_folded_into_the_convolution_with_identical_output(pad_value):
    x = np.random.default_rng(1).normal(size=(1, 2, 6, 7)).astype(np.float32)
    model = _pad_conv_model(pad_value)
    before = _run(model, x)
    assert fold_zero_pads(model) == 1
    onnx.checker.check_model(model)
    assert [node.op_type for node in model.graph.node] == ["Conv"]
    pads = [a for a in model.graph.node[0].attribute if a.name == "pads"][0]
    assert list(pads.ints) == [0, 1, 1, 2]  # top, left, bottom, right
    assert [t.name for t in model.graph.initializer] == ["w"]  # the pads (and value) initializers are gone
    np.testing.assert_array_equal(_run(model, x), before)


@pytest.mark.parametrize("model", [_pad_conv_model(1.0), _pad_conv_model(None, pads=(0, 1, 0, 0, 0, 0, 0, 0)),
                                   _pad_conv_model(None, pads=(0, 0, -1, 0, 0, 0, 0, 0))],
                         ids=["non-zero value", "channel padding", "negative (a crop)"])
def test_pads_a_convolution_cannot_express_are_kept(model):
    assert fold_zero_pads(model) == 0 and [n.op_type for n in model.graph.node] == ["Pad", "Conv"]


def test_exported_model_has_no_pad_and_no_shape_arithmetic(backbone, cache):
    engine = make_engine(backbone, RUN_PROBES, "onnxruntime")
    operators = {node.op_type for node in onnx.load(engine.verification.path).graph.node}
    assert operators.isdisjoint({"Pad", "Shape", "Gather", "Div", "Concat"}), operators
    assert {"Conv", "GlobalAveragePool"} <= operators


def test_concurrent_runs_return_rows_in_batch_order(backbone, cache):
    engine = make_engine(backbone, RUN_PROBES, "onnxruntime")
    images = check_images()  # 6 different crops
    one_at_a_time = OnnxEngine(engine.session, RUN_PROBES, engine.verification, workers=1)
    three_workers = OnnxEngine(engine.session, RUN_PROBES, engine.verification, workers=3)
    sequential = {probe: np.concatenate([one_at_a_time.probe_features(images[i:i + 1])[probe]
                                         for i in range(len(images))]) for probe in RUN_PROBES}
    pending = [three_workers.submit(images), three_workers.submit(images[::-1])]  # two batches in flight
    forward, backward = (p.result() for p in pending)
    for probe in RUN_PROBES:
        np.testing.assert_array_equal(forward[probe], sequential[probe])
        np.testing.assert_array_equal(backward[probe], sequential[probe][::-1])
    assert len({tuple(row[:4]) for row in forward["preact"]}) == len(images)  # the rows do differ
    with pytest.raises(ValueError, match="workers must be at least 1"):
        OnnxEngine(engine.session, RUN_PROBES, engine.verification, workers=0)


def test_pending_features_of_a_finished_batch():
    features = {"preact": np.ones((2, 3), np.float32)}
    assert PendingFeatures.done(features).result() is features
