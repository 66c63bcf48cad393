"""Time of crossent.calibration's statistics on one large prediction set, and relplot's smECE.

One (N, K) float32 array of softmax probabilities (default 200,000 x 1,000, 800 MB) from logits
with a true class boosted by 3 and a temperature of 0.7 (an overconfident model), labels drawn
from the untempered probabilities. Each call is timed once (they take seconds; the first call
of a process pays for nothing but itself: every function is imported before):

- ``smooth_ece`` (the bandwidth search included), and relplot's ``smECE`` on the same top-label
  pairs when relplot is installed;
- ``brier_decomposition`` (class-wise and top-label) and ``risk_coverage_curve``;
- ``bootstrap_intervals`` with the default metrics (the report's summary) and then one group of
  metrics at a time, so that the cost of each shows; ``bootstrap_difference`` of the model
  against its own temperature-scaled version.

The peak resident set of the process is printed at the end (the input included).

Usage::

    python benchmarks/calibration_statistics.py [--rows 200000] [--classes 1000] [--resamples 1000]
                                                [--json PATH]

Numbers depend on the machine (and on whatever else runs on it); nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent.calibration as cal

GROUPS = {
    "means (log-loss, accuracy, Brier, confidence)": [
        "log_loss_nats",
        "accuracy",
        "brier",
        "mean_confidence",
    ],
    "entropy": ["entropy_nats"],
    "top-5 accuracy": ["top5_accuracy"],
    "top-label ECE, MCE, RMSCE": ["ece", "mce", "rmsce"],
    "class-wise ECE": ["ece_classwise"],
    "smooth ECE": ["smooth_ece"],
    "AURC": ["aurc"],
}


def predictions(rows: int, classes: int, temperature: float, seed: int = 0) -> tuple[Any, Any]:
    """Float32 probabilities at ``temperature`` and labels drawn at temperature 1, in blocks."""
    rng = np.random.default_rng(seed)
    probs = np.empty((rows, classes), dtype=np.float32)
    labels = np.empty(rows, dtype=np.int64)
    for start in range(0, rows, 8192):
        stop = min(rows, start + 8192)
        z = rng.standard_normal((stop - start, classes), dtype=np.float32)
        z[np.arange(stop - start), rng.integers(0, classes, stop - start)] += 3.0
        for t, out in ((1.0, None), (temperature, probs[start:stop])):
            e = np.exp((z - z.max(axis=1, keepdims=True)) / t)
            e /= e.sum(axis=1, keepdims=True)
            if out is None:
                u = rng.random((stop - start, 1), dtype=np.float32)
                labels[start:stop] = np.minimum((u > np.cumsum(e, axis=1)).sum(axis=1), classes - 1)
            else:
                out[...] = e
    return probs, labels


def timed(label: str, fn: Callable[[], Any], results: dict[str, float]) -> Any:
    start = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - start
    print(f"{label:<58} {results[label]:8.2f} s", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    n, k, r = args.rows, args.classes, args.resamples
    probs, labels = predictions(n, k, temperature=0.7)
    print(f"{n} x {k} float32 ({probs.nbytes / 1e6:.0f} MB), {r} resamples, {platform.node()}")
    results: dict[str, float] = {}
    smooth = timed("smooth_ece", lambda: cal.smooth_ece(probs, labels), results)
    try:
        import relplot

        f = probs.max(axis=1).astype(np.float64)
        y = (probs.argmax(axis=1) == labels).astype(np.float64)
        theirs = timed(
            "relplot.smECE (top-label pairs given)", lambda: relplot.smECE(f, y), results
        )
        ours = f"{smooth.value:.5f} (bandwidth {smooth.bandwidth:.4f})"
        print(f"  smooth ECE {ours}; relplot {theirs:.5f}")
    except ImportError:
        print("  relplot is not installed: no comparison")
    timed(
        "brier_decomposition (class-wise)", lambda: cal.brier_decomposition(probs, labels), results
    )
    timed(
        "brier_decomposition (top-label)",
        lambda: cal.brier_decomposition(probs, labels, scope="top_label"),
        results,
    )
    timed("risk_coverage_curve", lambda: cal.risk_coverage_curve(probs, labels), results)
    summary = timed(
        f"bootstrap_intervals, summary metrics, {r} resamples",
        lambda: cal.bootstrap_intervals(probs, labels, n_resamples=r),
        results,
    )
    for name, metrics in GROUPS.items():
        timed(
            f"  {name}",
            lambda metrics=metrics: cal.bootstrap_intervals(
                probs, labels, metrics=metrics, n_resamples=r
            ),
            results,
        )
    scaled = probs ** np.float32(0.7)  # back towards temperature 1
    scaled /= scaled.sum(axis=1, keepdims=True)
    difference = timed(
        f"bootstrap_difference, summary metrics, {r} resamples",
        lambda: cal.bootstrap_difference(probs, scaled, labels, n_resamples=r),
        results,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux -> GB
    print(f"peak resident set {peak:.2f} GB (the input is {probs.nbytes / 1e9:.2f} GB)")
    for metric in ("ece", "ece_classwise", "log_loss_nats"):
        a, d = summary[metric], difference[metric]
        print(
            f"  {metric}: {a.estimate:.5f} [{a.low:.5f}, {a.high:.5f}];"
            f" scaled - given {d.estimate:+.5f} [{d.low:+.5f}, {d.high:+.5f}]"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"rows": n, "classes": k, "resamples": r, "seconds": results}, out, indent=1)


if __name__ == "__main__":
    main()
