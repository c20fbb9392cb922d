"""Latency of the running app in a real browser (issue 4 targets): first ranked table for a 200-image folder
within 30 s of the upload, and page switches under 1 s. Prints each measurement and the medians.

    python bench/app_latency.py [--task fundus_eye_disease_4class] [--images 200] [--switches 5]
"""
from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "catalogue"
PAGES = ["Recommendations", "Map", "Heatmap", "Why this task", "Catalogue explorer"]


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                "--server.address", "127.0.0.1", "--server.port", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="fundus_eye_disease_4class")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--switches", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    files = sorted(p for p in (SHARED / args.task).rglob("*") if p.is_file())[:: max(1, 1000 // args.images)]
    files = files[: args.images]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / args.task
        for path in files:
            target = folder / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        process, url = start_server()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.get_by_text("Your images", exact=True).wait_for(timeout=120_000)
                page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(folder))
                page.get_by_role("button", name="Compute fingerprint").wait_for(timeout=120_000)
                uploaded = time.perf_counter()
                page.get_by_role("button", name="Compute fingerprint").click()
                page.get_by_text("Top sources for").wait_for(timeout=300_000)
                first_table = time.perf_counter() - uploaded
                print(f"{len(files)} images uploaded; first ranked table after {first_table:.1f} s (target <= 30 s)")
                durations: dict[str, list[float]] = {name: [] for name in PAGES}
                for _ in range(args.switches):
                    for name in PAGES:
                        started = time.perf_counter()
                        page.get_by_role("link", name=name).first.click()
                        page.get_by_role("heading", name=name.replace("Why this task", "Why this task?")).wait_for(
                            timeout=60_000)
                        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                                               timeout=60_000)
                        durations[name].append(time.perf_counter() - started)
                for name, values in durations.items():
                    print(f"switch to {name:<20} median {statistics.median(values):.2f} s "
                          f"(first {values[0]:.2f} s, n = {len(values)})")
                every = [v for values in durations.values() for v in (values[1:] or values)]
                print(f"page switch median over all pages after the first visit: {statistics.median(every):.2f} s "
                      "(target < 1 s)")
                browser.close()
        finally:
            process.terminate()


if __name__ == "__main__":
    main()
