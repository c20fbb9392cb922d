"""Issue 22: a name chosen by whoever made a shared fingerprint is always shown as text. A fingerprint named with a
Markdown link, an image, a ``:red[...]`` directive and a formula is loaded into the app (and is also a task of the
real catalogue folder the app uses): no request leaves for an address in the name, no link to it is rendered, and
the name's characters are visible literally on every page that shows it."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, open_page, start_server

pytestmark = pytest.mark.slow  # starts a Streamlit server and a browser

HOSTILE_NAME = ("ZZ [Update required: click](http://127.0.0.1:9/phish) ![t](http://127.0.0.1:9/track.png) "
                ":red[x] $x^2$ <a href='http://127.0.0.1:9/html'>h</a>")
BEACON = "127.0.0.1:9"


def live_links(page) -> list[str]:
    """Every link or image element (HTML or plotly's SVG, whose links use xlink:href) that points at the beacon."""
    return page.evaluate(f"() => [...document.querySelectorAll('a, img, image')].map(e => e.outerHTML)"
                         f".filter(h => h.includes('{BEACON}'))")


def check_page_shows_the_name_as_text(page, where: str, shows_the_name: bool = True) -> None:
    links = live_links(page)
    assert links == [], (where, links)
    text = page.evaluate("() => document.body.innerText").replace("\u2060", "")  # invisible word joiners
    assert HOSTILE_NAME in text or not shows_the_name, (where, text[:2000])
    red = page.evaluate("() => [...document.querySelectorAll('[class*=\"red\"], .katex')].map(e => e.outerHTML)"
                        ".filter(h => h.includes('x'))")
    assert red == [], (where, red)


def test_a_name_with_markdown_renders_as_text_and_fetches_nothing(catalogue, tmp_path):
    from playwright.sync_api import sync_playwright

    from core.catalogue.store import TaskInfo, add_to_local_copy, task_id_for

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    hostile = catalogue.fingerprints["brain_mri_4class"].renamed(HOSTILE_NAME)
    info = TaskInfo(id=task_id_for(HOSTILE_NAME), name=HOSTILE_NAME, modality="MR :red[y]", anatomy="brain",
                    classes={"[c](http://127.0.0.1:9/c)": 3}, n_images=3, kind="user")
    local = add_to_local_copy(hostile, info, tmp_path / "local")  # a real catalogue folder holding the name too
    shared = tmp_path / "shared.npz"
    hostile.save(shared)
    process, url = start_server({"TFE_CATALOGUE": str(local.root)}, "streamlit-markup.log")
    requests: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url, timeout=120_000)
            page.get_by_text("Load a shared fingerprint", exact=True).click(timeout=180_000)
            page.locator("[data-testid='stFileUploaderDropzoneInput']:not([webkitdirectory])").set_input_files(
                str(shared))
            page.get_by_role("button", name="Load fingerprint").click(timeout=60_000)
            page.get_by_text("Closest public tasks to").wait_for(timeout=180_000)
            page.wait_for_timeout(1500)
            check_page_shows_the_name_as_text(page, "Your task")
            page.screenshot(path=str(ARTIFACTS / "browser-markup-your-task.png"), full_page=True)
            for title in ("Recommendations", "Co-training plan", "Why this task?", "Map", "Heatmap"):
                open_page(page, title)
                if title == "Why this task?":
                    page.get_by_text("ImageNet classes:").first.wait_for(timeout=180_000)
                if title in ("Map", "Heatmap"):  # names in the figure only, which plotly reads as HTML
                    page.locator(".stPlotlyChart").first.wait_for(timeout=60_000)
                    page.wait_for_timeout(1500)
                    assert live_links(page) == [], (title, live_links(page))
                    if title == "Map":  # the star is labelled with your task's name
                        drawn = page.evaluate("() => document.querySelector('.stPlotlyChart').textContent")
                        assert "<a href='http://127.0.0.1:9/html'>h</a>" in drawn, (title, drawn[:500])
                else:  # "Why this task?" names the chosen public task, not yours
                    check_page_shows_the_name_as_text(page, title, shows_the_name=title != "Why this task?")
            page.screenshot(path=str(ARTIFACTS / "browser-markup-last.png"), full_page=True)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert requests and [r for r in requests if BEACON + "/" in r] == []
    # besides the app itself, only Streamlit's own page icons (Material Symbols from fonts.gstatic.com) are fetched
    foreign = [r for r in requests if not r.startswith((url, "data:", "blob:", "https://fonts.gstatic.com/"))]
    assert foreign == [], foreign
