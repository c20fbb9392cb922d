"""Issue 25: the cloud ranks bKLD small through one source store per frame. Small clouds get exactly the rankings and
verdicts of the in-memory catalogue path; a store that drifted from the database (a task published or withdrawn
behind its back, a lost folder) is brought level before it answers."""
from __future__ import annotations

import shutil
import uuid

import numpy as np
import pytest

from core.cloud.database import create_cloud_engine, upgrade
from core.cloud.frames import FrameStores
from core.cloud.records import PublishRequest, encode_fingerprint
from core.cloud.service import CloudService
from tests.cloud.cloud_harness import SHIPPED, fingerprint_bytes

TASKS = ("busi_3class", "covid_ct", "bccd_cells", "ph2_3class", "ph2_3class", "knee_oa_kl_5class")


def publish(service: CloudService, caller, task: str, name: str) -> str:
    request = PublishRequest(request_id=uuid.uuid4().hex, card={"name": name},
                             fingerprint=encode_fingerprint(fingerprint_bytes(task)))
    return service.publish(caller, request)[0]["id"]


@pytest.fixture()
def clouds(tmp_path):
    """(service ranking through stores, service ranking in memory, caller) on one SQLite database."""
    database = f"sqlite:///{tmp_path / 'cloud.db'}"
    engine = create_cloud_engine(database)
    upgrade(engine)
    stored = CloudService(engine, stores=FrameStores(tmp_path / "stores"))
    token = stored.create_token("Hospital A", ("read", "publish")).token
    yield stored, CloudService(engine), stored.authenticate(token)
    engine.dispose()


def same_answer(got: dict, expected: dict) -> None:
    assert [r["task_id"] for r in got["tasks"]] == [r["task_id"] for r in expected["tasks"]]
    np.testing.assert_allclose([r["distance"] for r in got["tasks"]], [r["distance"] for r in expected["tasks"]],
                               rtol=1e-12)
    assert [r.get("second_opinion_rank") for r in got["tasks"]] == \
        [r.get("second_opinion_rank") for r in expected["tasks"]]
    assert got["verdict"] == expected["verdict"]
    assert got["not_comparable"] == expected["not_comparable"]


def test_small_clouds_rank_as_the_in_memory_catalogue_and_follow_the_database(clouds, tmp_path):
    stored, in_memory, caller = clouds
    query = encode_fingerprint((SHIPPED / "halves" / "busi_3class.a.npz").read_bytes())
    ids = [publish(stored, caller, task, f"cloud {task} {k}") for k, task in enumerate(TASKS)]  # one twin pair
    for distance in (None, "bkld-small"):
        same_answer(stored.query(caller, query, distance), in_memory.query(caller, query, distance))
    first = stored.query(caller, query, None)
    assert first["tasks"][0]["task_id"] == ids[0] and "nearest source" in first["verdict"]
    frame = first["tasks"][0]
    assert frame["card"]["name"] == "cloud busi_3class 0"

    stored.withdraw(caller, ids[1])  # through the service: the store gets a tombstone
    same_answer(stored.query(caller, query, None), in_memory.query(caller, query, None))
    in_memory.withdraw(caller, ids[2])  # behind the store's back (another process): brought level
    extra = publish(in_memory, caller, "wbc_type_4class", "published elsewhere")
    answer = stored.query(caller, query, None)
    same_answer(answer, in_memory.query(caller, query, None))
    assert ids[2] not in [r["task_id"] for r in answer["tasks"]] and extra in [r["task_id"] for r in answer["tasks"]]

    folders = [p for p in (tmp_path / "stores").iterdir() if p.is_dir()]
    assert len(folders) == 1
    shutil.rmtree(folders[0])  # a lost store is rebuilt from the database by a new server
    again = CloudService(stored.engine, stores=FrameStores(tmp_path / "stores"))
    same_answer(again.query(caller, query, None), in_memory.query(caller, query, None))
    (folders[0] / "store.json").write_text("{broken")  # an unreadable one is moved aside and rebuilt
    again = CloudService(stored.engine, stores=FrameStores(tmp_path / "stores"))
    same_answer(again.query(caller, query, None), in_memory.query(caller, query, None))
    assert any(".unusable-" in p.name for p in (tmp_path / "stores").iterdir())


def test_large_frames_refuse_distances_the_stores_do_not_rank(clouds, monkeypatch):
    import core.cloud.ranking as ranking
    stored, _, caller = clouds
    for task in TASKS[:3]:
        publish(stored, caller, task, task)
    monkeypatch.setattr(ranking, "IN_MEMORY_UP_TO", 2)
    query = encode_fingerprint((SHIPPED / "halves" / "covid_ct.a.npz").read_bytes())
    from core.cloud.service import CloudError
    with pytest.raises(CloudError, match="ranks that many by bkld-small only"):
        stored.query(caller, query, "vdna")
    answer = stored.query(caller, query, None)
    assert [r.get("second_opinion_rank") for r in answer["tasks"]] == [None] * 3  # no second opinion at scale
    assert answer["listed"] == answer["comparable"] == 3
