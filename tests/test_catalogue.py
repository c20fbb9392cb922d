"""The shipped catalogue (issue 3): consistent, complete, correct distances, and it recognises held-out data."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from core.catalogue import DEFAULT_CATALOGUE, TaskInfo, add_to_local_copy, load_catalogue, pairwise_bkld
from core.compare import distance_from_arrays
from core.errors import CatalogueError
from tests.conftest import TASKS, require_shared


def test_catalogue_loads_fast_and_shares_one_backbone_and_one_set_of_edges(catalogue):
    started = time.perf_counter()
    load_catalogue()
    assert time.perf_counter() - started < 1.0
    assert len(catalogue.tasks) == 14
    assert {f.meta.backbone for f in catalogue.fingerprints.values()} == {"tf_efficientnet_lite0"}
    assert {f.meta.edges_id for f in catalogue.fingerprints.values()} == {catalogue.edges.identity}
    assert {f.meta.weights_sha256 for f in catalogue.fingerprints.values()} == {catalogue.weights_sha256}
    assert {f.meta.n_samples for f in catalogue.fingerprints.values()} == {catalogue.protocol["n"]}


def test_catalogue_stays_small():
    size = sum(p.stat().st_size for p in DEFAULT_CATALOGUE.rglob("*") if p.is_file())
    assert size < 30 * 1024**2


def test_stored_distances_equal_a_recomputation(catalogue):
    small, large = pairwise_bkld([catalogue.fingerprints[i] for i in catalogue.ids])
    np.testing.assert_allclose(catalogue.bkld_small, small, rtol=1e-12)
    np.testing.assert_allclose(catalogue.bkld_large, large, rtol=1e-12)
    assert np.all(np.diag(catalogue.bkld_small) == 0) and np.all(catalogue.bkld_small[~np.eye(14, dtype=bool)] > 0)
    # independent of the stored matrix: one column worked out again from the fingerprints' probabilities
    target = catalogue.fingerprints["ph2_3class"]
    column = distance_from_arrays("bkld-small", target.counts, target.mean, *catalogue.stacked)
    np.testing.assert_allclose(column, catalogue.bkld_small[:, catalogue.ids.index("ph2_3class")], rtol=1e-12)


def test_every_task_has_complete_metadata_and_provenance(catalogue):
    sources = json.loads((DEFAULT_CATALOGUE / "SOURCES.json").read_text())["tasks"]
    for info in catalogue.tasks:
        for field in ("name", "modality", "anatomy", "licence", "source", "upstream"):
            assert getattr(info, field), (info.id, field)
        assert info.classes and info.n_images == sum(info.classes.values()), info.id
        if info.kind == "medical":
            assert info.licence == sources[info.id]["licence"]
            assert info.paper_task == sources[info.id]["paper_task"]
    mias = catalogue.task("mias_pathology_3class")
    assert mias.shares_images_with == ["mias_tissue_3class"]
    assert catalogue.coords.shape == (14, 2) and np.all(np.isfinite(catalogue.coords))


def test_measured_knowledge_for_the_seven_linked_tasks(catalogue):
    linked = [t.id for t in catalogue.tasks if t.paper_task]
    assert len(linked) == 7
    assert sorted(catalogue.knowledge["tasks"]) == sorted(linked)
    for task_id in linked:
        entry = catalogue.knowledge["tasks"][task_id]
        assert set(entry["as_target"]) == {"arch", "pretrain", "augmentation", "multi_task"}
        for scenario in entry["as_target"].values():
            best = scenario["best_sources"][0]
            assert best["delta"] == pytest.approx(best["auroc"] - scenario["baseline_auroc"], abs=2e-4)
            assert best["repetitions"] >= 1
        assert entry["augmentation_policy"]["top_operations"]
        assert len(entry["paper_neighbours"]) == 5


def test_controls_are_far_from_every_medical_task_on_the_map_and_never_ranked(catalogue):
    """The two controls are the farthest tasks from every medical task in the symmetrised distances that the map and
    heatmap show. (In the directed bKLD they come out close, because only the source is softmaxed and they are
    mostly zero activations; that is why recommendations never rank them: see README, 'Controls'.)"""
    from core.distances import symmetrise
    from core.recommend import recommendations
    symmetric = symmetrise(catalogue.bkld_small)
    medical = [i for i, t in enumerate(catalogue.tasks) if t.kind == "medical"]
    controls = [i for i, t in enumerate(catalogue.tasks) if t.kind == "control"]
    assert len(medical) == 12 and len(controls) == 2
    for target in medical:
        farthest_medical = max(symmetric[target, s] for s in medical if s != target)
        assert min(symmetric[target, c] for c in controls) > farthest_medical, catalogue.tasks[target].id
    table = recommendations(catalogue, catalogue.fingerprints["busi_3class"])
    assert table[table["kind"] == "control"]["rank"].isna().all()
    assert list(table["rank"].dropna()) == list(range(1, 13))


def test_held_out_half_is_nearest_to_its_own_task_for_ten_of_twelve(catalogue, half_fingerprints):
    """Leave-one-out: the task's catalogue entry is replaced by one half; the other half must find it among the
    legal sources (METHOD.md section 6: the medical tasks, less those built on the same images)."""
    require_shared()
    counts, means = catalogue.stacked
    hits = {}
    for task in TASKS:
        index = catalogue.ids.index(task)
        replaced_counts, replaced_means = counts.copy(), means.copy()  # candidates: the 12 medical tasks
        replaced_counts[index] = half_fingerprints[(task, "a")].counts
        replaced_means[index] = half_fingerprints[(task, "a")].mean
        held_out = half_fingerprints[(task, "b")]
        values = distance_from_arrays("bkld-small", held_out.counts, held_out.mean, replaced_counts, replaced_means)
        shared = set(catalogue.task(task).shares_images_with)
        candidates = [i for i, t in enumerate(catalogue.tasks) if t.kind == "medical" and t.id not in shared]
        hits[task] = catalogue.ids[candidates[int(np.argmin(values[candidates]))]] == task
    assert sum(hits.values()) >= 10, hits


def test_user_task_goes_into_a_local_copy_and_the_shipped_catalogue_is_untouched(catalogue, tmp_path):
    shipped_bytes = {p: p.read_bytes() for p in DEFAULT_CATALOGUE.rglob("*") if p.is_file()}
    mine = catalogue.fingerprints["ph2_3class"].renamed("my dermoscopy")
    info = TaskInfo(id="user_derm", name="my dermoscopy", modality="dermoscopy", anatomy="skin",
                    classes={"a": 1}, n_images=1, kind="user", licence="private")
    local = add_to_local_copy(mine, info, tmp_path / "local")
    assert local.ids[-1] == "user_derm" and len(local.tasks) == 15
    assert local.bkld_small[catalogue.ids.index("ph2_3class"), -1] == 0.0
    with pytest.raises(CatalogueError, match="already in"):
        add_to_local_copy(mine, info, tmp_path / "local")
    assert {p: p.read_bytes() for p in DEFAULT_CATALOGUE.rglob("*") if p.is_file()} == shipped_bytes


def test_outdated_catalogue_version_is_refused_clearly(tmp_path):
    import shutil
    copy = tmp_path / "old"
    shutil.copytree(DEFAULT_CATALOGUE, copy)
    manifest = json.loads((copy / "catalogue.json").read_text())
    manifest["catalogue_version"] = 0
    (copy / "catalogue.json").write_text(json.dumps(manifest))
    with pytest.raises(CatalogueError, match="rebuild it"):
        load_catalogue(copy)


def test_map_is_fixed_and_a_twin_lands_on_its_task(catalogue):
    from core.distances import symmetrise
    from core.taskmap import fit_map, place_on_map
    coords, method = fit_map(catalogue.bkld_small)
    assert method == catalogue.map_method == "umap"
    np.testing.assert_allclose(coords, catalogue.coords, atol=1e-4)  # the build's map is reproducible
    index = catalogue.ids.index("pneumoniamnist")
    placed = place_on_map(catalogue.coords, symmetrise(catalogue.bkld_small)[index])
    np.testing.assert_allclose(placed, catalogue.coords[index], atol=1e-6)


def test_placement_by_hand():
    from core.taskmap import place_on_map
    coords = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    # nearest three at distances 1, 1, 2: weights 1, 1, 0.5 -> (2 + 0, 0 + 1) / 2.5
    np.testing.assert_allclose(place_on_map(coords, np.array([1.0, 1.0, 2.0, 5.0])), [0.8, 0.4])
