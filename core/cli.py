"""Command line: ``python -m core fingerprint|compare|catalogue ...``.

Exit codes (for scripts): 0 success; 1 unexpected error; 2 usage error; 3 input problem (folder or archive unusable,
no readable image); 4 fingerprint or catalogue invalid or incompatible; 5 backbone weights problem; 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.errors import (CatalogueError, FingerprintFileError, IncompatibleFingerprintsError, InputFolderError,
                         WeightsError)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INPUT, EXIT_FINGERPRINT, EXIT_WEIGHTS, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130


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
    from core.backbones import load_backbone
    backbone = load_backbone(args.backbone, args.weights, args.sha256, args.device, getattr(args, "probe", None),
                             backend=args.backend)
    print(f"backend: {backbone.engine().describe()}", file=sys.stderr)
    return backbone


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def cmd_fingerprint(args) -> int:
    from core.catalogue import load_catalogue
    from core.pipeline import fingerprint_folder
    from core.sampling import SamplingProtocol

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        print(f"error: {output} already exists; choose another name or pass --overwrite", file=sys.stderr)
        return EXIT_USAGE
    catalogue = load_catalogue(args.catalogue)
    if args.probe is None:
        args.probe = catalogue.probe
    catalogue = catalogue.for_probe(args.probe)
    _warn(catalogue.version_warnings("features"))
    backbone = _backbone(args)
    if backbone.weights_sha256 != catalogue.weights_sha256:
        raise IncompatibleFingerprintsError(
            f"{args.catalogue}: the catalogue was built with {catalogue.backbone} (weights {catalogue.weights_sha256[:12]}…) "
            f"but you chose {backbone.spec.name} (weights {backbone.weights_sha256[:12]}…); fingerprints would not be "
            "comparable. Build a catalogue with that backbone first (python -m core catalogue build --backbone ...)")
    protocol = SamplingProtocol(n=args.n, seed=args.seed, augment=not args.no_augment)
    started = time.perf_counter()
    print(f"fingerprinting {args.folder} with {backbone.spec.name} (probe {backbone.probe}) by {backbone.backend} "
          f"on {'cpu' if backbone.backend == 'onnxruntime' else backbone.device}, n = {args.n:,}", file=sys.stderr)
    run = fingerprint_folder(args.folder, backbone, catalogue.edges, protocol, name=args.name,
                             slice_axis=args.slice_axis, batch_size=args.batch_size, progress=_ProgressPrinter())
    print(run.report.to_text(), file=sys.stderr)
    run.fingerprint.save(output, overwrite=args.overwrite)
    print(f"wrote {output} ({run.fingerprint.meta.n_samples:,} samples) in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return EXIT_OK


def cmd_compare(args) -> int:
    from core.catalogue import load_catalogue
    from core.fingerprint import Fingerprint
    from core.recommend import how_close, recommendations

    target = Fingerprint.load(args.fingerprint)
    catalogue = load_catalogue(args.catalogue).for_probe(target.meta.probe)
    _, warnings = catalogue.distances_to(target, args.distance)
    _warn(warnings + catalogue.version_warnings("features"))
    table = recommendations(catalogue, target, args.distance)
    candidates = table[table["kind"] != "control"].head(args.top)
    controls = table[table["kind"] == "control"]
    print(f"sources for '{target.name}' by {args.distance} (directed, source -> your task; lower = closer)")
    width = int(table["task_id"].str.len().max())
    for _, row in candidates.iterrows():
        print(f"{row['rank']:>3}  {row['task_id']:<{width}}  {row['distance']:.6f}  {row['modality']}"
              + (f"  [{row['caution']}]" if row["caution"] else ""))
    for _, row in controls.iterrows():
        print(f"  -  {row['task_id']:<{width}}  {row['distance']:.6f}  non-medical control (reference, not ranked)")
    print(how_close(catalogue, table, args.distance).message)
    if args.csv:
        path = Path(args.csv)
        if path.exists() and not args.overwrite:
            print(f"error: {path} already exists; choose another name or pass --overwrite", file=sys.stderr)
            return EXIT_USAGE
        columns = ["rank", "task_id", "task", "distance", "modality", "anatomy", "kind", "caution", "licence"]
        candidates[columns].to_csv(path, index=False)
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def cmd_catalogue_build(args) -> int:
    from core.catalogue_build import build_catalogue
    from core.sampling import SamplingProtocol

    backbone = _backbone(args)
    protocol = SamplingProtocol(n=args.n, seed=args.seed, augment=not args.no_augment)
    build_catalogue(Path(args.source), Path(args.out), backbone, protocol, paper=Path(args.paper),
                    with_controls=not args.no_controls, overwrite=args.overwrite,
                    log=lambda message: print(message, file=sys.stderr, flush=True))
    return EXIT_OK


def cmd_catalogue_refresh(args) -> int:
    from core.catalogue import load_catalogue, refresh_derived

    _warn(load_catalogue(args.catalogue).version_warnings("map"))
    started = time.perf_counter()
    catalogue = refresh_derived(Path(args.catalogue))
    print(f"recomputed distances and map of {len(catalogue.tasks)} tasks in {catalogue.root} "
          f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return EXIT_OK


def cmd_catalogue_add(args) -> int:
    from core.catalogue import TaskInfo, add_to_local_copy
    from core.fingerprint import Fingerprint

    from core.catalogue import load_catalogue

    fingerprint = Fingerprint.load(args.fingerprint)
    _warn(load_catalogue(args.catalogue).version_warnings("map"))
    name = args.name or fingerprint.name
    task_id = "user_" + "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    info = TaskInfo(id=task_id, name=name, modality=args.modality, anatomy=args.anatomy,
                    classes=fingerprint.meta.class_counts, n_images=sum(fingerprint.meta.class_counts.values()),
                    kind="user", source="added by the user", licence=args.licence)
    catalogue = add_to_local_copy(fingerprint, info, Path(args.local), Path(args.catalogue), replace=args.replace)
    print(f"added '{name}' as {task_id} to {catalogue.root} ({len(catalogue.tasks)} tasks)", file=sys.stderr)
    return EXIT_OK


def cmd_catalogue_validate(args) -> int:
    from core.catalogue import load_catalogue
    from core.validity import REPORTED_DISTANCES, summary_line, validity_report, write_report

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
    if args.write:
        print(f"wrote {write_report(catalogue.root, report)}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from core.backbones import DEFAULT_BACKBONE
    from core.catalogue import DEFAULT_CATALOGUE, DEFAULT_LOCAL_CATALOGUE
    from core.compare import DISTANCES
    from core.extract import DEFAULT_BATCH_SIZE
    from core.inference import BACKEND_CHOICES
    from core.sampling import CATALOGUE_N, PAPER_SEED

    parser = argparse.ArgumentParser(prog="python -m core", description="Task fingerprints and bKLD (Godau et al. "
                                     "2024): fingerprint a folder of images and rank public tasks as sources.")
    commands = parser.add_subparsers(dest="command", required=True)

    def backbone_options(sub):
        sub.add_argument("--backbone", default=DEFAULT_BACKBONE, help="registry name or timm tag")
        sub.add_argument("--probe", help="layer whose pooled output are the features (core/backbones.json; default: "
                                         "the catalogue's, else the backbone's default)")
        sub.add_argument("--weights", help="weights file for backbones without packaged weights")
        sub.add_argument("--sha256", help="expected sha256 of --weights")
        sub.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda or mps")
        sub.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                         help="what runs the forward pass: onnxruntime (CPU, an ONNX export of the verified weights, "
                              "checked against PyTorch), torch (the reference; GPUs) or auto (onnxruntime on the "
                              "CPU when installed, else torch); fingerprints of both are comparable")

    def sampling_options(sub, n_default):
        sub.add_argument("--n", type=int, default=n_default, help=f"samples, with replacement (default {n_default})")
        sub.add_argument("--seed", type=int, default=PAPER_SEED)
        sub.add_argument("--no-augment", action="store_true", help="centre crops, no flips")

    fp = commands.add_parser("fingerprint", help="fingerprint a folder or .zip of images")
    fp.add_argument("folder")
    fp.add_argument("-o", "--output", required=True, help="fingerprint file to write (.npz)")
    fp.add_argument("--name", help="task name stored in the fingerprint (default: folder name)")
    fp.add_argument("--catalogue", default=str(DEFAULT_CATALOGUE), help="catalogue whose bin edges are used")
    fp.add_argument("--slice-axis", type=int, default=2, choices=(0, 1, 2), help="NIfTI slicing axis")
    fp.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    fp.add_argument("--overwrite", action="store_true")
    sampling_options(fp, CATALOGUE_N)
    backbone_options(fp)
    fp.set_defaults(handler=cmd_fingerprint)

    cmp = commands.add_parser("compare", help="rank catalogue tasks as sources for a fingerprint")
    cmp.add_argument("fingerprint")
    cmp.add_argument("--catalogue", default=str(DEFAULT_CATALOGUE))
    cmp.add_argument("--distance", default="bkld-small", choices=list(DISTANCES))
    cmp.add_argument("--top", type=int, default=10)
    cmp.add_argument("--csv", help="also write the ranking to this CSV file")
    cmp.add_argument("--overwrite", action="store_true")
    cmp.set_defaults(handler=cmd_compare)

    cat = commands.add_parser("catalogue", help="build the catalogue or add to a local copy")
    cat_commands = cat.add_subparsers(dest="catalogue_command", required=True)
    build = cat_commands.add_parser("build", help="build a catalogue from task folders with SOURCES.json")
    build.add_argument("source")
    build.add_argument("--out", required=True)
    build.add_argument("--paper", default=str(Path(__file__).resolve().parents[2] / "shared" / "paper"),
                       help="the paper's published results (for measured knowledge)")
    build.add_argument("--no-controls", action="store_true")
    build.add_argument("--overwrite", action="store_true")
    sampling_options(build, CATALOGUE_N)
    backbone_options(build)
    build.set_defaults(handler=cmd_catalogue_build)

    refresh = cat_commands.add_parser("refresh", help="recompute distances and map from stored fingerprints")
    refresh.add_argument("catalogue", nargs="?", default=str(DEFAULT_CATALOGUE))
    refresh.set_defaults(handler=cmd_catalogue_refresh)

    paper_default = str(Path(__file__).resolve().parents[2] / "shared" / "paper")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
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
