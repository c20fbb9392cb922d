"""The distances, one spec each: what the CLI, the pages, the bank and the validity report iterate.

A new computed distance is one entry in ``DISTANCES`` plus its maths in :mod:`core.distances.maths`: the entry names
the bins it reads, whether features are weighted, whether it is directed, which mean it uses, and three functions:
``source_side`` (what a bank keeps per source, computed once), ``target_side`` (the same for targets) and
``compare`` (many targets against many sources, (R, S)). :mod:`core.distances.bank` does the rest.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.distances.maths import bkld_contributions, bkld_many, feature_weights, log_softmax, p2l_many, vdna_many
from core.fingerprint.binning import N_BINS_LARGE, N_BINS_SMALL, histogram_probabilities

if TYPE_CHECKING:
    from core.fingerprint.fingerprint import Fingerprint

#: (spec, fine counts (R, m, 1000), means (R, k)) -> arrays with a leading axis of R
SideFunction = Callable[["DistanceSpec", np.ndarray, np.ndarray], Any]


@dataclass(frozen=True)
class DistanceSpec:
    """One distance. ``n_bins``: histogram bins it compares (None: means only); ``weighted``: features weighted by
    softmax of the target's mean; ``directed``: d(s -> t) != d(t -> s); ``uses_postact_mean``: takes the
    post-activation mean whatever the probe (P2L needs non-negative means); ``softmaxed_source``: the bKLD formula
    (KL against softmax of the source histogram), so an identical source gives a positive *twin distance*;
    ``stored_as``: the catalogue's stored matrix (``matrices.npz`` key), None when computed; ``report_position``:
    order in the validity report; ``has_contributions``: per-feature terms that sum to it."""

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
    source_side: SideFunction
    target_side: SideFunction
    compare: Callable[[Any, Any], np.ndarray]
    stored_as: str | None = None

    def mean_of(self, fingerprint: Fingerprint) -> np.ndarray:
        """The mean vector this distance uses: P2L needs non-negative means, so it takes the post-activation mean
        whatever the probe; bKLD small weights features by the probe's own mean."""
        return fingerprint.postact_mean if self.uses_postact_mean else fingerprint.mean

    def contributions(self, target: Fingerprint, source: Fingerprint) -> np.ndarray:
        """Per-feature contributions (m,) to d(source -> target); they sum to the distance."""
        if not self.has_contributions:
            raise ValueError("per-feature contributions exist for bKLD small and large only")
        assert self.n_bins is not None
        return bkld_contributions(target.probabilities(self.n_bins),
                                  log_softmax(source.probabilities(self.n_bins), axis=-1),
                                  feature_weights(target.mean if self.weighted else None, target.n_features))

    def twin(self, target: Fingerprint) -> float:
        """What the formula gives for a source identical to ``target`` (0 unless the source alone is softmaxed):
        KL(P_t || softmax(P_t)) for bKLD. Each target's bKLD values sit above this offset of its own."""
        return float(self.contributions(target, target).sum()) if self.softmaxed_source else 0.0


# --------------------------------------------------------------------------- what each side keeps
def _bkld_source(spec: DistanceSpec, counts: np.ndarray, means: np.ndarray) -> np.ndarray:
    """log softmax_b(Q_s) per source and feature, (R, m, B)."""
    return log_softmax(histogram_probabilities(counts, spec.n_bins), axis=-1)


def _bkld_target(spec: DistanceSpec, counts: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P_t (R, m, B), normalised feature weights (R, m))."""
    p = histogram_probabilities(counts, spec.n_bins)
    weights = np.stack([feature_weights(mean if spec.weighted else None, p.shape[1]) for mean in means])
    return p, weights


def _bkld_compare(targets: tuple[np.ndarray, np.ndarray], log_q: np.ndarray) -> np.ndarray:
    return bkld_many(targets[0], targets[1], log_q)


def _cdf(spec: DistanceSpec, counts: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Cumulative histograms, (R, m, B)."""
    return np.cumsum(histogram_probabilities(counts, spec.n_bins), axis=-1)


def _means(spec: DistanceSpec, counts: np.ndarray, means: np.ndarray) -> np.ndarray:
    """P2L needs only the means, (R, k)."""
    return np.asarray(means, dtype=np.float64)


# --------------------------------------------------------------------------- the registry
BKLD_SMALL = DistanceSpec(
    "bkld-small", "bKLD small: 100 bins, features weighted by softmax of the target's mean (paper's main method)",
    "small (100 bins, weighted)", N_BINS_SMALL, weighted=True, directed=True, uses_postact_mean=False,
    softmaxed_source=True, has_contributions=True, report_position=0, source_side=_bkld_source,
    target_side=_bkld_target, compare=_bkld_compare, stored_as="bkld_small")
BKLD_LARGE = DistanceSpec(
    "bkld-large", "bKLD large: 1000 bins, unweighted", "large (1000 bins)", N_BINS_LARGE, weighted=False,
    directed=True, uses_postact_mean=False, softmaxed_source=True, has_contributions=True, report_position=1,
    source_side=_bkld_source, target_side=_bkld_target, compare=_bkld_compare, stored_as="bkld_large")
P2L = DistanceSpec(
    "p2l", "P2L: KL divergence of L1-normalised mean feature vectors / m", "P2L", None, weighted=False,
    directed=True, uses_postact_mean=True, softmaxed_source=False, has_contributions=False, report_position=3,
    source_side=_means, target_side=_means, compare=p2l_many)
VDNA = DistanceSpec(
    "vdna", "VDNA: binned earth mover's distance on 1000 bins (symmetric)", "VDNA", N_BINS_LARGE, weighted=False,
    directed=False, uses_postact_mean=False, softmaxed_source=False, has_contributions=False, report_position=2,
    source_side=_cdf, target_side=_cdf, compare=vdna_many)

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
