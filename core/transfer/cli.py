"""``python -m core transfer run|summarise``: the measured-transfer experiment and its shipped summary."""
from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "catalogue"
DEFAULT_SPLITS = REPO / "data" / "catalogue" / "transfer" / "splits.json"
DEFAULT_RESULTS = REPO / "data" / "catalogue" / "transfer" / "results.json"


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def cmd_transfer_run(args) -> int:
    import torch

    from core.features.backbones import load_backbone
    from core.transfer.experiment import Experiment
    from core.transfer.protocol import default_protocol, with_seeds

    if args.threads:
        torch.set_num_threads(args.threads)
    backbone = load_backbone(args.backbone, device=args.device, backend="torch")
    protocol = default_protocol(backbone.device.type)
    if args.seeds:
        protocol = with_seeds(protocol, tuple(args.seeds))
    _log(f"protocol {protocol.as_dict()} on {backbone.device}")
    experiment = Experiment(Path(args.images), Path(args.out), Path(args.splits), protocol, backbone.model,
                            backbone.spec.mean, backbone.spec.std, backbone.device, log=_log)
    ran = experiment.run(args.targets, resume=args.resume)
    _log(f"done: {ran} runs")
    return 0


def cmd_transfer_summarise(args) -> int:
    from core.transfer.results import summarise_folder, write_results

    results = summarise_folder(Path(args.runs), Path(args.images))
    write_results(results, Path(args.out), overwrite=args.overwrite)
    covered = results["coverage"]
    print(f"{args.out}: {covered['pairs']} pairs over {len(covered['targets'])} complete targets, "
          f"seeds {covered['seeds']}", file=sys.stderr)
    return 0


def add_commands(commands) -> None:
    """Register ``transfer run`` and ``transfer summarise`` on the top-level sub-parser collection."""
    from core.features.backbones import DEFAULT_BACKBONE

    transfer = commands.add_parser("transfer", help="measure what pretraining on each catalogue task does for "
                                                    "fine-tuning on every other")
    sub = transfer.add_subparsers(dest="transfer_command", required=True)
    run = sub.add_parser("run", help="run (or resume) the source x target fine-tuning matrix")
    run.add_argument("--out", required=True, help="folder for runs.jsonl, caches and source models")
    run.add_argument("--resume", action="store_true", help="continue the experiment in --out, skipping finished runs")
    run.add_argument("--images", default=str(DEFAULT_IMAGES), help="folder of task folders with SOURCES.json")
    run.add_argument("--splits", default=str(DEFAULT_SPLITS), help="split file (made once when missing)")
    run.add_argument("--targets", nargs="+", help="only these targets (default: every medical task)")
    run.add_argument("--seeds", nargs="+", type=int, help="seeds (default 0 1 2)")
    run.add_argument("--backbone", default=DEFAULT_BACKBONE)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (a GPU fine-tunes everything "
                                                      "at 224 px)")
    run.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    run.set_defaults(handler=cmd_transfer_run)
    summary = sub.add_parser("summarise", help="per-pair gains from a run folder, for data/catalogue/transfer/")
    summary.add_argument("--runs", required=True, help="the experiment's --out folder")
    summary.add_argument("--images", default=str(DEFAULT_IMAGES), help="folder with SOURCES.json (legal pairs)")
    summary.add_argument("--out", default=str(DEFAULT_RESULTS))
    summary.add_argument("--overwrite", action="store_true")
    summary.set_defaults(handler=cmd_transfer_summarise)
