"""The compact source store and the cloud server at 1,000 and 10,000 tasks (issue 25): publish synthetic tasks
shaped like the shipped ones (drawn as core.catalogue.synthetic.synthetic_fingerprint draws them: per feature,
samples around one of 12 modalities' centres with a random spread, 200 samples a task) into a
core.distances.source_store.SourceStore created with the shipped catalogue as its reference (which features get
the richer screening basis), then, in a child process that holds only the store, rank 200 synthetic user tasks
(2,000 samples each) against every task. Ranking reads only the 100-bin counts, so the tasks are drawn at that
resolution (fine bin // 10: the same distribution), which makes 10,000 of them affordable here.

Prints per size N: publish_tasks_per_s_N (SourceStore.add one at a time and add_many of 100 into the store of
N - 120 tasks, nearest-neighbour maintenance included, generation excluded), nearest_exact_share_N (N <= 2,000: the
maintained nearest distance of 200 random tasks against the exact minimum over every other task), query_ms_N
(median wall time of SourceStore.rank(top_k=10) over the queries; the process's CPU time beside it), top10_recall_N
(share of the exact float64 top-10, computed here from every task's counts, that the store returns), resident_mb_N
(peak resident memory, VmHWM, of the child process), open_s_N, disk_mb_N, server_start_s_N (a cloud server,
``python -m core cloud serve``, over a SQLite database of the N tasks and their frame's store: process start until
/health answers and the first query is answered) and the load average.

    python bench/cloud_scale.py [--sizes 1000 10000] [--queries 200] [--candidates 50 20 200] [--keep DIR]
                                [--no-server]

Needs about 3.5 GB of disk per 10,000 tasks (store and database) and, in the parent, about 1.5 GB of memory.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

USER_SAMPLES = 2000
TOP = 10
#: tasks published last at each size, timed (publish_tasks_per_s_N): 20 one at a time, then a batch of 100
PUBLISHED_AT_SIZE = 120


class CoarseTask:
    """What the store reads of a fingerprint (counts, mean, name, meta), with 100-bin counts (m, 100)."""

    def __init__(self, counts: np.ndarray, mean: np.ndarray, meta) -> None:
        self.counts, self.mean, self.meta, self.name = counts, mean, meta, meta.name

    @property
    def n_features(self) -> int:
        return int(self.counts.shape[0])

    def probabilities(self, n_bins: int) -> np.ndarray:
        return self.counts / self.counts.sum(axis=1, keepdims=True)


def coarse_task(template, centres: dict, key: int, index: int, seed: int, n_samples: int, name: str) -> CoarseTask:
    """A synthetic task at 100 bins: per feature, n_samples fine bins drawn around the modality's centre plus noise
    with a random spread (synthetic_fingerprint's recipe), counted at 100 bins; mean random around the template's."""
    from dataclasses import replace
    rng = np.random.default_rng([seed, key])
    keys = sorted(centres)
    m = template.n_features
    centre = centres[keys[index % len(keys)]] + rng.normal(0, 40, size=m)
    spread = rng.uniform(20, 120, size=m)
    fine = np.clip(np.rint(rng.normal(centre, spread, size=(n_samples, m))), 0, 999).astype(np.int64)
    flat = (fine // 10 + np.arange(m)[None] * 100).ravel()
    counts = np.bincount(flat, minlength=m * 100).reshape(m, 100).astype(np.uint16)
    mean = template.mean + rng.normal(0, 0.3, size=m)
    return CoarseTask(counts, mean, replace(template.meta, name=name, n_samples=n_samples))


def task_fingerprint(template, centres: dict, i: int, seed: int) -> CoarseTask:
    """Synthetic catalogue task i, 200 samples."""
    return coarse_task(template, centres, i, i, seed, 200, f"synthetic task {i}")


def user_fingerprint(template, centres: dict, q: int, seed: int) -> CoarseTask:
    """Synthetic user task q, USER_SAMPLES samples."""
    return coarse_task(template, centres, 1_000_000 + q, q, seed, USER_SAMPLES, f"user task {q}")


def publish_rates(store, template, centres: dict, seed: int, first: int, singles: int = 20,
                  batch: int = 100) -> tuple[float, float]:
    """(tasks/s publishing one task at a time, tasks/s publishing a batch): SourceStore.add and add_many of new
    synthetic tasks (numbered from ``first``) into the existing store, nearest-neighbour maintenance included,
    generation excluded."""
    made = [(f"synthetic_{i:07d}", task_fingerprint(template, centres, i, seed))
            for i in range(first, first + singles + batch)]
    started = time.perf_counter()
    for task_id, task in made[:singles]:
        store.add(task, task_id)
    single_rate = singles / (time.perf_counter() - started)
    started = time.perf_counter()
    store.add_many(made[singles:])
    return single_rate, batch / (time.perf_counter() - started)


def shipped_fingerprints() -> list:
    """The shipped catalogue's fingerprints, in catalogue order."""
    from core.catalogue.store import DEFAULT_CATALOGUE
    from core.fingerprint.fingerprint import Fingerprint
    tasks = json.loads((DEFAULT_CATALOGUE / "catalogue.json").read_text())["tasks"]
    return [Fingerprint.load(DEFAULT_CATALOGUE / "fingerprints" / f"{t['id']}.npz") for t in tasks]


def setting(seed: int):
    """(template fingerprint, modality centres): the shipped catalogue's shape, 12 synthetic modalities."""
    from core.catalogue.store import DEFAULT_CATALOGUE
    from core.fingerprint.fingerprint import Fingerprint
    first = json.loads((DEFAULT_CATALOGUE / "catalogue.json").read_text())["tasks"][0]["id"]
    template = Fingerprint.load(DEFAULT_CATALOGUE / "fingerprints" / f"{first}.npz")
    rng = np.random.default_rng(seed)
    return template, {f"modality {k:02d}": rng.uniform(150, 850, size=template.n_features) for k in range(12)}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args: argparse.Namespace) -> None:
    """Open the store, answer the queries, print one JSON line."""
    from core.distances.source_store import SourceStore
    template, centres = setting(args.seed)
    started = time.perf_counter()
    store = SourceStore.open(args.child)
    open_s = time.perf_counter() - started
    store.rank(user_fingerprint(template, centres, 0, args.seed), TOP)  # first touch of the mapped rows
    results = {}
    for candidates in args.candidates:
        times, cpu, found = [], [], []
        for q in range(args.queries):
            user = user_fingerprint(template, centres, q, args.seed)  # one at a time: the process holds the store
            started, started_cpu = time.perf_counter(), time.process_time()
            ranking = store.rank(user, TOP, candidates)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            found.append(ranking.ids)
        results[candidates] = {"query_ms": statistics.median(times) * 1000, "cpu_ms": statistics.median(cpu) * 1000,
                               "query_ms_p90": float(np.percentile(times, 90)) * 1000, "found": found}
    print(json.dumps({"tasks": len(store), "open_s": open_s, "resident_mb": peak_rss_mb(), "results": results}))


