"""Large (store-layout) catalogues: loaded without reading fingerprints, ranked exactly as the in-memory catalogue of
the same tasks, grown one task at a time without rebuilding, and shown in the app as the user's neighbourhood."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from core.catalogue import large as large_module
from core.catalogue.large import LargeCatalogue
from core.catalogue.store import TaskInfo, add_to_local_copy, load_catalogue
from core.catalogue.synthetic import write_synthetic_catalogue, write_synthetic_large_catalogue
from core.distances.registry import BKLD_SMALL
from core.errors import CatalogueError
from core.report.analysis import ranking
from core.report.views import USER_ID
from tests.helpers import app, find_table, no_exceptions

N_TASKS = 60


@pytest.fixture(scope="module")
def pair(catalogue, tmp_path_factory):
    """(in-memory, store-layout) folders of the same 60 synthetic tasks."""
    folder = tmp_path_factory.mktemp("large")
    memory = write_synthetic_catalogue(folder / "memory", catalogue, N_TASKS, seed=3)
    big = write_synthetic_large_catalogue(folder / "large", catalogue, N_TASKS, seed=3)
    return memory, big


def user_task(name: str = "brain_mri_4class"):
    from core.fingerprint.fingerprint import Fingerprint
    return Fingerprint.load(Path(__file__).resolve().parents[2] / "data" / "catalogue" / "fingerprints"
                            / f"{name}.npz").renamed("my task")


def info_for(task_id: str, kind: str = "user") -> TaskInfo:
    return TaskInfo(id=task_id, name=f"Task {task_id}", modality="MRI", anatomy="brain", classes={"a": 1},
                    n_images=1, kind=kind)


def test_loading_reads_metadata_and_the_store_but_no_fingerprint(pair, monkeypatch):
    from core.fingerprint.fingerprint import Fingerprint

    def refuse(*args, **kwargs):
        raise AssertionError("a fingerprint was read while loading")

    monkeypatch.setattr(Fingerprint, "load", refuse)
    loaded = load_catalogue(pair[1])
    assert isinstance(loaded, LargeCatalogue) and len(loaded.tasks) == N_TASKS == len(loaded.store)
    assert not (pair[1] / "matrices.npz").exists()


@pytest.mark.parametrize("user", ["brain_mri_4class", "busi_3class"])
def test_neighbourhood_ranks_exactly_as_the_in_memory_catalogue(pair, user):
    memory, big = load_catalogue(pair[0]), load_catalogue(pair[1])
    target = user_task(user)
    whole = ranking(memory, target).table
    around = big.neighbourhood(target)
    near = ranking(around, target).table
    size = large_module.NEIGHBOURHOOD
    assert around.neighbourhood_of == {"total": N_TASKS, "around": None, "size": size}
    expected = whole[whole["kind"] != "control"].head(size)
    got = near[near["kind"] != "control"]
    assert list(got["task_id"]) == list(expected["task_id"])
    np.testing.assert_allclose(got["distance"], expected["distance"], rtol=1e-12, atol=0)
    # the nearest control of the whole catalogue is in the neighbourhood, at the same distance
    control = whole[whole["kind"] == "control"].sort_values("distance").iloc[0]
    shown = near[near["task_id"] == control["task_id"]]
    assert len(shown) == 1 and np.isclose(shown["distance"].iloc[0], control["distance"], rtol=1e-12)
    # the neighbourhood's pairwise block equals the whole matrix's block
    rows = [memory.ids.index(i) for i in around.ids]
    np.testing.assert_allclose(around.matrix(BKLD_SMALL), memory.bkld_small[np.ix_(rows, rows)], rtol=1e-12)


def test_verdict_facts_are_the_whole_catalogues_not_the_neighbourhoods(pair):
    from core.report.recommend import _own_excess, catalogue_excess, pair_excess

    big = load_catalogue(pair[1])
    around = big.neighbourhood(user_task())
    medical = sum(t.kind == "medical" for t in big.tasks)
    own = catalogue_excess(around, BKLD_SMALL)
    assert len(own) == medical and own == big.own_excess()  # every medical task, not the neighbourhood's 30
    assert np.array_equal(pair_excess(around, BKLD_SMALL), big.facts()["pair_excess"])
    # each task's nearest legal source distance above its twin equals the in-memory catalogue's, task by task
    memory = load_catalogue(pair[0])
    np.testing.assert_allclose(own, _own_excess(memory, BKLD_SMALL), rtol=1e-9, atol=1e-12)


def test_adding_is_incremental_and_loses_nothing(pair, tmp_path):
    import shutil

    local = tmp_path / "local"
    shutil.copytree(pair[1], local)
    before = {p.name: p.read_bytes() for p in (local / "fingerprints").iterdir()}
    store_bytes = (local / "store" / "codes.f32").read_bytes()
    facts_before = load_catalogue(local).facts()
    own_before = load_catalogue(local).own_excess()
    grown = add_to_local_copy(user_task(), info_for("user_mine", "medical"), local, pair[0])
    assert isinstance(grown, LargeCatalogue) and grown.ids[-1] == "user_mine" and len(grown.tasks) == N_TASKS + 1
    assert not (local / "matrices.npz").exists()
    for name, payload in before.items():
        assert (local / "fingerprints" / name).read_bytes() == payload
    assert (local / "store" / "codes.f32").read_bytes().startswith(store_bytes)  # appended, not rebuilt
    facts = grown.facts()
    assert len(grown.own_excess()) == len(own_before) + 1 and "user_mine" in facts["twin"]
    assert len(facts["pair_excess"]) == len(facts_before["pair_excess"]) + large_module.PAIR_SOURCES_PER_ADD
    around = grown.neighbourhood(around="user_mine")
    table = ranking(around, user_task()).table
    assert table["task_id"].iloc[0] == "user_mine" and table["distance"].iloc[0] == 0.0
    with pytest.raises(CatalogueError, match="already in"):
        add_to_local_copy(user_task(), info_for("user_mine"), local, pair[0])


def test_an_interrupted_addition_is_not_listed_and_its_id_is_refused(pair, tmp_path):
    import shutil

    local = tmp_path / "local"
    shutil.copytree(pair[1], local)
    loaded = load_catalogue(local)
    loaded.store.add(user_task(), "user_half")  # killed after the store row, before catalogue.json
    again = load_catalogue(local)
    assert "user_half" not in again.ids and len(again.tasks) == N_TASKS
    assert "user_half" not in again.neighbourhood(user_task()).ids
    with pytest.raises(CatalogueError, match="interrupted"):
        add_to_local_copy(user_task(), info_for("user_half"), local, pair[0])


def test_concurrent_additions_all_land(pair, tmp_path):
    import shutil

    local = tmp_path / "local"
    shutil.copytree(pair[1], local)
    errors = []

    def work(k: int) -> None:
        try:
            add_to_local_copy(user_task(["brain_mri_4class", "busi_3class", "covid_ct"][k]),
                              info_for(f"user_{k}"), local, pair[0])
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    grown = load_catalogue(local)
    assert {"user_0", "user_1", "user_2"} <= set(grown.ids) and len(grown.tasks) == N_TASKS + 3
    assert len(grown.store) == N_TASKS + 3


def test_a_local_copy_that_grows_past_the_threshold_becomes_store_backed(catalogue, tmp_path, monkeypatch):
    monkeypatch.setattr(large_module, "STORE_ABOVE", len(catalogue.tasks))
    local = tmp_path / "local"
    grown = add_to_local_copy(user_task("covid_ct"), info_for("user_copy"), local)
    assert isinstance(grown, LargeCatalogue) and len(grown.tasks) == len(catalogue.tasks) + 1
    assert json.loads((local / "catalogue.json").read_text())["layout"] == "store"
    assert (local / "knowledge.json").exists() and not (local / "matrices.npz").exists()
    target = user_task("busi_3class")
    shipped = ranking(catalogue, target).table
    around = grown.neighbourhood(target)  # 20 tasks: all of them
    local_table = ranking(around, target).table
    same = local_table[local_table["task_id"] != "user_copy"]
    assert list(same["task_id"]) == list(shipped["task_id"])
    np.testing.assert_allclose(same["distance"], shipped["distance"], rtol=1e-12)


def test_pages_show_the_neighbourhood_of_a_large_catalogue(pair):
    os.environ["TFE_CATALOGUE"] = str(pair[1])
    try:
        user = user_task()
        for page in ("pages/0_Your_task.py", "pages/2_Map.py", "pages/4_Why_similar.py",
                     "pages/6_Co-training_plan.py"):
            at = app(page, fingerprint=user).run()
            no_exceptions(at)
            assert any(f"holds {N_TASKS:,} tasks" in c.value for c in at.caption), page
        at = app("pages/4_Why_similar.py", fingerprint=user).run()
        shown = len(load_catalogue(pair[1]).neighbourhood(user).ids)  # 30 + the controls (1 of 60 tasks)
        typical = f"the median of the {shown} in this neighbourhood"
        assert any(typical in m.value for m in at.markdown)
        at = app("pages/1_Recommendations.py", fingerprint=user).run()
        no_exceptions(at)
        table = find_table(at, "rank", "licence")
        assert (table["rank"] != "reference").sum() == large_module.NEIGHBOURHOOD
        at = app("pages/3_Heatmap.py", fingerprint=user).run()
        no_exceptions(at)
        at = app("pages/5_Catalogue_explorer.py").run()
        no_exceptions(at)
        assert len(find_table(at, "task", "licence", "upstream")) == N_TASKS  # every task listed
        at.selectbox(key="explorer_focus").set_value("synthetic_0010").run()
        no_exceptions(at)
        assert any("neighbourhood of 'Synthetic" in c.value and "0010" in c.value for c in at.caption)
        ranking_table = find_table(at, "source", "bKLD small (source → target)")
        controls = min(large_module.NEIGHBOURHOOD_CONTROLS, N_TASKS // 50)  # every 50th synthetic task
        assert len(ranking_table) == large_module.NEIGHBOURHOOD + controls  # the focus task itself is not listed
        at = app("pages/5_Catalogue_explorer.py", fingerprint=user).run()  # with a fingerprint: the user's first
        no_exceptions(at)
        menu = at.selectbox(key="explorer_focus")
        assert menu.value == USER_ID and menu.index == 0 and menu.options[0] == "your task"  # chosen, not empty
        assert any("neighbourhood of your task: it and" in c.value for c in at.caption)
        shown = find_table(at, "source", "bKLD small (source → target)")["source"]
        yours = load_catalogue(pair[1]).neighbourhood(user)
        assert set(shown) <= {t.name for t in yours.tasks} and len(shown) == len(yours.tasks) - 1
    finally:
        del os.environ["TFE_CATALOGUE"]


def test_the_explorer_lists_a_large_catalogue_in_pages_its_search_finds_the_rest(pair, monkeypatch):
    """A browser draws 10,000 rows slowly: the table lists the first rows, the search finds any task, and the
    neighbourhood menu offers the listed tasks."""
    import core.report.views as views

    monkeypatch.setattr(views, "TABLE_ROWS_SHOWN", 10)
    os.environ["TFE_CATALOGUE"] = str(pair[1])
    try:
        at = app("pages/5_Catalogue_explorer.py").run()
        no_exceptions(at)
        assert len(find_table(at, "task", "licence", "upstream")) == 10
        assert any(f"The first 10 of {N_TASKS} tasks are listed" in c.value for c in at.caption)
        assert len(at.selectbox(key="explorer_focus").options) == 10
        at.text_input(key="catalogue_search").set_value("task 0042").run()
        no_exceptions(at)
        found = find_table(at, "task", "licence", "upstream")
        assert list(found["task"]) == [load_catalogue(pair[1]).task("synthetic_0042").name]
        at.selectbox(key="explorer_focus").set_value("synthetic_0042").run()
        assert any("neighbourhood of 'Synthetic" in c.value and "0042" in c.value for c in at.caption)
    finally:
        del os.environ["TFE_CATALOGUE"]
