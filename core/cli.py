"""Command line: ``python -m core fingerprint|compare|catalogue ...``.

Exit codes (for scripts): 0 success; 1 unexpected error; 2 usage error (also: output path unusable); 3 input problem
(folder or archive unusable, no readable image, too many samples lost); 4 fingerprint or catalogue invalid or
incompatible; 5 backbone weights problem; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM). Options and output
paths are checked before a run starts; no error ends in a traceback (set TFE_DEBUG=1 to see one).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

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
from core.text import printable

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INPUT, EXIT_FINGERPRINT, EXIT_WEIGHTS, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
EXIT_TERMINATED = 143
MAX_BATCH_SIZE = 1024


class Terminated(BaseException):
    """Raised from the SIGTERM handler so that temporary folders are removed on the way out, as on Ctrl-C. A
    BaseException, like KeyboardInterrupt: the broad ``except Exception`` that keeps one broken file from stopping a
    run must not turn a termination into "one more unreadable file" and let the run finish and write."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not interrupt the clean-up on the way out
    raise Terminated()


def output_problem(path: Path, overwrite: bool) -> str | None:
    """Why ``path`` cannot be written as an output file, or None. Checked before a run, by trying: a probe file is
    created in the folder (permission bits say nothing for root or on read-only file systems)."""
    if path.is_dir():
        return f"{path} is a folder; give a file name"
    if path.exists() or path.is_symlink():
        if not overwrite:
            return f"{path} already exists; choose another name or pass --overwrite"
        if not path.is_file():
            return f"{path} is not a regular file"
    folder = path.parent
    if not folder.is_dir():
        return f"folder {folder} does not exist; create it first"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        return f"cannot write into {folder} ({err.strerror or err})"
    return None


