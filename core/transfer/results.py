"""Per-pair measured gains, summarised from an experiment's runs and shipped in ``data/catalogue/transfer/``.

The gain of a pair (source, target) for one seed is AUROC(ImageNet -> source -> target) minus AUROC(ImageNet ->
target) with that seed; a pair's ``mean_gain`` and ``std_gain`` (sample standard deviation, ddof 1) are over its
seeds. Only targets whose every legal source was measured with the same seeds (at least ``MIN_SEEDS``) are shipped.
"""
from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.transfer.experiment import read_runs
from core.transfer.splits import illegal_sources, read_sources

MIN_SEEDS = 3
RESULTS_FILE = Path(__file__).resolve().parents[2] / "data" / "catalogue" / "transfer" / "results.json"
LABEL = "measured on this catalogue"


def summarise_runs(runs: list[dict], tasks: dict, protocol: dict, min_seeds: int = MIN_SEEDS) -> dict:
    """The shipped summary of ``runs`` (records of ``runs.jsonl``) over the legal pairs of ``tasks``."""
    auroc = {}
    sizes = {}
    codes = set()
    for run in runs:
        auroc[(run["kind"], run.get("source"), run["target"], int(run["seed"]))] = float(run["auroc"])
        sizes[run["target"]] = {"train": run.get("n_train"), "test": run.get("n_test")}
        codes.add(run.get("code", "unknown"))
    banned = illegal_sources(tasks)
    baselines, pairs, complete = {}, [], []
    for target in sorted(tasks):
        sources = [s for s in sorted(tasks) if s not in banned[target]]
        seeds = sorted(seed for kind, _, t, seed in auroc if kind == "baseline" and t == target)
        seeds = [seed for seed in seeds if all(("transfer", s, target, seed) in auroc for s in sources)]
        if len(seeds) < min_seeds:
            continue
        complete.append(target)
        base = [auroc[("baseline", None, target, seed)] for seed in seeds]
        baselines[target] = {"seeds": seeds, "auroc": [round(v, 6) for v in base],
                             "mean_auroc": round(float(np.mean(base)), 6), **sizes.get(target, {})}
        if sizes.get(target, {}).get("train") and protocol.get("target_steps") and protocol.get("batch_size"):
            baselines[target]["target_epochs"] = round(protocol["target_steps"] * protocol["batch_size"] /
                                                       sizes[target]["train"], 2)
        for source in sources:
            gains = [auroc[("transfer", source, target, seed)] - auroc[("baseline", None, target, seed)]
                     for seed in seeds]
            pairs.append({"source": source, "target": target, "seeds": seeds,
                          "gains": [round(g, 6) for g in gains],
                          "mean_gain": round(float(np.mean(gains)), 6),
                          "std_gain": round(float(np.std(gains, ddof=1)), 6),
                          "baseline_auroc": baselines[target]["mean_auroc"]})
    return {
        "about": "Measured transfer on this catalogue: gain in held-out AUROC (macro one-vs-rest) of fine-tuning "
                 "on the target after training on the source, against fine-tuning on the target directly, per "
                 "seed; mean and sample std over seeds. See core/transfer/ and the README (measured transfer).",
        "label": LABEL,
        "protocol": {**protocol, "code_versions": sorted(codes)},
        "coverage": {"targets": complete, "pairs": len(pairs), "seeds": sorted({s for b in baselines.values()
                                                                                 for s in b["seeds"]})},
        "baselines": baselines,
        "pairs": pairs,
    }


def summarise_folder(runs_dir: Path, images: Path) -> dict:
    """:func:`summarise_runs` of an experiment's out folder (its ``protocol.json`` and ``runs.jsonl``); a
    ValueError when the summary fails :func:`integrity_problems` (e.g. a run with a non-finite AUROC)."""
    path = Path(runs_dir) / "protocol.json"
    try:
        protocol = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not an experiment folder's protocol ({err})") from None
    tasks = read_sources(images)
    results = summarise_runs(read_runs(runs_dir), tasks, protocol)
    problems = integrity_problems(results, tasks)
    if problems:
        raise ValueError(f"{runs_dir}: the summary fails its integrity check ({len(problems)} problems, first: "
                         f"{problems[0]}); nothing was written")
    return results


