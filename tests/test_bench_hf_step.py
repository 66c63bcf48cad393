"""Smoke test of benchmarks/hf_step.py on a tiny model: both methods run, from the same weights
and data their first losses agree, the JSON is written. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "hf_step.py"


@pytest.mark.slow
def test_patched_and_unpatched_steps_agree(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "hf.json"
    cmd = [sys.executable, str(SCRIPT), "--vocab", "300", "--seq", "32", "--layers", "1"]
    cmd += ["--hidden", "64", "--repeats", "1", "--json", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    rows = {r["method"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["hf"]["status"] == rows["crossent"]["status"] == "ok"
    assert rows["hf"]["first_loss"] == pytest.approx(rows["crossent"]["first_loss"], rel=1e-5)
    assert rows["hf"]["logits_bytes"] == 32 * 300 * 4


def test_bad_arguments_are_refused():
    for bad in (["--vocab", "0"], ["--seq", "x"], ["--methods", "nope"], ["--hidden", "100"]):
        proc = subprocess.run([sys.executable, str(SCRIPT), *bad], capture_output=True, text=True)
        assert proc.returncode == 2, bad
        assert "error" in proc.stderr and "Traceback" not in proc.stderr
