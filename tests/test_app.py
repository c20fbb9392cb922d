"""Every page through Streamlit's AppTest: uploads, tables, errors shown as messages (never tracebacks)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.distances.bootstrap import DEFAULT_RESAMPLES
from core.features.sampling import SamplingProtocol
from tests.helpers import app, find_table, no_exceptions, require_shared, shown


def upload_tuples(folder: Path, prefix: str = "") -> list[tuple[str, bytes, str]]:
    return [(prefix + p.relative_to(folder).as_posix(), p.read_bytes(), "application/octet-stream")
            for p in sorted(folder.rglob("*")) if p.is_file()]


def task_files(task: str, per_class: int) -> list[tuple[str, bytes, str]]:
    root = require_shared() / task
    files = [p for c in sorted(root.iterdir()) for p in sorted(c.iterdir())[:per_class]]
    return [(f"{task}/{p.relative_to(root).as_posix()}", p.read_bytes(), "image/jpeg") for p in files]


@pytest.fixture(scope="module")
def user_fingerprint(backbone, catalogue, tmp_path_factory):
    """A fingerprint with per-sample data kept, as the landing page makes it."""
    from core.fingerprint.pipeline import fingerprint_folder
    from tests.helpers import link_files
    root = require_shared() / "busi_3class"
    files = [p for c in sorted(root.iterdir()) for p in sorted(c.iterdir())[:15]]
    folder = link_files(files, tmp_path_factory.mktemp("app") / "busi", root)
    return fingerprint_folder(folder, backbone, catalogue.edges, SamplingProtocol(n=200), name="my ultrasound",
                              keep_samples=True).fingerprint


@pytest.mark.slow
def test_landing_page_fingerprints_an_uploaded_folder():
    at = app().run()
    no_exceptions(at)
    at.radio(key="source_kind").set_value("Upload a folder").run()
    at.file_uploader(key="folder_upload").set_value(task_files("ph2_3class", 4)).run()
    at.button(key="go_folder").click().run()
    no_exceptions(at)
    fingerprint = at.session_state["fingerprint"]
    assert fingerprint.meta.n_samples == 500
    assert fingerprint.meta.class_counts == {"atypical_nevus": 4, "common_nevus": 4, "melanoma": 4}
    read = find_table(at, "format", "class", "files", "images")
    assert read["files"].sum() == 12 and set(read["class"]) == {"atypical_nevus", "common_nevus", "melanoma"}
    assert any("ready" in s.value for s in at.success)
    said = [shown(i.value) for i in at.info]  # the read summary says that 12 images were sampled 500 times
    assert "500 samples drawn with replacement from 12 images: each image is used about 42 times" in said, said


@pytest.mark.slow
def test_landing_page_handles_every_hostile_kind_as_stated(tmp_path):
    """Issue 5 through the app: one upload holds every kind in its own class folder; each kind's expected outcome
    (read with its image count, or listed as skipped with its reason) is asserted from the page's tables."""
    import re

    from tests.hostile_inputs import KINDS, write_anchor
    folder = tmp_path / "export"
    folder.mkdir()
    write_anchor(folder)
    uploadable = [k for k in KINDS if k.name != "symlink_loop_and_dangling"]  # an upload cannot carry links
    for kind in uploadable:
        (folder / kind.name).mkdir()
        kind.build(folder / kind.name)
    at = app().run()
    at.radio(key="source_kind").set_value("Upload a folder").run()
    at.file_uploader(key="folder_upload").set_value(upload_tuples(folder, "export/")).run()
    at.button(key="go_folder").click().run()
    no_exceptions(at)
    read = find_table(at, "format", "class", "files", "images").groupby("class")["images"].sum().to_dict()
    skipped = find_table(at, "file", "reason")
    for kind in uploadable:
        reasons = " | ".join(skipped[skipped["file"].str.startswith(kind.name + "/")]["reason"])
        if kind.expect == "read":
            assert read.get(kind.name) == kind.images, (kind.name, read.get(kind.name), reasons)
        else:
            assert re.search(kind.reason, reasons, re.I), (kind.name, reasons)
        if kind.reason and kind.expect == "read":
            assert re.search(kind.reason, reasons, re.I), (kind.name, reasons)
    assert at.session_state["fingerprint"].meta.n_samples > 0


