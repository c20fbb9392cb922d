"""The verdict on real folders through the whole pipeline with the real backbone (200 samples each): held-out,
image-disjoint halves of catalogue tasks are strong; folders the catalogue does not hold whose first places share
the bootstrap, mixes of modalities and the controls' own kind of images never are."""
from __future__ import annotations

import pytest

from tests import verdict_cases as cases

pytestmark = pytest.mark.slow  # fingerprints five folders with the real backbone


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("verdict")


def never_strong_when_contested(verdict) -> None:
    evidence = verdict.evidence
    contested = (evidence.first_share is not None and evidence.first_share < 0.9) or evidence.controls_above
    if contested:
        assert verdict.level != "strong", verdict


@pytest.mark.parametrize("task", ["brain_mri_4class", "lc25000_lung", "pneumoniamnist"])
def test_a_held_out_half_of_a_catalogue_task_is_strong(task, backbone, catalogue, scratch):
    verdict = cases.verdict_of(cases.held_out_half(task, backbone, catalogue, scratch))
    assert verdict.level == "strong", verdict
    assert verdict.evidence.first == catalogue.task(task).name
    assert verdict.sentence.startswith(f"Strong match: {catalogue.task(task).name} is clearly")


def test_a_task_the_catalogue_does_not_hold_whose_first_places_share_the_bootstrap_is_not_strong(
        backbone, catalogue, scratch):
    verdict = cases.verdict_of(cases.unheld_task("knee_oa_kl_5class", backbone, catalogue, scratch))
    assert verdict.evidence.first_share < 0.9  # two sources trade first place (measured: 0.50)
    assert verdict.level in ("several about equally close", "weak", "nothing close"), verdict
    never_strong_when_contested(verdict)


def test_a_mix_of_two_modalities_is_not_strong(backbone, catalogue, scratch):
    verdict = cases.verdict_of(cases.mix("brain_mri_4class", "covid_xray_3class", backbone, catalogue, scratch))
    assert verdict.level != "strong", verdict
    never_strong_when_contested(verdict)


def test_the_controls_own_kind_of_images_find_nothing_close(backbone, catalogue, scratch):
    verdict = cases.verdict_of(cases.control_kind("control_skimage_faces", backbone, catalogue, scratch))
    assert verdict.evidence.controls_above  # the faces control is nearer than every medical task
    assert verdict.level == "nothing close", verdict
    assert verdict.sentence.startswith("Nothing close: unrelated everyday images (")
    assert "Faces vs. non-faces (control)" in verdict.sentence.split(" are about as close")[0]
