"""The catalogue's validity report: does a distance, on a probe, rank sources a user can trust?

Pure functions on directed distance matrices ``D[source, target]`` (lower = nearer) and the facts of the tasks. The
legal sources of a target (METHOD.md section 6) are the medical tasks other than itself and the tasks built on the same
images; the non-medical controls are never legal sources, only a scale.

Figures (each one a question a user would ask):

* ``hub``: the largest number of medical tasks that share one nearest legal source (1 is ideal: no source is near
  everything);
* ``controls_nearer``: medical tasks for which a non-medical control is nearer than the nearest legal source;
* ``halves_found``: each task fingerprinted from two halves with no image in common; half B finds half A first among
  the A halves of its legal sources and itself;
* ``same_modality_first``: tasks that have a legal source of their modality family and whose nearest legal source
  has it;
* ``paper_agreement``: mean over the paper-linked targets of Spearman's rho between our distances and the paper's
  published ones, over the other paper-linked tasks as sources.
"""
from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import spearmanr

from core.catalogue.lock import writer_lock
from core.catalogue.modality import modality_family
from core.distances.bank import bank_for
from core.distances.registry import DEFAULT_DISTANCE, REPORTED_DISTANCES
from core.paper import PAPER_BKLD_SMALL

if TYPE_CHECKING:
    from core.catalogue.store import Catalogue
    from core.fingerprint.fingerprint import Fingerprint


@dataclass(frozen=True)
class TaskFacts:
    """What the report needs to know about the catalogue's tasks, in matrix order."""

    ids: list[str]
    kinds: list[str]  # "medical", "control" or "user"
    modalities: list[str]
    shares_images_with: list[list[str]] = field(default_factory=list)
    paper_tasks: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not self.shares_images_with:
            object.__setattr__(self, "shares_images_with", [[] for _ in range(n)])
        if not self.paper_tasks:
            object.__setattr__(self, "paper_tasks", [None] * n)
        if {len(self.kinds), len(self.modalities), len(self.shares_images_with), len(self.paper_tasks)} != {n}:
            raise ValueError("every list of TaskFacts needs one entry per task")

    @property
    def medical(self) -> list[int]:
        return [i for i, kind in enumerate(self.kinds) if kind == "medical"]

    @property
    def controls(self) -> list[int]:
        return [i for i, kind in enumerate(self.kinds) if kind == "control"]

    def legal_sources(self, target: int) -> list[int]:
        """Medical tasks other than ``target`` that share no images with it."""
        shared = set(self.shares_images_with[target])
        return [i for i in self.medical if i != target and self.ids[i] not in shared]


def nearest_legal_source(matrix: np.ndarray, facts: TaskFacts, target: int) -> int | None:
    candidates = facts.legal_sources(target)
    if not candidates:
        return None
    return candidates[int(np.argmin(matrix[candidates, target]))]


def hubness(matrix: np.ndarray, facts: TaskFacts) -> dict:
    """The source that is nearest for the most medical targets: {'largest': count, 'source': id}."""
    nearest = [nearest_legal_source(matrix, facts, t) for t in facts.medical]
    counts = Counter(s for s in nearest if s is not None)
    if not counts:
        return {"largest": 0, "source": None}
    source, largest = counts.most_common(1)[0]
    return {"largest": int(largest), "source": facts.ids[source]}


#: why a control can legitimately come out nearer than every medical source for a task (checked by looking at the
#: images); a task listed by the report without an entry here is a finding to look into, not a known resemblance
KNOWN_RESEMBLANCES = {
    "pneumoniamnist": "PneumoniaMNIST's chest X-rays are 28 x 28 px, upscaled to 224 px: blurry grey images with "
                      "almost no fine detail, like the 8 x 8 px digits control. The resemblance of image "
                      "statistics is real; no other catalogue task is that small.",
}


def explain_controls(tasks: list[str]) -> dict[str, str]:
    """{task: why a control is nearer} for the tasks :func:`controls_nearer` lists."""
    return {task: KNOWN_RESEMBLANCES.get(task, "not explained yet: look at the task's images next to the controls")
            for task in tasks}


def controls_nearer(matrix: np.ndarray, facts: TaskFacts) -> list[str]:
    """Medical targets for which some control is nearer than every legal medical source."""
    found = []
    for target in facts.medical:
        nearest = nearest_legal_source(matrix, facts, target)
        if nearest is not None and facts.controls and \
                min(matrix[c, target] for c in facts.controls) < matrix[nearest, target]:
            found.append(facts.ids[target])
    return found


