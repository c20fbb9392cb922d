"""The validity report's figures on small matrices worked out by hand, and the version-drift warnings."""
from __future__ import annotations

import numpy as np
import pytest

from core.catalogue.validity import (
    TaskFacts,
    controls_nearer,
    halves_found,
    hubness,
    modality_family,
    paper_agreement,
    same_modality_first,
)
from core.features.environment import library_versions, version_drift

# four medical tasks (two X-ray, two CT; m1 and m2 built on the same images) and one control
FACTS = TaskFacts(ids=["x1", "x2", "c1", "c2", "ctrl"], kinds=["medical"] * 4 + ["control"],
                  modalities=["X-ray (chest)", "X-ray (knee)", "CT", "CT (chest)", "digits"],
                  shares_images_with=[[], [], ["c2"], ["c1"], []],
                  paper_tasks=["p_x1", "p_x2", "p_c1", "p_c2", None])
# D[source, target]
D = np.array([
    #  x1   x2   c1   c2  ctrl   <- target
    [0.0, 1.0, 1.0, 1.2, 9.0],  # x1
    [2.0, 0.0, 3.0, 1.5, 9.0],  # x2
    [3.0, 5.0, 0.0, 0.1, 9.0],  # c1
    [4.0, 5.0, 0.1, 0.0, 9.0],  # c2
    [2.5, 0.5, 2.0, 9.0, 0.0],  # ctrl
])


def test_modality_family_drops_the_qualifier():
    assert modality_family("X-ray (knee, AP)") == modality_family("x-ray") == "x-ray"
    assert modality_family("CT (chest, axial slice)") == "ct"


def test_legal_sources_exclude_self_shared_images_and_controls():
    assert FACTS.legal_sources(2) == [0, 1]  # c1: not itself, not c2 (same images), never the control
    assert FACTS.legal_sources(0) == [1, 2, 3]


def test_hub_controls_and_same_modality_by_hand():
    # nearest legal source: x1 <- x2 (2.0), x2 <- x1 (1.0), c1 <- x1 (1.0), c2 <- x1 (1.2, x2 is 1.5)
    assert hubness(D, FACTS) == {"largest": 3, "source": "x1"}
    # the control is nearer than the nearest legal source for x2 (0.5 < 1.0) only
    assert controls_nearer(D, FACTS) == ["x2"]
    # x1, x2 have an X-ray partner; c1 and c2 only have each other, which shares images: not eligible
    assert same_modality_first(D, FACTS) == {"hits": ["x1", "x2"], "eligible": ["x1", "x2"]}


def test_halves_must_find_their_own_half_among_legal_sources():
    halves = np.full((5, 5), 5.0)
    np.fill_diagonal(halves, 1.0)
    halves[1, 0] = 0.5  # x2's half A is nearer to x1's half B than x1's own half A
    halves[3, 2] = 0.1  # c2 shares images with c1: not a candidate, so c1 still finds itself
    assert halves_found(halves, FACTS) == {"found": ["x2", "c1", "c2"], "missed": {"x1": "x2"}}


def test_agreement_with_the_paper_is_spearman_per_target():
    paper = {"p_x1": {"p_x2": 1.0, "p_c1": 2.0, "p_c2": 3.0},
             "p_x2": {"p_x1": 1.0, "p_c1": 2.0, "p_c2": 3.0},
             "p_c1": {"p_x1": 3.0, "p_x2": 2.0, "p_c2": 1.0},
             "p_c2": {"p_x1": 2.0, "p_x2": 3.0, "p_c1": 1.0}}
    result = paper_agreement(D, FACTS, paper)
    # paper[source][target]. x1's sources x2, c1, c2: ours 2, 3, 4 vs the paper's 1, 3, 2 -> rho 0.5; x2's sources
    # x1, c1, c2: ours 1, 5, 5 (tied ranks 1, 2.5, 2.5) vs 1, 2, 3 -> rho 0.866; c1 and c2 have only 2 legal linked
    # sources: too few to rank, left out
    assert result["per_target"] == {"x1": 0.5, "x2": pytest.approx(0.866, abs=1e-3)}
    assert result["mean_spearman"] == pytest.approx((0.5 + 0.866) / 2, abs=1e-3)


def test_version_drift_warns_for_major_minor_changes_only():
    built = {"numpy": "2.4.6", "torch": "2.14.1+cu130", "umap-learn": "0.5.12", "timm": "1.0.31"}
    running = {"numpy": "2.4.9", "torch": "2.15.0", "umap-learn": "0.6.0", "timm": "1.0.31+local"}
    warnings = version_drift(built, running)
    assert len(warnings) == 2
    assert "torch 2.15.0 is running, the catalogue was built with 2.14.1+cu130" in warnings[0]
    assert "umap-learn" in warnings[1] and "map" in warnings[1]
    assert version_drift(built, running, affects="features") == warnings[:1]
    assert version_drift(built, dict(built)) == []


def test_running_versions_are_recorded_for_every_library_that_changes_results():
    versions = library_versions()
    assert set(versions) == {"python", "numpy", "torch", "timm", "umap-learn", "numba", "scikit-learn"}
    assert all(v and v != "not installed" for v in versions.values())
