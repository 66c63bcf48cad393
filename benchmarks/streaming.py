"""Time of StreamingCalibration against the one-shot calibration functions, in one run.

One (N, K) float32 NumPy array of logits (default 200,000 x 1,000, 800 MB) and random labels.
The one-shot side is what ``crossent report`` computes for the predictions as given: the
softmax of the whole array, then ``log_loss``, ``brier_score``, the top-label ECE, MCE and
RMSCE, the class-wise ECE and the top-label reliability curve. The streaming side feeds the same
logits in batches (default 10,000 rows) to a ``StreamingCalibration`` (top-label only, then
class-wise) and calls ``compute()`` once; it also streams the probabilities, and the per-example
summaries (top-1 confidence, correct, log-loss) a language model would give. Each method runs
``--repeat`` times after one warm-up, the best time is kept, and the figures of every method are
checked against the one-shot ones (the script exits 1 if they differ beyond float32 rounding).
Peak memory above the inputs is measured with ``tracemalloc`` (NumPy's buffers are tracked).

Usage::

    python benchmarks/streaming.py [--rows 200000] [--classes 1000] [--batch 10000]
                                   [--repeat 3] [--json PATH]

Numbers depend on the machine; nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent as ce
import crossent.calibration as cal

Figures = dict[str, float]


def one_shot(logits: np.ndarray, labels: np.ndarray) -> Figures:
    probs = np.asarray(ce.softmax(logits))
    return {
        "log_loss": float(cal.log_loss(probs, labels)),
        "brier": float(cal.brier_score(probs, labels)),
        "ece": float(cal.expected_calibration_error(probs, labels)),
        "mce": float(cal.expected_calibration_error(probs, labels, norm="max")),
        "rmsce": float(cal.expected_calibration_error(probs, labels, norm="l2")),
        "ece_classwise": float(cal.expected_calibration_error(probs, labels, scope="classwise")),
        "curve_examples": float(np.sum(cal.reliability_curve(probs, labels).counts)),
    }


def _figures(summary: cal.CalibrationSummary) -> Figures:
    out = {
        "log_loss": summary.log_loss,
        "ece": summary.ece,
        "mce": summary.mce,
        "rmsce": summary.rmsce,
        "curve_examples": float(np.sum(summary.curve.counts)),
    }
    if summary.brier is not None:
        out["brier"] = summary.brier
    if summary.ece_classwise is not None:
        out["ece_classwise"] = summary.ece_classwise
    return out


def streamed(batch: int, *, classwise: bool, probs: bool = False) -> Callable[..., Figures]:
    def run(logits: np.ndarray, labels: np.ndarray) -> Figures:
        state = cal.StreamingCalibration(classwise=classwise, kind="probs" if probs else "logits")
        for start in range(0, len(labels), batch):
            values = logits[start : start + batch]
            if probs:  # the batch's softmax is the caller's work here, not timed apart
                values = np.asarray(ce.softmax(values))
            state.update(values, labels[start : start + batch])
        return _figures(state.compute())

    return run


def summaries(batch: int) -> Callable[..., Figures]:
    """Per-example summaries computed batch by batch (a fused LM head would hand them over)."""

    def run(logits: np.ndarray, labels: np.ndarray) -> Figures:
        state = cal.StreamingCalibration()
        for start in range(0, len(labels), batch):
            p = np.asarray(ce.softmax(logits[start : start + batch]))
            y = labels[start : start + batch]
            rows = np.arange(len(y))
            eps = float(np.finfo(p.dtype).eps)
            nll = -np.log(np.clip(p[rows, y], eps, 1 - eps))
            state.update_summaries(p.max(axis=1), p.argmax(axis=1) == y, nll)
        return _figures(state.compute())

    return run


def measure(fn: Callable[..., Figures], logits: np.ndarray, labels: np.ndarray, repeat: int):
    fn(logits, labels)  # warm-up
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        figures = fn(logits, labels)
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    fn(logits, labels)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, (args.rows, args.classes)).astype(np.float32)
    labels = rng.integers(0, args.classes, args.rows)
    methods: dict[str, Callable[..., Figures]] = {
        "one-shot (softmax + 6 functions)": one_shot,
        "streamed logits, top-label": streamed(args.batch, classwise=False),
        "streamed logits, class-wise": streamed(args.batch, classwise=True),
        "streamed probs, class-wise": streamed(args.batch, classwise=True, probs=True),
        "streamed summaries": summaries(args.batch),
    }
    results: list[dict[str, Any]] = []
    reference: Figures = {}
    ok = True
    for name, fn in methods.items():
        seconds, peak, figures = measure(fn, logits, labels, args.repeat)
        reference = reference or figures
        worst = max(
            abs(v - reference[k]) / max(abs(reference[k]), 1e-12) for k, v in figures.items()
        )
        ok &= worst < 1e-4
        results.append(
            {"method": name, "seconds": seconds, "peak_mb": peak / 2**20, "max_rel_diff": worst}
        )
    base = results[0]["seconds"]
    print(
        f"{args.rows} x {args.classes} float32 logits ({logits.nbytes / 2**20:.0f} MB), "
        f"batches of {args.batch}, best of {args.repeat}"
    )
    header = ("time", "x one-shot", "rows/s", "peak MB", "rel diff")
    print(f"{'method':36} {header[0]:>9} " + " ".join(f"{h:>10}" for h in header[1:]))
    for r in results:
        r["x_one_shot"] = r["seconds"] / base
        print(
            f"{r['method']:36} {r['seconds']:8.2f}s {r['x_one_shot']:10.2f} "
            f"{args.rows / r['seconds']:10.0f} {r['peak_mb']:10.0f} {r['max_rel_diff']:10.1e}"
        )
    if args.json:
        doc = {
            "config": {**vars(args), "shape": [args.rows, args.classes]},
            "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
            "results": results,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