def exact_top(store, users, count: int) -> list[list[str]]:
    """Every user's exact top-10 among the store's first ``count`` tasks: float64 from the coarse counts, all
    queries at once, 256 tasks at a time."""
    terms = [store._target_terms(u) for u in users]
    weighted = np.stack([t[0].ravel() for t in terms])  # (Q, m*B)
    weights = np.stack([t[1] for t in terms])
    offsets = np.array([t[2] for t in terms])
    m, bins = store.n_features, store.n_bins
    coarse = np.memmap(store.root / "coarse.u16", dtype=np.uint16, mode="r", shape=(count, m * bins))
    lse = np.memmap(store.root / "lse.f64", dtype=np.float64, mode="r", shape=(count, m))
    samples = np.asarray(store.samples[:count], dtype=np.float64)
    values = np.empty((count, len(users)))
    for start in range(0, count, 256):
        stop = min(start + 256, count)
        q = np.asarray(coarse[start:stop], dtype=np.float64) / samples[start:stop, None]
        values[start:stop] = offsets[None] - q @ weighted.T + np.asarray(lse[start:stop]) @ weights.T
    return [[store.ids[i] for i in np.argsort(values[:, u], kind="stable")[:TOP]] for u in range(len(users))]


def nearest_exact_share(store, sample: int, seed: int) -> tuple[float, float]:
    """(share of ``sample`` random tasks whose maintained nearest distance equals the exact one to 1e-12, largest
    relative excess of a maintained distance over the exact): exact = min over every other task, float64."""
    rows = np.sort(np.random.default_rng(seed).choice(len(store), size=min(sample, len(store)), replace=False))
    maintained = store.nearest_distances()[rows]
    m, bins = store.n_features, store.n_bins
    terms = [store.row_target(int(r)) for r in rows]
    weighted = np.stack([t[0].ravel() for t in terms])
    weights = np.stack([t[1] for t in terms])
    offsets = np.array([t[2] for t in terms])
    coarse = np.memmap(store.root / "coarse.u16", dtype=np.uint16, mode="r", shape=(len(store), m * bins))
    lse = np.memmap(store.root / "lse.f64", dtype=np.float64, mode="r", shape=(len(store), m))
    samples = np.asarray(store.samples, dtype=np.float64)
    exact = np.full(len(rows), np.inf)
    for start in range(0, len(store), 256):
        stop = min(start + 256, len(store))
        q = np.asarray(coarse[start:stop], dtype=np.float64) / samples[start:stop, None]
        values = offsets[None] - q @ weighted.T + np.asarray(lse[start:stop]) @ weights.T  # (sources, targets)
        values[rows[(rows >= start) & (rows < stop)] - start, np.flatnonzero((rows >= start) & (rows < stop))] = np.inf
        exact = np.minimum(exact, values.min(axis=0))
    excess = (maintained - exact) / exact
    return float(np.mean(np.abs(excess) <= 1e-12)), float(excess.max())