def same_modality_first(matrix: np.ndarray, facts: TaskFacts) -> dict:
    """{'hits': [...], 'eligible': [...]}: tasks with a legal source of their modality family, and those whose
    nearest legal source is of it."""
    family = [modality_family(m) for m in facts.modalities]
    eligible, hits = [], []
    for target in facts.medical:
        legal = facts.legal_sources(target)
        if not any(family[s] == family[target] for s in legal):
            continue
        eligible.append(facts.ids[target])
        if family[nearest_legal_source(matrix, facts, target)] == family[target]:
            hits.append(facts.ids[target])
    return {"hits": hits, "eligible": eligible}


def halves_found(halves_matrix: np.ndarray, facts: TaskFacts) -> dict:
    """``halves_matrix[a, b]``: distance from task a's half A (source) to task b's half B (target), medical tasks in
    ``facts`` order (controls' rows and columns are ignored). Half B must find its own half A first among its own
    and its legal sources' A halves. Returns {'found': [...], 'missed': {id: id found instead}}."""
    found, missed = [], {}
    for target in facts.medical:
        candidates = [target] + facts.legal_sources(target)
        first = candidates[int(np.argmin(halves_matrix[candidates, target]))]
        if first == target:
            found.append(facts.ids[target])
        else:
            missed[facts.ids[target]] = facts.ids[first]
    return {"found": found, "missed": missed}


def paper_agreement(matrix: np.ndarray, facts: TaskFacts, paper_matrix: dict[str, dict[str, float]]) -> dict:
    """Mean Spearman rho, over paper-linked targets, between our distances and the paper's published ones
    (``paper_matrix[source][target]``, the paper's task names) over the other paper-linked tasks as sources."""
    linked = [i for i in facts.medical if facts.paper_tasks[i] and facts.paper_tasks[i] in paper_matrix]
    per_target = {}
    for target in linked:
        sources = [s for s in linked if s != target and s in facts.legal_sources(target)]
        if len(sources) < 3:
            continue
        ours = [matrix[s, target] for s in sources]
        theirs = [paper_matrix[facts.paper_tasks[s]][facts.paper_tasks[target]] for s in sources]
        per_target[facts.ids[target]] = round(float(spearmanr(ours, theirs).statistic), 3)
    mean = round(float(np.mean(list(per_target.values()))), 3) if per_target else None
    return {"mean_spearman": mean, "per_target": per_target, "n_tasks": len(linked)}


def report_for_matrix(matrix: np.ndarray, facts: TaskFacts, halves_matrix: np.ndarray | None = None,
                      paper_matrix: dict[str, dict[str, float]] | None = None) -> dict:
    """All figures of one distance on one probe, as a JSON-ready dict."""
    hub = hubness(matrix, facts)
    controls = controls_nearer(matrix, facts)
    modality = same_modality_first(matrix, facts)
    report = {
        "hub": hub,
        "controls_nearer": {"count": len(controls), "of": len(facts.medical), "tasks": controls,
                            "explanations": explain_controls(controls)},
        "same_modality_first": {"count": len(modality["hits"]), "of": len(modality["eligible"]),
                                "tasks": modality["hits"]},
    }
    if halves_matrix is not None:
        halves = halves_found(halves_matrix, facts)
        report["halves_found"] = {"count": len(halves["found"]), "of": len(facts.medical),
                                  "missed": halves["missed"]}
    if paper_matrix is not None:
        report["paper_agreement"] = paper_agreement(matrix, facts, paper_matrix)
    return report


