"""Smoke test of benchmarks/families.py on a tiny array: every family runs, crossent and the peers
agree on each loss, a method that raises becomes an error row instead of stopping the run.

No timing is asserted (DESIGN.md: benchmarks print figures, tests never assert on wall-clock).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest


def _script() -> Path:
    """benchmarks/families.py of the repository holding this test (at any depth in tests/)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "benchmarks" / "families.py"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("benchmarks/families.py")


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("bench_families", _script())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _jax_installed() -> bool:
    return importlib.util.find_spec("jax") is not None


def test_every_family_runs_and_crossent_agrees_with_its_peers(bench, tmp_path, capsys):
    out = tmp_path / "families.json"
    argv = ["--rows", "64", "--classes", "7", "--repeat", "1", "--no-rss", "--json", str(out)]
    assert bench.main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["config"]["shape"] == [64, 7]
    printed = capsys.readouterr().out
    for family in bench.FAMILY_KEYS:
        rows = [r for r in doc["results"] if r["family"] == family]
        assert {r["library"] for r in rows} == {"numpy", "torch", "jax"}, family
        assert {r["mode"] for r in rows} == {"fwd", "fwd+bwd"}, family
        assert f"\n{family}: " in printed
        for r in rows:
            if r["error"]:  # allowed for crossent (the script outlives API changes), shown
                assert r["role"] == "crossent" or (r["library"] == "jax" and not _jax_installed())
                assert f"error: {r['error']}"[:60] in printed
                continue
            assert r["best_s"] > 0 and len(r["times_s"]) == 1
            if r["role"] == "crossent":
                assert r["x_peer"] is not None and r["peer"], r
        ok = [r for r in rows if not r["error"]]
        assert any(r["role"] == "crossent" for r in ok), f"{family}: every crossent row failed"
        reference = next(r for r in ok if r["library"] == "torch" and r["role"] == "peer")["loss"]
        for r in ok:
            assert math.isclose(r["loss"], reference, rel_tol=1e-4), (family, r, reference)


def test_a_method_that_raises_is_an_error_row(bench):
    def broken(data):
        raise TypeError("unexpected keyword argument 'z'\nsecond line")

    def fine(data):
        return (lambda: 1.5), "note"

    methods = [
        bench.Method("f", "numpy", "fwd", "broken", "crossent", broken),
        bench.Method("f", "numpy", "fwd", "fine", "peer", fine),
    ]
    timed = bench.time_family(methods, bench.Data(4, 3), repeat=2)
    bad, good = (timed[m.key] for m in methods)
    assert bad["error"] == "TypeError: unexpected keyword argument 'z'" and not bad["times_s"]
    assert good["error"] is None and good["loss"] == 1.5 and len(good["times_s"]) == 2
    row = {"library": "numpy", "mode": "fwd", "method": "broken", "note": "", **bad}
    assert "error: TypeError: unexpected keyword argument 'z'" in bench._row_text(row)


@pytest.mark.skipif(sys.platform != "linux", reason="VmHWM reset is Linux-only")
def test_rss_peak_of_a_torch_row_in_a_subprocess(bench):
    family = next(f for f in bench._families() if f.key == "softmax_ce")
    peer = next(m for m in bench.methods_of(family) if m.library == "torch" and m.role == "peer")
    peak = bench.rss_peak(peer.key, 64, 7)
    assert peak is not None and peak >= 0
