"""Snakemake's HTML report of the tiny study, opened in headless Chromium (Debian's chromium and
chromium-driver, installed by scripts/browser_setup.sh): every image result (sample grids, comparison
figures, training curves, overview charts) is shown at its natural size, the screen is not blank, and
the console has no error, and the first screen shows the verdicts. Screenshots: results/report_screenshot.png
(a sample grid) and results/report_screenshots/ (first_screen.png and one per image), in the study's copy and in
this repository's results/ci/ (CI keeps them)."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import (ElementClickInterceptedException, ElementNotInteractableException,
                                        StaleElementReferenceException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT, copy_repo, tiny, write_params
from test_workflow import BIN, sh

pytestmark = pytest.mark.workflow
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TIMEOUT = 60  # seconds for any load, render or click: generous on a slow shared 2-core machine
WINDOW = (1400, 1000)
CI_ARTIFACTS = ROOT / "results/ci"

# Snakemake's report keeps its results in the page's globals `results` (path -> name, labels, mime type,
# data URI) and `categories` (category -> subcategory -> paths): one row per image result.
IMAGE_RESULTS = """
const where = {};
for (const [category, subs] of Object.entries(categories))
  for (const [sub, paths] of Object.entries(subs)) for (const p of paths) where[p] = [category, sub];
return Object.entries(results).filter(([p, r]) => r.mime_type.startsWith("image/"))
  .map(([p, r]) => [p, ...where[p], r.labels ? Object.values(r.labels).map(String) : [p]]);
"""
# The main panel's <img> of a result, once it has loaded or failed (null until then).
SHOWN = """
const img = [...document.images].find(i => !i.closest("nav") && i.src === results[arguments[0]].data_uri);
return img && img.complete ? img : null;
"""
# Is the element itself what a click at its centre would hit (not a neighbour sliding over it)?
ON_TOP = """
const el = arguments[0], r = el.getBoundingClientRect();
const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
return r.width > 0 && r.height > 0 && hit !== null && (hit === el || el.contains(hit));
"""
# Every <img> on screen, once all have loaded or failed: [start of src, naturalWidth] (null until then).
ON_SCREEN = """
const imgs = [...document.images].filter(i => i.getClientRects().length);
return imgs.every(i => i.complete) ? imgs.map(i => [i.src.slice(0, 60), i.naturalWidth]) : null;
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory, default_params) -> Path:
    """results/report.html of the tiny study, made as scripts/run.sh makes it."""
    repo = copy_repo(tmp_path_factory.mktemp("report") / "repo")
    write_params(tiny(default_params), repo / "params.yaml")
    sh(repo, "snakemake", "--cores", "2")
    sh(repo, "snakemake", "--report", "results/report.html")
    return repo / "results/report.html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:  # CI installs it: a missing browser is a broken set-up, not a reason to skip
        pytest.fail(f"headless Chromium is missing ({', '.join(missing)}): run `bash scripts/browser_setup.sh` "
                    "(scripts/test.sh does)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--force-device-scale-factor=1", "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(TIMEOUT)
        driver.set_script_timeout(TIMEOUT)
        yield driver
    finally:
        driver.quit()


def pixel_std(png: bytes) -> float:
    """Standard deviation of a screenshot's grey levels (0 for a blank one)."""
    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float).std())


class Report:
    """The report in the browser, with every severe console entry (JavaScript errors included) kept."""

    def __init__(self, driver, html: Path):
        self.driver, self.url, self.errors = driver, html.as_uri(), []

    def wait(self, condition, what: str):
        try:
            return WebDriverWait(self.driver, TIMEOUT, poll_frequency=0.2).until(lambda d: condition())
        except Exception as error:
            self.console()
            raise AssertionError(f"report: no {what} within {TIMEOUT} s; console errors: {self.errors}") from error

    def console(self):
        self.errors += [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def click(self, find, what: str):
        """Click the element ``find()`` returns once it is displayed, enabled, at the same place on two
        polls in a row (the sidebar animates), and on top at its centre. A click that lands elsewhere
        all the same (the element moved or was replaced in between) is not dispatched by the driver
        and is tried again on the next poll."""
        last = {}

        def clicked() -> bool:
            try:
                element = find()
                if element is None or not (element.is_displayed() and element.is_enabled()):
                    return False
                rect, previous = element.rect, last.get(element.id)
                last.clear()
                last[element.id] = rect
                if rect != previous or not self.driver.execute_script(ON_TOP, element):
                    return False
                element.click()
                return True
            except (ElementClickInterceptedException, ElementNotInteractableException, StaleElementReferenceException):
                last.clear()
                return False

        self.wait(clicked, f"clickable {what}")

    def link(self, text: str):
        """The sidebar's link reading ``text``, or None."""
        found = self.driver.find_elements(By.XPATH, f'//nav//a[normalize-space(.)="{text}"]')
        return found[0] if found else None

    def open(self, category: str, subcategory: str):
        """Load the page afresh and open a category (and its subcategory, where the report lists them)."""
        self.driver.get(self.url)
        self.click(lambda: self.link(category), f"sidebar link {category!r}")
        self.wait(lambda: self.link(subcategory) or self.rows(), f"contents of {category!r}")
        if self.link(subcategory):  # a lone subcategory is not listed: its rows show at once
            self.click(lambda: self.link(subcategory), f"sidebar link {subcategory!r}")

    def rows(self) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, "nav tbody tr")

    def show(self, path: str, cells: list[str]):
        """Click the eye of the result's row (its path, or its labels); its <img> once loaded."""
        def eye():
            for tr in self.rows():
                if {td.text.strip() for td in tr.find_elements(By.TAG_NAME, "td")} - {""} == set(cells):
                    return tr.find_element(By.CSS_SELECTOR, "a[iconname=eye]")
        self.click(eye, f"eye of row {cells} for {path}")
        img = self.wait(lambda: self.driver.execute_script(SHOWN, path), f"image of {path}")
        self.console()
        return img


