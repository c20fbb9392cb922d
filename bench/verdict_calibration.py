"""The figures the verdict's thresholds were chosen from (core/report/verdict.py; README "The verdict").

For every medical task: a folder of about 200 images that are not in the task's shipped half A, (1) against the
catalogue holding only half A (an image-disjoint held-out half: must be "strong") and (2) against the catalogue
without the task and the tasks sharing its images (a task the catalogue does not hold). Besides: mixes of two
modalities and the two non-medical controls' own kind of images. Prints one line per case: the level and the measured
quantities (first-place share, worst rank, margins in half-widths of the first's 95 % bootstrap interval, relative
margins in per cent, closeness cue).

    python bench/verdict_calibration.py [--tasks brain_mri_4class lc25000_lung ...]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def line(case, verdict) -> str:
    e = verdict.evidence

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)
    return (f"{case.name:<52} {verdict.level:<28} share={num(e.first_share, '.2f')} rank97.5={e.rank_worst} "
            f"margin_z={num(e.margin_spread, '.2f')} margin%={e.margin_pct:.1f} "
            f"control_z={num(e.control_margin_spread, '.2f')} control%={e.control_margin_pct:.1f} close={e.close} "
            f"excess_pct={e.excess_percentile:.2f} next_excess_pct={e.next_excess_percentile:.2f} "
            f"first={e.first!r} next={e.next_source!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--skip-unheld", action="store_true")
    args = parser.parse_args()
    from core.catalogue.store import load_catalogue
    from core.features.backbones import load_backbone
    from tests import verdict_cases as vc

    catalogue = load_catalogue()
    backbone = load_backbone(device="cpu")
    tasks = args.tasks or [t.id for t in catalogue.tasks if t.kind == "medical"]
    with tempfile.TemporaryDirectory(prefix="verdict-calibration-") as scratch:
        scratch = Path(scratch)
        for task in tasks:
            case = vc.held_out_half(task, backbone, catalogue, scratch)
            print(line(case, vc.verdict_of(case)), flush=True)
            if not args.skip_unheld:
                other = vc.unheld_task(task, backbone, catalogue, scratch, case.fingerprint)
                print(line(other, vc.verdict_of(other)), flush=True)
        for first, second in (("brain_mri_4class", "covid_xray_3class"), ("lc25000_lung", "fundus_eye_disease_4class"),
                              ("pneumoniamnist", "isic2017_melanoma_2class"), ("busi_3class", "knee_oa_kl_5class")):
            case = vc.mix(first, second, backbone, catalogue, scratch)
            print(line(case, vc.verdict_of(case)), flush=True)
        for control in ("control_sklearn_digits", "control_skimage_faces"):
            case = vc.control_kind(control, backbone, catalogue, scratch)
            print(line(case, vc.verdict_of(case)), flush=True)


if __name__ == "__main__":
    main()
