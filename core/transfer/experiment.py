"""The resumable transfer experiment (the paper's "pretraining data" scenario).

For each target and seed: a baseline (ImageNet weights -> fine-tune on the target) and, for every legal source,
ImageNet weights -> train on the source -> fine-tune on the target; each gives the macro one-vs-rest AUROC on the
target's held-out images. A source model is trained once per (source, seed) on all of the source's images and kept.
Every finished run is appended to ``runs.jsonl`` at once, so a stopped experiment resumes where it was.

Out folder: ``protocol.json`` (the budget; a resume with another budget is refused), ``cache/`` (trunk outputs,
one file per task, reusable by any budget with the same image size and cached blocks), ``sources/`` (trained
source heads), ``runs.jsonl``.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from core.transfer.network import Head, head_input, split_model, through_bridge, trunk_outputs
from core.transfer.protocol import Protocol, code_version
from core.transfer.splits import legal_pairs, load_or_make_splits, read_sources

RUNS_FILE = "runs.jsonl"


@dataclass
class TaskData:
    """One task's cached trunk outputs (N, C, h, w), labels (N,), class names and train/test row indices."""

    inputs: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    train: torch.Tensor
    test: torch.Tensor


def run_key(kind: str, source: str | None, target: str, seed: int) -> tuple:
    return kind, source, target, int(seed)


def read_runs(out_dir: Path) -> list[dict]:
    """The finished runs in ``out_dir/runs.jsonl``; a torn last line (a run killed while writing) is skipped."""
    path = Path(out_dir) / RUNS_FILE
    if not path.is_file():
        return []
    runs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
            runs.append(record) if isinstance(record, dict) and "auroc" in record else None
        except ValueError:
            print(f"{path}:{number}: skipped, not a complete run record", file=sys.stderr)
    return runs


