"""Time and memory of crossent's softmax cross-entropy against its peers, in one run.

One (N, K) float32 NumPy array of logits (default 65536 x 1000, 262 MB) with random integer
targets, and, for each method, the best of ``--repeat`` timed calls after one warm-up call
(the methods take turns, one call each per round):

- the memory-bandwidth floor: ``np.sum`` of the array (one read pass, nothing written), and a
  copy into a preallocated array (one read and one write pass), for scale;
- ``crossent.softmax_cross_entropy`` (forward), and forward +
  ``crossent.grad.softmax_cross_entropy`` (the closed-form gradient, a separate call), and
  both from one pass with ``grad.softmax_cross_entropy(..., with_loss=True)``;
- ``torch.nn.functional.cross_entropy`` on CPU on the same memory (``torch.from_numpy``), forward
  and forward + ``backward()``;
- ``crossent.softmax_cross_entropy`` on a torch tensor (the closed-form backward) on the same
  tensor, forward + ``backward()``;
- ``scipy.special.log_softmax`` plus a gather of the target column;
- ``sklearn.metrics.log_loss`` on softmax probabilities with ``labels`` given (the
  probabilities are computed once, outside the timing).

Times are reported as ratios to the floor and to torch (forward methods against torch forward,
gradient methods against torch forward + backward). Peak memory above the inputs is measured
twice: with ``tracemalloc`` in this process (it sees NumPy's buffers but not torch's, so torch
rows show "n/a"), and as the growth of the peak resident set (VmHWM, or ``ru_maxrss`` off Linux)
while one call runs in a fresh subprocess, which sees every allocator. Both count what a call
allocates on top of its inputs, temporaries included.

Usage::

    python benchmarks/core.py [--rows 65536] [--classes 1000] [--repeat 5] [--json PATH]

Numbers depend on the machine; nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from _peak import measure, versions, write_json

Setup = Callable[[np.ndarray, np.ndarray], Callable[[], Any]]


@dataclass(frozen=True)
class Method:
    """A benchmarked computation: ``setup(x, t)`` prepares inputs and returns the timed call."""

    name: str
    kind: str  # "floor", "forward" or "gradient": what its time is compared with
    setup: Setup
    uses_torch: bool = False


def _floor_sum(x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    return lambda: np.sum(x)


def _floor_copy(x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    out = np.zeros_like(x)  # touched now, so the copy's pages are resident before the call
    return lambda: np.copyto(out, x)


def _crossent_forward(x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    import crossent as ce

    return lambda: float(ce.softmax_cross_entropy(x, t))


def _crossent_gradient(x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    import crossent as ce

    def run() -> float:
        loss = ce.softmax_cross_entropy(x, t)
        ce.grad.softmax_cross_entropy(x, t)
        return float(loss)

    return run


def _crossent_fused(x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    import crossent as ce

    def run() -> float:
        loss, _ = ce.grad.softmax_cross_entropy(x, t, with_loss=True)
        return float(loss)

    return run


def _torch_forward(x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    xt, tt = torch.from_numpy(x), torch.from_numpy(t)

    def run() -> float:
        with torch.no_grad():
            return float(F.cross_entropy(xt, tt))

    return run


def _torch_gradient(x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    xt, tt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(t)

    def run() -> float:
        xt.grad = None
        loss = F.cross_entropy(xt, tt)
        loss.backward()
        return float(loss.detach())

    return run


def _crossent_torch_gradient(x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    import torch

    import crossent as ce

    xt, tt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(t)

    def run() -> float:
        xt.grad = None
        loss = ce.softmax_cross_entropy(xt, tt)  # the torch path: the closed-form Function
        loss.backward()
        return float(loss.detach())

    return run


def _scipy(x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    from scipy.special import log_softmax

    rows = np.arange(x.shape[0])
    return lambda: float(-log_softmax(x, axis=1)[rows, t].mean())


def _sklearn(x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    from sklearn.metrics import log_loss

    # Softmax in place into one new array, so the setup leaves no larger peak behind.
    probs = x - x.max(axis=1, keepdims=True)
    np.exp(probs, out=probs)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.arange(x.shape[1])
    return lambda: float(log_loss(t, probs, labels=labels))


METHODS = [
    Method("read once (np.sum)", "floor", _floor_sum),
    Method("copy (read + write)", "floor", _floor_copy),
    Method("crossent forward", "forward", _crossent_forward),
    Method("crossent forward + grad", "gradient", _crossent_gradient),
    Method("crossent grad(with_loss=True)", "gradient", _crossent_fused),
    Method("torch forward", "forward", _torch_forward, uses_torch=True),
    Method("torch forward + backward", "gradient", _torch_gradient, uses_torch=True),
    Method("crossent on torch fwd + bwd", "gradient", _crossent_torch_gradient, uses_torch=True),
    Method("scipy log_softmax + gather", "forward", _scipy),
    Method("sklearn log_loss (on probs)", "forward", _sklearn),
]
FLOOR, TORCH = (
    "read once (np.sum)",
    {"forward": "torch forward", "gradient": "torch forward + backward"},
)


def make_data(rows: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal float32 logits (drawn in float32: no float64 copy) and int64 targets."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, classes), dtype=np.float32)
    return x, rng.integers(0, classes, size=rows)


def interleaved_times(calls: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """Seconds of ``repeat`` calls of each method, after one warm-up call of each.

    The methods take turns (one call of each per round), so a burst of load from another process
    on a shared machine hits every method alike instead of one method's whole series; the best
    of its calls is each method's figure.
    """
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def traced_peak(call: Callable[[], Any]) -> float:
    """Peak bytes allocated during one call, as tracemalloc sees them (NumPy: yes, torch: no)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        call()
        return float(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()


def rss_child(name: str, rows: int, classes: int) -> None:
    """In a fresh process: the growth of the peak RSS during one call of ``name`` (prints JSON;
    how it is measured: _peak.measure)."""
    method = next(m for m in METHODS if m.name == name)
    x, t = make_data(rows, classes)
    call = method.setup(x, t)
    measured = measure(call)
    print(json.dumps({"rss_peak_bytes": measured.peak_bytes, "how": measured.how}))


def rss_peak(name: str, rows: int, classes: int) -> float | None:
    """Run :func:`rss_child` in a subprocess; None if it failed."""
    cmd = [sys.executable, __file__, "--rss-child", name, "--rows", str(rows)]
    proc = subprocess.run(
        [*cmd, "--classes", str(classes)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        print(f"  (rss measurement of {name!r} failed: {proc.stderr.strip()[-200:]})")
        return None
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["rss_peak_bytes"])


def main(argv: list[str] | None = None) -> int:
    """Run every method, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=65536)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5, help="timed calls after a warm-up")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--no-rss", action="store_true", help="skip the subprocess RSS runs")
    parser.add_argument("--rss-child", metavar="METHOD", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child, args.rows, args.classes)
        return 0

    import torch

    x, t = make_data(args.rows, args.classes)
    mb = 1e6
    from crossent import _fast

    threads = _fast.THREADS
    config = {
        "shape": list(x.shape),
        "dtype": str(x.dtype),
        "array_mb": x.nbytes / mb,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "crossent_threads": threads,
        "machine": platform.machine(),
        "versions": versions("numpy", "torch", "scipy", "sklearn", "crossent"),
    }
    print(
        f"softmax cross-entropy on a {x.shape[0]} x {x.shape[1]} {x.dtype} array "
        f"({x.nbytes / mb:.0f} MB), random int64 targets; best of {args.repeat} "
        f"interleaved rounds after a warm-up; "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"crossent's NumPy kernels on {threads} threads"
    )
    calls = {m.name: m.setup(x, t) for m in METHODS}
    times = interleaved_times(calls, args.repeat)
    results: list[dict[str, Any]] = []
    for method in METHODS:
        call = calls.pop(method.name)
        traced = None if method.uses_torch else traced_peak(call)
        loss = call() if method.kind != "floor" else None
        del call
        rss = None if args.no_rss else rss_peak(method.name, args.rows, args.classes)
        results.append(
            {
                "method": method.name,
                "kind": method.kind,
                "best_s": min(times[method.name]),
                "times_s": times[method.name],
                "loss": loss,
                "tracemalloc_peak_mb": None if traced is None else traced / mb,
                "rss_peak_mb": None if rss is None else rss / mb,
            }
        )
    by_name = {r["method"]: r for r in results}
    for r in results:
        r["x_floor"] = r["best_s"] / by_name[FLOOR]["best_s"]
        peer = TORCH.get(r["kind"], TORCH["forward"])
        r["x_torch"] = r["best_s"] / by_name[peer]["best_s"]
        r["gb_per_s"] = x.nbytes / r["best_s"] / 1e9

    def fmt(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    header = (
        f"{'method':<29}{'best ms':>9}{'x floor':>9}{'x torch':>9}{'GB/s':>7}"
        f"{'loss':>9}{'tracemalloc MB':>16}{'RSS MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['method']:<29}{r['best_s'] * 1e3:>9.1f}{r['x_floor']:>9.2f}{r['x_torch']:>9.2f}"
            f"{r['gb_per_s']:>7.1f}{fmt(r['loss'], '.5f'):>9}"
            f"{fmt(r['tracemalloc_peak_mb'], '.0f'):>16}{fmt(r['rss_peak_mb'], '.0f'):>9}"
        )
    print(
        "x torch: forward rows against torch forward, gradient rows against torch forward + "
        "backward.\ntracemalloc MB: peak NumPy allocation during one call (torch's allocator is "
        "invisible to it);\nRSS MB: growth of the peak resident set during one call in a fresh "
        "process (all allocators)."
    )
    write_json(args.json, config, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
