"""A local catalogue of 10,000 tasks (issue 25): build a synthetic store-layout catalogue (core.catalogue.large,
fingerprints shaped like the shipped ones, core.catalogue.synthetic), then print, each measured in a fresh process:

* ``load_s``: loading it (metadata and the source store; no fingerprint read), median of 3;
* ``rank_s``: ranking a user fingerprint with the verdict: the user's neighbourhood (store ranking, nearest 30 tasks'
  fingerprints read, their matrices and map) plus the Recommendations part (table, closeness, verdict), median over
  the shipped catalogue's fingerprints as users (no per-sample data: no bootstrap);
* ``add_s``: ``catalogue add`` of one task into it (incremental), median of 3;
* ``resident_mb``: the peak resident memory of that process (load, rankings and additions);
* with ``--app``: the app's start and page switches with the catalogue loaded, in chromium (a real folder of images
  uploaded first; bench/app_latency.py's driver; timed once every view is prepared, as there), medians over
  ``--repeats``.

    python bench/local_scale.py [--tasks 10000] [--keep /tmp/local-10000] [--app] [--repeats 3]

Building writes ~0.54 GB per 1,000 tasks (fingerprint files, store rows): 10,000 tasks in 9 minutes on the 2 cores
(a second process writes the fingerprint files while this one fills the store); ``--keep`` keeps it for the next run,
otherwise it is removed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
USERS = ("brain_mri_4class", "fundus_eye_disease_4class", "covid_ct", "busi_3class", "herlev_pap_7class")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def build(root: Path, tasks: int) -> None:
    from core.catalogue.store import load_catalogue
    from core.catalogue.synthetic import write_synthetic_large_catalogue

    started = time.perf_counter()
    write_synthetic_large_catalogue(root, load_catalogue(), tasks, workers=1)
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"built {tasks} tasks in {seconds:.0f} s ({tasks / seconds:.1f} tasks/s, {size / 2**30:.2f} GB on disk; "
          f"{load()})", flush=True)


def measure(root: Path) -> dict:
    """Run in a fresh process: load, rank with verdict, add; figures as a dict."""
    from core.catalogue.store import TaskInfo, add_to_local_copy, load_catalogue
    from core.report.analysis import ranking

    shipped = load_catalogue()
    loads = []
    for _ in range(3):
        started = time.perf_counter()
        large = load_catalogue(root)
        loads.append(time.perf_counter() - started)
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ranks, verdicts = [], []
    for task_id in USERS:
        user = shipped.fingerprints[task_id].renamed(f"user {task_id}")
        started = time.perf_counter()
        around = large.neighbourhood(user)
        found = ranking(around, user)
        ranks.append(time.perf_counter() - started)
        verdicts.append(found.verdict.level)
    adds = []
    stamp = int(time.time())
    for k, task_id in enumerate(USERS[:3]):
        user = shipped.fingerprints[task_id]
        info = TaskInfo(id=f"user_bench_{stamp}_{k}", name=f"bench addition {k}", modality="benchmark",
                        anatomy="", classes={}, n_images=0, kind="user")
        started = time.perf_counter()
        grown = add_to_local_copy(user, info, root)
        adds.append(time.perf_counter() - started)
    return {"tasks": len(large.tasks), "load_s": statistics.median(loads), "loaded_mb": loaded_mb,
            "rank_s": statistics.median(ranks), "rank_max_s": max(ranks), "verdicts": verdicts,
            "add_s": statistics.median(adds), "tasks_after": len(grown.tasks),
            "resident_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def app_page_switches(root: Path, repeats: int) -> dict[str, tuple[float, float]]:
    """(median, max) seconds of each page switch in chromium with the app serving ``root``."""
    sys.path.insert(0, str(ROOT / "bench"))
    import app_latency as driver
    from playwright.sync_api import sync_playwright

    os.environ["TFE_CATALOGUE"] = str(root)
    durations: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = driver.copy_images("fundus_eye_disease_4class", 60, Path(scratch))
        process, url = driver.start_server()
        try:
            with sync_playwright() as playwright:
                page = driver.open_page(playwright)
                started = time.perf_counter()
                page.goto(url)
                page.get_by_text("Your images", exact=True).wait_for(timeout=180_000)
                driver.settle(page, 180_000)
                print(f"app start with the catalogue {time.perf_counter() - started:.1f} s", flush=True)
                page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(folder))
                button = page.get_by_role("button", name="Compute fingerprint")
                button.wait_for(timeout=120_000)
                started = time.perf_counter()
                button.click()
                page.wait_for_function(driver.FIRST_TABLE, timeout=600_000)
                print(f"first ranked table (60 images, incl. the fingerprint) {time.perf_counter() - started:.1f} s",
                      flush=True)
                driver.settle(page, 300_000)
                page.wait_for_function(driver.EVERY_VIEW_PREPARED, timeout=600_000)  # as bench/app_latency.py does
                print(f"every view prepared {time.perf_counter() - started:.1f} s after the click", flush=True)
                driver.settle(page)
                for _ in range(repeats):
                    for name in driver.PAGES:
                        seconds = driver.timed(lambda name=name: driver.switch_page(page, name), page)
                        durations.setdefault(name, []).append(seconds)
                        print(f"page switch to {name:<20} {seconds:5.2f} s  ({load()})", flush=True)
                if os.environ.get("LOCAL_SCALE_SHOTS"):
                    for name in driver.PAGES:
                        driver.switch_page(page, name)
                        driver.settle(page)
                        page.screenshot(path=f"{os.environ['LOCAL_SCALE_SHOTS']}/{name.split()[0]}.png",
                                        full_page=True)
                page.context.browser.close()
            print(f"app_server_peak_mb {_peak_mb(process.pid):.0f}  (the Streamlit server's peak resident memory: "
                  "the catalogue, the session's neighbourhood and every prepared view)", flush=True)
        finally:
            process.terminate()
            process.wait(30)
    return {name: (statistics.median(values), max(values)) for name, values in durations.items()}


def _peak_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="build the catalogue here (or reuse it) and keep it")
    parser.add_argument("--app", action="store_true", help="also time the app's page switches in chromium")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the fresh measuring process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    scratch = None if args.keep else tempfile.mkdtemp(prefix="tfe-local-scale-")
    root = args.keep or Path(scratch) / "catalogue"
    try:
        if not (root / "catalogue.json").is_file():
            build(root, args.tasks)
        output = subprocess.run([sys.executable, __file__, "--measure", str(root)], check=True, text=True,
                                stdout=subprocess.PIPE).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        n = figures["tasks"]
        print(f"load_s_{n} {figures['load_s']:.2f}  (median of 3; metadata and store, no fingerprint read)")
        print(f"rank_s_{n} {figures['rank_s']:.2f}  (median over {len(USERS)} users, max {figures['rank_max_s']:.2f};"
              f" neighbourhood + ranked table + verdict; verdicts: {', '.join(figures['verdicts'])})")
        print(f"add_s_{n} {figures['add_s']:.2f}  (median of 3 incremental additions; {figures['tasks_after']} tasks "
              "after)")
        print(f"resident_mb_{n} {figures['resident_mb']:.0f}  (peak of the measuring process; "
              f"{figures['loaded_mb']:.0f} MB after loading)")
        if args.app:
            switches = app_page_switches(root, args.repeats)
            for name, (median, slowest) in switches.items():
                print(f"page_switch_s {name:<20} {median:.2f}  (median of {args.repeats}; max {slowest:.2f}, "
                      "the first visit included)")
            print(f"slowest_page_switch_s {max(median for median, _ in switches.values()):.2f}  (slowest median; "
                  f"slowest single switch {max(slowest for _, slowest in switches.values()):.2f})")
        print(load())
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