def test_the_report_renders_in_headless_chromium(report, browser):
    page = Report(browser, report)
    shots = report.parent / "report_screenshots"
    shutil.rmtree(shots, ignore_errors=True)  # a repeated run (pytest --count) starts clean
    shots.mkdir()
    (report.parent / "report_screenshot.png").unlink(missing_ok=True)
    try:
        page.driver.get(page.url)
        page.wait(lambda: page.driver.execute_script("return document.readyState") == "complete", "page load")
        assert page.driver.title == "Snakemake Report"
        # the first screen is the study's verdicts (results/verdicts.rst, the Snakefile's report:)
        text = "return document.body.innerText"
        first = page.wait(lambda: "Verdicts of this study" in page.driver.execute_script(text)
                          and page.driver.execute_script(text), "verdict table on the first screen")
        assert "Holm" in first and "msgan: ndb lower than cgan" in first and "icgan: " in first
        (shots / "first_screen.png").write_bytes(page.driver.get_screenshot_as_png())
        images = page.driver.execute_script(IMAGE_RESULTS)
        for kind in ("samples.png", "curves_gan.png", "metrics.png", "msgan.png", "nearest_gan.png"):  # grids, curves, charts, papers, nearest
            assert any(path.endswith(kind) for path, *_ in images), f"no {kind} among the report's images {images}"
        for path, category, subcategory, cells in images:
            page.open(category, subcategory)
            img = page.show(path, cells)
            width, height = img.get_property("naturalWidth"), img.get_property("naturalHeight")
            assert width > 0 and height > 0, f"{path}: the image did not decode (natural size {width}x{height})"
            on_screen = page.wait(lambda: page.driver.execute_script(ON_SCREEN), "images on screen to load")
            assert all(w > 0 for _, w in on_screen), f"{path}: an image on screen has no natural size: {on_screen}"
            png = page.driver.get_screenshot_as_png()
            (shots / "_".join(Path(path).relative_to("results").parts)).write_bytes(png)
            if path.endswith("samples.png") and not (report.parent / "report_screenshot.png").exists():
                (report.parent / "report_screenshot.png").write_bytes(png)
            assert pixel_std(png) > 10, f"{path}: the screenshot is blank"
            assert pixel_std(img.screenshot_as_png) > 5, f"{path}: the image is shown blank"
        page.console()
        assert not page.errors, f"the report logged errors in the browser console: {page.errors}"
        assert (report.parent / "report_screenshot.png").exists()
    finally:  # kept for CI also when a check fails; an earlier run's are replaced
        CI_ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (CI_ARTIFACTS / "report_screenshot.png").unlink(missing_ok=True)
        shutil.rmtree(CI_ARTIFACTS / "report_screenshots", ignore_errors=True)
        if (report.parent / "report_screenshot.png").exists():
            shutil.copy(report.parent / "report_screenshot.png", CI_ARTIFACTS / "report_screenshot.png")
        shutil.copytree(shots, CI_ARTIFACTS / "report_screenshots")


# The number of vega-embed views on the page once every one has drawn its marks (null before).
DRAWN = """
const views = [...document.querySelectorAll(".vega-embed")];
if (!views.length || views.some(v => !v.querySelector(".marks"))) return null;
return views.length;
"""


def test_dvc_plots_draw_offline_with_labelled_axes(report, browser):
    """`dvc plots show` on the tiny study: its page carries Vega inline (pipeline/plots_template.py),
    so with no network it draws every run's curves, each with its axis labels (a line per seed:
    tests/test_dvc.py)."""
    repo = report.parents[1]
    if not (repo / ".git").exists():
        sh(repo, "git", "init", "-q")  # DVC reads plots through its SCM
    sh(repo, "python", "-m", "pipeline.dvcgen")
    sh(repo, "python", "-m", "pipeline.plots_template", "--out", ".dvc/plots_template.html")
    shown = subprocess.run([str(BIN / "dvc"), "plots", "show", "--json"], cwd=repo, capture_output=True, text=True,
                           check=True).stdout
    specs = {name: views[0]["content"] for name, views in json.loads(shown)["data"].items()}
    page_dir = repo / "dvc_plots"
    sh(repo, "dvc", "plots", "show", "-o", str(page_dir))
    html = (page_dir / "index.html").read_text()
    assert "cdn.jsdelivr" not in html and "<script src=" not in html  # nothing to fetch
    assert set(specs) == {"gan g_loss", "gan d_loss"}
    for name, spec in specs.items():
        y = spec["layer"][0]["encoding"]["y"]
        assert spec["encoding"]["x"]["title"] == "training step" and y["title"] == {"g": "G loss", "d": "D loss"}[name[4]]
        assert len(spec["data"]["values"]) == 3, name  # the log's rows: 6 steps, logged every 2
    browser.get((page_dir / "index.html").as_uri())
    page = Report(browser, page_dir / "index.html")
    assert page.wait(lambda: browser.execute_script(DRAWN), "plots drawn") == len(specs)
    png = browser.get_screenshot_as_png()
    CI_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (CI_ARTIFACTS / "dvc_plots.png").write_bytes(png)
    assert pixel_std(png) > 5, "the plots page is blank"
    page.console()
    assert not page.errors, f"the plots page logged errors: {page.errors}"
