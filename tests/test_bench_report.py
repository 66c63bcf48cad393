"""Smoke test of benchmarks/report.py on tiny files: it runs the command, measures, writes JSON.

No timing is asserted (DESIGN.md: benchmarks print figures, tests never assert on wall-clock).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_the_data_is_seeded_and_over_confident(bench, tmp_path) -> None:
    args = bench.write_data(500, 6, tmp_path, mapped=True)
    logits = np.load(args[0])
    labels = np.load(args[2])
    again = bench._chunk(500, 6, 0)[0]  # the same draws, from the seed alone
    np.testing.assert_array_equal(logits, again)
    assert logits.dtype == np.float32 and labels.shape == (500,)
    import crossent.calibration as cal

    assert 1.5 < cal.fit_temperature(logits, labels) < 2.6  # drawn from softmax(logits / 2)


def test_each_size_is_reported_in_its_own_process(bench, tmp_path, capsys) -> None:
    out = tmp_path / "report.json"
    argv = ["--sizes", "300", "--mapped", "200", "--classes", "5", "--dir", str(tmp_path)]
    assert bench.main([*argv, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["rows"], r["file"]) for r in rows] == [(300, "npz"), (200, "npy (memory map)")]
    for r in rows:
        assert r["wall_s"] > 0 and 0 <= r["ece"] <= 1 and len(r["temperatures"]) == 2
        if sys.platform.startswith("linux"):
            assert r["peak_rss_mb"] > 0
    assert "npy (memory map)" in capsys.readouterr().out
