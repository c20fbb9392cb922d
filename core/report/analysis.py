"""Everything the pages show that depends only on the user's fingerprint and the catalogue, computed once per
(fingerprint, catalogue) and in named parts, so an app can show its first page as soon as that page's part is ready
and prepare the rest meanwhile (:class:`Parts`).

Parts (:func:`part_names`): ``("points", distance)`` the ranked table alone, before its bootstrap (:class:`Points`:
what a first page shows at once); ``("ranking", distance)`` the ranked table with bootstrap intervals, the closeness
cue and the verdict (:class:`Ranking`, made from the points part); ``("placement",)`` where the task lands on the
map and its family; ``("contributions", distance)`` per-feature contributions of every catalogue task (bKLD only).
The catalogue's own figures (computed matrices, the closeness reference, the bootstrap's source terms, the families)
are computed once per catalogue object (:meth:`core.catalogue.store.Catalogue.derived`) and shared by every user.

The figures equal those of the per-page functions (``recommendations``, ``bootstrap_for``, ``how_close``,
``verdict_from_catalogue``, ``map_ranks``, ``family_of``, ``contributions_to``) for the same fingerprint and seed;
tests/report/test_analysis.py checks it.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.catalogue.store import Catalogue
from core.distances.bank import contributions_to
from core.distances.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    BootstrapResult,
    BootstrapSources,
    resample_weights,
    summarise,
)
from core.distances.registry import DEFAULT_DISTANCE, DISTANCES, SECOND_OPINION, WITH_CONTRIBUTIONS, spec_of
from core.fingerprint.fingerprint import Fingerprint
from core.report.recommend import Closeness, catalogue_excess, distance_scale, how_close, pair_excess, recommendations
from core.report.verdict import Verdict, ranked_with_references, verdict_from_catalogue


@dataclass(frozen=True)
class Ranking:
    """One distance's answer for the user's task. ``table``: :func:`recommendations` with the bootstrap columns;
    ``bootstrap``: over ``catalogue.candidate_ids`` (None for a fingerprint without samples); ``to_user`` /
    ``from_user``: (T,) directed distances catalogue task -> user and user -> catalogue task (the heatmap's row and
    column); ``scale``: :func:`core.report.recommend.distance_scale` of the rows in distance order, controls at
    their place (:func:`core.report.verdict.ranked_with_references`, as the Recommendations page shows them)."""

    distance: str
    table: pd.DataFrame
    bootstrap: BootstrapResult | None
    closeness: Closeness
    verdict: Verdict
    to_user: np.ndarray
    from_user: np.ndarray
    scale: pd.Series | None = None


@dataclass(frozen=True)
class Points:
    """One distance's ranked table before its bootstrap: ``table`` as :func:`recommendations` without the
    bootstrap columns and the second opinion's rank (the same rows, order and distances as :class:`Ranking`'s),
    ``to_user`` (T,) the directed distances catalogue task -> user."""

    distance: str
    table: pd.DataFrame
    to_user: np.ndarray


@dataclass(frozen=True)
class Placement:
    """Where the user's task sits among the catalogue's: ``ranks`` (T,) symmetrised ranks on the map's scale
    (:func:`core.report.views.map_ranks`), ``xy`` its map position, ``families`` the catalogue's families report and
    ``family`` the user's entry of it."""

    ranks: np.ndarray
    xy: np.ndarray
    families: dict
    family: dict


def bootstrap_sources(catalogue: Catalogue, distance: str) -> BootstrapSources:
    """Every catalogue task as a bootstrap source for ``distance``, prepared once per catalogue."""
    sources = [catalogue.fingerprints[i] for i in catalogue.ids]
    counts = catalogue.derived("stacked counts", lambda: np.stack([s.counts for s in sources]))  # one for all
    return catalogue.derived(("bootstrap sources", distance), lambda: BootstrapSources(distance, sources, counts))


