"""benchmarks/determinism.py on a tiny shape: it runs, and with one thread count every run of
the fused op (at five alignments of its inputs) gives the same bits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "determinism.py"


def test_runs_are_bit_identical_at_one_thread_count():
    pytest.importorskip("torch")
    cmd = [sys.executable, str(SCRIPT), "--shape", "64x16x300", "--repeats", "5", "--threads", "2"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    row = next(line for line in out.splitlines() if line.split()[:1] == ["2"])
    assert row.split()[1:] == ["1", "distinct"] * 3, out
