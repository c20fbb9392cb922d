"""The ONNX export's shaping for ONNX Runtime (fixed same-padding, zero Pads folded into convolutions) computes
exactly what the plain model computes, and the engine's concurrent single-image runs return rows in batch order."""
from __future__ import annotations

import copy
import threading
import time

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
    plain = copy.deepcopy(backbone.model).to(memory_format=torch.contiguous_format).eval()
    batch = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fixed(batch), plain(batch), rtol=0, atol=1e-5)


def _pad_conv_model(pad_value: float | None, pads=(0, 0, 0, 1, 0, 0, 1, 2), mode: str = "constant",
                    conv_attributes: dict | None = None, axes: bool = False, extra_nodes=()) -> onnx.ModelProto:
    """x (1, 2, 6, 7) -> Pad(pads, value) -> Conv 3x3 stride 2 (no padding of its own unless given) -> y."""
    rng = np.random.default_rng(3)
    initializers = [numpy_helper.from_array(np.array(pads, np.int64), "pads"),
                    numpy_helper.from_array(rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "w")]
    pad_inputs = ["x", "pads"]
    if pad_value is not None or axes:
        initializers.append(numpy_helper.from_array(np.array(pad_value or 0.0, np.float32), "value"))
        pad_inputs.append("value")
    if axes:
        initializers.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
        pad_inputs.append("axes")
    nodes = [helper.make_node("Pad", pad_inputs, ["padded"], mode=mode),
             helper.make_node("Conv", ["padded", "w"], ["y"], strides=[2, 2], kernel_shape=[3, 3],
                              **(conv_attributes or {})), *extra_nodes]
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


@pytest.mark.parametrize("model", [
    _pad_conv_model(1.0), _pad_conv_model(None, pads=(0, 1, 0, 0, 0, 0, 0, 0)),
    _pad_conv_model(None, pads=(0, 0, -1, 0, 0, 0, 0, 0)), _pad_conv_model(None, mode="reflect"),
    _pad_conv_model(None, conv_attributes={"pads": [1, 1, 1, 1]}),
    _pad_conv_model(None, conv_attributes={"auto_pad": "SAME_UPPER"}),
    _pad_conv_model(None, axes=True),
    _pad_conv_model(None, extra_nodes=[helper.make_node("Relu", ["padded"], ["also"])])],
    ids=["non-zero value", "channel padding", "negative (a crop)", "reflect", "conv has pads", "conv auto_pad",
         "axes input", "two consumers"])
def test_pads_a_convolution_cannot_express_are_kept(model):
    assert fold_zero_pads(model) == 0 and [n.op_type for n in model.graph.node][:2] == ["Pad", "Conv"]
    assert {t.name for t in model.graph.initializer} >= {"pads", "w"}


def test_pad_feeding_the_weights_is_kept():
    model = _pad_conv_model(None)
    conv = model.graph.node[1]
    conv.input[0], conv.input[1] = "x", "padded"  # nonsense, but the fold must not rewire the data input
    assert fold_zero_pads(model) == 0 and list(conv.input) == ["x", "padded"]


def test_exported_model_has_no_pad_and_no_shape_arithmetic(backbone, cache, caplog):
    with caplog.at_level("INFO", logger="core.features.onnx_export"):
        engine = make_engine(backbone, RUN_PROBES, "onnxruntime")
    assert "5 zero Pads folded into convolutions" in caplog.text  # ONNX Runtime's basic level left them all
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
    three_workers.close()
    with pytest.raises(ValueError, match="workers must be at least 1"):
        OnnxEngine(engine.session, RUN_PROBES, engine.verification, workers=0)


class _SlowFirstSession:
    """Stands in for an InferenceSession: row i of the output is the image's first pixel; the first image's run
    finishes last; an image whose first pixel is 255 fails."""

    def __init__(self) -> None:
        self.first_started = threading.Event()

    def run(self, names, feeds):
        images = feeds["image"]
        if len(images) and images[0, 0, 0, 0] == 0:
            self.first_started.set()
            time.sleep(0.2)
        if np.any(images[:, 0, 0, 0] == 255):
            raise RuntimeError("bad run")
        values = images[:, 0, 0, 0].astype(np.float32)[:, None]
        return [values, -values][:len(names)]


def _images(firsts) -> np.ndarray:
    batch = np.zeros((len(firsts), 2, 2, 3), np.uint8)
    batch[:, 0, 0, 0] = firsts
    return batch


def test_rows_keep_batch_order_when_runs_finish_out_of_order_and_errors_surface():
    engine = OnnxEngine(_SlowFirstSession(), ("a", "b"), verification=None, workers=2)
    result = engine.submit(_images([0, 1, 2, 3, 4])).result()
    np.testing.assert_array_equal(result["a"][:, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(result["b"][:, 0], [0, -1, -2, -3, -4])
    with pytest.raises(RuntimeError, match="bad run"):
        engine.submit(_images([1, 255, 2])).result()
    empty = OnnxEngine(_SlowFirstSession(), ("a",), verification=None, workers=2).submit(_images([]))
    assert empty.result()["a"].shape == (0, 1)
    single = OnnxEngine(_SlowFirstSession(), ("a",), verification=None, workers=1)
    np.testing.assert_array_equal(single.submit(_images([5, 6])).result()["a"][:, 0], [5, 6])
    engine.close()


def test_cancel_drops_runs_not_yet_started():
    session = _SlowFirstSession()
    engine = OnnxEngine(session, ("a",), verification=None, workers=1)
    engine.workers = 2  # two worker threads, but hold one busy with the slow first image
    pending = engine.submit(_images([0, 0, 1, 2, 3, 4, 5, 6]))
    session.first_started.wait(5)
    pending.cancel()
    assert sum(part.cancelled() for part in pending._parts) >= 4  # the queued runs never start
    engine.close()
    done = PendingFeatures.done({"a": np.ones((2, 1), np.float32)})
    done.cancel()  # a finished batch: nothing to drop
    assert done.result()["a"].shape == (2, 1)