def test_broken_zip_and_broken_fingerprint_give_messages_naming_the_file(tmp_path):
    at = app().run()
    at.radio(key="source_kind").set_value("Upload a .zip").run()
    at.file_uploader(key="zip_upload").set_value([("scans.zip", b"PK\x03\x04 broken", "application/zip")]).run()
    at.button(key="go_zip").click().run()
    no_exceptions(at)
    assert any("scans.zip" in shown(e.value) for e in at.error)
    at.radio(key="source_kind").set_value("Load a shared fingerprint").run()
    at.file_uploader(key="fingerprint_upload").set_value([("theirs.npz", b"garbage", "application/zip")]).run()
    at.button(key="go_load").click().run()
    no_exceptions(at)
    assert any("theirs.npz" in shown(e.value) for e in at.error)
    assert "fingerprint" not in at.session_state


@pytest.mark.slow
def test_zip_upload_is_read_and_its_temporary_folder_removed(tmp_path):
    import tempfile
    buffer = io.BytesIO()
    root = require_shared() / "pneumoniamnist"
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in [p for c in sorted(root.iterdir()) for p in sorted(c.iterdir())[:5]]:
            bundle.writestr(path.relative_to(root).as_posix(), path.read_bytes())
    before = set(Path(tempfile.gettempdir()).glob("tfe-upload-*"))
    at = app().run()
    at.radio(key="source_kind").set_value("Upload a .zip").run()
    at.file_uploader(key="zip_upload").set_value([("pneumonia.zip", buffer.getvalue(), "application/zip")]).run()
    at.button(key="go_zip").click().run()
    no_exceptions(at)
    assert at.session_state["fingerprint"].meta.class_counts == {"normal": 5, "pneumonia": 5}
    assert set(Path(tempfile.gettempdir()).glob("tfe-upload-*")) == before  # nothing left behind


def test_local_folder_input_only_when_bound_to_localhost(monkeypatch):
    at = app().run()
    at.radio(key="source_kind").set_value("Local folder path").run()
    offered = any(t.key == "local_path" for t in at.text_input)
    from streamlit import config
    assert offered == (config.get_option("server.address") in ("localhost", "127.0.0.1", "::1"))
    config.set_option("server.address", "0.0.0.0")
    try:
        remote = app().run()
        remote.radio(key="source_kind").set_value("Local folder path").run()
        assert not any(t.key == "local_path" for t in remote.text_input)
        assert any("only when the app runs on your own machine" in w.value for w in remote.warning)
    finally:
        config.set_option("server.address", "localhost")


@pytest.mark.slow
def test_local_folder_path_fingerprints(tmp_path):
    from streamlit import config

    from tests.helpers import link_files
    config.set_option("server.address", "localhost")
    root = require_shared() / "covid_ct"
    files = [p for c in sorted(root.iterdir()) for p in sorted(c.iterdir())[:4]]
    folder = link_files(files, tmp_path / "ct", root)
    at = app().run()
    at.radio(key="source_kind").set_value("Local folder path").run()
    at.text_input(key="local_path").set_value(str(folder)).run()
    at.button(key="go_local").click().run()
    no_exceptions(at)
    assert at.session_state["fingerprint"].meta.class_counts == {"CT_COVID": 4, "CT_NonCOVID": 4}
    at.switch_page("pages/4_Why_similar.py").run()  # their features are computed after the first table
    no_exceptions(at)
    sample = at.session_state["image_sample"]  # Why this task?'s thumbnails: each of the 8 images once, same engine
    assert sample.thumbnails.shape == (8, 64, 64, 3) and set(sample.by_probe) == {"preact", "postact"}


