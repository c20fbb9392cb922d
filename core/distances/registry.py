"""The distances, one spec each: what the CLI, the pages, the bank and the validity report iterate.

A new distance is one entry in ``DISTANCES``: its name and labels, the bins it reads, whether features are weighted,
whether it is directed, which mean it uses, and two functions: ``prepare`` (the source side, computed once) and
``against`` (from the prepared sources to one target). The maths itself lives in :mod:`core.distances.maths`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.distances.maths import (bkld_contributions, feature_weights, log_softmax, p2l, per_feature_kl_from_log,
                                  vdna_from_cdfs)
from core.fingerprint.binning import N_BINS_LARGE, N_BINS_SMALL, histogram_probabilities

if TYPE_CHECKING:
    from core.fingerprint.fingerprint import Fingerprint


@dataclass(frozen=True)
class DistanceSpec:
    """One distance. ``n_bins``: histogram bins it compares (None: means only); ``weighted``: features weighted by
    softmax of the target's mean; ``directed``: d(s -> t) != d(t -> s); ``uses_postact_mean``: takes the
    post-activation mean whatever the probe (P2L needs non-negative means); ``softmaxed_source``: the bKLD formula
    (KL against softmax of the source histogram), so an identical source gives a positive *twin distance* and the
    compact bank applies; ``stored_as``: the catalogue's stored matrix (``matrices.npz`` key), None when computed;
    ``report_position``: order in the validity report; ``has_contributions``: per-feature terms that sum to it."""

    name: str
    label: str
    short: str
    n_bins: int | None
    weighted: bool
    directed: bool
    uses_postact_mean: bool
    softmaxed_source: bool
    has_contributions: bool
    report_position: int
    prepare: Callable[[DistanceSpec, np.ndarray, np.ndarray], Any]
    against: Callable[[DistanceSpec, Any, np.ndarray, np.ndarray], np.ndarray]
    stored_as: str | None = None

    def contributions(self, target: Fingerprint, source: Fingerprint) -> np.ndarray:
        """Per-feature contributions (m,) to d(source -> target); they sum to the distance."""
        if not self.has_contributions:
            raise ValueError("per-feature contributions exist for bKLD small and large only")
        assert self.n_bins is not None
        return bkld_contributions(target.probabilities(self.n_bins), source.probabilities(self.n_bins),
                                  target.mean if self.weighted else None)

    def twin(self, target: Fingerprint) -> float:
        """What the formula gives for a source identical to ``target`` (0 unless the source alone is softmaxed)."""
        return float(self.contributions(target, target).sum()) if self.softmaxed_source else 0.0


# --------------------------------------------------------------------------- source side once, then one target
def _bkld_prepare(spec: DistanceSpec, counts: np.ndarray, means: np.ndarray) -> np.ndarray:
    """log softmax_b(Q_s) per source and feature."""
    return log_softmax(histogram_probabilities(counts, spec.n_bins), axis=-1)


def _bkld_against(spec: DistanceSpec, log_q: np.ndarray, counts: np.ndarray, mean: np.ndarray) -> np.ndarray:
    p = histogram_probabilities(counts, spec.n_bins)
    weights = feature_weights(mean if spec.weighted else None, p.shape[0])
    return per_feature_kl_from_log(p, log_q) @ (weights / weights.sum())


def _vdna_prepare(spec: DistanceSpec, counts: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Cumulative histograms of the sources."""
    return np.cumsum(histogram_probabilities(counts, spec.n_bins), axis=-1)


def _vdna_against(spec: DistanceSpec, cdf: np.ndarray, counts: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return vdna_from_cdfs(np.cumsum(histogram_probabilities(counts, spec.n_bins), axis=-1), cdf)


def _p2l_prepare(spec: DistanceSpec, counts: np.ndarray, means: np.ndarray) -> np.ndarray:
    """P2L needs only the sources' means."""
    return means


def _p2l_against(spec: DistanceSpec, means: np.ndarray, counts: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return p2l(mean, means)


# --------------------------------------------------------------------------- the registry
BKLD_SMALL = DistanceSpec(
    "bkld-small", "bKLD small: 100 bins, features weighted by softmax of the target's mean (paper's main method)",
    "small (100 bins, weighted)", N_BINS_SMALL, weighted=True, directed=True, uses_postact_mean=False,
    softmaxed_source=True, has_contributions=True, report_position=0, prepare=_bkld_prepare, against=_bkld_against,
    stored_as="bkld_small")
BKLD_LARGE = DistanceSpec(
    "bkld-large", "bKLD large: 1000 bins, unweighted", "large (1000 bins)", N_BINS_LARGE, weighted=False,
    directed=True, uses_postact_mean=False, softmaxed_source=True, has_contributions=True, report_position=1,
    prepare=_bkld_prepare, against=_bkld_against, stored_as="bkld_large")
P2L = DistanceSpec(
    "p2l", "P2L: KL divergence of L1-normalised mean feature vectors / m", "P2L", None, weighted=False,
    directed=True, uses_postact_mean=True, softmaxed_source=False, has_contributions=False, report_position=3,
    prepare=_p2l_prepare, against=_p2l_against)
VDNA = DistanceSpec(
    "vdna", "VDNA: binned earth mover's distance on 1000 bins (symmetric)", "VDNA", N_BINS_LARGE, weighted=False,
    directed=False, uses_postact_mean=False, softmaxed_source=False, has_contributions=False, report_position=2,
    prepare=_vdna_prepare, against=_vdna_against)

#: distance name -> spec, in menu order; the first is the default (the paper's main method)
DISTANCES: dict[str, DistanceSpec] = {spec.name: spec for spec in (BKLD_SMALL, BKLD_LARGE, P2L, VDNA)}
DEFAULT_DISTANCE = BKLD_SMALL.name
#: the distance whose ranking is shown beside the chosen one: symmetric, no softmax, built on other maths than bKLD
SECOND_OPINION = VDNA.name
#: the distances the validity report covers, in the order shown
REPORTED_DISTANCES = tuple(sorted(DISTANCES, key=lambda name: DISTANCES[name].report_position))
#: the distances with per-feature contributions (the "Why similar" page)
WITH_CONTRIBUTIONS = tuple(name for name, spec in DISTANCES.items() if spec.has_contributions)


def spec_of(distance: str | DistanceSpec) -> DistanceSpec:
    """The spec of a distance name; a ValueError naming the known ones for any other."""
    if isinstance(distance, DistanceSpec):
        return distance
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance '{distance}'; choose one of {', '.join(DISTANCES)}")
    return DISTANCES[distance]