def _append_run(out_dir: Path, record: dict) -> None:
    """Append one record as a line (after a torn last line, on a line of its own) and sync it to disk."""
    path = Path(out_dir) / RUNS_FILE
    torn = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with open(path, "a") as handle:
        handle.write(("\n" if torn else "") + json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def macro_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUROC of class scores (N, K): the positive class's score for K = 2, else macro one-vs-rest."""
    if scores.shape[1] == 2:
        return float(roc_auc_score(labels, scores[:, 1]))
    return float(roc_auc_score(labels, scores, multi_class="ovr", average="macro", labels=list(range(scores.shape[1]))))


def stable_seed(*parts) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def train_head(body: torch.nn.Sequential, width: int, data: TaskData, rows: torch.Tensor, steps: int,
               protocol: Protocol, seed: int, mean, std, device) -> Head:
    """Train a copy of ``body`` with a new classifier for ``steps`` Adam steps of random batches from ``rows``.
    ``seed`` fixes the classifier's initial weights and the batches (so a baseline and a transfer run of one seed
    see the same batches)."""
    torch.manual_seed(seed)
    head = Head(copy.deepcopy(body), width, len(data.classes)).to(device)
    optimiser = torch.optim.Adam(head.parameters(), lr=protocol.lr)
    generator = torch.Generator().manual_seed(seed)
    head.train()
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < protocol.batch_size:
            order = torch.cat([order, rows[torch.randperm(len(rows), generator=generator)]])
        batch, order = order[:protocol.batch_size], order[protocol.batch_size:]
        x = head_input(data.inputs[batch].to(device), mean, std)
        loss = torch.nn.functional.cross_entropy(head(x), data.labels[batch].to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return head.eval()


@torch.inference_mode()
def test_auroc(head: Head, data: TaskData, mean, std, device, batch_size: int = 256) -> float:
    scores = []
    for start in range(0, len(data.test), batch_size):
        rows = data.test[start:start + batch_size]
        scores.append(torch.softmax(head(head_input(data.inputs[rows].to(device), mean, std)), dim=1).cpu())
    return macro_auroc(data.labels[data.test].numpy(), torch.cat(scores).double().numpy())


class Experiment:
    """The runs of one out folder. ``images``: folder of task folders with SOURCES.json; ``splits``: the split
    file (made once when missing); ``model``: the backbone (a timm EfficientNet with its verified weights)."""

    def __init__(self, images: Path, out_dir: Path, splits_path: Path, protocol: Protocol, model: torch.nn.Module,
                 mean, std, device: torch.device, log: Callable[[str], None] = print) -> None:
        self.images, self.out, self.protocol = Path(images), Path(out_dir), protocol
        self.mean, self.std, self.device, self.log = tuple(mean), tuple(std), device, log
        self.tasks = read_sources(self.images)
        self.splits = load_or_make_splits(splits_path, self.images, protocol.train_per_class, protocol.split_seed)
        trunk, bridge, body, self.width = split_model(model, protocol.frozen_blocks, protocol.cached_blocks)
        self.trunk, self.bridge, self.body = trunk.to(device), bridge.to(device), body.to(device)
        self._data: dict[str, TaskData] = {}
        self.code = code_version()

    def check_out_dir(self, resume: bool) -> None:
        """Write ``protocol.json``; an existing folder needs ``resume`` and the same budget."""
        path = self.out / "protocol.json"
        budget = self.protocol.budget_key()
        if path.is_file():
            if not resume:
                raise FileExistsError(f"{path}: an experiment is already in this folder; add --resume to continue it")
            stored = json.loads(path.read_text())
            if stored != budget:
                raise ValueError(f"{path}: this folder's runs used another budget ({stored}); use a new --out")
            return
        if (self.out / RUNS_FILE).exists():
            raise FileExistsError(f"{self.out / RUNS_FILE}: runs without protocol.json; use a new --out")
        (self.out / "cache").mkdir(parents=True, exist_ok=True)
        (self.out / "sources").mkdir(exist_ok=True)
        path.write_text(json.dumps(budget, indent=1) + "\n")

    def data(self, task: str) -> TaskData:
        """The task's cached trunk outputs (computed and stored on first use)."""
        if task in self._data:
            return self._data[task]
        split = self.splits["tasks"][task]
        path = self.out / "cache" / f"{task}.pt"
        made_by = {"image_size": self.protocol.image_size, "cached_blocks": self.protocol.cached_blocks,
                   "frozen_all": self.protocol.frozen_blocks < 0}
        if path.is_file():
            stored = torch.load(path, weights_only=True)
            if stored.get("made_by") != made_by:
                raise ValueError(f"{path}: cached with {stored.get('made_by')}, this budget needs {made_by}; "
                                 "use a new --out")
            inputs, ids = stored["inputs"], stored["ids"]
        else:
            started = time.perf_counter()
            inputs, ids = trunk_outputs(self.images / task, split["train"] + split["test"], self.trunk,
                                        self.protocol.image_size, self.mean, self.std, device=self.device)
            torch.save({"inputs": inputs, "ids": ids, "made_by": made_by}, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
            self.log(f"cache {task}: {len(ids)} images in {time.perf_counter() - started:.1f} s")
        inputs = through_bridge(inputs, self.bridge)
        classes = sorted({image_id.split("/")[0] for image_id in ids})
        labels = torch.tensor([classes.index(image_id.split("/")[0]) for image_id in ids])
        train_ids = set(split["train"])
        is_train = torch.tensor([image_id in train_ids for image_id in ids])
        self._data[task] = TaskData(inputs, labels, classes, torch.nonzero(is_train).flatten(),
                                    torch.nonzero(~is_train).flatten())
        return self._data[task]

    def source_body(self, source: str, seed: int) -> torch.nn.Sequential:
        """The head body after training on all of ``source``'s images (trained once per seed, then loaded)."""
        path = self.out / "sources" / f"{source}_seed{seed}.pt"
        body = copy.deepcopy(self.body)
        if path.is_file():
            body.load_state_dict(torch.load(path, weights_only=True))
            return body
        started = time.perf_counter()
        data = self.data(source)
        rows = torch.arange(len(data.labels))
        head = train_head(self.body, self.width, data, rows, self.protocol.source_steps, self.protocol,
                          stable_seed("source", source, seed), self.mean, self.std, self.device)
        torch.save(head.body.state_dict(), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        self.log(f"source {source} seed {seed}: trained in {time.perf_counter() - started:.1f} s")
        return head.body

    def planned(self, targets: list[str] | None) -> list[tuple]:
        """Run keys in order: target by target, seed by seed, the baseline then each legal source."""
        pairs = legal_pairs(self.tasks)
        wanted = sorted(self.tasks) if targets is None else targets
        unknown = [t for t in wanted if t not in self.tasks]
        if unknown:
            raise ValueError(f"unknown target task(s): {', '.join(unknown)}; known: {', '.join(sorted(self.tasks))}")
        keys = []
        for target in wanted:
            for seed in self.protocol.seeds:
                keys.append(run_key("baseline", None, target, seed))
                keys += [run_key("transfer", s, t, seed) for s, t in pairs if t == target]
        return keys

    def run(self, targets: list[str] | None = None, resume: bool = False) -> int:
        """Run every planned run not already in ``runs.jsonl``; returns how many ran."""
        self.check_out_dir(resume)
        done = {run_key(r["kind"], r.get("source"), r["target"], r["seed"]) for r in read_runs(self.out)}
        todo = [key for key in self.planned(targets) if key not in done]
        self.log(f"{len(todo)} runs to do ({len(done)} already done)")
        for number, (kind, source, target, seed) in enumerate(todo, 1):
            started = time.perf_counter()
            data = self.data(target)
            body = self.body if source is None else self.source_body(source, seed)
            trained = time.perf_counter()
            head = train_head(body, self.width, data, data.train, self.protocol.target_steps, self.protocol,
                              stable_seed("target", target, seed), self.mean, self.std, self.device)
            auroc = test_auroc(head, data, self.mean, self.std, self.device)
            seconds = time.perf_counter() - trained
            _append_run(self.out, {"kind": kind, "source": source, "target": target, "seed": seed,
                                   "auroc": auroc, "seconds": round(seconds, 2), "n_train": len(data.train),
                                   "n_test": len(data.test), "version": self.protocol.version, "code": self.code})
            self.log(f"[{number}/{len(todo)}] {kind} {source or '-'} -> {target} seed {seed}: AUROC {auroc:.4f} "
                     f"({seconds:.1f} s, {time.perf_counter() - started:.1f} s with set-up)")
        return len(todo)
