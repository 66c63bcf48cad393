"""Smoke test of benchmarks/streaming.py on a tiny array: it runs, every method agrees, JSON.

No timing is asserted (DESIGN.md: benchmarks print figures, tests never assert on wall-clock).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "streaming.py"


def test_every_method_gives_the_one_shot_figures(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_streaming", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "streaming.json"
    argv = ["--rows", "300", "--classes", "7", "--batch", "64", "--repeat", "1"]
    assert bench.main([*argv, "--json", str(out)]) == 0  # 1 if a figure differed
    doc = json.loads(out.read_text())
    assert doc["config"]["shape"] == [300, 7]
    assert len(doc["results"]) == 5
    assert all(r["max_rel_diff"] < 1e-4 for r in doc["results"])
    assert "streamed summaries" in capsys.readouterr().out
