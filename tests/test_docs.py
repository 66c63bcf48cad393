"""The documentation site builds as ``make docs`` builds it, and documents every public name.

The build runs in a copy of ``docs/`` in a temporary folder (so the source tree gets no
generated pages or figures), with the doctest builder (every example of the guides is run) and
then the HTML builder, both with warnings as errors. The list of names to find is not taken from
the docs' configuration: every public submodule of the package is found by walking it, so a
module or a name added to an ``__all__`` without a page fails here.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import crossent

DOCS = Path(__file__).resolve().parents[1] / "docs"
# the command implementations are documented as commands (the guides), not as an API
NOT_API = {"apps"}
# crossent.explore is the explorer's package; its API is the server's two entry points
EXPLORE = ["crossent.explore.server.create_app", "crossent.explore.server.serve"]
CHROMIUM = "/usr/bin/chromium"
# a <script> whose source is another site: http(s)://... or protocol-relative //...
REMOTE_SCRIPT = re.compile(r"""<script\b[^>]*\bsrc=["']((?:https?:)?//[^"']+)""", re.IGNORECASE)
# what the build writes into docs/ (git-ignored), not copied into the temporary source
GENERATED = ("_build", "_generated", "generated")


def public_names() -> list[str]:
    """Every ``module.name`` of ``crossent.__all__`` and of each public submodule's ``__all__``."""
    modules = [crossent.__name__] + [
        f"crossent.{info.name}"
        for info in pkgutil.iter_modules(crossent.__path__)
        if not info.name.startswith("_") and info.name not in NOT_API
    ]
    names = list(EXPLORE)
    for name in modules:
        module = importlib.import_module(name)
        names += [f"{name}.{item}" for item in getattr(module, "__all__", [])]
    return names


def sphinx(builder: str, source: Path, out: Path) -> None:
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder]
    done = subprocess.run(
        [*command, "-d", str(out / "doctrees"), str(source), str(out / builder)],
        capture_output=True,
        text=True,
        check=False,
    )
    # the warnings, each with its file and line, are the message of a failed build
    assert done.returncode == 0, f"sphinx -b {builder} failed:\n{done.stderr[-6000:]}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built once for this module's tests (doctest, then HTML): its html folder."""
    pytest.importorskip("sphinx", reason="the docs extra is not installed")
    pytest.importorskip("numpydoc", reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("site")
    source = out / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns(*GENERATED))
    sphinx("doctest", source, out)
    sphinx("html", source, out)
    return out / "html"


@pytest.mark.slow
def test_docs_build_with_every_public_name(site: Path) -> None:
    html = site
    names = public_names()
    assert "crossent.softmax_cross_entropy" in names  # the walk found the package's names
    missing = [n for n in names if not (html / "api" / "generated" / f"{n}.html").is_file()]
    assert not missing, f"public names without a page: {missing}"
    for guide in ("losses", "training", "evaluating", "teaching"):
        assert (html / "guides" / f"{guide}.html").is_file()
    # the figures drawn at build time reached the site
    images = {p.name for p in (html / "_images").iterdir()}
    assert {"reliability.svg", "curves.png", "calibration.png"} <= images

    # the formulas render offline: the pages with math load the site's own MathJax, whole (its
    # fonts beside it), and no page loads a script from another site
    remote, with_mathjax = [], set()
    for page in html.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        remote += [f"{page.relative_to(html)}: {src}" for src in REMOTE_SCRIPT.findall(text)]
        if re.search(r"""<script\b[^>]*\bsrc=["'][^"']*_static/mathjax/tex-chtml\.js""", text):
            with_mathjax.add(page.relative_to(html).as_posix())
    assert not remote, f"pages load remote scripts: {remote[:10]}"
    # a page with a formula (the loss's numpydoc docstring has a ``.. math::``)
    softmax_ce = "api/generated/crossent.softmax_cross_entropy.html"
    assert 'class="math' in (html / softmax_ce).read_text(encoding="utf-8")
    assert softmax_ce in with_mathjax
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert any((html / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))


@pytest.mark.slow
@pytest.mark.browser
def test_formulas_render_offline(site: Path) -> None:
    """A page's formulas are typeset by Chromium with every request off the file system refused."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is not installed (required under CI)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    page_path = site / "api" / "generated" / "crossent.softmax_cross_entropy.html"
    refused: list[str] = []

    def local_only(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True)
            context.route("**/*", local_only)
            page = context.new_page()
            page.goto(page_path.as_uri())
            page.wait_for_selector("mjx-container", timeout=30_000)
            typeset = page.locator("mjx-container").count()
            formulas = page.locator(".math").count()
        finally:
            browser.close()
    assert not refused, f"the page asked for {refused}"
    assert typeset >= formulas > 0  # every formula of the page became MathJax output
