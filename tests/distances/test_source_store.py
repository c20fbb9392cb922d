"""The compact source store: exact rankings of the shipped catalogue, incremental publishing, refusals, and the
screening's recall on synthetic tasks (bench/cloud_scale.py measures it at 10,000)."""
from __future__ import annotations

import numpy as np
import pytest

from core.catalogue.store import load_catalogue
from core.distances.source_store import SourceStore, screening_basis
from core.errors import CatalogueError, IncompatibleFingerprintsError


@pytest.fixture(scope="module")
def shipped():
    return load_catalogue()


@pytest.fixture(scope="module")
def full_store(shipped, tmp_path_factory):
    store = SourceStore.open(tmp_path_factory.mktemp("store") / "sources", like=shipped.fingerprints[shipped.ids[0]])
    store.add_many((i, shipped.fingerprints[i]) for i in shipped.ids)
    return store


def test_the_shipped_catalogue_ranks_exactly_as_the_bank(shipped, full_store):
    """Every shipped task as the target: the same order of all 19 sources and the same bKLD small values as the
    catalogue's source bank (and so the stored matrix), the task itself first at exactly 0."""
    reopened = SourceStore.open(full_store.root)
    for column, task_id in enumerate(shipped.ids):
        target = shipped.fingerprints[task_id]
        ranking = reopened.rank(target, top_k=None)
        exact = shipped.bkld_small[:, column]
        assert ranking.ids == [shipped.ids[i] for i in np.lexsort((np.arange(len(exact)), exact))]
        np.testing.assert_allclose(ranking.distances, np.sort(exact), rtol=1e-12, atol=0)
        assert ranking.ids[0] == task_id and ranking.distances[0] == 0.0
        assert ranking.candidates == ranking.total == 19


def test_screened_candidates_are_rescored_exactly(shipped, full_store):
    target = shipped.fingerprints["covid_ct"].renamed("mine")
    ranking = full_store.rank(target, top_k=3, candidates=6)
    assert ranking.candidates == 6 and len(ranking.ids) == 3
    exact = dict(zip(shipped.ids, shipped.distances_to(target)))
    np.testing.assert_allclose(ranking.distances, [exact[i] for i in ranking.ids], rtol=1e-12)
    assert list(ranking.distances) == sorted(ranking.distances)


def test_publishing_is_incremental_and_readers_see_new_tasks(shipped, tmp_path):
    like = shipped.fingerprints[shipped.ids[0]]
    store = SourceStore.open(tmp_path / "s", like=like)
    store.add_many((i, shipped.fingerprints[i]) for i in shipped.ids[:10])
    reader = SourceStore.open(tmp_path / "s")
    assert len(reader) == 10
    writer = SourceStore.open(tmp_path / "s")
    for task_id in shipped.ids[10:]:
        writer.add(shipped.fingerprints[task_id], task_id)
    target = shipped.fingerprints["ph2_3class"]
    ranking = reader.rank(target, top_k=None)  # sees the 9 tasks published after it was opened
    assert ranking.total == 19
    column = shipped.bkld_small[:, shipped.ids.index("ph2_3class")]
    np.testing.assert_allclose(ranking.distances, np.sort(column), rtol=1e-12)


def test_a_write_that_died_half_way_is_ignored_and_overwritten(shipped, tmp_path):
    store = SourceStore.open(tmp_path / "s", like=shipped.fingerprints[shipped.ids[0]])
    store.add_many((i, shipped.fingerprints[i]) for i in shipped.ids[:3])
    for name in ("codes.f32", "coarse.u16", "lse.f64", "digests.bin"):
        with open(tmp_path / "s" / name, "ab") as handle:
            handle.write(b"\x01" * 1000)
    with open(tmp_path / "s" / "index.jsonl", "ab") as handle:
        handle.write(b'{"id": "half')
    reopened = SourceStore.open(tmp_path / "s")
    assert reopened.ids == shipped.ids[:3]
    reopened.add(shipped.fingerprints[shipped.ids[3]], shipped.ids[3])
    again = SourceStore.open(tmp_path / "s")
    assert again.ids == shipped.ids[:4]
    ranking = again.rank(shipped.fingerprints[shipped.ids[3]], top_k=None)
    assert ranking.ids[0] == shipped.ids[3] and ranking.distances[0] == 0.0


def test_refusals_name_the_problem(shipped, full_store, tmp_path):
    from dataclasses import replace
    first = shipped.fingerprints[shipped.ids[0]]
    with pytest.raises(CatalogueError, match="already in the store"):
        full_store.add(first, shipped.ids[0])
    other = replace(first, meta=replace(first.meta, edges_id="f" * 16))
    with pytest.raises(IncompatibleFingerprintsError, match="edges_id"):
        full_store.rank(other)
    with pytest.raises(CatalogueError, match="no source store here"):
        SourceStore.open(tmp_path / "nothing")
    with pytest.raises(ValueError, match="bKLD small or large"):
        SourceStore.open(tmp_path / "vdna", like=first, distance="vdna")


def test_screening_basis_is_orthonormal_and_complete_at_full_size():
    basis = screening_basis(100, 100)
    np.testing.assert_allclose(basis.T @ basis, np.eye(100), atol=1e-12)
    small = screening_basis(100, 8)
    np.testing.assert_allclose(small.T @ small, np.eye(8), atol=1e-12)
    assert small[0, 0] == 1.0 and small[-1, 1] == 1.0  # the end bins, which hold the clipped tails


