"""The README is a newcomer's first page: it opens with the two commands, its examples run, and
its headline figures are the benchmarks page's.

The detail lives on the documentation site (``make docs``, checked by ``test_docs.py``); the
README keeps a short tour whose Python examples are executed here, in order, in one namespace
(as a reader would paste them), and a headline table whose every figure must be found in
``docs/benchmarks.rst``, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of the README's ``## title`` section, up to the next ``## ``."""
    pattern = rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)"
    match = re.search(pattern, README, re.MULTILINE | re.DOTALL)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_readme_starts_with_the_two_commands() -> None:
    first = re.search(r"```bash\n(.*?)```", README, re.DOTALL)
    assert first and first.start() < README.index("\n## "), "the commands come before any section"
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert commands[:2] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for command in commands:
        target = command.removeprefix("make ")
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"no Makefile target {target}"


def test_readme_examples_run() -> None:
    pytest.importorskip("torch", reason="the torch extra is not installed")
    pytest.importorskip("jax", reason="the jax extra is not installed")
    pytest.importorskip("transformers", reason="the transformers extra is not installed")
    pytest.importorskip("matplotlib", reason="the report extra is not installed")
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert len(blocks) >= 4  # the core losses, torch and JAX, the fused op and patch, the report
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks):
        exec(compile(block, f"README.md, python block {number + 1}", "exec"), namespace)
    # a line ``expression  # 0.2851`` prints the expression's value to the digits shown
    printed = [
        (match.group(1), match.group(2))
        for block in blocks
        for match in re.finditer(r"^(\S[^#\n]*?)\s+# (-?\d+\.\d+)$", block, re.MULTILINE)
    ]
    assert len(printed) >= 3
    for expression, figure in printed:
        value = float(eval(expression, namespace))
        decimals = len(figure.split(".")[1])
        assert round(value, decimals) == float(figure), f"{expression} is {value}, not {figure}"


def test_headline_figures_are_the_benchmarks_pages() -> None:
    table = [line for line in section("Headline figures").splitlines() if line.startswith("| ")]
    assert len(table) >= 4
    benchmarks = (ROOT / "docs" / "benchmarks.rst").read_text(encoding="utf-8")
    # decimals (50.3), grouped thousands (3,303) and plain numbers of 3 digits or more (1195)
    number = r"\d[\d,]*\.\d+|\d{1,3}(?:,\d{3})+|\d{3,}"
    figures = {f for row in table[1:] for f in re.findall(number, row)}
    assert len(figures) >= 10
    missing = sorted(f for f in figures if f not in benchmarks)
    assert not missing, f"README figures not on the benchmarks page: {missing}"
