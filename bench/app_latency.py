"""Latency of the running app where a user feels it (issue 21): a real folder of images uploaded in chromium, then
the first ranked table after clicking "Compute fingerprint", every page switch, every distance change on the
Recommendations page (bKLD large, P2L, VDNA, back to bKLD small) and the probe change (to 'postact' and back), each
timed from the click (on the link, on the menu's option) until the page has finished (no running-status widget).
After the first table it also prints when the verdict above it appeared and when every view and distance had been
prepared in the background (the sidebar's progress bar gone); the interactions are timed from then on. Each cycle
of interactions is repeated; medians are printed with the machine's load average, and the last line is
``slowest_interaction_s <value>``: the slowest median of the page switches, distance changes and probe changes
(targets: first table <= 6 s for 200 images, every interaction < 1 s).

    python bench/app_latency.py [--task fundus_eye_disease_4class] [--images 200] [--repeats 3]

The images are copied into a temporary folder outside the repository (removed afterwards).
"""
from __future__ import annotations

import argparse
import os
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
PAGES = ["Recommendations", "Map", "Heatmap", "Why this task?", "Catalogue explorer", "Co-training plan", "Your task"]
#: (what is measured, the option's label starts with) on the Recommendations page's distance menu
DISTANCE_STEPS = [("bKLD large", "bKLD large"), ("P2L", "P2L"), ("VDNA", "VDNA"), ("back to bKLD small", "bKLD small")]
#: the probe menu (Your task, under the expander "Advanced: probe layer"): its label starts with this
PROBE_MENU = "Layer whose pooled values"
PROBE_EXPANDER = "Advanced: probe layer"
#: the app is idle: no script run in progress (the script state Streamlit's own browser tests wait on, set as a run
#: starts; the status widget alone appears only after a run's first moments, so a run could be counted in the next
#: interaction) and no status widget
IDLE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null && app.getAttribute('data-test-script-state') === 'notRunning'
        && !document.querySelector('[data-testid="stStatusWidget"]');
}"""
#: the ranked table on Your task: a data frame after the heading "Closest public tasks to ..."
FIRST_TABLE = """() => {
  const heading = [...document.querySelectorAll('h3')].find(e => e.textContent.includes('Closest public tasks to'));
  return !!heading && [...document.querySelectorAll('[data-testid="stDataFrame"]')].some(
    table => heading.compareDocumentPosition(table) & Node.DOCUMENT_POSITION_FOLLOWING);
}"""

#: the verdict above the first table, once the bootstrap behind it is ready
VERDICT_SHOWN = """() => document.body.innerText.includes('Verdict — ') &&
  !document.body.innerText.includes('being weighed')"""
#: the sidebar's progress bar while the other views and distances are prepared in the background
EVERY_VIEW_PREPARED = "() => !document.body.innerText.includes('Preparing the other views and distances')"


def load() -> str:
    """The load averages (1, 5, 15 min) and the number of CPUs, for the figures' context."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                "--server.address", "127.0.0.1", "--server.port", str(port),
                                "--browser.gatherUsageStats", "false"], cwd=ROOT,
                               stdout=subprocess.DEVNULL,
                               stderr=open(os.environ["APP_LATENCY_LOG"], "w") if os.environ.get("APP_LATENCY_LOG")
                               else subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("server did not start")


def copy_images(task: str, count: int, scratch: Path) -> Path:
    """``count`` images of a catalogue task spread over its classes, copied below ``scratch``."""
    files = sorted(p for p in (SHARED / task).rglob("*") if p.is_file())
    files = files[:: max(1, len(files) // count)][:count]
    folder = scratch / task
    for path in files:
        target = folder / path.relative_to(SHARED / task)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return folder


def open_page(playwright):
    """A page of Debian's chromium (a browser download is impossible here), 1400 x 1000."""
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])
    return browser.new_page(viewport={"width": 1400, "height": 1000})