def test_screening_finds_the_exact_top10_of_300_synthetic_tasks(shipped, tmp_path):
    """300 synthetic tasks in 12 modalities, 10 synthetic users: the store's top-10 (screened, 50 candidates
    re-scored) equals the exact top-10 of the catalogue's source bank for every user."""
    from core.catalogue.synthetic import synthetic_fingerprint
    from core.distances.bank import bank_for
    template = shipped.fingerprints[shipped.ids[0]]
    rng = np.random.default_rng(0)
    centres = [rng.uniform(150, 850, size=template.n_features) for _ in range(12)]
    tasks = [synthetic_fingerprint(template, f"t{i}", rng, centres[i % 12] + rng.normal(0, 40, size=1280))
             for i in range(300)]
    store = SourceStore.open(tmp_path / "s", like=template)
    store.add_many((f"t{i}", f) for i, f in enumerate(tasks))
    bank = bank_for("bkld-small", tasks)
    for q in range(10):
        user = synthetic_fingerprint(template, "user", rng, centres[q % 12] + rng.normal(0, 40, size=1280), 2000)
        exact = bank.distances(user)
        ranking = store.rank(user, top_k=10)
        assert ranking.candidates == 50
        assert ranking.ids == [f"t{i}" for i in np.argsort(exact, kind="stable")[:10]]
        np.testing.assert_allclose(ranking.distances, np.sort(exact)[:10], rtol=1e-12)


def _brute_nearest(tasks, live):
    """Reference: each live task's nearest other live task by the catalogue's source bank (float64), lowest index
    on ties, as core.catalogue.validity.nearest_legal_source picks it."""
    from core.distances.bank import bank_for
    matrix = bank_for("bkld-small", tasks).distances_to_each(tasks).T  # [s, t]
    found = {}
    for t in live:
        others = [s for s in live if s != t]
        s = others[int(np.argmin(matrix[others, t]))]
        found[t] = (matrix[s, t], s)
    return found


def _synthetic_tasks(template, count, seed):
    from core.catalogue.synthetic import synthetic_fingerprint
    rng = np.random.default_rng(seed)
    centres = [rng.uniform(150, 850, size=template.n_features) for _ in range(4)]
    return [synthetic_fingerprint(template, f"t{i}", rng, centres[i % 4] + rng.normal(0, 40, size=1280))
            for i in range(count)]


def test_nearest_distances_match_the_catalogue_matrix(shipped, full_store):
    """The shipped tasks: each one's nearest other task and distance, as the stored bKLD small matrix gives them."""
    matrix = shipped.bkld_small
    distances, sources = full_store.nearest_distances(), full_store.nearest_sources()
    assert full_store.ids == shipped.ids
    for t in range(len(shipped.ids)):
        others = [s for s in range(len(shipped.ids)) if s != t]
        s = others[int(np.argmin(matrix[others, t]))]
        assert sources[t] == shipped.ids[s]
        np.testing.assert_allclose(distances[t], matrix[s, t], rtol=1e-12)


@pytest.mark.parametrize("every_pair_up_to", [200, 4])
def test_nearest_distances_are_maintained_on_add_and_withdrawal(shipped, tmp_path, monkeypatch, every_pair_up_to):
    """60 synthetic tasks published in batches and one by one, an identical twin under another id, withdrawals:
    after every step each live task's nearest other task equals the brute-force float64 reference. With every pair
    re-scored only up to 4 earlier tasks, the screening and its margin rule decide which earlier targets a new
    source is re-scored for."""
    import core.distances.store_nearest as store_nearest
    monkeypatch.setattr(store_nearest, "EVERY_PAIR_UP_TO", every_pair_up_to)
    template = shipped.fingerprints[shipped.ids[0]]
    tasks = _synthetic_tasks(template, 60, 1)
    tasks.append(tasks[7].renamed("twin of t7"))
    store = SourceStore.open(tmp_path / "s", like=template)

    def check(live):
        reference = _brute_nearest(tasks, live)
        assert store.ids == [f"t{i}" for i in live]
        distances, sources = store.nearest_distances(), store.nearest_sources()
        for k, t in enumerate(live):
            distance, s = reference[t]
            assert sources[k] == f"t{s}", (t, sources[k], s)
            np.testing.assert_allclose(distances[k], distance, rtol=1e-12, atol=1e-15)

    store.add(tasks[0], "t0")
    assert store.nearest_distances()[0] == np.inf and store.nearest_sources() == [None]
    store.add_many((f"t{i}", tasks[i]) for i in range(1, 30))
    check(list(range(30)))
    for i in range(30, 45):
        store.add(tasks[i], f"t{i}")
    store.add_many((f"t{i}", tasks[i]) for i in range(45, 61))
    live = list(range(61))
    check(live)
    assert store.nearest_distances()[7] == 0.0 and store.nearest_sources()[7] == "t60"  # the twin, at 0
    for gone in (60, store.ids.index(store.nearest_sources()[3])):
        store.withdraw(f"t{gone}")
        live.remove(gone)
        check(live)
    (tmp_path / "s" / "nearest.bin").unlink()  # lost derived data is rebuilt by the next reader
    check(live)
    from core.distances.store_nearest import NEAREST
    records = np.fromfile(tmp_path / "s" / "nearest.bin", dtype=NEAREST)
    records[5] = (0.0, 10_000)  # names a row whose write died before its index line: recomputed
    records[:-3].tofile(tmp_path / "s" / "nearest.bin")  # and the last rows' records lost
    check(live)


def test_an_old_store_version_is_refused_with_a_clear_message(shipped, tmp_path):
    import json
    store = SourceStore.open(tmp_path / "s", like=shipped.fingerprints[shipped.ids[0]])
    manifest = json.loads((store.root / "store.json").read_text())
    manifest["store_version"] = 1
    (store.root / "store.json").write_text(json.dumps(manifest))
    with pytest.raises(CatalogueError, match="format version 1, this program reads version 2"):
        SourceStore.open(store.root)
