"""``crossent explore`` in a real browser: Debian's Chromium driven by Playwright.

The server runs as the real command (``crossent explore --port 0 --no-browser``) in a
subprocess. The tests drag and type like a person, then read the numbers the page displays
(each readout carries its exact value in ``data-value``) and compare them with crossent's own
functions for the values the page shows. Every request the page makes is recorded and must go
to the server on 127.0.0.1. Skipped only when Chromium or Playwright is missing on a developer's
machine; under CI (the ``CI`` variable set) a missing browser is a failure.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import crossent as ce

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PANELS = ("quiz", "binary", "logits", "double", "smoothing", "pipeline")


def _require(available: bool, why: str) -> None:
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (required under CI)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The explorer served by the real command on a free 127.0.0.1 port."""
    import httpx

    code = "from crossent.apps.cli import main; main()"
    args = [sys.executable, "-c", code, "explore", "--port", "0", "--no-browser"]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"http://127\.0\.0\.1:\d+/", line)
            assert match, f"no address in {line!r}"
            url = match.group(0)
            deadline = time.monotonic() + 15
            while True:
                try:
                    httpx.get(url + "api/health", timeout=2).raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _require(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "the playwright Python package is not installed")
        raise
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A loaded explorer page that records every request and every error it sees."""

    def __init__(self, browser, url: str, width: int = 1280, height: int = 900) -> None:
        self.url = url
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on(
            "console",
            lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        self.page.goto(url)
        self.page.wait_for_function(
            "panels => panels.every(id => {"
            "  const s = document.getElementById(id);"
            "  return Number(s.dataset.revision || 0) >= 1 && s.dataset.state === 'ready'; })",
            arg=list(PANELS),
        )

    def revision(self, panel: str) -> int:
        return int(self.page.get_attribute(f"#{panel}", "data-revision") or 0)

    def settle(self, panel: str, after: int) -> None:
        """Wait until ``panel`` drew an answer newer than revision ``after`` and is idle."""
        self.page.wait_for_function(
            "([id, rev]) => { const s = document.getElementById(id);"
            " return Number(s.dataset.revision) > rev && s.dataset.state === 'ready'; }",
            arg=[panel, after],
        )
        assert self.page.get_attribute(f"#{panel}", "data-failed") == "false"

    def value(self, selector: str) -> float:
        raw = self.page.get_attribute(selector, "data-value")
        assert raw is not None, f"{selector} has no data-value"
        return float(raw)

    def json_attr(self, selector: str, name: str):
        return json.loads(self.page.get_attribute(selector, name) or "null")

    def set_range(self, selector: str, value: float) -> None:
        self.page.eval_on_selector(
            selector,
            "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input')); }",
            value,
        )

    def to_screen(self, selector: str, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of the point (x, y) of an SVG's viewBox."""
        return self.page.eval_on_selector(
            selector,
            "(svg, [x, y]) => { const p = svg.createSVGPoint(); p.x = x; p.y = y;"
            " const q = p.matrixTransform(svg.getScreenCTM()); return [q.x, q.y]; }",
            [x, y],
        )

    def drag(self, selector: str, start: tuple[float, float], end: tuple[float, float]) -> None:
        self.page.locator(selector).scroll_into_view_if_needed()
        mouse = self.page.mouse
        mouse.move(*self.to_screen(selector, *start))
        mouse.down()
        mouse.move(*self.to_screen(selector, *end), steps=8)
        mouse.up()

    def check_local_only(self) -> None:
        assert self.requests, "the page made no requests"
        outside = [url for url in self.requests if not url.startswith(self.url)]
        assert not outside, f"requests left {self.url}: {outside}"
        assert not self.problems, self.problems

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser, server_url) -> Iterator[Page]:
    loaded = Page(browser, server_url)
    yield loaded
    loaded.close()