def test_recommendations_page_ranks_same_modality_first_with_uncertainty(user_fingerprint):
    at = app("pages/1_Recommendations.py", fingerprint=user_fingerprint).run()
    no_exceptions(at)
    text = " ".join(shown(m.value) for m in at.markdown) + " ".join(shown(c.value) for c in at.caption)
    assert "Second opinion (VDNA" in text and "% farther than the first" in text
    assert "only of sampling noise" in text and "image-disjoint halves find their own task 17 of 17" in text
    verdict = [m.value for m in [*at.success, *at.info, *at.warning, *at.error] if m.value.startswith("**Verdict")]
    assert len(verdict) == 1
    table = find_table(at, "rank", "raw distance, 95 % low")
    assert table.iloc[0]["public task"] == "Breast ultrasound (BUSI)" and table.iloc[0]["rank"] == "1"
    assert (table["raw distance"].diff().dropna() >= 0).all()  # controls sit at their place
    references = table[table["rank"] == "reference"]
    assert len(references) == 2 and references["public task"].str.endswith("— reference point").all()
    assert {"first place", "rank holds"} <= set(table.columns)
    medical = table[table["rank"] != "reference"]
    assert (medical["raw distance, 95 % low"] <= medical["raw distance"]).all()
    assert (medical["raw distance"] <= medical["raw distance, 95 % high"]).all()
    outranked = medical["raw distance"] >= references["raw distance"].min()
    assert (medical.loc[outranked, "caution"] == "not distinguishable from unrelated images").all()
    assert table["licence as stated"].str.len().min() > 0
    mias = table[table["public task"].str.contains("mini-MIAS")]
    assert mias["shares images"].str.contains("shares images").all()
    assert any(m.value.startswith("**Because your images resemble") for m in at.markdown)
    # measured on this catalogue: the gains of each source for BUSI (rank 1, the reference; none for itself)
    assert "measured on this catalogue" in text and "Breast ultrasound (BUSI)" in text
    gains = medical["measured gain for nearest task"]
    assert gains.iloc[1:].notna().all() and gains.isna().iloc[0]
    assert medical["measured gain, mean over targets"].notna().all()
    for distance in ("bkld-large", "p2l", "vdna"):
        at.selectbox(key="distance_choice").set_value(distance).run()
        no_exceptions(at)
        assert len(find_table(at, "rank", "raw distance, 95 % low")) == 19


def test_your_task_shows_the_table_before_the_bootstrap_then_the_verdict(user_fingerprint, monkeypatch):
    """The first ranked table does not wait for the bootstrap: while the ranking (bootstrap, verdict) is held back,
    Your task shows the table and says the verdict is being weighed (here the page stops waiting after 0.5 s);
    once it is ready the verdict appears above the same table."""
    import threading

    from core.report import analysis
    release, original = threading.Event(), analysis.ranking

    def held_back(*args, **kwargs):
        release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(analysis, "ranking", held_back)
    monkeypatch.setattr("ui.verdict.VERDICT_WAIT_S", 0.5)
    at = app("pages/0_Your_task.py", fingerprint=user_fingerprint).run()
    no_exceptions(at)

    def verdicts() -> list[str]:
        return [m.value for m in [*at.success, *at.info, *at.warning, *at.error] if m.value.startswith("**Verdict")]

    before = find_table(at, "place", "task", "note", "distance")
    assert verdicts() == [f"**Verdict — being weighed.** Your images are re-drawn {DEFAULT_RESAMPLES} times to "
                          "see whether the first place holds; the distances below are final."]
    assert before.iloc[0]["task"] == "Breast ultrasound (BUSI)" and (before["distance"].diff().dropna() >= 0).all()
    release.set()
    parts = at.session_state["analysis"][1]
    parts.get((user_fingerprint.meta.probe, ("ranking", "bkld-small")))
    at.run()
    no_exceptions(at)
    [verdict] = verdicts()
    assert "being weighed" not in verdict
    assert find_table(at, "place", "task", "note", "distance").equals(before)


def test_your_task_waits_for_its_verdict_and_shows_it_when_ready(user_fingerprint, monkeypatch):
    """A ranking that becomes ready while the page waits shows its verdict in the same visit."""
    import threading

    from core.report import analysis
    release, original = threading.Event(), analysis.ranking

    def held_back(*args, **kwargs):
        release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(analysis, "ranking", held_back)
    threading.Timer(1.0, release.set).start()
    at = app("pages/0_Your_task.py", fingerprint=user_fingerprint).run()
    no_exceptions(at)
    verdicts = [m.value for m in [*at.success, *at.info, *at.warning, *at.error] if m.value.startswith("**Verdict")]
    assert len(verdicts) == 1 and "being weighed" not in verdicts[0], verdicts
    assert len(find_table(at, "place", "task", "note", "distance")) == 6


def test_why_this_task_shows_the_images_read_while_fingerprinting(user_fingerprint, backbone, tmp_path):
    """The images kept for 'Why this task?' are read with the fingerprint; their features come after the first
    table, and the page shows them as the one-step computation did."""
    from core.features.inference import engine_for
    from core.report.feature_meaning import read_sampled_images
    from tests.helpers import image_sample, link_files
    root = require_shared() / "busi_3class"
    folder = link_files([p for c in sorted(root.iterdir()) for p in sorted(c.iterdir())[:4]], tmp_path / "busi", root)
    at = app("pages/0_Your_task.py", fingerprint=user_fingerprint,
             sampled_images=(read_sampled_images(folder, engine_for(backbone).batch_size), backbone)).run()
    no_exceptions(at)
    at.switch_page("pages/4_Why_similar.py").run()
    no_exceptions(at)
    expected = image_sample(folder, backbone)
    sample = at.session_state["image_sample"]
    np.testing.assert_array_equal(sample.thumbnails, expected.thumbnails)
    np.testing.assert_array_equal(sample.features, expected.features)
    assert any(c.value.startswith("Your 6 images (of 12 sampled") for c in at.caption)


