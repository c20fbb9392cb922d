"""Benchmark of the fingerprint pipeline (issues 2 and 16).

Prints, in one run, medians over interleaved repeats (this shared machine's speed drifts):
  * images/s of the whole pipeline (scan, read, decode, resize, crop, forward, histogram) on a real catalogue task
    with the default backend (ONNX Runtime on the CPU when installed), for the paper's protocol: n = 10,000 samples
    (drawn with replacement, each sampled image decoded once for all its crops; on a 999-image task about 10 crops
    per decoded image, as for a user's folder of that size),
  * images/s of each backend's bare forward on the same task's crops prepared in advance: ONNX Runtime as the
    pipeline runs it (uint8 crops in, the normalisation is part of its graph) and PyTorch eager (normalised
    channels-last tensors in) at batches of 4, 8 and 16,
  * in fresh subprocesses, the peak resident memory for n = 1,000 and n = 10,000 (target ratio <= 1.2),
  * ``pipeline_vs_torch_eager_batch_16``: the same against eager at batch 16, the configuration issue 16 measured,
  * last, ``pipeline_vs_torch_eager <ratio>``: the whole pipeline over the bare PyTorch eager forward (the fastest of
    its batch sizes in each repeat), median of the per-repeat ratios (target >= 2.0 on 2 cores).

Short runs with few crops per image (``--n 160``) spend more time decoding per sample: 0.5 ms of a core, about a
tenth of the CPU at this speed.

    python bench/extract.py [--task DIR] [--n 10000] [--bare-n 480] [--repeats 5] [--batch-size B]
                            [--memory-n 1000 10000]
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

from core.features.sampling import PAPER_N  # noqa: E402  (light: numpy only)

#: PyTorch eager's bare forward is timed at each of these; the fastest in each repeat is the reference
EAGER_BATCH_SIZES = (4, 8, 16)
DEFAULT_TASK = ROOT.parent / "shared" / "data" / "catalogue" / "covid_xray_3class"


def _edges(feature_dim: int):
    import numpy as np

    from core.fingerprint.binning import BinEdges
    try:
        from core.catalogue.store import DEFAULT_CATALOGUE, load_catalogue
        return load_catalogue(DEFAULT_CATALOGUE).edges
    except Exception:  # before the catalogue exists: plausible fixed edges work as well for timing
        return BinEdges(np.zeros(feature_dim, np.float32), np.full(feature_dim, 3.0, np.float32))


def pipeline_rate(task: Path, n: int, batch_size: int, backbone, seed: int) -> float:
    from core.features.sampling import SamplingProtocol
    from core.fingerprint.pipeline import fingerprint_dataset
    from core.images.dataset import open_dataset
    edges = _edges(backbone.feature_dim)
    with open_dataset(task) as dataset:  # scanning is part of the pipeline too
        start = time.perf_counter()
        fingerprint_dataset(dataset, backbone, edges, SamplingProtocol(n=n, seed=seed), batch_size=batch_size)
        return n / (time.perf_counter() - start)


def premade_crops(task: Path, n: int, batch_size: int) -> list:
    """The task's own crops, (batch_size, 224, 224, 3) uint8 each, prepared in advance by the pipeline's batcher:
    the bare forward passes see the same content as the pipeline."""
    import threading

    from core.features.extract import crop_batches
    from core.features.sampling import SamplingProtocol, plan_samples
    from core.images.dataset import open_dataset
    with open_dataset(task) as dataset:
        plan = plan_samples(len(dataset), SamplingProtocol(n=n, seed=99))
        return [crops for crops, _, _ in crop_batches(dataset, plan, batch_size, threading.Event())
                if crops is not None and len(crops) == batch_size]


def bare_rate(batches: list, run) -> float:
    """Images/s of ``run`` (one forward pass) over pre-made batches."""
    start = time.perf_counter()
    for batch in batches:
        run(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, which starts afresh at exec; ``ru_maxrss`` would keep the
    forking parent's resident size (measured: 2,150 MB reported for a child whose own peak was 970 MB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB, but bytes on macOS
    return peak / 1024 ** 2 if sys.platform == "darwin" else peak / 1024


def memory_child(task: str, n: int, batch_size: int | None) -> None:
    from core.features.backbones import load_backbone
    backbone = load_backbone()
    pipeline_rate(Path(task), n, batch_size, backbone, seed=1)
    print(json.dumps({"n": n, "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", type=Path, default=DEFAULT_TASK)
    parser.add_argument("--n", type=int, default=PAPER_N, help="samples of each timed pipeline run (default: the "
                        "paper's 10,000)")
    parser.add_argument("--bare-n", type=int, default=480, help="crops of each timed bare forward pass")
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved repeats (pipeline, then each bare forward), because this machine's speed "
                             "drifts")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="the pipeline's batch size (default: the backend's, core/features/inference.py)")
    parser.add_argument("--memory-n", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        memory_child(str(args.task), args.n, args.batch_size)
        return

    import torch

    from core.features.backbones import load_backbone
    from core.features.inference import engine_for
    from core.features.preprocess import to_model_input
    from core.features.specs import pooled_probes
    backbone = load_backbone()
    engine = engine_for(backbone)
    eager = load_backbone(backend="torch")

    @torch.inference_mode()
    def eager_forward(batch: torch.Tensor) -> dict:
        return pooled_probes(eager.model, eager.spec, batch, eager.run_probes())

    args.batch_size = args.batch_size or engine.batch_size
    print(f"default backend: {engine.describe()}")
    print(f"device {eager.device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"task {args.task.name}, pipeline n = {args.n:,}, bare forwards {args.bare_n} crops")
    crops = premade_crops(args.task, args.bare_n, args.batch_size)
    tensors = {size: [to_model_input(batch, eager.spec.mean, eager.spec.std, eager.device)
                      for batch in premade_crops(args.task, args.bare_n, size)]
               for size in EAGER_BATCH_SIZES}
    runs = {engine.name: (crops, engine.probe_features)}
    runs.update({f"torch eager batch {size}": (batches, eager_forward) for size, batches in tensors.items()})
    for batches, run in runs.values():  # warm-up
        bare_rate(batches[:2], run)
    pipeline_rate(args.task, args.batch_size * 2, args.batch_size, backbone, seed=0)
    pipes, bares, ratios = [], {name: [] for name in runs}, []
    for repeat in range(args.repeats):  # interleaved, so machine noise hits all alike
        pipes.append(pipeline_rate(args.task, args.n, args.batch_size, backbone, seed=repeat))
        for name, (batches, run) in runs.items():
            bares[name].append(bare_rate(batches, run))
        eager_best = max(values[-1] for name, values in bares.items() if name.startswith("torch eager"))
        ratios.append(pipes[-1] / eager_best)
        print(f"  repeat {repeat:>2}: pipeline {pipes[-1]:5.1f} img/s; bare " +
              ", ".join(f"{name} {values[-1]:5.1f}" for name, values in bares.items()) +
              f"; pipeline / torch eager {ratios[-1]:.2f}", flush=True)

    peaks = {}
    for n in args.memory_n:
        out = subprocess.run([sys.executable, __file__, "--child", "--task", str(args.task), "--n", str(n),
                              "--batch-size", str(args.batch_size)], capture_output=True, text=True, check=True)
        peaks[n] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]
        print(f"peak memory n = {n:>6,}: {peaks[n]:.0f} MB")
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        print(f"peak memory ratio n = {large:,} / n = {small:,}: {peaks[large] / peaks[small]:.3f}  (target <= 1.2)")
    print(f"pipeline images/s ({engine.name}, median of {args.repeats}): {statistics.median(pipes):.1f}")
    for name, values in bares.items():
        print(f"bare forward images/s, {name} (median): {statistics.median(values):.1f}")
    own = statistics.median(p / b for p, b in zip(pipes, bares[engine.name]))
    print(f"pipeline / bare {engine.name} forward (median of per-repeat ratios): {own:.3f}")
    at_16 = statistics.median(p / b for p, b in zip(pipes, bares["torch eager batch 16"]))
    print(f"pipeline_vs_torch_eager_batch_16 {at_16:.3f}  (the issue's configuration of the eager forward)")
    print(f"pipeline_vs_torch_eager {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