def _check_logits_panel(page: Page) -> list[float]:
    """The logits panel's loss, bits, gradient and probabilities against crossent."""
    logits = page.json_attr("#logits-plot", "data-logits")
    target = int(page.page.get_attribute("#logits-plot", "data-target") or -1)
    z, t = np.array([logits]), np.array([target])
    loss = float(ce.softmax_cross_entropy(z, t))
    grad = np.asarray(ce.grad.softmax_cross_entropy(z, t))[0]
    probs = np.asarray(ce.softmax(z))[0]
    assert page.value("#logits-loss") == pytest.approx(loss, rel=1e-12)
    assert page.value("#logits-loss-bits") == pytest.approx(loss / math.log(2), rel=1e-12)
    assert page.value("#logits-grad-norm") == pytest.approx(np.linalg.norm(grad), rel=1e-12)
    assert page.value("#logits-entropy") == pytest.approx(float(ce.entropy(probs)), rel=1e-12)
    for i in range(len(logits)):
        assert page.value(f"#logits-grad-{i}") == pytest.approx(grad[i], rel=1e-12, abs=1e-15)
        assert page.value(f"#logits-p-{i}") == pytest.approx(probs[i], rel=1e-12)
    return logits


def test_page_loads_offline_renders_every_panel_and_stays_on_127_0_0_1(
    browser, server_url, tmp_path_factory
):
    loaded = Page(browser, server_url)
    try:
        page = loaded.page
        assert page.title().startswith("crossent explore")
        assert page.text_content("#version") == ce.__version__
        for panel in PANELS:
            assert page.is_hidden(f"#{panel} .error"), panel
        for chart in ("#quiz-bars", "#quiz-curve", "#binary-plot", "#logits-plot"):
            assert page.eval_on_selector(chart, "svg => svg.childElementCount") > 0
        shot = tmp_path_factory.mktemp("explore") / "explore.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        if os.environ.get("CROSSENT_EXPLORE_SCREENSHOT"):
            shutil.copy(shot, os.environ["CROSSENT_EXPLORE_SCREENSHOT"])
        loaded.check_local_only()
        assert any(url.endswith("/api/softmax_ce") for url in loaded.requests)
    finally:
        loaded.close()


def test_typing_a_logit_shows_crossents_loss_and_gradient(page):
    before = page.revision("logits")
    assert _check_logits_panel(page) == [2.0, 1.2, 0.3, -0.8, -2.0]
    page.page.fill("#logits-z-1", "3.5")
    page.settle("logits", before)
    assert _check_logits_panel(page) == [2.0, 3.5, 0.3, -0.8, -2.0]
    assert page.value("#logits-grad-0") < 0 < page.value("#logits-grad-1")
    page.check_local_only()


def test_dragging_a_logit_bar_moves_the_loss_and_the_gradient(page):
    loss_before = page.value("#logits-loss")
    before = page.revision("logits")
    # class 0's bar: centre x = 48 + 0.5 * 504 / 5, its top at z = 2 (zero line y = 104, 12 px/unit)
    x = 48 + 0.5 * 504 / 5
    page.drag("#logits-plot", (x, 104 - 2 * 12), (x, 104 - 5 * 12))
    page.settle("logits", before)
    logits = _check_logits_panel(page)
    assert logits[0] == pytest.approx(5.0, abs=0.1)
    assert logits[1:] == [1.2, 0.3, -0.8, -2.0]
    assert page.value("#logits-loss") < loss_before  # the true class was pushed up
    page.check_local_only()


def test_quiz_bars_stay_a_distribution_and_show_the_cross_entropy(page):
    before = page.revision("quiz")
    # class 0 of 5 (the true class is 1): centre x = 44 + 0.5 * 508 / 5; p = 1 at y = 24
    x = 44 + 0.5 * 508 / 5
    page.drag("#quiz-bars", (x, 222 - 0.1 * 198), (x, 222 - 0.6 * 198))
    page.settle("quiz", before)
    probs = np.array(page.json_attr("#quiz-bars", "data-probs"))
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    assert probs[0] == pytest.approx(0.6, abs=0.02)
    y = np.eye(5)[1]
    assert page.value("#quiz-ce") == pytest.approx(float(ce.cross_entropy(y, probs)), rel=1e-12)
    assert page.value("#quiz-ce") == pytest.approx(-math.log(probs[1]), rel=1e-12)
    assert page.value("#quiz-ce-bits") == pytest.approx(-math.log2(probs[1]), rel=1e-12)
    assert page.value("#quiz-entropy") == pytest.approx(float(ce.entropy(probs)), rel=1e-12)
    assert page.value("#quiz-kl") == pytest.approx(float(ce.kl_divergence(y, probs)), rel=1e-12)
    assert page.value("#quiz-mse") == pytest.approx(float(((probs - y) ** 2).sum()), rel=1e-12)

    before = page.revision("quiz")
    page.page.click("#quiz-uniform")
    page.settle("quiz", before)
    assert page.value("#quiz-ce") == pytest.approx(math.log(5), rel=1e-12)
    before = page.revision("quiz")
    page.page.click("#quiz-k-plus")
    page.settle("quiz", before)
    assert page.value("#quiz-uniform-loss") == pytest.approx(math.log(6), rel=1e-12)
    page.check_local_only()