def summary_line(report: dict) -> str:
    """One line for the ranking: the figures of one distance on the shipped probe."""
    parts = [f"a control nearer than every medical source for {report['controls_nearer']['count']} of "
             f"{report['controls_nearer']['of']} catalogue tasks",
             f"largest hub {report['hub']['largest']}",
             f"same modality first {report['same_modality_first']['count']} of "
             f"{report['same_modality_first']['of']}"]
    if "halves_found" in report:
        parts.insert(0, f"image-disjoint halves find their own task {report['halves_found']['count']} of "
                        f"{report['halves_found']['of']}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- the report of a catalogue folder


def load_paper_matrix(paper_dir: Path | None) -> dict[str, dict[str, float]] | None:
    """The paper's published bKLD small as {source: {target: value}} (None when the folder is not there)."""
    if paper_dir is None or not (Path(paper_dir) / PAPER_BKLD_SMALL).is_file():
        return None
    with open(Path(paper_dir) / PAPER_BKLD_SMALL, newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0][1:]
    return {row[0]: {column: float(value) for column, value in zip(header, row[1:]) if value} for row in rows[1:]}


def facts_from_tasks(tasks: list) -> TaskFacts:
    """The report's facts of a list of TaskInfo, in that order."""
    return TaskFacts([t.id for t in tasks], [t.kind for t in tasks], [t.modality for t in tasks],
                     [list(t.shares_images_with) for t in tasks], [t.paper_task for t in tasks])


def facts_of(catalogue: "Catalogue") -> TaskFacts:
    return facts_from_tasks(catalogue.tasks)


def halves_distances(halves_a: list[Fingerprint], halves_b: list[Fingerprint], distance: str) -> np.ndarray:
    """(T, T) [a, b]: distance from task a's half A (source) to task b's half B (target), through the one bank."""
    return bank_for(distance, halves_a).distances_to_each(halves_b).T


def halves_matrix(catalogue: "Catalogue", distance: str) -> np.ndarray | None:
    """[a, b]: distance from task a's half A (source) to task b's half B (target); None without shipped halves."""
    halves = catalogue.halves()
    if any((task_id, half) not in halves for task_id in catalogue.ids if catalogue.task(task_id).kind == "medical"
           for half in ("a", "b")):
        return None
    present = [i for i in catalogue.ids if (i, "a") in halves]
    rows = [catalogue.ids.index(i) for i in present]
    matrix = np.full((len(catalogue.ids), len(catalogue.ids)), np.inf)
    matrix[np.ix_(rows, rows)] = halves_distances([halves[(i, "a")] for i in present],
                                                  [halves[(i, "b")] for i in present], distance)
    return matrix


def probe_report(catalogue: "Catalogue", paper_matrix: dict | None) -> dict:
    """{distance: report_for_matrix(...)} for one catalogue folder (one probe)."""
    facts = facts_of(catalogue)
    return {distance: report_for_matrix(catalogue.matrix(distance), facts, halves_matrix(catalogue, distance),
                                        paper_matrix) for distance in REPORTED_DISTANCES}


def validity_report(catalogue: "Catalogue", paper_dir: Path | None, candidates: dict | None = None) -> dict:
    """The whole report: every probe shipped (the catalogue's own and ``probes/NAME``), every distance.
    ``candidates``: figures of further candidates measured at build time (kept as they are)."""
    from core.catalogue.store import load_catalogue

    paper_matrix = load_paper_matrix(paper_dir)
    probes = {catalogue.probe: probe_report(catalogue, paper_matrix)}
    for probe, folder in catalogue.alternate_probes().items():
        probes[probe] = probe_report(load_catalogue(folder), paper_matrix)
    report = {
        "about": "Figures per probe layer and distance over the catalogue's medical "
                 "tasks (legal sources exclude the task itself and tasks built on the same images; controls are "
                 "never sources). Each figure is defined in the README (validity report).",
        "default_probe": catalogue.probe,
        "default_distance": DEFAULT_DISTANCE,
        "summary": summary_line(probes[catalogue.probe][DEFAULT_DISTANCE]),
        "probes": probes,
    }
    if candidates:
        report["candidates_measured_at_build"] = candidates
    transfer = measured_transfer_report(catalogue)
    if transfer:
        report["measured_transfer"] = transfer
    from core.catalogue.families import families_report  # families build on this module's modality families
    families = families_report(catalogue)
    report["families"] = {key: families[key] for key in ("distance", "on", "criterion", "k", "silhouette",
                                                          "adjusted_rand_index", "families")}
    return report


def measured_transfer_report(catalogue: "Catalogue", results_path: Path | None = None) -> dict | None:
    """Every reported distance's ranking (each shipped probe) against the gains measured on this catalogue
    (``results_path``, default ``transfer/results.json`` in the catalogue; :mod:`core.transfer.agreement`); None
    when there are none."""
    from core.catalogue.store import load_catalogue
    from core.transfer.agreement import measured_agreement, seed_agreement
    from core.transfer.results import LABEL, load_results

    results = load_results(results_path or Path(catalogue.root) / "transfer" / "results.json")
    if results is None or not results.targets:
        return None
    gains = {target: results.sources_for(target) for target in results.targets}
    families = [modality_family(m) for m in facts_of(catalogue).modalities]
    probes = {}
    folders = {catalogue.probe: None, **catalogue.alternate_probes()}
    for probe, folder in folders.items():
        probe_catalogue = catalogue if folder is None else load_catalogue(folder)
        matrices = {d: probe_catalogue.matrix(d) for d in REPORTED_DISTANCES}
        probes[probe] = measured_agreement(matrices, probe_catalogue.ids, families, gains)
    protocol = results.protocol
    return {"label": LABEL,
            "about": "Per target, the weighted Kendall tau (scipy.stats.weightedtau, as the paper) between a "
                     "ranking of the legal sources and their measured mean gains (AUROC of fine-tuning after "
                     "training on the source minus fine-tuning directly), averaged over targets with a bootstrap "
                     "95 % interval over targets; how often the first-ranked source's gain is positive; its mean "
                     "regret against the best legal source. References: same modality first and random order "
                     "(expected values over random orders). seed_agreement: the weighted tau between the gains of "
                     "two seeds (how reproducible the gains are; the ceiling for any ranking). Each "
                     "figure is defined in the README (measured transfer).",
            "targets": list(results.targets),
            "seed_agreement": seed_agreement({t: {s: results.per_seed[(s, t)] for s in gains[t]}
                                              for t in results.targets}),
            "protocol": {k: protocol.get(k) for k in ("image_size", "trainable", "source_steps", "target_steps",
                                                      "batch_size", "lr", "train_per_class", "version")},
            "probes": probes}


def transfer_table(report: dict) -> list[dict]:
    """The measured-transfer figures as rows (probe, ranking, tau with interval, first positive, regret); the
    default probe first, references last."""
    transfer = report.get("measured_transfer")
    if not transfer:
        return []
    rows = []
    default = report.get("default_probe")
    for probe, rankings in sorted(transfer["probes"].items(), key=lambda item: item[0] != default):
        for name, figures in rankings.items():
            reference = name in ("same modality first", "random order")
            if reference and probe != default:
                continue  # the references do not depend on the probe
            tau = figures["weighted_tau"]
            rows.append({"probe": "—" if reference else probe + (" (default)" if probe == default else ""),
                         "ranking": name, "weighted tau (mean over targets)": tau["mean"],
                         "95 % interval": f"[{tau['low']:+.3f}, {tau['high']:+.3f}]",
                         "first-ranked gain > 0": f"{figures['first_positive_share']:.0%}",
                         "mean regret (AUROC)": figures["mean_regret"]})
    return rows


def write_report(root: Path, report: dict) -> Path:
    """Write ``validity.json`` atomically (a temporary file beside it, then a rename)."""
    path = Path(root) / "validity.json"
    with writer_lock(Path(root)):  # not into a folder another writer is about to retire
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        os.replace(temporary, path)
    return path


def report_table(report: dict) -> list[dict]:
    """The report as rows (probe, distance, figures) for a table; the default probe and distance first."""
    rows = []
    default = report.get("default_probe")
    for probe, distances in sorted(report.get("probes", {}).items(), key=lambda item: item[0] != default):
        for distance in [d for d in REPORTED_DISTANCES if d in distances]:
            figures = distances[distance]
            rows.append({
                "probe": probe + (" (default)" if probe == default else ""), "distance": distance,
                "control nearer (tasks)": (f"{figures['controls_nearer']['count']} of "
                                           f"{figures['controls_nearer']['of']}"),
                "largest hub": f"{figures['hub']['largest']} ({figures['hub']['source']})",
                "halves find themselves": (f"{figures['halves_found']['count']} of {figures['halves_found']['of']}"
                                           if "halves_found" in figures else "at build only (candidates)"),
                "same modality first": (f"{figures['same_modality_first']['count']} of "
                                        f"{figures['same_modality_first']['of']}"),
                "agreement with the paper (rho)": figures.get("paper_agreement", {}).get("mean_spearman"),
            })
    return rows


def candidates_table(report: dict) -> list[dict]:
    """The build-time candidates (probe x reference set of the bin edges, bKLD small) as rows."""
    rows = []
    for name, figures in report.get("candidates_measured_at_build", {}).items():
        rows.append({"candidate": name, "end-bin mass": figures.get("end_bin_mass"),
                     "control nearer": figures["controls_nearer"]["count"], "largest hub": figures["hub"]["largest"],
                     "halves find themselves": figures["halves_found"]["count"],
                     "same modality first": figures["same_modality_first"]["count"],
                     "agreement with the paper (rho)": figures["paper_agreement"]["mean_spearman"]})
    return rows