def fine_fingerprint(coarse: np.ndarray, mean: np.ndarray, template, name: str, n_samples: int):
    """A valid 1000-bin Fingerprint whose 100-bin counts are ``coarse`` (each coarse bin's count in its first fine
    bin)."""
    from dataclasses import replace

    from core.fingerprint.fingerprint import Fingerprint
    fine = np.zeros((coarse.shape[0], 1000), dtype=np.uint16)
    fine[:, ::10] = coarse
    meta = replace(template.meta, name=name, n_samples=n_samples,
                   class_counts={"a": n_samples // 2, "b": n_samples - n_samples // 2})
    return Fingerprint(fine, np.asarray(mean, dtype=np.float64), meta, template.postact_mean)


def server_start(store, template, user, scratch: Path) -> tuple[float, float, float]:
    """(seconds from process start to /health answering, then to the first query's answer, a second query) for a
    cloud server (``python -m core cloud serve``) over a SQLite database holding the store's tasks (fingerprints
    rebuilt from the store's counts and weights: mean = log w gives the same weights) and their frame's store (the
    bench's store, linked into the server's store folder: what the server kept from its previous run)."""
    import base64
    import datetime
    import hashlib
    import socket

    import httpx
    from sqlalchemy import insert

    from core.cloud.database import create_cloud_engine, upgrade
    from core.cloud.ranking import frame_of
    from core.cloud.schema import Institution, Task
    from core.cloud.service import CloudService
    scratch.mkdir(parents=True, exist_ok=True)
    database = scratch / "cloud.db"
    engine = create_cloud_engine(str(database))
    upgrade(engine)
    token = CloudService(engine).create_token("Bench", ("read", "publish")).token
    m, bins = store.n_features, store.n_bins
    coarse = np.memmap(store.root / "coarse.u16", dtype=np.uint16, mode="r", shape=(len(store), m, bins))
    weights = np.memmap(store.root / "weights.f64", dtype=np.float64, mode="r", shape=(len(store), m))
    frame, meta, now = frame_of(template.meta), template.meta, datetime.datetime.now(datetime.timezone.utc)
    with engine.begin() as connection:
        publisher = connection.execute(Institution.__table__.select()).first().id
        for start in range(0, len(store), 500):
            rows = []
            for i in range(start, min(start + 500, len(store))):
                blob = fine_fingerprint(coarse[i], np.log(weights[i]), template, store.names[i],
                                        store.samples[i]).to_bytes()
                rows.append(dict(id=store.ids[i], publisher_id=publisher, request_id=store.ids[i],
                                 name=store.names[i], modality="synthetic", anatomy="synthetic",
                                 classes_json='{"a": 100, "b": 100}', terms_of_reuse="synthetic", contact="",
                                 fingerprint=blob, fingerprint_sha256=hashlib.sha256(blob).hexdigest(), frame=frame,
                                 backbone=meta.backbone, probe=meta.probe, weights_sha256=meta.weights_sha256,
                                 edges_id=meta.edges_id, feature_dim=meta.feature_dim, n_samples=store.samples[i],
                                 published_at=now + datetime.timedelta(microseconds=i), updated_at=now))
            connection.execute(insert(Task), rows)
    engine.dispose()
    folder = scratch / "stores" / frame
    folder.mkdir(parents=True)
    for path in Path(store.root).iterdir():
        if path.is_file() and not path.name.startswith("."):
            os.link(path, folder / path.name)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    query = {"fingerprint": base64.b64encode(fine_fingerprint(user.counts, user.mean, template, "user",
                                                              USER_SAMPLES).to_bytes()).decode()}
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "core", "cloud", "serve", "--database", str(database), "--port",
                               str(port), "--stores", str(scratch / "stores")], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/api/v1"
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        healthy = time.perf_counter()
        headers = {"Authorization": f"Bearer {token}"}
        answer = httpx.post(f"{url}/query", json=query, headers=headers, timeout=300)
        answer.raise_for_status()
        first = time.perf_counter()
        httpx.post(f"{url}/query", json=query, headers=headers, timeout=300).raise_for_status()
        return healthy - started, first - healthy, time.perf_counter() - first
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--candidates", type=int, nargs="+", default=[50, 20, 200],
                        help="sources re-scored exactly per query; the first is the headline figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="build the store here and keep it")
    parser.add_argument("--no-server", action="store_true", help="skip the cloud server's start time")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from core.distances.source_store import SourceStore
    template, centres = setting(args.seed)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load_average_at_start {' '.join(load)}  (1, 5, 15 min; {os.cpu_count()} CPUs)", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch) / "store"
        store = SourceStore.open(root, like=template, reference=shipped_fingerprints())
        users = [user_fingerprint(template, centres, q, args.seed) for q in range(args.queries)]
        made = len(store)
        for size in sorted(args.sizes):
            published = size - PUBLISHED_AT_SIZE
            while made < published:
                batch = [(f"synthetic_{i:07d}", task_fingerprint(template, centres, i, args.seed))
                         for i in range(made, min(made + 100, published))]
                store.add_many(batch)
                made += len(batch)
            if made < size:
                single, batched = publish_rates(store, template, centres, args.seed, made)
                made = len(store)
                print(f"publish_tasks_per_s_{size} {single:.1f} one at a time, {batched:.1f} in a batch of 100  "
                      "(into the existing store, nearest-neighbour maintenance included)", flush=True)
            if size <= 2000:
                share, worst = nearest_exact_share(store, 200, args.seed)
                print(f"nearest_exact_share_{size} {share:.3f}  (200 random tasks: maintained nearest distance equal "
                      f"to the exact minimum over every other task; largest relative excess {worst:.2e})", flush=True)
            expected = exact_top(store, users, size)
            command = [sys.executable, __file__, "--child", str(root), "--queries", str(args.queries),
                       "--candidates", *map(str, args.candidates), "--seed", str(args.seed)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            for rank, (candidates, figures) in enumerate(result["results"].items()):
                recall = np.mean([len(set(f) & set(e)) / TOP for f, e in zip(figures["found"], expected)])
                suffix = "" if rank == 0 else f"_candidates{candidates}"
                print(f"query_ms_{size}{suffix} {figures['query_ms']:.1f}  (median of {args.queries}; p90 "
                      f"{figures['query_ms_p90']:.1f}; process CPU {figures['cpu_ms']:.1f} ms; {candidates} "
                      "candidates re-scored)")
                print(f"top10_recall_{size}{suffix} {recall:.4f}")
            print(f"resident_mb_{size} {result['resident_mb']:.0f}")
            print(f"open_s_{size} {result['open_s']:.3f}")
            disk = sum(p.stat().st_size for p in Path(root).iterdir() if p.is_file())
            print(f"disk_mb_{size} {disk / 2**20:.0f}", flush=True)
            if not args.no_server:
                health_s, first_s, again_s = server_start(store, template, users[0], Path(scratch) / f"cloud{size}")
                print(f"server_start_s_{size} {health_s + first_s:.2f}  (process start to /health {health_s:.2f} s, "
                      f"then the first query answered in {first_s:.2f} s; a second query {again_s:.3f} s)",
                      flush=True)
            print(f"load_average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}", flush=True)


if __name__ == "__main__":
    main()