def settle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the app has finished running (a short grace for the run to start first)."""
    page.wait_for_timeout(100)
    page.wait_for_function(IDLE, timeout=timeout_ms)


def timed(action, page) -> float:
    started = time.perf_counter()
    action()
    settle(page)
    return time.perf_counter() - started


def switch_page(page, name: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", name=name, exact=True).wait_for(timeout=120_000)


def open_list(page, label: str, option_start: str, scope=None):
    """Open the select box labelled ``label`` and return its option starting with ``option_start`` (to be clicked:
    the user's click, from which the change is timed)."""
    box = (scope or page).get_by_label(label, exact=False).first
    option = page.get_by_role("option").filter(has_text=option_start).first
    for _ in range(3):  # a rerun landing just after the click can close the list again: open it anew
        box.click()
        try:
            option.wait_for(timeout=5_000)
            break
        except Exception:
            page.keyboard.press("Escape")
    return option


def open_probe_menu(page) -> None:
    """Open the 'Advanced: probe layer' expander unless it is open already (clicking it again would close it)."""
    menu = page.get_by_label(PROBE_MENU, exact=False).first
    if not menu.is_visible():
        page.get_by_text(PROBE_EXPANDER, exact=True).click()
    menu.wait_for(state="visible", timeout=30_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="fundus_eye_disease_4class")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="cycles of interactions (0: the first table only)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    durations: dict[str, list[float]] = {}

    def note(what: str, seconds: float) -> None:
        durations.setdefault(what, []).append(seconds)
        print(f"{what:<38} {seconds:6.2f} s   ({load()})", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        folder = copy_images(args.task, args.images, Path(scratch))
        n_files = sum(1 for p in folder.rglob("*") if p.is_file())
        process, url = start_server()
        try:
            with sync_playwright() as playwright:
                page = open_page(playwright)
                page.goto(url)
                page.get_by_text("Your images", exact=True).wait_for(timeout=180_000)
                settle(page, 180_000)
                page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(folder))
                button = page.get_by_role("button", name="Compute fingerprint")
                button.wait_for(timeout=120_000)
                started = time.perf_counter()
                button.click()
                try:
                    page.wait_for_function(FIRST_TABLE, timeout=int(os.environ.get("APP_LATENCY_FIRST_S", "300")) * 1e3)
                except Exception:
                    if os.environ.get("APP_LATENCY_LOG"):
                        page.screenshot(path=os.environ["APP_LATENCY_LOG"] + ".png", full_page=True)
                        Path(os.environ["APP_LATENCY_LOG"] + ".html").write_text(page.content())
                    raise
                note(f"first ranked table ({n_files} images)", time.perf_counter() - started)
                page.wait_for_function(VERDICT_SHOWN, timeout=300_000)
                print(f"{'  the verdict above it':<38} {time.perf_counter() - started:6.2f} s after the click",
                      flush=True)
                page.wait_for_timeout(500)  # the footer's progress bar, if any, is drawn after the table
                page.wait_for_function(EVERY_VIEW_PREPARED, timeout=600_000)
                settle(page, 300_000)
                print(f"{'  every view and distance prepared':<38} {time.perf_counter() - started:6.2f} s after the "
                      f"click ({load()})", flush=True)
                for _ in range(args.repeats):
                    for name in PAGES:
                        note(f"page switch to {name}", timed(lambda name=name: switch_page(page, name), page))
                    switch_page(page, "Recommendations")
                    settle(page)
                    for what, option in DISTANCE_STEPS:
                        item = open_list(page, "Distance", option)
                        note(f"distance change: {what}", timed(item.click, page))
                    switch_page(page, "Your task")
                    settle(page)
                    for what, option in (("to postact", "postact"), ("back to the default", "(default)")):
                        open_probe_menu(page)
                        item = open_list(page, PROBE_MENU, option)
                        note(f"probe change {what}", timed(item.click, page))
                page.context.browser.close()
        finally:
            process.terminate()
            process.wait(30)

    print(f"\nmedians over {args.repeats} repeats ({load()}):")
    interactions = []
    for what, values in durations.items():
        median = statistics.median(values)
        print(f"  {what:<38} median {median:6.2f} s  (n = {len(values)}, max {max(values):.2f} s)")
        if not what.startswith("first ranked table"):
            interactions.append(median)
    if interactions:
        print(f"slowest_interaction_s {max(interactions):.2f}")


if __name__ == "__main__":
    main()
