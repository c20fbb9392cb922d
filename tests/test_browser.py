"""End to end in a real browser (Debian chromium driven by playwright): upload a folder of real images, wait for the
results, check the top recommendation's modality, click a map point, save a screenshot."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.forbidden import offending
from tests.helpers import ROOT, require_shared

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
TASK = "fundus_eye_disease_4class"



pytestmark = pytest.mark.slow  # runs the real backbone over many images, builds a catalogue or starts a server

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    log = open(ARTIFACTS.mkdir(exist_ok=True) or ARTIFACTS / "streamlit-server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
         "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        process.terminate()
        pytest.fail("the Streamlit server did not become healthy within 90 s; see test-artifacts/streamlit-server.log")
    yield url
    process.terminate()
    process.wait(timeout=20)
    log.close()


def test_upload_folder_get_recommendation_and_click_the_map(server, tmp_path):
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium (./run.sh test does it)"
    source = require_shared() / TASK
    folder = tmp_path / "my_fundus_task"
    for class_dir in sorted(source.iterdir()):
        (folder / class_dir.name).mkdir(parents=True)
        for path in sorted(class_dir.iterdir())[:8]:
            shutil.copy(path, folder / class_dir.name / path.name)
    expected_modality = json.loads((source.parent / "SOURCES.json").read_text())["tasks"][TASK]["modality"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server, timeout=120_000)
        page.get_by_text("Your images", exact=True).wait_for(timeout=120_000)
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(folder))
        page.get_by_role("button", name="Compute fingerprint").click(timeout=60_000)
        page.get_by_text("Fingerprint of").wait_for(timeout=240_000)
        page.screenshot(path=str(ARTIFACTS / "browser-1-your-task.png"), full_page=True)
        page.get_by_role("link", name="See recommendations").first.click()
        nearest = page.get_by_text("Closest public task to")
        nearest.wait_for(timeout=120_000)
        text = nearest.inner_text()
        page.screenshot(path=str(ARTIFACTS / "browser-2-recommendations.png"), full_page=True)
        assert f"({expected_modality})" in text, text
        page.get_by_role("link", name="Map").first.click()
        points = page.locator(".stPlotlyChart .scatterlayer .point")
        points.first.wait_for(timeout=120_000)
        points.nth(0).click(force=True)
        page.get_by_role("heading", name="Why this task?").wait_for(timeout=120_000)
        page.get_by_text("What sets").first.wait_for(timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "browser-3-why-similar.png"), full_page=True)
        browser.close()


def test_cotrain_page_from_a_shared_fingerprint(server, tmp_path, catalogue):
    """Load the brain-MRI catalogue fingerprint as 'a fingerprint someone shared', open the Co-training plan: the
    table starts with brain_mri_4class and both downloads are offered."""
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium (./run.sh test does it)"
    shared = tmp_path / "brain.npz"
    catalogue.fingerprints["brain_mri_4class"].save(shared)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server, timeout=120_000)
        page.get_by_text("Load a shared fingerprint", exact=True).click(timeout=120_000)
        page.get_by_text("A fingerprint file (.npz) someone shared").wait_for(timeout=60_000)
        page.locator("[data-testid='stFileUploaderDropzoneInput']:not([webkitdirectory])").set_input_files(str(shared))
        page.get_by_role("button", name="Load fingerprint").click(timeout=60_000)
        page.get_by_text("Fingerprint of").wait_for(timeout=120_000)
        page.get_by_role("link", name="Co-training plan").first.click()
        page.get_by_text("together with these catalogue tasks").wait_for(timeout=120_000)
        table = page.locator(".stDataFrame").first
        table.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "browser-4-cotrain-plan.png"), full_page=True)
        assert page.get_by_test_id("stMetricValue").first.inner_text().strip() == "3"
        downloaded = {}
        for label in ("Download plan (JSON)", "Download plan (CSV)"):
            with page.expect_download(timeout=60_000) as download:
                page.get_by_role("button", name=label).click()
            downloaded[label] = Path(download.value.path()).read_text()
        plan = json.loads(downloaded["Download plan (JSON)"])
        assert [t["task_id"] for t in plan["tasks"]][0] == "brain_mri_4class" and len(plan["tasks"]) == 3
        assert all(t["licence"] for t in plan["tasks"])
        assert downloaded["Download plan (CSV)"].splitlines()[1].split(",")[1] == "brain_mri_4class"
        browser.close()


#: the README's screenshots are refreshed only on request (TFE_SCREENSHOTS=1); otherwise a test run writes none into
#: the checkout
SCREENSHOTS = ROOT / "docs" / "screenshots"


def screenshot_folder(tmp_path: Path) -> Path:
    return SCREENSHOTS if os.environ.get("TFE_SCREENSHOTS") == "1" else tmp_path / "screenshots"
PAGES = [("Your task", "your-task"), ("Recommendations", "recommendations"), ("Map", "map"),
         ("Heatmap", "heatmap"), ("Why this task?", "why-similar"), ("Catalogue explorer", "catalogue-explorer"),
         ("Co-training plan", "cotrain-plan")]


def start_server(env: dict[str, str], log_name: str) -> tuple[subprocess.Popen, str]:
    """A Streamlit server of the app with extra environment variables; (process, url) once healthy."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / log_name, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
         "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    pytest.fail(f"the Streamlit server did not become healthy; see test-artifacts/{log_name}")