def test_binary_slider_and_label(page):
    before = page.revision("binary")
    page.set_range("#binary-p", 0.01)
    page.settle("binary", before)
    loss = float(ce.binary_cross_entropy(np.array([0.01]), np.array([1.0])))
    assert page.value("#binary-loss") == pytest.approx(loss, rel=1e-12)
    assert page.value("#binary-mse") == pytest.approx(0.99**2, rel=1e-9)
    assert page.value("#binary-grad") == pytest.approx(-0.99, rel=1e-9)
    before = page.revision("binary")
    page.page.click("#binary-y0")
    page.settle("binary", before)
    assert page.value("#binary-loss") == pytest.approx(-math.log(0.99), rel=1e-9)
    page.check_local_only()


def test_double_softmax_smoothing_and_pipeline_show_library_values(page):
    z, t = np.array([[2.0, 1.0, 0.1]]), np.array([0])
    right = float(ce.softmax_cross_entropy(z, t))
    wrong = float(ce.softmax_cross_entropy(ce.softmax(z), t))
    assert page.value("#double-right-loss") == pytest.approx(right, rel=1e-12)
    assert page.value("#double-wrong-loss") == pytest.approx(wrong, rel=1e-12)
    ratio = page.value("#double-wrong-norm") / page.value("#double-right-norm")
    assert page.value("#double-ratio") == pytest.approx(ratio, rel=1e-12)
    assert page.page.text_content("#double-diagnosis").count("probabilities_as_logits") == 1

    before = page.revision("smoothing")
    page.set_range("#smoothing-eps", 0.2)
    page.set_range("#smoothing-temp", 2.0)
    page.settle("smoothing", before)
    z5 = np.array([[2.0, 1.2, 0.3, -0.8, -2.0]]) / 2.0
    smoothed = float(ce.softmax_cross_entropy(z5, t, label_smoothing=0.2))
    focal = float(ce.softmax_focal_loss(z5, t, gamma=2.0))
    assert page.value("#smoothing-smoothed") == pytest.approx(smoothed, rel=1e-12)
    assert page.value("#smoothing-focal") == pytest.approx(focal, rel=1e-12)
    assert page.value("#smoothing-qt") == pytest.approx(0.8 + 0.2 / 5, rel=1e-12)

    losses = [page.value("#pipe-loss")]
    for _ in range(3):
        before = page.revision("pipeline")
        page.page.click("#pipe-step")
        page.settle("pipeline", before)
        cells = page.page.eval_on_selector_all(
            "#pipe-W tr", "rows => rows.map(r => [...r.cells].map(c => Number(c.dataset.value)))"
        )
        x = page.page.eval_on_selector_all(
            "#pipe-x td", "cells => cells.map(c => Number(c.dataset.value))"
        )
        weights_and_bias = np.array(cells)
        logits = weights_and_bias[:, :-1] @ np.array(x) + weights_and_bias[:, -1]
        loss = float(ce.softmax_cross_entropy(logits[None, :], t))
        assert page.value("#pipe-loss") == pytest.approx(loss, rel=1e-12)
        losses.append(loss)
    assert losses == sorted(losses, reverse=True)  # each step of gradient descent helps
    page.check_local_only()


def test_narrow_screen_has_no_horizontal_scroll(browser, server_url, tmp_path):
    loaded = Page(browser, server_url, width=390, height=844)
    try:
        overflow = loaded.page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1
        loaded.page.screenshot(path=str(tmp_path / "narrow.png"), full_page=True)
        loaded.check_local_only()
    finally:
        loaded.close()
