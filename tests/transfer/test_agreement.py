"""Rankings against measured gains: weighted tau, first-ranked positive, regret, and the random references."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import weightedtau

from core.transfer.agreement import bootstrap_mean, expected_figures, measured_agreement, ranking_figures

GAINS = np.array([0.03, -0.01, 0.00, 0.02, -0.02])


def test_a_ranking_in_the_order_of_the_gains_scores_one_and_the_reverse_minus_one():
    assert ranking_figures(GAINS * 10, GAINS)["tau"] == pytest.approx(1.0)
    assert ranking_figures(-GAINS, GAINS)["tau"] == pytest.approx(-1.0)
    mixed = np.array([5.0, 4.0, 3.0, 2.0, 1.0])  # ranks source 0 first, then 1, 2, 3, 4
    assert ranking_figures(mixed, GAINS)["tau"] == pytest.approx(weightedtau(mixed, GAINS).statistic)


def test_first_ranked_positive_and_regret_are_worked_by_hand():
    first_is_worst = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    figures = ranking_figures(first_is_worst, GAINS)
    assert figures["first_positive"] == 0.0 and figures["regret"] == pytest.approx(0.05)
    figures = ranking_figures(np.array([0.0, 0.0, 0.0, 1.0, 0.0]), GAINS)
    assert figures["first_positive"] == 1.0 and figures["regret"] == pytest.approx(0.01)


def test_random_order_expectations_match_their_closed_forms():
    figures = expected_figures(np.zeros(len(GAINS)), GAINS, draws=4000)
    assert figures["first_positive"] == pytest.approx(2 / 5, abs=0.03)  # two of five gains are > 0
    assert figures["regret"] == pytest.approx(GAINS.max() - GAINS.mean(), abs=0.002)
    assert abs(figures["tau"]) < 0.05


def test_same_modality_first_draws_its_first_source_from_the_group():
    group = np.array([1.0, 0.0, 0.0, 1.0, 0.0])  # sources 0 and 3: both gains positive
    figures = expected_figures(group, GAINS, draws=400)
    assert figures["first_positive"] == 1.0
    assert figures["regret"] == pytest.approx((0.0 + 0.01) / 2, abs=0.002)


def test_bootstrap_interval_brackets_the_mean():
    assert bootstrap_mean([0.2, 0.2, 0.2]) == {"mean": 0.2, "low": 0.2, "high": 0.2, "n": 3}
    spread = bootstrap_mean(list(np.linspace(-1, 1, 21)))
    assert spread["low"] < spread["mean"] == 0.0 < spread["high"]


def test_measured_agreement_covers_every_ranking_and_only_measured_targets():
    ids = ["t0", "t1", "t2", "t3", "t4", "t5"]
    rng = np.random.default_rng(0)
    gains = {"t0": {s: float(g) for s, g in zip(ids[1:], GAINS)}}
    perfect = np.zeros((6, 6))
    perfect[1:, 0] = -GAINS  # the most helpful source is the nearest
    report = measured_agreement({"perfect": perfect, "noise": rng.random((6, 6))}, ids,
                                ["x", "x", "y", "y", "x", "y"], gains)
    assert set(report) == {"perfect", "noise", "same modality first", "random order"}
    assert report["perfect"]["weighted_tau"]["mean"] == pytest.approx(1.0)
    assert report["perfect"]["first_positive_share"] == 1.0 and report["perfect"]["mean_regret"] == 0.0
    assert list(report["noise"]["per_target_tau"]) == ["t0"]


def test_seed_agreement_is_one_for_identical_seeds_and_low_for_unrelated_ones():
    from core.transfer.agreement import seed_agreement

    same = {"t": {f"s{i}": (g, g, g) for i, g in enumerate(GAINS)}}
    assert seed_agreement(same)["mean"] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    unrelated = {f"t{k}": {f"s{i}": tuple(rng.normal(size=3)) for i in range(15)} for k in range(40)}
    assert abs(seed_agreement(unrelated)["mean"]) < 0.15
