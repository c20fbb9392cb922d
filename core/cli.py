"""Command line: ``python -m core fingerprint|compare|catalogue|cotrain|cloud ...`` (cloud: core/cloud/cli.py).

Exit codes (for scripts): 0 success; 1 unexpected error; 2 usage error (also: output path unusable); 3 input problem
(folder or archive unusable, no readable image, too many samples lost); 4 fingerprint or catalogue invalid or
incompatible; 5 backbone weights problem; 6 the knowledge cloud refused or was unreachable; 130 interrupted (Ctrl-C);
143 terminated (SIGTERM). Options and output paths are checked before a run starts; no error ends in a traceback (set
TFE_DEBUG=1 to see one).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from core.cli_catalogue import add_catalogue_commands
from core.cli_support import (  # the exit codes are part of this module's interface (scripts, tests)
    EXIT_ERROR,
    EXIT_FINGERPRINT,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    EXIT_WEIGHTS,
    MAX_BATCH_SIZE,
    ProgressPrinter,
    Terminated,
    backbone_from_args,
    on_sigterm,
    output_problem,
    positive_int,
    print_warnings,
)
from core.errors import (
    CatalogueError,
    FingerprintFileError,
    IncompatibleFingerprintsError,
    InputFolderError,
    WeightsError,
)
from core.features.batching import ONNXRUNTIME_BATCH, TORCH_CPU_BATCH, TORCH_GPU_BATCH
from core.images.readers.nifti import DEFAULT_SLICE_AXIS
from core.paper import DEFAULT_PAPER
from core.text import csv_safe_frame, escaped, printable


def cmd_fingerprint(args) -> int:
    from core.catalogue.store import load_catalogue
    from core.features.backbones import check_device
    from core.features.inference import backend_of
    from core.features.sampling import SamplingProtocol
    from core.fingerprint.pipeline import fingerprint_folder

    output = Path(args.output)
    problem = output_problem(output, args.overwrite)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    protocol = SamplingProtocol(n=args.n, seed=args.seed, augment=not args.no_augment)
    check_device(args.device)
    catalogue = load_catalogue(args.catalogue)
    if args.probe is None and args.backbone == catalogue.backbone:
        args.probe = catalogue.probe  # else the backbone's own default; the weights check below says what differs
    catalogue = catalogue.for_probe(args.probe or catalogue.probe)
    print_warnings(catalogue.version_warnings("features"))
    backbone = backbone_from_args(args)
    if backbone.weights_sha256 != catalogue.weights_sha256:
        raise IncompatibleFingerprintsError(
            f"{args.catalogue}: the catalogue was built with {catalogue.backbone} "
            f"(weights {catalogue.weights_sha256[:12]}…) "
            f"but you chose {backbone.spec.name} (weights {backbone.weights_sha256[:12]}…); fingerprints would not be "
            "comparable. Build a catalogue with that backbone first (python -m core catalogue build --backbone ...)")
    started = time.perf_counter()
    backend = backend_of(backbone)
    print(f"fingerprinting {printable(args.folder, 400)} with {backbone.spec.name} (probe {backbone.probe}) by "
          f"{backend} on {'cpu' if backend == 'onnxruntime' else backbone.device}, n = {args.n:,}",
          file=sys.stderr)
    run = fingerprint_folder(args.folder, backbone, catalogue.edges, protocol, name=args.name,
                             slice_axis=args.slice_axis, batch_size=args.batch_size, progress=ProgressPrinter(),
                             allow_partial=args.allow_partial)
    print(run.report.to_text(), file=sys.stderr)
    run.fingerprint.save(output, overwrite=args.overwrite)
    print(f"wrote {output} ({run.fingerprint.meta.n_samples:,} samples) in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return EXIT_OK


def cmd_compare(args) -> int:
    import json

    from core.catalogue.store import load_catalogue
    from core.fingerprint.fingerprint import Fingerprint
    from core.report.recommend import bootstrap_for, how_close, recommendations
    from core.report.verdict import EXPORT_COLUMNS, ranked_with_references, verdict_from_catalogue

    for path in (Path(p) for p in (args.csv, args.json) if p):
        problem = output_problem(path, args.overwrite)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_USAGE
    target = Fingerprint.load(args.fingerprint)
    catalogue = load_catalogue(args.catalogue).for_probe(target.meta.probe)
    warnings = catalogue.comparison_warnings(target)
    print_warnings(warnings + catalogue.version_warnings("features"))
    bootstrap = bootstrap_for(catalogue, target, args.distance)
    table = recommendations(catalogue, target, args.distance, bootstrap)
    verdict = verdict_from_catalogue(catalogue, table, target, args.distance, bootstrap)
    print(printable(verdict.sentence, 1000))
    ranked = ranked_with_references(table)
    shown = ranked[ranked["reference_control"] | (ranked["rank"].fillna(0) <= args.top)]
    print(f"sources for '{printable(target.name)}' by {args.distance} (directed, source -> your task; lower = closer)")
    width = int(table["task_id"].str.len().max())
    for _, row in shown.iterrows():
        if row["reference_control"]:
            print(f"  -  {printable(row['task_id']):<{width}}  {row['distance']:.6f}  non-medical control "
                  "(reference point, not a candidate)")
            continue
        note = [printable(row[c]) for c in ("note", "caution") if row[c]]
        print(f"{row['rank']:>3}  {printable(row['task_id']):<{width}}  {row['distance']:.6f}  "
              f"{printable(row['modality'])}" + "".join(f"  [{n}]" for n in note))
    print(how_close(catalogue, table, target, args.distance).message)
    if bootstrap is None:
        print("(a fingerprint file keeps no per-sample data: the verdict reads the margins without a bootstrap)")
    export = shown[EXPORT_COLUMNS]  # the --top candidates and every control, at its place
    if args.csv:
        csv_safe_frame(export).to_csv(Path(args.csv), index=False)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.json:
        rows = json.loads(export.to_json(orient="records"))
        payload = {"task": printable(target.name), "distance": args.distance, "verdict": verdict.to_dict(),
                   "ranking": rows}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return EXIT_OK


def cmd_cotrain(args) -> int:
    import json

    from core.catalogue.store import load_catalogue
    from core.fingerprint.fingerprint import Fingerprint
    from core.report.cotrain import plan_for, plan_table, read_cotrain_effects, with_verdict
    from core.report.recommend import bootstrap_for, recommendations
    from core.report.verdict import verdict_from_catalogue

    for path in (Path(p) for p in (args.json, args.csv) if p):
        problem = output_problem(path, args.overwrite)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_USAGE
    target = Fingerprint.load(args.fingerprint)
    catalogue = load_catalogue(args.catalogue).for_probe(target.meta.probe)
    plan = plan_for(catalogue, target, args.distance, args.k, args.use, read_cotrain_effects(args.paper))
    bootstrap = bootstrap_for(catalogue, target, args.distance)
    ranking = recommendations(catalogue, target, args.distance, bootstrap)
    plan = with_verdict(plan, verdict_from_catalogue(catalogue, ranking, target, args.distance, bootstrap), ranking)
    print(printable(plan["caveat"], 1000))
    for warning in plan["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"co-training plan for '{printable(target.name)}' by {args.distance} (nearest first; no controls, "
          "no shared images" + (f"; licence allows {args.use} use" if args.use else "") + ")")
    for row in plan["tasks"]:
        print(f"{row['order']:>3}  {printable(row['task_id'])}  {row['distance']:.6f}  {row['n_classes']} classes  "
              f"{row['images']:,} images  licence: {printable(row['licence'])} ({printable(row['licence_stated'])})")
        if row["note"]:
            print(f"     caution: {printable(row['note'])} (the control {printable(plan['reference_control']['task'])} "
                  "is as near)")
        if row["paper_cotrain"]:
            print(f"     paper: {row['paper_cotrain']}")
    totals = plan["totals"]
    print(f"total: {totals['tasks']} tasks, {totals['images']:,} images, {totals['classes']} classes")
    for skipped in plan["skipped"]:
        print(f"passed over: {printable(skipped['task_id'])} ({printable(skipped['reason'])})")
    for note in plan["notes"]:
        print(f"note: {printable(note, 1000)}")
    if args.json:
        Path(args.json).write_text(json.dumps(plan, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.csv:
        csv_safe_frame(plan_table(plan)).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from core.catalogue.store import DEFAULT_CATALOGUE
    from core.distances.registry import DEFAULT_DISTANCE, DISTANCES
    from core.features.backbones import DEFAULT_BACKBONE
    from core.features.sampling import CATALOGUE_N, PAPER_SEED
    from core.features.specs import BACKEND_CHOICES

    parser = argparse.ArgumentParser(prog="python -m core", description="Task fingerprints and bKLD (Godau et al. "
                                     "2024): fingerprint a folder of images and rank public tasks as sources.")
    commands = parser.add_subparsers(dest="command", required=True)

    def backbone_options(sub):
        sub.add_argument("--backbone", default=DEFAULT_BACKBONE, help="registry name or timm tag")
        sub.add_argument("--probe", help="layer whose pooled output are the features "
                                         "(core/features/backbones.json; default: the catalogue's, else the "
                                         "backbone's default)")
        sub.add_argument("--weights", help="weights file for backbones without packaged weights")
        sub.add_argument("--sha256", help="expected sha256 of --weights")
        sub.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N or mps")
        sub.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                         help="what runs the forward pass: onnxruntime (CPU, an ONNX export of the verified weights, "
                              "checked against PyTorch), torch (the reference; GPUs) or auto (onnxruntime on the "
                              "CPU when installed, else torch); fingerprints of both are comparable")

    def sampling_options(sub, n_default):
        sub.add_argument("--n", type=positive_int(), default=n_default,
                         help=f"samples, with replacement (default {n_default})")
        sub.add_argument("--seed", type=int, default=PAPER_SEED)
        sub.add_argument("--no-augment", action="store_true", help="centre crops, no flips")

    fp = commands.add_parser("fingerprint", help="fingerprint a folder or .zip of images")
    fp.add_argument("folder")
    fp.add_argument("-o", "--output", required=True, help="fingerprint file to write (.npz)")
    fp.add_argument("--name", help="task name stored in the fingerprint (default: folder name)")
    fp.add_argument("--catalogue", default=str(DEFAULT_CATALOGUE), help="catalogue whose bin edges are used")
    fp.add_argument("--slice-axis", type=int, default=DEFAULT_SLICE_AXIS, choices=(0, 1, 2),
                    help="NIfTI slicing axis")
    fp.add_argument("--batch-size", type=positive_int(MAX_BATCH_SIZE), default=None,
                    help=f"crops per forward batch (default: the backend's: {ONNXRUNTIME_BATCH} for onnxruntime, "
                         f"{TORCH_CPU_BATCH} for torch on the CPU, {TORCH_GPU_BATCH} for torch on a GPU)")
    fp.add_argument("--allow-partial", action="store_true",
                    help="write the fingerprint even when most samples were lost to unreadable files")
    fp.add_argument("--overwrite", action="store_true")
    sampling_options(fp, CATALOGUE_N)
    backbone_options(fp)
    fp.set_defaults(handler=cmd_fingerprint)

    cmp = commands.add_parser("compare", help="rank catalogue tasks as sources for a fingerprint")
    cmp.add_argument("fingerprint")
    cmp.add_argument("--catalogue", default=str(DEFAULT_CATALOGUE))
    cmp.add_argument("--distance", default=DEFAULT_DISTANCE, choices=list(DISTANCES))
    cmp.add_argument("--top", type=positive_int(), default=10, help="candidates to list (at least 1)")
    cmp.add_argument("--csv", help="also write the ranking (controls as reference rows) to this CSV file")
    cmp.add_argument("--json", help="also write the ranking and the verdict to this JSON file")
    cmp.add_argument("--overwrite", action="store_true")
    cmp.set_defaults(handler=cmd_compare)

    add_catalogue_commands(commands, sampling_options, backbone_options)

    cot = commands.add_parser("cotrain", help="propose catalogue tasks to co-train with")
    cot.add_argument("fingerprint")
    cot.add_argument("--k", type=int, default=3, help="how many tasks (default 3)")
    cot.add_argument("--catalogue", default=str(DEFAULT_CATALOGUE))
    cot.add_argument("--distance", default=DEFAULT_DISTANCE, choices=list(DISTANCES))
    cot.add_argument("--use", choices=("research", "commercial"),
                     help="keep only tasks whose stated licence allows this use (not verified = left out)")
    cot.add_argument("--paper", default=str(DEFAULT_PAPER),
                     help="the paper's published results (for the measured co-training effects)")
    cot.add_argument("--json", help="write the plan to this JSON file")
    cot.add_argument("--csv", help="write the plan's table to this CSV file")
    cot.add_argument("--overwrite", action="store_true")
    cot.set_defaults(handler=cmd_cotrain)
    from core.transfer.cli import add_commands as add_transfer_commands
    add_transfer_commands(commands)

    from core.cloud.cli import add_cloud_commands
    add_cloud_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.cloud.cli import build_cloud_parser  # cloud commands alone skip the engine's imports (torch: seconds)
    argv = sys.argv[1:] if argv is None else argv
    args = (build_cloud_parser() if argv[:1] == ["cloud"] else build_parser()).parse_args(argv)
    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, on_sigterm)
        except ValueError:  # not the main thread (e.g. called from a worker): keep the default
            pass
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except InputFolderError as err:
        print(f"error: {escaped(err, 2_000)}", file=sys.stderr)
        return EXIT_INPUT
    except (FingerprintFileError, IncompatibleFingerprintsError, CatalogueError) as err:
        print(f"error: {escaped(err, 2_000)}", file=sys.stderr)
        return EXIT_FINGERPRINT
    except WeightsError as err:
        print(f"error: {escaped(err, 2_000)}", file=sys.stderr)
        return EXIT_WEIGHTS
    except (FileExistsError, ValueError) as err:
        print(f"error: {escaped(err, 2_000)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # last resort (OSError, MemoryError, a bug): one line, never a traceback
        if os.environ.get("TFE_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {printable(err, 400)} (set TFE_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_ERROR
