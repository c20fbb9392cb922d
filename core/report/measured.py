"""Measured gains beside a ranking of sources ("measured on this catalogue", :mod:`core.transfer`).

A user's task is not in the catalogue, so no gain was measured for it. What is shown, per ranked source s:

* ``gain_for_nearest``: the measured gain (mean over seeds, with its std) of pretraining on s before fine-tuning on
  the *reference* task, the first task of the ranking that was measured as a target (the catalogue task most like
  the user's; reference rows such as the non-medical controls are skipped); empty for the reference itself and for
  sources that share its images;
* ``gain_over_targets``: the mean of s's measured gains over every catalogue target it was measured on (how much
  pretraining on s helps catalogue tasks in general), with the number of targets.
"""
from __future__ import annotations

import pandas as pd

from core.transfer.results import LABEL, TransferResults


def measured_gains(results: TransferResults | None, ranked_ids: list[str]) -> pd.DataFrame:
    """One row per id of ``ranked_ids`` (a ranking, nearest first): task_id, measured_reference,
    measured_gain_nearest, measured_spread_nearest, measured_seeds, measured_gain_mean, measured_targets. Empty
    values where nothing was measured (and every value empty without results)."""
    targets = set(results.targets) if results is not None else set()
    reference = next((task_id for task_id in ranked_ids if task_id in targets), None)
    rows = []
    for task_id in ranked_ids:
        row = {"task_id": task_id, "measured_reference": reference, "measured_gain_nearest": None,
               "measured_spread_nearest": None, "measured_seeds": None, "measured_gain_mean": None,
               "measured_targets": None}
        if results is not None:
            if reference in results.targets and results.gain(task_id, reference) is not None:
                row.update(measured_gain_nearest=results.gain(task_id, reference),
                           measured_spread_nearest=results.std[(task_id, reference)],
                           measured_seeds=results.n_seeds[(task_id, reference)])
            overall = results.mean_over_targets(task_id)
            if overall is not None:
                row.update(measured_gain_mean=overall[0], measured_targets=overall[2])
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("measured_seeds", "measured_targets"):
        frame[column] = pd.array(frame[column], dtype="Int64")
    return frame


def caption(results: TransferResults | None, reference_name: str | None) -> str:
    """What the measured-gain columns mean, in one paragraph (empty without results)."""
    if results is None:
        return ""
    protocol = results.protocol
    return (f"Measured gain ({LABEL}): AUROC after pretraining on the source and fine-tuning on "
            f"**{reference_name}** (the catalogue task nearest to yours) minus fine-tuning on it directly, mean ± std "
            f"over seeds; and the source's mean gain over all {len(results.targets)} measured catalogue targets. "
            f"Budget: {protocol.get('image_size')} px, {protocol.get('trainable')} trained, "
            f"{protocol.get('target_steps')} steps of {protocol.get('batch_size')} images on the target. Your own "
            "task was not measured: these are the nearest task's numbers, not yours.")
