"""Smoke test of benchmarks/linear_ce_jax.py at a tiny shape: every method runs in its child,
the three losses agree (the materialized optax loss is the reference) and are near log V for
unit-scale logits, the JSON is written. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "linear_ce_jax.py"


@pytest.mark.slow  # three children importing JAX
def test_methods_run_and_agree(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--shapes", "64x16x300", "--repeats", "1"]
    cmd += ["--chunk-size", "24", "--json", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    rows = json.loads(out.read_text())["results"]
    assert [r["method"] for r in rows] == ["optax", "crossent", "crossent-recompute"]
    assert all(r["status"] == "ok" for r in rows), rows
    losses = [r["loss"] for r in rows]
    # float32 runs: the random inputs' loss is about log(300), the same for all three
    assert max(losses) - min(losses) < 1e-4 * abs(losses[0])
    assert abs(losses[0] - np.log(300)) < 1.0
    assert all(r["gradient_bytes"] == (64 * 16 + 300 * 16) * 4 for r in rows)


def test_bad_arguments_are_refused():
    for bad in (["--shapes", "12x3"], ["--methods", "nope"], ["--repeats", "0"]):
        proc = subprocess.run([sys.executable, str(SCRIPT), *bad], capture_output=True, text=True)
        assert proc.returncode == 2, bad
        assert "error" in proc.stderr and "Traceback" not in proc.stderr
