"""Smoke test of benchmarks/core.py on a tiny array: it runs, agrees on the loss, writes JSON.

No timing is asserted (DESIGN.md: benchmarks print figures, tests never assert on wall-clock).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "core.py"


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("torch")
    pytest.importorskip("scipy")
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("bench_core", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_every_method_computes_the_same_loss(bench, tmp_path, capsys):
    out = tmp_path / "core.json"
    argv = ["--rows", "64", "--classes", "10", "--repeat", "1", "--no-rss", "--json", str(out)]
    assert bench.main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["config"]["shape"] == [64, 10]
    losses = [r["loss"] for r in doc["results"] if r["kind"] != "floor"]
    assert len(losses) == len([m for m in bench.METHODS if m.kind != "floor"])
    assert all(math.isclose(v, losses[0], rel_tol=1e-5) for v in losses)
    floor = next(r for r in doc["results"] if r["method"] == bench.FLOOR)
    assert floor["x_floor"] == 1.0
    assert "crossent forward" in capsys.readouterr().out


def test_rss_peak_in_a_subprocess(bench):
    peak = bench.rss_peak("read once (np.sum)", 64, 10)
    assert peak is not None and peak >= 0