def test_pages_without_a_fingerprint_say_what_to_do():
    for page in ("pages/1_Recommendations.py", "pages/4_Why_similar.py"):
        at = app(page).run()
        no_exceptions(at)
        assert any("Your task" in i.value for i in at.info)


def test_map_heatmap_and_why_similar_pages(user_fingerprint):
    for page in ("pages/2_Map.py", "pages/3_Heatmap.py", "pages/4_Why_similar.py"):
        at = app(page, fingerprint=user_fingerprint).run()
        no_exceptions(at)
    at = app("pages/4_Why_similar.py", fingerprint=user_fingerprint, selected_task="ph2_3class").run()
    assert at.selectbox(key="why_task").value == "ph2_3class"
    table = find_table(at, "feature", "how much better this task explains it", "typical task's part")
    advantage = table["how much better this task explains it"]
    assert len(table) == 20 and (advantage.diff().dropna() <= 0).all() and (advantage.head(5) > 0).all()
    assert np.allclose(advantage, table["typical task's part"] - table["this task's part of the distance"])
    at.selectbox(key="why_task").set_value("control_sklearn_digits").run()
    other = find_table(at, "feature", "how much better this task explains it")
    assert set(other["feature"].head(5)) != set(table["feature"].head(5))  # the explanation follows the task