def positive_int(limit: int | None = None):
    """argparse type: a whole number >= 1 (and <= limit)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < 1 or (limit is not None and value > limit):
            raise argparse.ArgumentTypeError(f"must be between 1 and {limit:,}" if limit else "must be at least 1")
        return value
    return parse


class _ProgressPrinter:
    """One updating line on a terminal, a line every 10 % otherwise (logs stay short)."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_decile = -1

    def __call__(self, progress) -> None:
        eta = f"{progress.eta_s:.0f} s left" if progress.eta_s is not None else "estimating"
        line = (f"{progress.done:>7,}/{progress.total:,} samples  {progress.images_per_s:5.1f} img/s  {eta}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if progress.done >= progress.total else ""))
            self.stream.flush()
        elif progress.done * 10 // max(progress.total, 1) > self.last_decile:
            self.last_decile = progress.done * 10 // max(progress.total, 1)
            print(line, file=self.stream, flush=True)


def _backbone(args):
    from core.features.backbones import load_backbone
    backbone = load_backbone(args.backbone, args.weights, args.sha256, args.device, getattr(args, "probe", None),
                             backend=args.backend)
    print(f"backend: {backbone.engine().describe()}", file=sys.stderr)
    return backbone


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def _note(lines: list[str]) -> None:
    for line in lines:
        print(f"note: {line}", file=sys.stderr)


def cmd_fingerprint(args) -> int:
    from core.catalogue.store import load_catalogue
    from core.features.backbones import check_device
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
    _warn(catalogue.version_warnings("features"))
    backbone = _backbone(args)
    if backbone.weights_sha256 != catalogue.weights_sha256:
        raise IncompatibleFingerprintsError(
            f"{args.catalogue}: the catalogue was built with {catalogue.backbone} "
            f"(weights {catalogue.weights_sha256[:12]}…) "
            f"but you chose {backbone.spec.name} (weights {backbone.weights_sha256[:12]}…); fingerprints would not be "
            "comparable. Build a catalogue with that backbone first (python -m core catalogue build --backbone ...)")
    started = time.perf_counter()
    print(f"fingerprinting {printable(args.folder, 400)} with {backbone.spec.name} (probe {backbone.probe}) by "
          f"{backbone.backend} on {'cpu' if backbone.backend == 'onnxruntime' else backbone.device}, n = {args.n:,}",
          file=sys.stderr)
    run = fingerprint_folder(args.folder, backbone, catalogue.edges, protocol, name=args.name,
                             slice_axis=args.slice_axis, batch_size=args.batch_size, progress=_ProgressPrinter(),
                             allow_partial=args.allow_partial)
    print(run.report.to_text(), file=sys.stderr)
    run.fingerprint.save(output, overwrite=args.overwrite)
    print(f"wrote {output} ({run.fingerprint.meta.n_samples:,} samples) in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return EXIT_OK


def cmd_compare(args) -> int:
    from core.catalogue.store import load_catalogue
    from core.fingerprint.fingerprint import Fingerprint
    from core.report.recommend import how_close, recommendations

    if args.csv:
        problem = output_problem(Path(args.csv), args.overwrite)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_USAGE
    target = Fingerprint.load(args.fingerprint)
    catalogue = load_catalogue(args.catalogue).for_probe(target.meta.probe)
    warnings = catalogue.comparison_warnings(target)
    _warn(warnings + catalogue.version_warnings("features"))
    table = recommendations(catalogue, target, args.distance)
    candidates = table[table["kind"] != "control"].head(args.top)
    controls = table[table["kind"] == "control"]
    print(f"sources for '{printable(target.name)}' by {args.distance} (directed, source -> your task; lower = closer)")
    width = int(table["task_id"].str.len().max())
    for _, row in candidates.iterrows():
        print(f"{row['rank']:>3}  {printable(row['task_id']):<{width}}  {row['distance']:.6f}  "
              f"{printable(row['modality'])}" + (f"  [{printable(row['caution'])}]" if row["caution"] else ""))
    for _, row in controls.iterrows():
        print(f"  -  {printable(row['task_id']):<{width}}  {row['distance']:.6f}  non-medical control (reference, "
              "not ranked)")
    print(how_close(catalogue, table, target, args.distance).message)
    if args.csv:
        path = Path(args.csv)
        columns = ["rank", "task_id", "task", "distance", "modality", "anatomy", "kind", "caution", "licence"]
        candidates[columns].to_csv(path, index=False)
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def cmd_catalogue_build(args) -> int:
    from core.catalogue.build import build_catalogue
    from core.features.sampling import SamplingProtocol

    backbone = _backbone(args)
    protocol = SamplingProtocol(n=args.n, seed=args.seed, augment=not args.no_augment)
    build_catalogue(Path(args.source), Path(args.out), backbone, protocol, paper=Path(args.paper),
                    with_controls=not args.no_controls, overwrite=args.overwrite,
                    log=lambda message: print(message, file=sys.stderr, flush=True))
    return EXIT_OK


def cmd_catalogue_refresh(args) -> int:
    from core.catalogue.lock import recover
    from core.catalogue.store import load_catalogue, refresh_derived

    _note(recover(Path(args.catalogue)))
    _warn(load_catalogue(args.catalogue).version_warnings("map"))
    started = time.perf_counter()
    catalogue = refresh_derived(Path(args.catalogue))
    print(f"recomputed distances and map of {len(catalogue.tasks)} tasks in {catalogue.root} "
          f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return EXIT_OK


def cmd_catalogue_add(args) -> int:
    from core.catalogue.lock import recover
    from core.catalogue.store import TaskInfo, add_to_local_copy, load_catalogue, task_id_for
    from core.fingerprint.fingerprint import Fingerprint
    from core.fingerprint.validation import MAX_NAME_CHARS

    fingerprint = Fingerprint.load(args.fingerprint)
    _warn(load_catalogue(args.catalogue).version_warnings("map"))
    name = printable(args.name or fingerprint.name, MAX_NAME_CHARS)
    if not name:
        print("error: the task name is empty once control characters are removed; give --name", file=sys.stderr)
        return EXIT_USAGE
    task_id = task_id_for(name)
    info = TaskInfo(id=task_id, name=name, modality=printable(args.modality), anatomy=printable(args.anatomy),
                    classes=fingerprint.meta.class_counts, n_images=sum(fingerprint.meta.class_counts.values()),
                    kind="user", source="added by the user", licence=printable(args.licence))
    _note(recover(Path(args.local)))  # a previous run's leftovers, said before the (possibly long) addition
    catalogue = add_to_local_copy(fingerprint, info, Path(args.local), Path(args.catalogue), replace=args.replace)
    print(f"added '{name}' as {task_id} to {catalogue.root} ({len(catalogue.tasks)} tasks)", file=sys.stderr)
    return EXIT_OK


def cmd_catalogue_validate(args) -> int:
    from core.catalogue.store import load_catalogue
    from core.catalogue.validity import summary_line, transfer_table, validity_report, write_report
    from core.distances.registry import REPORTED_DISTANCES

    catalogue = load_catalogue(args.catalogue)
    previous = catalogue.validity.get("candidates_measured_at_build")
    report = validity_report(catalogue, Path(args.paper), previous)
    for probe, figures in report["probes"].items():
        default = " (default)" if probe == report["default_probe"] else ""
        print(f"probe {probe}{default}:")
        for distance in REPORTED_DISTANCES:
            line = summary_line(figures[distance])
            agreement = figures[distance].get("paper_agreement", {}).get("mean_spearman")
            print(f"  {distance:<10} {line}; agreement with the paper's bKLD: rho = {agreement}")
    for row in transfer_table(report):  # measured transfer on this catalogue
        print("measured transfer: " + "; ".join(f"{key} {value}" for key, value in row.items()))
    if args.write:
        print(f"wrote {write_report(catalogue.root, report)}", file=sys.stderr)
    return EXIT_OK


def cmd_cotrain(args) -> int:
    import json

    from core.catalogue.store import load_catalogue
    from core.fingerprint.fingerprint import Fingerprint
    from core.report.cotrain import plan_for, plan_table, read_cotrain_effects

    for path in (Path(p) for p in (args.json, args.csv) if p):
        problem = output_problem(path, args.overwrite)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_USAGE
    target = Fingerprint.load(args.fingerprint)
    catalogue = load_catalogue(args.catalogue).for_probe(target.meta.probe)
    plan = plan_for(catalogue, target, args.distance, args.k, args.use, read_cotrain_effects(args.paper))
    for warning in plan["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"co-training plan for '{target.name}' by {args.distance} (nearest first; no controls, no shared images"
          + (f"; licence allows {args.use} use" if args.use else "") + ")")
    for row in plan["tasks"]:
        print(f"{row['order']:>3}  {row['task_id']}  {row['distance']:.6f}  {row['n_classes']} classes  "
              f"{row['images']:,} images  licence: {row['licence']} ({row['licence_stated']})")
        if row["paper_cotrain"]:
            print(f"     paper: {row['paper_cotrain']}")
    totals = plan["totals"]
    print(f"total: {totals['tasks']} tasks, {totals['images']:,} images, {totals['classes']} classes")
    for skipped in plan["skipped"]:
        print(f"passed over: {skipped['task_id']} ({skipped['reason']})")
    for note in plan["notes"]:
        print(f"note: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps(plan, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.csv:
        plan_table(plan).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}", file=sys.stderr)
    return EXIT_OK


def cmd_catalogue_families(args) -> int:
    import json

    from core.catalogue.families import families_report, format_families
    from core.catalogue.store import load_catalogue

    problem = output_problem(Path(args.json), args.overwrite) if args.json else None
    if problem:  # checked before the work, as for every output
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    report = families_report(load_catalogue(args.catalogue), args.distance)
    print(f"task families of {args.catalogue} on the symmetrised per-target ranks of {args.distance} "
          f"({report['linkage']} linkage)")
    print(format_families(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from core.catalogue.store import DEFAULT_CATALOGUE, DEFAULT_LOCAL_CATALOGUE
    from core.distances.registry import DEFAULT_DISTANCE, DISTANCES
    from core.features.backbones import DEFAULT_BACKBONE
    from core.features.inference import BACKEND_CHOICES
    from core.features.sampling import CATALOGUE_N, PAPER_SEED

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
    cmp.add_argument("--csv", help="also write the ranking to this CSV file")
    cmp.add_argument("--overwrite", action="store_true")
    cmp.set_defaults(handler=cmd_compare)

    cat = commands.add_parser("catalogue", help="build the catalogue or add to a local copy")
    cat_commands = cat.add_subparsers(dest="catalogue_command", required=True)
    build = cat_commands.add_parser("build", help="build a catalogue from task folders with SOURCES.json")
    build.add_argument("source")
    build.add_argument("--out", required=True)
    build.add_argument("--paper", default=str(DEFAULT_PAPER),
                       help="the paper's published results (for measured knowledge)")
    build.add_argument("--no-controls", action="store_true")
    build.add_argument("--overwrite", action="store_true")
    sampling_options(build, CATALOGUE_N)
    backbone_options(build)
    build.set_defaults(handler=cmd_catalogue_build)

    refresh = cat_commands.add_parser("refresh", help="recompute distances and map from stored fingerprints")
    refresh.add_argument("catalogue", nargs="?", default=str(DEFAULT_CATALOGUE))
    refresh.set_defaults(handler=cmd_catalogue_refresh)

    paper_default = str(DEFAULT_PAPER)
    validate = cat_commands.add_parser("validate", help="recompute the validity report from stored fingerprints")
    validate.add_argument("catalogue", nargs="?", default=str(DEFAULT_CATALOGUE))
    validate.add_argument("--paper", default=paper_default, help="the paper's published results (agreement)")
    validate.add_argument("--write", action="store_true", help="write validity.json into the catalogue folder")
    validate.set_defaults(handler=cmd_catalogue_validate)

    add = cat_commands.add_parser("add", help="add your fingerprint to a local catalogue copy")
    add.add_argument("fingerprint")
    add.add_argument("--name")
    add.add_argument("--modality", default="unknown")
    add.add_argument("--anatomy", default="unknown")
    add.add_argument("--licence", default="private")
    add.add_argument("--local", default=str(DEFAULT_LOCAL_CATALOGUE))
    add.add_argument("--catalogue", default=str(DEFAULT_CATALOGUE), help="the shipped catalogue to copy from")
    add.add_argument("--replace", action="store_true")
    add.set_defaults(handler=cmd_catalogue_add)

    families = cat_commands.add_parser("families", help="cluster the catalogue into task families (adjusted Rand "
                                       "index against modality)")
    families.add_argument("catalogue", nargs="?", default=str(DEFAULT_CATALOGUE))
    families.add_argument("--distance", default=DEFAULT_DISTANCE, choices=list(DISTANCES))
    families.add_argument("--json", help="also write the families report to this JSON file")
    families.add_argument("--overwrite", action="store_true")
    families.set_defaults(handler=cmd_catalogue_families)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, _on_sigterm)
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
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except (FingerprintFileError, IncompatibleFingerprintsError, CatalogueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FINGERPRINT
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_WEIGHTS
    except (FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # last resort (OSError, MemoryError, a bug): one line, never a traceback
        if os.environ.get("TFE_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {printable(err, 400)} (set TFE_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_ERROR
