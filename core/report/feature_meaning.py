"""What a fingerprint feature means in human terms: the ImageNet classes the backbone's own classifier ties it to,
the user's images that activate it most, and which histogram bins make its part of the bKLD. No Streamlit here.

ImageNet classes: the classifier of the shipped weights maps the pooled 1,280 features to 1,000 class scores, so
column f of ``classifier.weight`` (1000, m) says which classes feature f supports. For the default 'preact' probe the
classifier acts on relu6(preact) pooled, not on the pooled pre-activation itself; the column is still the classes
that channel supports when it fires, so it is read the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from core.distances.maths import bkld_bin_terms, log_softmax
from core.fingerprint.binning import N_BINS_SMALL, histogram_probabilities

#: images of the user's folder kept (as thumbnails, in memory only) to show which of them activate a feature
IMAGE_SAMPLE = 32
THUMBNAIL_PX = 64


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in classifier order, from timm (no download)."""
    from timm.data import ImageNetInfo
    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0] for i in range(1000)]


def classifier_weight(backbone) -> np.ndarray:
    """The backbone's ImageNet classifier weights (1000, m) as float32
    (``backbone``: core.features.backbones.LoadedBackbone)."""
    head = backbone.model.get_classifier()
    return head.weight.detach().float().cpu().numpy()


def feature_classes(weight: np.ndarray, names: list[str], features: list[int], top: int = 3) -> pd.DataFrame:
    """Per feature, the ``top`` ImageNet classes with the largest classifier weight on it. weight: (1000, m).
    Columns: feature, classes ('name (weight), ...'), top_class."""
    rows = []
    for feature in features:
        column = weight[:, int(feature)]
        best = np.argsort(column)[::-1][:top]
        rows.append({"feature": int(feature), "top_class": names[best[0]],
                     "classes": ", ".join(f"{names[c]} ({column[c]:+.2f})" for c in best)})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ImageSample:
    """A few of the user's images as thumbnails with their probe features, kept in the session only.
    thumbnails: (n, THUMBNAIL_PX, THUMBNAIL_PX, 3) uint8; features: (n, m) float32 (centre crop, no flip)."""

    thumbnails: np.ndarray
    features: np.ndarray
    #: probe -> (n, dim) features of every probe the same forward pass gave (``features`` is one of them)
    by_probe: dict = field(default_factory=dict)

    def for_probe(self, probe: str) -> "ImageSample | None":
        """The same images with ``probe``'s features, or None when that probe was not computed."""
        return replace(self, features=self.by_probe[probe]) if probe in self.by_probe else None

    def top_for(self, feature: int, k: int = 6) -> np.ndarray:
        """Indices of the ``k`` images that activate ``feature`` most, strongest first."""
        return np.argsort(self.features[:, int(feature)])[::-1][:k]


@dataclass(frozen=True)
class SampledImages:
    """A few of the user's images before their features: ``batches`` of centre crops (b, 224, 224, 3) uint8, as the
    fingerprint's extraction path cuts them, and ``thumbnails`` (n, THUMBNAIL_PX, THUMBNAIL_PX, 3) uint8."""

    batches: list[np.ndarray]
    thumbnails: np.ndarray


def read_sampled_images(folder: str | Path, batch_size: int, n: int = IMAGE_SAMPLE, seed: int = 0,
                        workdir: Path | None = None) -> SampledImages | None:
    """Up to ``n`` different images of the user's ``folder`` (seeded), decoded, prepared and centre-cropped by
    :func:`core.features.extract.crop_batches` in batches of ``batch_size`` (the engine's), with small thumbnails;
    None when nothing could be read; unreadable files are passed over. Their features come from
    :func:`sample_features`, e.g. later, once the folder is gone."""
    import threading

    from PIL import Image

    from core.features.extract import crop_batches
    from core.features.sampling import distinct_centre_plan
    from core.images.dataset import open_dataset
    with open_dataset(folder, workdir=workdir) as dataset:
        plan = distinct_centre_plan(len(dataset), n, seed)
        batches = [crops for crops, _, _ in crop_batches(dataset, plan, batch_size, threading.Event())
                   if crops is not None and len(crops)]
    if not batches:
        return None
    thumbnails = [np.asarray(Image.fromarray(crop).resize((THUMBNAIL_PX, THUMBNAIL_PX)))
                  for crops in batches for crop in crops]
    return SampledImages(batches, np.stack(thumbnails))


def sample_features(sampled: SampledImages, backbone) -> ImageSample:
    """The sampled images' probe and post-activation features from the engine that made the fingerprint
    (:func:`core.features.inference.submit`, one pass). ``backbone``: core.features.backbones.LoadedBackbone."""
    from core.features.inference import submit

    parts = [submit(backbone, crops).result() for crops in sampled.batches]
    by_probe = {name: np.concatenate([part[name] for part in parts]) for name in backbone.run_probes()}
    return ImageSample(sampled.thumbnails, by_probe[backbone.probe], by_probe)


def bin_contributions(target_counts: np.ndarray, source_counts: np.ndarray, n_bins: int = N_BINS_SMALL
                      ) -> np.ndarray:
    """One feature's KL terms per bin, (n_bins,): :func:`core.distances.maths.bkld_bin_terms` of its histograms;
    they sum to that feature's KL_f in bKLD(source -> target). counts: (1000,) fine counts of the target and the
    source."""
    p = histogram_probabilities(np.asarray(target_counts)[None], n_bins)[0]
    q = histogram_probabilities(np.asarray(source_counts)[None], n_bins)[0]
    return bkld_bin_terms(p, log_softmax(q))
