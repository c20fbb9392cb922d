"""Does a ranking of sources agree with measured transfer? Pure functions over one target's legal sources.

For each target with measured gains, a ranking (a distance: nearer first) is compared with the sources' mean gains
by the weighted Kendall tau (``scipy.stats.weightedtau`` with its defaults, as the paper: the average of the two
hyperbolically weighted taus ranked by each variable; the top of the ranking counts most). Also: is the gain of the
first-ranked source positive, and its regret (best legal source's mean gain minus the first-ranked one's). Two
references: *same modality first* (sources of the target's modality family first, random order within each group)
and *random order*; both as expected values over random orders (a fixed number of draws with a fixed seed).
Means over targets come with a bootstrap 95 % interval over targets.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import weightedtau

REFERENCE_DRAWS = 500
BOOTSTRAP = 2000


def ranking_figures(scores: np.ndarray, gains: np.ndarray) -> dict:
    """One ranking of one target's sources: ``scores`` (k,) higher = ranked first (e.g. minus the distance), ``gains``
    (k,) their measured mean gains. {'tau', 'first_positive' (0/1), 'regret' (>= 0)}."""
    tau = float(weightedtau(scores, gains).statistic)
    first = int(np.argmax(scores))
    return {"tau": tau, "first_positive": float(gains[first] > 0), "regret": float(gains.max() - gains[first])}


def expected_figures(groups: np.ndarray, gains: np.ndarray, draws: int = REFERENCE_DRAWS, seed: int = 0) -> dict:
    """:func:`ranking_figures` averaged over random orders that keep higher ``groups`` first (all equal: a random
    order; 1 for the target's modality, 0 otherwise: same modality first)."""
    rng = np.random.default_rng(seed)
    figures = [ranking_figures(groups + 0.5 * rng.random(len(gains)), gains) for _ in range(draws)]
    return {key: float(np.mean([f[key] for f in figures])) for key in figures[0]}


def bootstrap_mean(values: list[float], draws: int = BOOTSTRAP, seed: int = 0) -> dict:
    """{'mean', 'low', 'high', 'n'}: the mean over targets and its percentile bootstrap 95 % interval."""
    values_array = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    resampled = values_array[rng.integers(0, len(values_array), (draws, len(values_array)))].mean(axis=1)
    return {"mean": round(float(values_array.mean()), 4), "low": round(float(np.percentile(resampled, 2.5)), 4),
            "high": round(float(np.percentile(resampled, 97.5)), 4), "n": int(len(values_array))}


def summarise(per_target: dict[str, dict]) -> dict:
    """Means over targets of :func:`ranking_figures` (tau with its bootstrap interval), plus the per-target taus."""
    taus = [f["tau"] for f in per_target.values()]
    return {"weighted_tau": bootstrap_mean(taus),
            "first_positive_share": round(float(np.mean([f["first_positive"] for f in per_target.values()])), 4),
            "mean_regret": round(float(np.mean([f["regret"] for f in per_target.values()])), 5),
            "per_target_tau": {t: round(f["tau"], 4) for t, f in sorted(per_target.items())}}


def seed_agreement(per_seed: dict[str, dict[str, tuple[float, ...]]]) -> dict:
    """How reproducible the measured gains are: per target, the weighted tau between the sources' gains of two
    seeds, averaged over seed pairs; then over targets with a bootstrap interval. No ranking can be expected to
    agree with the gains better than the gains of one seed agree with another's. ``per_seed``: {target: {source:
    gains, one per seed, same seed order}}."""
    per_target = []
    for measured in per_seed.values():
        sources = sorted(measured)
        n_seeds = min(len(measured[s]) for s in sources)
        if len(sources) < 3 or n_seeds < 2:
            continue
        gains = np.array([measured[s][:n_seeds] for s in sources])  # (sources, seeds)
        taus = [weightedtau(gains[:, a], gains[:, b]).statistic for a in range(n_seeds) for b in range(a + 1, n_seeds)]
        per_target.append(float(np.mean(taus)))
    return bootstrap_mean(per_target) if per_target else {}


def measured_agreement(matrices: dict[str, np.ndarray], ids: list[str], families: list[str],
                       gains: dict[str, dict[str, float]]) -> dict:
    """Every ranking against measured transfer. ``matrices``: {distance: D[source, target]} over ``ids`` (lower =
    nearer); ``families``: each task's modality family; ``gains``: {target: {legal source: mean gain}}. Returns
    {ranking name: :func:`summarise`} with 'same modality first' and 'random order' as references."""
    per_ranking: dict[str, dict[str, dict]] = {name: {} for name in [*matrices, "same modality first",
                                                                      "random order"]}
    for target, measured in sorted(gains.items()):
        sources = sorted(measured)
        if target not in ids or len(sources) < 3 or not all(s in ids for s in sources):
            continue
        rows = [ids.index(s) for s in sources]
        column = ids.index(target)
        gain = np.array([measured[s] for s in sources])
        for name, matrix in matrices.items():
            per_ranking[name][target] = ranking_figures(-matrix[rows, column], gain)
        same = np.array([float(families[r] == families[column]) for r in rows])
        per_ranking["same modality first"][target] = expected_figures(same, gain)
        per_ranking["random order"][target] = expected_figures(np.zeros(len(rows)), gain)
    return {name: summarise(figures) for name, figures in per_ranking.items() if figures}
