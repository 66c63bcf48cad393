"""Fused linear cross-entropy in JAX: memory and time of crossent against optax, under jax.jit.

For each shape (N tokens, D hidden features, V classes) the mean loss of ``softmax(h @ W.T)``
with random targets and its gradients of h and W (``jax.jit(jax.value_and_grad(...))``), by:

- ``optax``: ``optax.softmax_cross_entropy_with_integer_labels(h @ W.T, y).mean()`` on the
  materialized N x V logits (the usual JAX code);
- ``crossent``: ``crossent.jax.linear_cross_entropy(h, W, y)`` (the gradients computed in the
  forward sweep, three products per chunk);
- ``crossent-recompute``: the same loss as ``reduction="none"`` summed over the mean's
  denominator, which takes the recomputing backward sweep (four products per chunk), the path
  of ``reduction="none"`` and of the differentiable outputs.

Every method runs in a fresh subprocess, one at a time (measured with ``_peak.measure``, as
``linear_ce.py`` does): one warm-up call (compilation happens there), one call whose peak
memory is measured, then ``--repeats - 1`` more timed calls. Peak memory is the growth of the
resident set's high-water mark during the call (gradients and temporaries included, inputs
not); the table also shows XLA's own figure, the compiled program's temporary bytes
(``memory_analysis().temp_size_in_bytes``), and the working memory (the peak less the
gradients of h and W, outputs that every method must hold).

Usage::

    python benchmarks/linear_ce_jax.py [--shapes 4096x1024x32000,8192x2048x128256]
        [--repeats 3] [--methods optax,crossent] [--dtype float32] [--chunk-size ROWS]
        [--json PATH]

Numbers depend on the machine and its load; nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from _peak import measure
from linear_ce import CPU_SHAPES, parse_shape

METHODS = ("optax", "crossent", "crossent-recompute")


def make_loss(name: str, chunk_size: int | None) -> Callable[[Any, Any, Any], Any]:
    """The loss function ``f(h, W, y) -> scalar`` of method ``name``."""
    import jax.numpy as jnp

    if name == "optax":
        import optax

        return lambda h, w, y: optax.softmax_cross_entropy_with_integer_labels(h @ w.T, y).mean()
    from crossent.jax import linear_cross_entropy

    if name == "crossent":
        return lambda h, w, y: linear_cross_entropy(h, w, y, chunk_size=chunk_size)
    if name == "crossent-recompute":

        def recompute(h: Any, w: Any, y: Any) -> Any:
            rows = linear_cross_entropy(h, w, y, reduction="none", chunk_size=chunk_size)
            return jnp.sum(rows) / y.shape[0]

        return recompute
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")


def child(method: str, shape: tuple[int, int, int], repeats: int, dtype: str,
          chunk_size: int | None) -> dict:  # fmt: skip
    """Run one method in this (fresh) process; return its figures."""
    import jax
    import jax.numpy as jnp

    n, d, v = shape
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    # Logits of unit scale: h ~ N(0, 1), W ~ N(0, 1/D).
    h = jax.random.normal(k1, (n, d), dtype)
    w = (jax.random.normal(k2, (v, d), jnp.float32) / d**0.5).astype(dtype)
    y = jax.random.randint(k3, (n,), 0, v)
    step = jax.jit(jax.value_and_grad(make_loss(method, chunk_size), argnums=(0, 1)))
    compiled = step.lower(h, w, y).compile()
    analysis = compiled.memory_analysis()
    temp = None if analysis is None else int(analysis.temp_size_in_bytes)

    def call() -> float:
        loss, grads = compiled(h, w, y)
        jax.block_until_ready(grads)
        return float(loss)

    try:
        call()  # warm-up
    except Exception as exc:  # out of memory, say: the row says why
        return {"status": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    first = measure(call)
    times = [first.seconds]
    for _ in range(repeats - 1):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {
        "status": "ok",
        "loss": first.result,
        "times_s": times,
        "best_s": min(times),
        "peak_extra_bytes": first.peak_bytes,
        "xla_temp_bytes": temp,
        "gradient_bytes": (h.size + w.size) * h.dtype.itemsize,
        "memory_how": first.how,
    }


def run_child(method: str, shape: tuple[int, int, int], args: argparse.Namespace) -> dict:
    """Run :func:`child` in a subprocess and read its JSON line."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", method]
    cmd += ["--shapes", "x".join(map(str, shape)), "--repeats", str(args.repeats)]
    cmd += ["--dtype", args.dtype]
    if args.chunk_size is not None:
        cmd += ["--chunk-size", str(args.chunk_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {"status": f"failed (exit {proc.returncode}): {tail}"}
    return json.loads(lines[-1])


def table(results: list[dict]) -> str:
    """Time and memory per shape, with ratios to optax."""
    lines = []
    header = (
        f"{'method':<20}{'time s':>9}{'x optax':>9}{'peak MB':>10}{'x optax':>9}"
        f"{'work MB':>10}{'XLA tmp MB':>12}{'loss':>10}  status"
    )
    for shape in dict.fromkeys(r["shape"] for r in results):
        rows = [r for r in results if r["shape"] == shape]
        base = next((r for r in rows if r["method"] == "optax" and r["status"] == "ok"), None)
        lines += [f"\nN x D x V = {shape}", header]
        for r in rows:
            if r["status"] != "ok":
                lines.append(f"{r['method']:<20}{'':>69}  {r['status']}")
                continue
            t, m = r["best_s"], r["peak_extra_bytes"]
            rt = f"{t / base['best_s']:.2f}" if base else "-"
            rm = f"{m / base['peak_extra_bytes']:.3f}" if base else "-"
            tmp = "-" if r["xla_temp_bytes"] is None else f"{r['xla_temp_bytes'] / 2**20:.0f}"
            work = (m - r["gradient_bytes"]) / 2**20
            lines.append(
                f"{r['method']:<20}{t:>9.2f}{rt:>9}{m / 2**20:>10.0f}{rm:>9}{work:>10.0f}"
                f"{tmp:>12}{r['loss']:>10.5f}  ok"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=CPU_SHAPES, help=f"NxDxV,... ({CPU_SHAPES})")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--chunk-size", type=int, help="rows per chunk (default: crossent's)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--child", metavar="METHOD", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.chunk_size is not None and args.chunk_size < 1:
        parser.error(f"--chunk-size must be >= 1, got {args.chunk_size}")
    try:
        shapes = [parse_shape(s) for s in args.shapes.split(",") if s]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")

    if args.child:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        result = child(args.child, shapes[0], args.repeats, args.dtype, args.chunk_size)
        print(json.dumps(result))
        return 0

    results = []
    for shape in shapes:
        shape_text = "x".join(map(str, shape))
        for method in methods:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            print(f"  {shape_text} {method} ...", flush=True)
            r = run_child(method, shape, args)
            results.append({"shape": shape_text, "method": method, "load_before": load, **r})
    print(table(results))
    print(
        "\ntime: best forward+backward of the timed calls (jitted); peak MB: memory the call "
        "adds on top of its inputs (gradients and temporaries included); work MB: peak less "
        "the gradients of h and W; XLA tmp MB: the compiled program's temporary buffers."
    )
    if args.json:
        config = {
            "dtype": args.dtype,
            "repeats": args.repeats,
            "chunk_size": args.chunk_size,
            "cpu_count": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
        }
        with open(args.json, "w") as f:
            json.dump({"config": config, "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
