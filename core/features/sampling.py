"""The paper's sampling protocol: n images drawn uniformly with replacement, each with its own crop and flip.

All random numbers are drawn up front from one seeded generator, so a sample's crop does not depend on the order in
which images are processed, and the same files with the same seed always give the same samples.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.features.preprocess import CROP, PIPELINE_ID, RESIZED

#: most samples per task: 16 x the uint16 range (the per-sample bin indices are uint16)
MAX_SAMPLES = 65_535 * 16

PAPER_N = 10_000
CATALOGUE_N = 2_000
PAPER_SEED = 42


@dataclass(frozen=True)
class SamplingProtocol:
    """How images are sampled: n draws with replacement, the seed, and whether crops/flips are random."""

    n: int = CATALOGUE_N
    seed: int = PAPER_SEED
    augment: bool = True
    pipeline: str = PIPELINE_ID

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be a positive number of samples, got {self.n!r}")
        if self.n > MAX_SAMPLES:
            raise ValueError(f"n = {self.n:,} is more than this tool supports ({MAX_SAMPLES:,}); the paper uses "
                             "10,000")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SamplePlan:
    """Per sample: which image, crop offsets (pixels in the 256 x 256 prepared image) and flip. Arrays of shape (n,)."""

    image: np.ndarray
    top: np.ndarray
    left: np.ndarray
    flip: np.ndarray

    def __len__(self) -> int:
        return len(self.image)

    def grouped_order(self) -> np.ndarray:
        """Sample indices sorted by image, so each image is decoded once for all its crops."""
        return np.argsort(self.image, kind="stable")


def reuse_note(n_images: int, n: int) -> str | None:
    """What a user should know when ``n`` samples are drawn from fewer images: each image is then used several
    times (with its own crops and flips), so the fingerprint holds fewer distinct images than samples. None when
    there are at least as many images as samples."""
    if n_images < 1 or n <= n_images:
        return None
    per_image = n / n_images
    times = f"{per_image:.1f}" if per_image < 10 else f"{per_image:.0f}"
    return (f"{n:,} samples drawn with replacement from {n_images:,} images: each image is used about {times} "
            "times")


def distinct_centre_plan(n_images: int, n: int, seed: int = 0) -> SamplePlan:
    """Up to ``n`` different images in a seeded random order, each once, centre crop, no flip: the few images
    shown beside a fingerprint (a fingerprint's own samples are :func:`plan_samples`)."""
    image = np.random.default_rng(seed).permutation(n_images)[:n]
    centre = np.full(len(image), (RESIZED - CROP) // 2)
    return SamplePlan(image, centre, centre.copy(), np.zeros(len(image), dtype=bool))


def plan_samples(n_images: int, protocol: SamplingProtocol) -> SamplePlan:
    """Draw ``protocol.n`` samples from ``n_images`` images."""
    if n_images < 1:
        raise ValueError("cannot sample from zero images")
    rng = np.random.default_rng(protocol.seed)
    n = protocol.n
    image = rng.integers(0, n_images, size=n)
    margin = RESIZED - CROP
    if protocol.augment:
        top = rng.integers(0, margin + 1, size=n)
        left = rng.integers(0, margin + 1, size=n)
        flip = rng.random(n) < 0.5
    else:
        top = np.full(n, margin // 2)
        left = np.full(n, margin // 2)
        flip = np.zeros(n, dtype=bool)
    return SamplePlan(image, top, left, flip)