def bootstrap_all(catalogue: Catalogue, target: Fingerprint, distance: str, n_resamples: int = DEFAULT_RESAMPLES,
                  seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray] | None:
    """(full (T,), resampled (R, T)) distances from every catalogue task to the target and its resamples; None
    without per-sample data. One set of resamples for all tasks, as every per-subset bootstrap with this seed."""
    if target.sample_bins is None or target.sample_features is None:
        return None
    weights = resample_weights(len(target.sample_bins), n_resamples, seed)
    return bootstrap_sources(catalogue, distance).distances(target, weights)


def points(catalogue: Catalogue, target: Fingerprint, distance: str = DEFAULT_DISTANCE) -> Points:
    """The ranked table at ``distance`` before its bootstrap (see :class:`Points`): one bank pass."""
    spec_of(distance)
    to_user = catalogue.distances_to(target, distance)
    return Points(distance, recommendations(catalogue, target, distance, None, {distance: to_user},
                                            with_second_opinion=False), to_user)


def ranking(catalogue: Catalogue, target: Fingerprint, distance: str = DEFAULT_DISTANCE,
            n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, first: Points | None = None) -> Ranking:
    """The ranked table, its bootstrap, closeness cue and verdict for one distance (see :class:`Ranking`);
    ``first``: the :func:`points` part of the same distance when at hand (its distances are not computed again)."""
    spec_of(distance)
    to_user = first.to_user if first is not None else catalogue.distances_to(target, distance)
    computed = {distance: to_user}
    if distance != SECOND_OPINION:
        computed[SECOND_OPINION] = catalogue.distances_to(target, SECOND_OPINION)
    candidates = [catalogue.ids.index(i) for i in catalogue.candidate_ids]
    bootstrap, resampled = None, None
    drawn = bootstrap_all(catalogue, target, distance, n_resamples, seed)
    if drawn is not None:
        full, values = drawn
        bootstrap = summarise(values[:, candidates], full[candidates])
        resampled = {task_id: values[:, k] for k, task_id in enumerate(catalogue.ids)}  # controls' too, same draws
    table = recommendations(catalogue, target, distance, bootstrap, computed)
    return Ranking(distance, table, bootstrap, how_close(catalogue, table, target, distance),
                   verdict_from_catalogue(catalogue, table, target, distance, bootstrap, seed, resampled), to_user,
                   catalogue.distances_from(target, distance),
                   distance_scale(catalogue, ranked_with_references(table), target, distance))


def placement(catalogue: Catalogue, target: Fingerprint) -> Placement:
    """The user's task on the catalogue's map and among its families (bKLD small, as the map and families)."""
    from core.catalogue.families import families_report, family_of, user_ranks
    from core.catalogue.taskmap import place_on_map

    matrix = catalogue.matrix(DEFAULT_DISTANCE)
    ranks = user_ranks(matrix, catalogue.distances_to(target, DEFAULT_DISTANCE),
                       catalogue.distances_from(target, DEFAULT_DISTANCE))
    families = catalogue.derived(("families", DEFAULT_DISTANCE), lambda: families_report(catalogue))
    return Placement(ranks, place_on_map(catalogue.coords, ranks), families, family_of(ranks, catalogue.ids, families))


def contributions(catalogue: Catalogue, target: Fingerprint, distance: str) -> np.ndarray:
    """(T, m) per-feature contributions to bKLD(catalogue task -> target), rows in task order; each row sums to that
    distance (:func:`core.distances.bank.contributions_to` for every task)."""
    return np.stack([contributions_to(target, catalogue.fingerprints[i], distance) for i in catalogue.ids])


def warm(catalogue: Catalogue, distance: str = DEFAULT_DISTANCE) -> None:
    """Compute the catalogue's own figures that every user's ranking under ``distance`` reads (bootstrap source
    terms, closeness reference, distance scale), e.g. when the app loads the catalogue, before any user waits."""
    bootstrap_sources(catalogue, distance)
    catalogue_excess(catalogue, distance)
    pair_excess(catalogue, distance)