def write_results(results: dict, path: Path, overwrite: bool = False) -> Path:
    """Write the summary atomically; an existing file needs ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; add --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(temporary, path)
    return path


def integrity_problems(results: dict, tasks: dict, min_seeds: int = MIN_SEEDS) -> list[str]:
    """What is wrong with a results file (empty when nothing): illegal or missing pairs of a covered target, too few
    seeds, non-finite numbers, means or spreads that do not follow from the per-seed values."""
    problems = []
    banned = illegal_sources(tasks)
    covered = results.get("coverage", {}).get("targets", [])
    measured = defaultdict(set)
    for pair in results.get("pairs", []):
        source, target, gains = pair["source"], pair["target"], pair["gains"]
        name = f"{source} -> {target}"
        if target not in tasks or source not in tasks or source in banned[target]:
            problems.append(f"{name}: not a legal pair")
        if target not in covered:
            problems.append(f"{name}: target not listed as covered")
        if source in measured[target]:
            problems.append(f"{name}: listed twice")
        measured[target].add(source)
        if len(gains) < min_seeds or len(set(pair["seeds"])) != len(gains):
            problems.append(f"{name}: {len(gains)} gains for seeds {pair['seeds']} (at least {min_seeds} needed)")
            continue
        values = [*gains, pair["mean_gain"], pair["std_gain"], pair["baseline_auroc"]]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            problems.append(f"{name}: a number is not finite")
            continue
        if abs(np.mean(gains) - pair["mean_gain"]) > 1e-5 or abs(np.std(gains, ddof=1) - pair["std_gain"]) > 1e-5:
            problems.append(f"{name}: mean or std does not follow from the per-seed gains")
        if any(abs(g) > 1 for g in gains):
            problems.append(f"{name}: a gain outside [-1, 1]")
    for target in covered:
        missing = set(tasks) - banned.get(target, set()) - measured[target]
        if missing:
            problems.append(f"{target}: legal sources without a measurement: {', '.join(sorted(missing))}")
        base = results.get("baselines", {}).get(target)
        if base is None or not 0 <= base["mean_auroc"] <= 1:
            problems.append(f"{target}: no baseline AUROC in [0, 1]")
    return problems


@dataclass(frozen=True)
class TransferResults:
    """The shipped results as look-ups: ``mean[(source, target)]``, ``std[...]``, ``seeds[...]``."""

    targets: tuple[str, ...]
    mean: dict[tuple[str, str], float]
    std: dict[tuple[str, str], float]
    n_seeds: dict[tuple[str, str], int]
    protocol: dict
    per_seed: dict[tuple[str, str], tuple[float, ...]] = field(default_factory=dict)

    def gain(self, source: str, target: str) -> float | None:
        return self.mean.get((source, target))

    def sources_for(self, target: str) -> dict[str, float]:
        """{source: mean gain} of every measured legal source of ``target``."""
        return {s: g for (s, t), g in self.mean.items() if t == target}

    def mean_over_targets(self, source: str) -> tuple[float, float, int] | None:
        """(mean, std over targets, number of targets) of ``source``'s mean gains, over the covered targets it is a
        legal source for; None when it was never measured as a source."""
        gains = [g for (s, _), g in self.mean.items() if s == source]
        if not gains:
            return None
        return float(np.mean(gains)), float(np.std(gains, ddof=1)) if len(gains) > 1 else 0.0, len(gains)


def from_dict(results: dict) -> TransferResults:
    pairs = results.get("pairs", [])
    return TransferResults(
        tuple(results.get("coverage", {}).get("targets", [])),
        {(p["source"], p["target"]): float(p["mean_gain"]) for p in pairs},
        {(p["source"], p["target"]): float(p["std_gain"]) for p in pairs},
        {(p["source"], p["target"]): len(p["gains"]) for p in pairs},
        results.get("protocol", {}),
        {(p["source"], p["target"]): tuple(float(g) for g in p["gains"]) for p in pairs})


def load_results(path: Path = RESULTS_FILE) -> TransferResults | None:
    """The shipped results, or None when there are none (the product then shows no measured gains)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a transfer results file ({err})") from None
