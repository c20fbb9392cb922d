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

from tests.conftest import ROOT, require_shared

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
        nearest = page.get_by_text("Nearest source for")
        nearest.wait_for(timeout=120_000)
        text = nearest.inner_text()
        page.screenshot(path=str(ARTIFACTS / "browser-2-recommendations.png"), full_page=True)
        assert f"({expected_modality})" in text, text
        page.get_by_role("link", name="Map").first.click()
        points = page.locator(".stPlotlyChart .scatterlayer .point")
        points.first.wait_for(timeout=120_000)
        points.nth(0).click(force=True)
        page.get_by_role("heading", name="Why similar?").wait_for(timeout=120_000)
        page.get_by_text("The 20 largest").wait_for(timeout=120_000)
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