def test_tasks_that_share_a_name_are_told_apart_in_the_menus(user_fingerprint, tmp_path, monkeypatch):
    """Two public tasks named alike (two institutions' "Chest X-ray") are numbered in the menus, not shown twice
    under one name, and the heatmap draws both."""
    import json
    import shutil

    from core.catalogue.store import DEFAULT_CATALOGUE

    root = tmp_path / "catalogue"
    shutil.copytree(DEFAULT_CATALOGUE, root)
    manifest = json.loads((root / "catalogue.json").read_text())
    first, second = manifest["tasks"][0], manifest["tasks"][3]
    second["name"] = first["name"]
    (root / "catalogue.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("TFE_CATALOGUE", str(root))
    at = app("pages/4_Why_similar.py", fingerprint=user_fingerprint).run()
    no_exceptions(at)
    options = at.selectbox(key="why_task").options
    assert len(set(options)) == len(options) == 19 and f"{first['name']} (2)" in options
    at = app("pages/5_Catalogue_explorer.py").run()
    no_exceptions(at)
    assert f"{first['name']} (2)" in at.selectbox(key="explorer_target").options
    at = app("pages/3_Heatmap.py", fingerprint=user_fingerprint).run()
    no_exceptions(at)


def test_catalogue_explorer_needs_no_upload():
    at = app("pages/5_Catalogue_explorer.py").run()
    no_exceptions(at)
    tasks = find_table(at, "task", "licence", "upstream")
    assert len(tasks) == 19 and (tasks["licence"].str.len() > 0).all()
    at.selectbox(key="explorer_target").set_value("busi_3class").run()
    ranking = find_table(at, "source", "bKLD small (source → target)")
    assert len(ranking) == 18
    validity = find_table(at, "probe", "distance", "largest hub", "halves find themselves")
    assert list(validity["probe"].unique()) == ["preact (default)", "postact"] and len(validity) == 8
    assert len(find_table(at, "candidate", "end-bin mass")) == 6


def test_map_selection_is_parsed_from_plotly_events():
    from core.report.views import selected_task
    ids = ["a", "b"]
    assert selected_task({"selection": {"points": [{"customdata": ["b", "B"]}]}}, ids) == "b"
    assert selected_task({"selection": {"points": []}}, ids) is None
    assert selected_task({"selection": {"points": [{"customdata": ["__your_task__"]}]}}, ids) is None
    assert selected_task(None, ids) is None


def _bad_fingerprints(catalogue) -> dict[str, tuple[bytes, str]]:
    """Fingerprint files that must be refused: content and the message pattern the page must show."""
    import json
    import re

    from tests.helpers import rewrite
    good = catalogue.fingerprints["ph2_3class"].to_bytes()
    with zipfile.ZipFile(io.BytesIO(good)) as bundle:
        meta = json.loads(bundle.read("meta.json"))
    newer = dict(meta, format_version=meta["format_version"] + 1)
    other = dict(meta, backbone="resnet34", weights_sha256="cd" * 32)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    return {
        "truncated.npz": (good[: len(good) // 3], "truncated|not a fingerprint"),
        "newer.npz": (rewrite(good, "meta.json", json.dumps(newer).encode()), "newer than this tool"),
        "other_backbone.npz": (rewrite(good, "meta.json", json.dumps(other).encode()),
                               re.escape("backbone: 'resnet34' vs 'tf_efficientnet_lite0'")),
        "pickle.npz": (rewrite(good, "counts.npy", pickled.getvalue()), "pickled"),
    }


@pytest.mark.parametrize("name", ["truncated.npz", "newer.npz", "other_backbone.npz", "pickle.npz"])
def test_bad_shared_fingerprints_are_refused_with_the_reason(name, catalogue):
    import re
    content, pattern = _bad_fingerprints(catalogue)[name]
    at = app().run()
    at.radio(key="source_kind").set_value("Load a shared fingerprint").run()
    at.file_uploader(key="fingerprint_upload").set_value([(name, content, "application/zip")]).run()
    at.button(key="go_load").click().run()
    no_exceptions(at)
    messages = " ".join(shown(e.value) for e in at.error)
    assert re.search(pattern, messages) and name in messages, messages
    assert "fingerprint" not in at.session_state


def test_a_good_shared_fingerprint_loads_and_ranks(catalogue):
    at = app().run()
    at.radio(key="source_kind").set_value("Load a shared fingerprint").run()
    content = catalogue.fingerprints["covid_ct"].renamed("their CT").to_bytes()
    at.file_uploader(key="fingerprint_upload").set_value([("their.npz", content, "application/zip")]).run()
    at.button(key="go_load").click().run()
    no_exceptions(at)
    top = find_table(at, "place", "task", "distance", "licence")
    assert top.iloc[0]["task"] == "COVID-19 CT slices" and top.iloc[0]["distance"] == 0.0


def test_probe_choice_switches_the_catalogue_and_a_postact_fingerprint_is_compared_with_its_own(catalogue):
    postact = catalogue.for_probe("postact")
    at = app().run()
    assert at.selectbox(key="probe_choice").value == "preact"
    at.radio(key="source_kind").set_value("Load a shared fingerprint").run()
    content = postact.fingerprints["ph2_3class"].renamed("paper-style").to_bytes()
    at.file_uploader(key="fingerprint_upload").set_value([("paper_style.npz", content, "application/zip")]).run()
    at.button(key="go_load").click().run()
    no_exceptions(at)
    assert at.session_state["probe"] == "postact" and at.session_state["fingerprint"].meta.probe == "postact"
    assert find_table(at, "place", "task", "distance").iloc[0]["task"] == "Dermoscopy lesions (PH2)"
    at.run()
    assert at.selectbox(key="probe_choice").value == "postact" and "fingerprint" in at.session_state
    at.selectbox(key="probe_choice").set_value("preact").run()  # a fingerprint of another probe is dropped
    no_exceptions(at)
    assert "fingerprint" not in at.session_state and any("compute it again" in shown(i.value) for i in at.info)


def test_the_backbone_loads_once_in_the_background_while_the_user_chooses_images(monkeypatch):
    """Your task starts loading the backbone when it is shown (returning at once); the click on "Compute
    fingerprint" takes that backbone instead of loading another."""
    import threading

    import ui.resources as resources
    calls, release = [], threading.Event()

    def slow_load(probe=None):
        calls.append(probe)
        release.wait(10)
        return f"backbone of {probe}"

    monkeypatch.setattr(resources, "load_backbone", slow_load)
    monkeypatch.setattr(resources, "engine_for", lambda backbone: None)  # no ONNX export of a stand-in
    monkeypatch.setattr(resources, "_loading", {})
    monkeypatch.setattr(resources, "_loaded", set())
    resources.get_backbone.clear()
    try:
        resources.preload("a probe")  # returns while the load still waits
        assert not release.is_set()
        release.set()
        assert resources.get_backbone("a probe") == "backbone of a probe"
        resources.preload("a probe")
        assert resources.get_backbone("a probe") == "backbone of a probe" and calls == ["a probe"]
    finally:
        resources.get_backbone.clear()