def part_names(first_distance: str = DEFAULT_DISTANCE) -> list[tuple]:
    """Every part, in the order a session prepares them: the chosen distance's points and ranking first, then what
    the other pages show at the default distance, then the other distances."""
    rankings = [("ranking", first_distance)] + [("ranking", d) for d in DISTANCES if d != first_distance]
    contributions = [("contributions", d) for d in WITH_CONTRIBUTIONS]
    return [("points", first_distance)] + rankings[:1] + [("placement",)] + contributions[:1] + rankings[1:] + \
        contributions[1:]


def compute_part(catalogue: Catalogue, target: Fingerprint, name: tuple,
                 part_of: Callable[[tuple], object] | None = None) -> object:
    """One part (see :func:`part_names`); ``part_of(name)``: another part of the same target when a collection of
    them is at hand (:class:`Parts`), so that a ranking starts from its points part instead of computing them
    again."""
    kind, *arguments = name
    if kind == "points":
        return points(catalogue, target, *arguments)
    if kind == "ranking":
        first = part_of(("points", *arguments)) if part_of is not None else None
        return ranking(catalogue, target, *arguments, first=first)
    if kind == "placement":
        return placement(catalogue, target)
    if kind == "contributions":
        return contributions(catalogue, target, *arguments)
    raise ValueError(f"unknown analysis part {name!r}")


class Parts:
    """Named results, each computed once, by whoever asks first: :meth:`get` computes a part in the caller's thread
    unless another thread already is (then it waits for that one), :meth:`prepare_all` works through a list in a
    background thread. ``compute(key)`` makes a part; keys are any hashables (e.g. (probe, part name))."""

    def __init__(self, compute: Callable[[Hashable], object]) -> None:
        self._compute = compute
        self._lock = threading.Lock()
        self._futures: dict[Hashable, Future] = {}
        self._planned: list[Hashable] = []
        self.thread: threading.Thread | None = None

    def _claim(self, key: Hashable) -> tuple[Future, bool]:
        with self._lock:
            if key in self._futures:
                return self._futures[key], False
            future: Future = Future()
            self._futures[key] = future
            return future, True

    def _run(self, key: Hashable, future: Future) -> None:
        try:
            future.set_result(self._compute(key))
        except BaseException as err:  # handed to whoever waits for the part (a page shows it)
            future.set_exception(err)

    def get(self, key: Hashable) -> object:
        """The part's result (raises what computing it raised)."""
        future, mine = self._claim(key)
        if mine:
            self._run(key, future)
        return future.result()

    def start(self, key: Hashable) -> None:
        """Make sure ``key`` is being computed or will be, and return at once: left to :meth:`prepare_all`'s thread
        when it is planned there and still to come, else computed in a daemon thread of its own (unless claimed)."""
        with self._lock:
            if key in self._futures or (key in self._planned and self.thread is not None and self.thread.is_alive()):
                return
        future, mine = self._claim(key)
        if mine:
            threading.Thread(target=self._run, args=(key, future), name="analysis-part", daemon=True).start()

    def ready(self, key: Hashable) -> bool:
        with self._lock:
            future = self._futures.get(key)
        return future is not None and future.done()

    def prepare_all(self, keys: list[Hashable]) -> None:
        """Compute ``keys`` one after another in a daemon thread, skipping parts claimed already."""
        self._planned = list(keys)

        def work() -> None:
            for key in keys:
                future, mine = self._claim(key)
                if mine:
                    self._run(key, future)

        self.thread = threading.Thread(target=work, name="analysis-parts", daemon=True)
        self.thread.start()

    def progress(self) -> tuple[int, int]:
        """(planned parts done, planned parts)."""
        return sum(self.ready(key) for key in self._planned), len(self._planned)
