"""The compact source store at 1,000 and 10,000 tasks (issue 25): publish synthetic tasks shaped like the shipped
ones (core.catalogue.synthetic, 200 samples each) into a core.distances.source_store.SourceStore, then, in a child
process that holds only the store, rank 200 synthetic user fingerprints (2,000 samples each) against every task.

Prints per size N: query_ms_N (median over the queries of SourceStore.rank(top_k=10), one user fingerprint against
every task), resident_mb_N (peak resident memory, VmHWM, of the child process that opens the store and answers the
queries), top10_recall_N (share of the exact float64 top-10 that the store returns, over the queries; the exact
values come from every task's coarse counts, computed here in the parent), open_s_N (opening the store) and
publish_tasks_per_s (SourceStore.add_many, synthetic generation excluded).

    python bench/cloud_scale.py [--sizes 1000 10000] [--queries 200] [--basis 8] [--candidates 200] [--keep DIR]

Needs about 2.6 GB of disk per 10,000 tasks (the coarse counts) and, in the parent, about 1 GB of memory.
"""
from __future__ import annotations

import argparse
import json
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


def task_fingerprint(template, centres: dict, i: int, seed: int):
    """Synthetic task i: its modality's centre plus noise, 200 samples (as write_synthetic_catalogue makes them)."""
    from core.catalogue.synthetic import synthetic_fingerprint
    rng = np.random.default_rng([seed, i])
    keys = sorted(centres)
    centre = centres[keys[i % len(keys)]] + rng.normal(0, 40, size=template.n_features)
    return synthetic_fingerprint(template, f"synthetic task {i}", rng, centre)


def user_fingerprint(template, centres: dict, q: int, seed: int):
    """Synthetic user task q: a modality's centre plus noise, USER_SAMPLES samples."""
    from core.catalogue.synthetic import synthetic_fingerprint
    rng = np.random.default_rng([seed, 1_000_000 + q])
    keys = sorted(centres)
    centre = centres[keys[q % len(keys)]] + rng.normal(0, 40, size=template.n_features)
    return synthetic_fingerprint(template, f"user task {q}", rng, centre, USER_SAMPLES)


def setting(seed: int):
    """(template fingerprint, modality centres): the shipped catalogue's shape, 12 synthetic modalities."""
    from core.catalogue.store import load_catalogue
    shipped = load_catalogue()
    template = shipped.fingerprints[shipped.ids[0]]
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
    users = [user_fingerprint(template, centres, q, args.seed) for q in range(args.queries)]
    started = time.perf_counter()
    store = SourceStore.open(args.child)
    open_s = time.perf_counter() - started
    store.rank(users[0], TOP, args.candidates)  # first touch of the mapped rows
    times, found = [], []
    for user in users:
        started = time.perf_counter()
        ranking = store.rank(user, TOP, args.candidates)
        times.append(time.perf_counter() - started)
        found.append(ranking.ids)
    print(json.dumps({"tasks": len(store), "open_s": open_s, "query_ms": statistics.median(times) * 1000,
                      "query_ms_p90": float(np.percentile(times, 90)) * 1000, "resident_mb": peak_rss_mb(),
                      "found": found}))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--basis", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="build the store here and keep it")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from core.distances.source_store import SourceStore
    template, centres = setting(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch) / "store"
        store = SourceStore.open(root, like=template, basis=args.basis)
        users = [user_fingerprint(template, centres, q, args.seed) for q in range(args.queries)]
        publish_s, made = 0.0, len(store)
        for size in sorted(args.sizes):
            while made < size:
                batch = [(f"synthetic_{i:07d}", task_fingerprint(template, centres, i, args.seed))
                         for i in range(made, min(made + 100, size))]
                started = time.perf_counter()
                store.add_many(batch)
                publish_s += time.perf_counter() - started
                made += len(batch)
            expected = exact_top(store, users, size)
            command = [sys.executable, __file__, "--child", str(root), "--queries", str(args.queries),
                       "--candidates", str(args.candidates), "--seed", str(args.seed)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            recall = np.mean([len(set(f) & set(e)) / TOP for f, e in zip(result["found"], expected)])
            print(f"query_ms_{size} {result['query_ms']:.1f}  (median of {args.queries}; p90 "
                  f"{result['query_ms_p90']:.1f})")
            print(f"resident_mb_{size} {result['resident_mb']:.0f}")
            print(f"top10_recall_{size} {recall:.4f}")
            print(f"open_s_{size} {result['open_s']:.3f}")
            print(f"publish_tasks_per_s {made / publish_s:.0f}  (add_many in batches of 100, {made} tasks; basis "
                  f"{args.basis}, candidates {args.candidates})", flush=True)
        disk = sum(p.stat().st_size for p in Path(root).iterdir() if p.is_file())
        print(f"disk_mb_{made} {disk / 2**20:.0f}")


if __name__ == "__main__":
    main()
