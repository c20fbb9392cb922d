"""The catalogue at 1,000 tasks (issue 10): build a synthetic catalogue of random but valid fingerprints shaped like
the shipped ones (core.catalogue.synthetic), then print its load time, the time to rank one user fingerprint against
every task (query_ms_1000: median of repeats, the catalogue's bKLD small SourceBank) and the time to build the map
and the heatmap figures (the heatmap's default view at this size: the user's task and its 30 nearest; also the full
matrix).

    python bench/catalogue_scale.py [--tasks 1000] [--repeats 20] [--keep /tmp/catalogue-1000]

Needs about 7 GB of memory at 1,000 tasks (the loaded fingerprints hold their fine counts as uint32).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(function, repeats: int = 1) -> tuple[float, object]:
    """(median seconds over ``repeats`` calls, the last result)."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="write the synthetic catalogue here and keep it")
    args = parser.parse_args()
    from core.catalogue.store import load_catalogue
    from core.catalogue.synthetic import write_synthetic_catalogue
    from core.catalogue.taskmap import place_on_map
    from core.distances.maths import symmetrise
    from core.report.views import USER_ID, heatmap_view, map_annotations, map_frame, with_user
    from ui import figures

    shipped = load_catalogue()
    user = shipped.fingerprints["brain_mri_4class"].renamed("user task")
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch) / "catalogue"
        build_s, _ = timed(lambda: write_synthetic_catalogue(root, shipped, args.tasks))
        print(f"built a synthetic catalogue of {args.tasks} tasks in {build_s:.1f} s")
        load_s, catalogue = timed(lambda: load_catalogue(root))
        bank_s, bank = timed(lambda: catalogue.bank("bkld-small"))
        print(f"load_s_{args.tasks} {load_s:.1f}  (bKLD small bank prepared once per process: {bank_s:.1f} s, "
              f"{bank.prepared.nbytes / 2**20:.0f} MB)")
        query_s, values = timed(lambda: catalogue.distances_to(user), args.repeats)
        print(f"query_ms_{args.tasks} {query_s * 1000:.1f}  (median of {args.repeats}: one user fingerprint "
              "against every task, bKLD small)")

        def render_map():
            _, _, full = with_user(catalogue, user)
            to_user = symmetrise(full)[-1, :-1]
            points = map_annotations(map_frame(catalogue, catalogue.coords, place_on_map(catalogue.coords, to_user),
                                               user.name), to_user)
            return figures.task_map(points).to_json()
        map_s, _ = timed(render_map, 3)
        focus_s, _ = timed(lambda: figures.heatmap(heatmap_view(catalogue, user, around=USER_ID)).to_json(), 3)
        full_s, _ = timed(lambda: figures.heatmap(heatmap_view(catalogue, user, around=None)).to_json(), 1)
        print(f"render_map_s {map_s:.2f}  render_heatmap_nearest30_s {focus_s:.2f}  "
              f"render_heatmap_full_s {full_s:.2f}  (data + figure JSON, median of 3 / 1)")


if __name__ == "__main__":
    main()
