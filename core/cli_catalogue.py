"""``python -m core catalogue build|refresh|validate|add|thumbnails|families|synthetic``: the catalogue's commands."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from core.cli_support import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    backbone_from_args,
    output_problem,
    positive_int,
    print_notes,
    print_warnings,
)
from core.paper import DEFAULT_PAPER
from core.text import printable

TASK_FOLDERS_HELP = "a folder of task folders with SOURCES.json (e.g. ../shared/data/catalogue)"


def cmd_catalogue_build(args) -> int:
    from core.catalogue.build import build_catalogue
    from core.features.sampling import SamplingProtocol

    backbone = backbone_from_args(args)
    protocol = SamplingProtocol(n=args.n, seed=args.seed, augment=not args.no_augment)
    build_catalogue(Path(args.task_folders), Path(args.out), backbone, protocol, paper=Path(args.paper),
                    with_controls=not args.no_controls, overwrite=args.overwrite,
                    log=lambda message: print(message, file=sys.stderr, flush=True))
    return EXIT_OK


def cmd_catalogue_refresh(args) -> int:
    from core.catalogue.lock import recover
    from core.catalogue.store import load_catalogue, refresh_derived

    print_notes(recover(Path(args.catalogue)))
    print_warnings(load_catalogue(args.catalogue).version_warnings("map"))
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
    print_warnings(load_catalogue(args.catalogue).version_warnings("map"))
    name = printable(args.name or fingerprint.name, MAX_NAME_CHARS)
    if not name:
        print("error: the task name is empty once control characters are removed; give --name", file=sys.stderr)
        return EXIT_USAGE
    task_id = task_id_for(name)
    info = TaskInfo(id=task_id, name=name, modality=printable(args.modality), anatomy=printable(args.anatomy),
                    classes=fingerprint.meta.class_counts, n_images=sum(fingerprint.meta.class_counts.values()),
                    kind="user", source="added by the user", licence=printable(args.licence))
    print_notes(recover(Path(args.local)))  # a previous run's leftovers, said before the (possibly long) addition
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


def cmd_catalogue_thumbnails(args) -> int:
    from core.catalogue.thumbnails import make_thumbnails

    task_folders, out = Path(args.task_folders), Path(args.out)
    for folder, what in ((task_folders, "task folders"), (out, "catalogue")):
        if not (folder / "SOURCES.json").is_file():
            print(f"error: {folder}: no SOURCES.json (expected the {what} there)", file=sys.stderr)
            return EXIT_INPUT
    made = make_thumbnails(task_folders, out, log=lambda message: print(message, file=sys.stderr))
    print(f"thumbnails for {len(made)} tasks whose stated licence allows redistribution: "
          f"{', '.join(made) or 'none'}")
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


def cmd_catalogue_synthetic(args) -> int:
    from core.catalogue.store import load_catalogue
    from core.catalogue.synthetic import write_synthetic_catalogue, write_synthetic_large_catalogue

    out = Path(args.out)
    if out.exists() or out.is_symlink():
        print(f"error: {printable(out, 400)} already exists; choose a new folder", file=sys.stderr)
        return EXIT_USAGE
    if not out.parent.is_dir():
        print(f"error: folder {printable(out.parent, 400)} does not exist; create it first", file=sys.stderr)
        return EXIT_USAGE
    write = write_synthetic_large_catalogue if args.layout == "store" else write_synthetic_catalogue
    root = write(out, load_catalogue(args.catalogue), args.tasks, seed=args.seed)
    print(f"wrote {args.tasks:,} synthetic tasks (random fingerprints: no evidence about real tasks) to "
          f"{printable(root, 400)}; TFE_CATALOGUE={printable(root, 400)} streamlit run app.py shows them",
          file=sys.stderr)
    return EXIT_OK


def add_catalogue_commands(commands, sampling_options, backbone_options) -> None:
    """The ``catalogue`` subcommands on the top-level parser's ``commands``; the option groups are shared with
    ``fingerprint``."""
    from core.catalogue.store import DEFAULT_CATALOGUE, DEFAULT_LOCAL_CATALOGUE
    from core.distances.registry import DEFAULT_DISTANCE, DISTANCES
    from core.features.sampling import CATALOGUE_N

    cat = commands.add_parser("catalogue", help="build the catalogue or add to a local copy")
    cat_commands = cat.add_subparsers(dest="catalogue_command", required=True)
    build = cat_commands.add_parser("build", help="build a catalogue from task folders with SOURCES.json")
    build.add_argument("task_folders", help=TASK_FOLDERS_HELP)
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

    thumbs = cat_commands.add_parser("thumbnails", help="example thumbnails of the tasks whose licence allows it")
    thumbs.add_argument("task_folders", help=TASK_FOLDERS_HELP)
    thumbs.add_argument("--out", default=str(DEFAULT_CATALOGUE), help="the catalogue folder (default: shipped)")
    thumbs.set_defaults(handler=cmd_catalogue_thumbnails)

    families = cat_commands.add_parser("families", help="cluster the catalogue into task families (adjusted Rand "
                                       "index against modality)")
    families.add_argument("catalogue", nargs="?", default=str(DEFAULT_CATALOGUE))
    families.add_argument("--distance", default=DEFAULT_DISTANCE, choices=list(DISTANCES))
    families.add_argument("--json", help="also write the families report to this JSON file")
    families.add_argument("--overwrite", action="store_true")
    families.set_defaults(handler=cmd_catalogue_families)

    synthetic = cat_commands.add_parser("synthetic", help="a catalogue of random tasks shaped like the shipped ones, "
                                        "to try the app and the command line at scale")
    synthetic.add_argument("out", help="a new folder")
    synthetic.add_argument("--tasks", type=positive_int(100_000), default=1_000)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--layout", choices=("matrices", "store"), default="matrices",
                           help="'store': the layout of large catalogues (a source store, no pairwise matrices; "
                           "the app shows the user's neighbourhood), for thousands of tasks")
    synthetic.add_argument("--catalogue", default=str(DEFAULT_CATALOGUE),
                           help="the catalogue whose backbone, probe and bin edges the tasks share")
    synthetic.set_defaults(handler=cmd_catalogue_synthetic)