def open_page(page, title: str) -> None:
    """Click a page in the sidebar and wait until it has finished running."""
    page.get_by_role("link", name=title.rstrip("?")).first.click()
    page.get_by_role("heading", name=title).wait_for(timeout=120_000)
    page.wait_for_timeout(500)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000)
    page.wait_for_timeout(1500)


@pytest.mark.slow
def test_views_at_19_tasks_with_screenshots(server, tmp_path):
    """20 brain-MRI images through the folder uploader; every page shows structure a user can read: named map
    points, the heatmap's off-diagonal range, ImageNet classes and the user's own thumbnails in 'Why this task?'.
    Saves one screenshot per page (to docs/screenshots/ with TFE_SCREENSHOTS=1, the README's pictures)."""
    from playwright.sync_api import sync_playwright
    source = require_shared() / "brain_mri_4class"
    folder = tmp_path / "my_brain_mri"
    for class_dir in sorted(source.iterdir()):
        (folder / class_dir.name).mkdir(parents=True)
        for path in sorted(class_dir.iterdir())[:5]:
            shutil.copy(path, folder / class_dir.name / path.name)
    shots = screenshot_folder(tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(server, timeout=120_000)
        page.get_by_text("Your images", exact=True).wait_for(timeout=120_000)
        page.get_by_label("Name of your task").fill("my brain MRI")
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(folder))
        page.get_by_role("button", name="Compute fingerprint").click(timeout=60_000)
        page.get_by_text("Closest public tasks to").wait_for(timeout=300_000)
        page.screenshot(path=str(shots / "your-task.png"))
        assert not offending(page.inner_text("body")), offending(page.inner_text("body"))
        for title, name in PAGES[1:]:
            open_page(page, title)
            if title == "Recommendations":
                page.get_by_text("Closest public task to").wait_for(timeout=180_000)
                page.get_by_text("Next steps: what to try first").wait_for(timeout=180_000)
                page.wait_for_timeout(1500)
                assert page.get_by_text("Verdict — ").count() == 1
                page.wait_for_timeout(1500)
            if title == "Map":
                page.locator(".stPlotlyChart .scatterlayer .point").first.wait_for(timeout=60_000)
                labels = page.locator(".stPlotlyChart .scatterlayer .textpoint")
                assert labels.count() == 20, labels.count()  # all 19 tasks named, plus yours
            if title == "Heatmap":
                assert page.get_by_text("20 of 20 tasks").count() == 1
            if title == "Co-training plan":
                page.get_by_text("together with these catalogue tasks").wait_for(timeout=180_000)
                page.wait_for_timeout(1500)
            if title == "Why this task?":
                page.get_by_text("ImageNet classes:").nth(4).wait_for(timeout=180_000)
                page.wait_for_timeout(1500)
                assert page.get_by_text("ImageNet classes:").count() == 5
                assert page.locator("[data-testid='stImage'] img, [data-testid='stFullScreenFrame'] img").count() \
                    >= 6, "the user's own images that activate a feature are shown"
            page.screenshot(path=str(shots / f"{name}.png"))
            found = offending(page.inner_text("body"))
            assert not found, (title, found)
        browser.close()
    for _, name in PAGES:
        assert (shots / f"{name}.png").stat().st_size < 400_000


@pytest.mark.slow
def test_views_at_150_tasks(catalogue, tmp_path):
    """A 150-task synthetic catalogue (TFE_CATALOGUE) and a shared fingerprint: the heatmap shows the user's task and
    its 30 nearest with all 151 one toggle away, the map names only the nearest, Why this task? says the images are
    gone."""
    from playwright.sync_api import sync_playwright

    from core.catalogue.synthetic import write_synthetic_catalogue
    root = write_synthetic_catalogue(tmp_path / "catalogue", catalogue, 150)
    shared = tmp_path / "brain.npz"
    catalogue.fingerprints["brain_mri_4class"].renamed("their brain MRI").save(shared)
    process, url = start_server({"TFE_CATALOGUE": str(root)}, "streamlit-150.log")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url, timeout=120_000)
            page.get_by_text("Load a shared fingerprint", exact=True).click(timeout=180_000)
            page.locator("[data-testid='stFileUploaderDropzoneInput']:not([webkitdirectory])").set_input_files(
                str(shared))
            page.get_by_role("button", name="Load fingerprint").click(timeout=60_000)
            page.get_by_text("Closest public tasks to").wait_for(timeout=180_000)
            open_page(page, "Heatmap")
            page.get_by_text("31 of 151 tasks").first.wait_for(timeout=120_000)  # the caption under the controls
            page.get_by_text("Show all 151 tasks").click()
            page.get_by_text("151 of 151 tasks").wait_for(timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "browser-150-heatmap.png"))
            open_page(page, "Map")
            page.locator(".stPlotlyChart .scatterlayer .point").first.wait_for(timeout=60_000)
            named = page.evaluate("() => [...document.querySelectorAll('.stPlotlyChart .scatterlayer .textpoint')]"
                                  ".filter(t => t.textContent.trim()).length")
            assert named == 13, named  # the 12 nearest and yours; the others on hover
            page.screenshot(path=str(ARTIFACTS / "browser-150-map.png"))
            open_page(page, "Why this task?")
            page.get_by_text("ImageNet classes:").nth(4).wait_for(timeout=180_000)
            page.get_by_text("Your images are not available in this session").wait_for(timeout=60_000)
            assert page.get_by_text("ImageNet classes:").count() == 5
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
