"""Benchmark of the fingerprint pipeline (issue 2).

Prints, in one run, with the same batch size and thread count:
  * images/s of the whole pipeline (read, decode, resize, forward, histogram) on a real catalogue task,
  * images/s of the bare backbone forward on pre-made tensors (the same task's crops, prepared in advance),
  * their ratio (target >= 0.9 on a 2-core machine), as medians over repeats;
and, in fresh subprocesses, the peak resident memory for n = 1,000 and n = 10,000 (target ratio <= 1.2).

    python bench/extract.py [--task DIR] [--n 160] [--repeats 15] [--batch-size 16] [--memory-n 1000 10000]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_TASK = ROOT.parent / "shared" / "data" / "catalogue" / "covid_xray_3class"


def _edges(feature_dim: int):
    import numpy as np

    from core.binning import BinEdges
    try:
        from core.catalogue import DEFAULT_CATALOGUE, load_catalogue
        return load_catalogue(DEFAULT_CATALOGUE).edges
    except Exception:  # before the catalogue exists: plausible fixed edges work as well for timing
        return BinEdges(np.zeros(feature_dim, np.float32), np.full(feature_dim, 3.0, np.float32))


def pipeline_rate(task: Path, n: int, batch_size: int, backbone, seed: int) -> float:
    from core.dataset import open_dataset
    from core.pipeline import fingerprint_dataset
    from core.sampling import SamplingProtocol
    edges = _edges(backbone.feature_dim)
    with open_dataset(task) as dataset:  # scanning is part of the pipeline too
        start = time.perf_counter()
        fingerprint_dataset(dataset, backbone, edges, SamplingProtocol(n=n, seed=seed), batch_size=batch_size)
        return n / (time.perf_counter() - start)


def premade_batches(task: Path, n: int, batch_size: int, backbone) -> list:
    """The task's own crops as model input, prepared in advance by the pipeline's batcher: the bare forward sees
    the same content."""
    import threading

    from core.dataset import open_dataset
    from core.extract import _batches
    from core.sampling import SamplingProtocol
    with open_dataset(task) as dataset:
        return [tensor for tensor, _ in _batches(dataset, SamplingProtocol(n=n, seed=99), batch_size, backbone,
                                                 threading.Event()) if tensor is not None and len(tensor) == batch_size]


def bare_rate(batches: list, backbone) -> float:
    start = time.perf_counter()
    for batch in batches:
        backbone.features(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def memory_child(task: str, n: int, batch_size: int) -> None:
    from core.backbones import load_backbone
    backbone = load_backbone()
    pipeline_rate(Path(task), n, batch_size, backbone, seed=1)
    print(json.dumps({"n": n, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", type=Path, default=DEFAULT_TASK)
    parser.add_argument("--n", type=int, default=160, help="samples per timed repeat")
    parser.add_argument("--repeats", type=int, default=15,
                        help="pipeline/bare pairs; short and many, because this shared machine's speed drifts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--memory-n", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        memory_child(str(args.task), args.n, args.batch_size)
        return

    import torch

    from core.backbones import load_backbone
    backbone = load_backbone()
    print(f"device {backbone.device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"task {args.task.name}")
    batches = premade_batches(args.task, args.n, args.batch_size, backbone)
    bare_rate(batches[:2], backbone)  # warm-up
    pipeline_rate(args.task, args.batch_size * 2, args.batch_size, backbone, seed=0)
    pipes, bares = [], []
    for repeat in range(args.repeats):  # interleaved, so machine noise hits both alike
        pipes.append(pipeline_rate(args.task, args.n, args.batch_size, backbone, seed=repeat))
        bares.append(bare_rate(batches, backbone))
        print(f"  pair {repeat:>2}: pipeline {pipes[-1]:5.1f} img/s, bare forward {bares[-1]:5.1f} img/s, "
              f"ratio {pipes[-1] / bares[-1]:.3f}")
    ratios = [p / b for p, b in zip(pipes, bares)]
    print(f"pipeline images/s (median of {args.repeats}): {statistics.median(pipes):.1f}")
    print(f"bare forward images/s (median):            {statistics.median(bares):.1f}")
    print(f"ratio pipeline / bare (median of per-repeat ratios): {statistics.median(ratios):.3f}  (target >= 0.9)")

    peaks = {}
    for n in args.memory_n:
        out = subprocess.run([sys.executable, __file__, "--child", "--task", str(args.task), "--n", str(n),
                              "--batch-size", str(args.batch_size)], capture_output=True, text=True, check=True)
        peaks[n] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]
        print(f"peak memory n = {n:>6,}: {peaks[n]:.0f} MB")
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        print(f"peak memory ratio n = {large:,} / n = {small:,}: {peaks[large] / peaks[small]:.3f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
