"""Fused linear cross-entropy: memory and time of crossent against its peers, in one run.

For each shape (N tokens, D hidden features, V classes) the loss of ``softmax(h @ W.T)`` with
random targets, forward + backward (gradients of h and W), by:

- ``torch``: plain PyTorch, ``F.cross_entropy(h @ W.T, y)`` (materializes the N x V logits);
- ``torch.compile``: the same function through ``torch.compile``;
- ``torch-lce``: PyTorch's own chunked ``F.linear_cross_entropy(h, W, y,
  options=torch.nn.LinearCrossEntropyOptions())`` (torch >= 2.13; its defaults, "auto");
- ``floor``: the three matrix products alone, chunked into one reused buffer (per chunk of
  rows: logits ``h_c @ W.T``, then ``dH_c = G_c @ W`` and ``dW += G_c.T @ h_c`` with the
  logits buffer standing in for G_c): no loss at all, the time no fused loss can beat;
- ``cce-torch_compile``: Cut Cross-Entropy's ``impl="torch_compile"`` (when installed; on a
  machine without Triton its package ``__init__`` cannot be imported, so its
  ``torch_compile`` module is loaded on its own: the code that runs is CCE's);
- ``cce``: Cut Cross-Entropy's Triton kernel (CUDA only, when installed);
- ``liger``: Liger Kernel's ``LigerFusedLinearCrossEntropyLoss`` (CUDA only, when installed);
- ``crossent``: ``crossent.torch.linear_cross_entropy`` (gradients computed in the forward
  pass), and ``crossent-recompute`` (the same with the logits recomputed in the backward, the
  path ``reduction="none"`` takes), to show which of the two is faster;
- ``crossent-weights``: with a per-token ``sample_weight`` (uniform in [0, 1)) and an explicit
  ``normalizer`` (the token count), the gradient-accumulation form;
- ``crossent-outputs``: with the logged outputs ("entropy", "accuracy", "confidence", "lse",
  "z_loss"; detached, the loss alone differentiated);
- ``crossent-logprob``: with the differentiable per-token log-probability asked for (the
  backward then recomputes the logits, four products per chunk).

Every method runs in a fresh subprocess (one at a time, so that plain PyTorch's 13 GB at the
large shape fits a 24 GB machine): one warm-up call (compilation happens there), then one call
whose peak memory is measured, then ``--repeats - 1`` more timed calls. With ``--rounds R`` the
methods take turns R times (a burst of load from another process then hits every method, not
one method's whole series); the figures are the best time and the largest peak of all rounds,
and the JSON keeps every run with the load average before it.

Peak memory is what the call adds on top of its inputs (gradients and temporaries included):
on CPU the growth of the resident set's high-water mark (VmHWM is reset just before the call by
writing 5 to /proc/self/clear_refs, after ``malloc_trim`` hands freed heap memory back), which
sees every allocator (tracemalloc does not see torch); on CUDA ``torch.cuda.max_memory_allocated``
minus the memory allocated before the call. The table also shows the working memory: the peak
less the gradients of h and W, outputs that every method must hold.

Usage::

    python benchmarks/linear_ce.py [--shapes 4096x1024x32000,8192x2048x128256]
        [--repeats 3] [--rounds 1] [--methods torch,crossent] [--dtype float32]
        [--chunk-size ROWS] [--json PATH]

CPU shapes by default: 4096x1024x32000 and 8192x2048x128256; with CUDA, 8192x2304x256000.
Numbers depend on the machine and its load; nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _peak import measure, run_child, versions, write_json

CPU_SHAPES = "4096x1024x32000,8192x2048x128256"
GPU_SHAPES = "8192x2304x256000"
METHODS = (
    "torch",
    "torch.compile",
    "torch-lce",
    "floor",
    "cce-torch_compile",
    "cce",
    "liger",
    "crossent",
    "crossent-recompute",
    "crossent-weights",
    "crossent-outputs",
    "crossent-logprob",
)
GPU_ONLY = {"cce", "liger"}


class Unavailable(Exception):
    """A peer that is not installed or cannot run here (the row says why)."""


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"shape must look like 4096x1024x32000, got {text!r}")
    n, d, v = (int(p) for p in parts)
    return n, d, v


# ----------------------------------------------------------------- the methods


def _load_cce_torch_compile() -> Callable[..., Any]:
    """CCE's torch_compile implementation, even where its package needs Triton to import."""
    if importlib.util.find_spec("cut_cross_entropy") is None:
        raise Unavailable("cut-cross-entropy is not installed")
    try:
        from cut_cross_entropy import linear_cross_entropy

        return lambda h, w, y: linear_cross_entropy(h, w, y, impl="torch_compile")
    except ImportError:
        # Its __init__ imports the Triton kernel; torch_compile.py itself needs only torch.
        spec = importlib.util.find_spec("cut_cross_entropy")
        assert spec is not None and spec.submodule_search_locations is not None
        package = types.ModuleType("cut_cross_entropy")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["cut_cross_entropy"] = package
        module = importlib.import_module("cut_cross_entropy.torch_compile")
        return module.torch_compile_linear_cross_entropy


def _floor(chunk_size: int | None) -> Callable[[Any, Any, Any], Any]:
    """The three products of a fused loss and nothing else, in crossent's chunk layout."""
    import torch

    from crossent.torch._linear_sweep import default_chunk_size

    class Floor(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, h: Any, w: Any) -> Any:
            n, v = h.shape[0], w.shape[0]
            rows = chunk_size or default_chunk_size(n, v, h.device)
            flat = torch.empty(rows * v, dtype=h.dtype, device=h.device)
            gh = torch.empty_like(h)
            gw = torch.zeros_like(w)
            for r0 in range(0, n, rows):
                r1 = min(r0 + rows, n)
                g = flat[: v * (r1 - r0)].view(v, r1 - r0)  # (V, rows), as crossent holds it
                torch.mm(w, h[r0:r1].t(), out=g)  # the logits; stand-in for their gradient
                torch.mm(g.t(), w, out=gh[r0:r1])
                gw.addmm_(g, h[r0:r1])
            ctx.grads = (gh, gw)
            return h.new_zeros(())

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return ctx.grads

    return lambda h, w, y: Floor.apply(h, w)


def make_call(
    name: str, device: str, chunk_size: int | None = None
) -> Callable[[Any, Any, Any], Any]:
    """The loss function ``f(h, W, y) -> scalar`` of method ``name``."""
    import torch
    import torch.nn.functional as F

    if name in GPU_ONLY and device != "cuda":
        raise Unavailable("needs CUDA")
    if name == "torch":
        return lambda h, w, y: F.cross_entropy(h @ w.T, y)
    if name == "torch.compile":
        return torch.compile(lambda h, w, y: F.cross_entropy(h @ w.T, y))
    if name == "torch-lce":
        if not hasattr(F, "linear_cross_entropy") or not hasattr(
            torch.nn, "LinearCrossEntropyOptions"
        ):
            raise Unavailable(f"torch {torch.__version__} has no F.linear_cross_entropy")
        options = torch.nn.LinearCrossEntropyOptions()
        return lambda h, w, y: F.linear_cross_entropy(h, w, y, options=options)
    if name == "floor":
        return _floor(chunk_size)
    if name == "cce-torch_compile":
        return _load_cce_torch_compile()
    if name == "cce":
        if importlib.util.find_spec("cut_cross_entropy") is None:
            raise Unavailable("cut-cross-entropy is not installed")
        from cut_cross_entropy import linear_cross_entropy as cce

        return lambda h, w, y: cce(h, w, y, impl="cce")
    if name == "liger":
        if importlib.util.find_spec("liger_kernel") is None:
            raise Unavailable("liger-kernel is not installed")
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        liger = LigerFusedLinearCrossEntropyLoss()
        return lambda h, w, y: liger(w, h, y)
    if name.startswith("crossent"):
        from crossent.torch import _linear, linear_cross_entropy

        precompute = name != "crossent-recompute"
        options: dict[str, Any] = {}
        if name == "crossent-outputs":
            options["outputs"] = ("entropy", "accuracy", "confidence", "lse", "z_loss")
        elif name == "crossent-logprob":
            options["outputs"] = ("logprob",)
        weights: dict[str, Any] = {}

        def call(h: Any, w: Any, y: Any) -> Any:
            _linear.PRECOMPUTE = precompute  # the module's switch between the two sweeps
            if name == "crossent-weights":
                if not weights:  # made once, outside the timed calls
                    gen = torch.Generator().manual_seed(1)
                    u = torch.rand(y.shape, generator=gen).to(h.device, h.dtype)
                    weights.update(sample_weight=u, normalizer=torch.tensor(float(y.numel())))
                options.update(weights)
            out = linear_cross_entropy(h, w, y, chunk_size=chunk_size, **options)
            return out if isinstance(out, torch.Tensor) else out.loss

        return call
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")


# ----------------------------------------------------------------- one method, in a child


@dataclass(frozen=True)
class Job:
    """One method at one shape, run in a child process."""

    method: str
    shape: tuple[int, int, int]
    repeats: int
    device: str
    dtype: str
    chunk_size: int | None = None


def child(job: Job) -> dict:
    """Run one method in this (fresh) process; return its figures."""
    import torch

    n, d, v = job.shape
    device, repeats = job.device, job.repeats
    tdtype = getattr(torch, job.dtype)
    try:
        call = make_call(job.method, device, job.chunk_size)
    except Unavailable as exc:
        return {"status": f"skipped: {exc}"}
    gen = torch.Generator(device="cpu").manual_seed(0)
    # Logits of unit scale: h ~ N(0, 1), W ~ N(0, 1/D).
    h = torch.randn(n, d, generator=gen).to(device, tdtype).requires_grad_()
    w = (torch.randn(v, d, generator=gen) / d**0.5).to(device, tdtype).requires_grad_()
    y = torch.randint(0, v, (n,), generator=gen).to(device)

    def step() -> float:
        h.grad = None
        w.grad = None
        loss = call(h, w, y)
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        return float(loss.detach())

    try:
        loss = step()  # warm-up (compilation)
    except Exception as exc:  # a peer that cannot run on this device: say why
        return {"status": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    h.grad = None
    w.grad = None
    first = measure(step, device=device)
    loss, times = first.result, [first.seconds]
    for _ in range(repeats - 1):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "status": "ok",
        "loss": loss,
        "times_s": times,
        "best_s": min(times),
        "peak_extra_bytes": first.peak_bytes,
        # The gradients of h and W are outputs every method must hold: the rest is the loss's
        # own working memory.
        "gradient_bytes": (h.numel() + w.numel()) * h.element_size(),
        "memory_how": first.how,
    }


def run_job(job: Job) -> dict:
    """Run :func:`child` in a subprocess and read its JSON line."""
    shape_text = "x".join(map(str, job.shape))
    cmd = [sys.executable, os.path.abspath(__file__), "--child", job.method]
    cmd += ["--shapes", shape_text, "--repeats", str(job.repeats)]
    cmd += ["--device", job.device, "--dtype", job.dtype]
    if job.chunk_size is not None:
        cmd += ["--chunk-size", str(job.chunk_size)]
    return run_child(cmd)


# ----------------------------------------------------------------- the table


def aggregate(shape: str, method: str, runs: list[dict]) -> dict:
    """One row from a method's rounds: best time over all, largest peak memory of any."""
    ok = [r for r in runs if r["status"] == "ok"]
    row: dict[str, Any] = {"shape": shape, "method": method, "runs": runs}
    if not ok:
        return {**row, "status": runs[-1]["status"]}
    times = [t for r in ok for t in r["times_s"]]
    return {
        **row,
        "status": "ok",
        "loss": ok[0]["loss"],
        "best_s": min(times),
        "median_s": sorted(times)[len(times) // 2],
        "peak_extra_bytes": max(r["peak_extra_bytes"] for r in ok),
        "gradient_bytes": ok[0]["gradient_bytes"],
        "memory_how": ok[0]["memory_how"],
    }


def table(results: list[dict]) -> str:
    """Ratios against plain torch and CCE torch_compile, per shape."""
    lines = []
    by_shape: dict[str, list[dict]] = {}
    for r in results:
        by_shape.setdefault(r["shape"], []).append(r)
    header = (
        f"{'method':<20}{'time s':>9}{'x floor':>9}{'x torch':>9}{'x cce-tc':>10}"
        f"{'peak MB':>10}{'x torch':>9}{'work MB':>10}{'x torch':>9}{'loss':>10}  status"
    )
    for shape, rows in by_shape.items():
        base = next((r for r in rows if r["method"] == "torch" and r["status"] == "ok"), None)
        ok = {r["method"]: r for r in rows if r["status"] == "ok"}
        cce, floor = ok.get("cce-torch_compile"), ok.get("floor")
        lines.append(f"\nN x D x V = {shape}")
        lines.append(header)
        for r in rows:
            if r["status"] != "ok":
                lines.append(f"{r['method']:<20}{'':>85}  {r['status']}")
                continue
            t, m = r["best_s"], r["peak_extra_bytes"]
            work = m - r["gradient_bytes"]
            rt = f"{t / base['best_s']:.2f}" if base else "-"
            rc = f"{t / cce['best_s']:.2f}" if cce else "-"
            rf = f"{t / floor['best_s']:.2f}" if floor else "-"
            rm = f"{m / base['peak_extra_bytes']:.3f}" if base else "-"
            rw = (
                f"{work / (base['peak_extra_bytes'] - base['gradient_bytes']):.3f}" if base else "-"
            )
            lines.append(
                f"{r['method']:<20}{t:>9.2f}{rf:>9}{rt:>9}{rc:>10}{m / 2**20:>10.0f}{rm:>9}"
                f"{work / 2**20:>10.0f}{rw:>9}{r['loss']:>10.5f}  ok"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", help=f"NxDxV,... (CPU: {CPU_SHAPES}; CUDA: {GPU_SHAPES})")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up")
    parser.add_argument(
        "--rounds", type=int, default=1, help="times each method's subprocess runs, in turns"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available")
    parser.add_argument("--dtype", help="float32 (CPU default) or bfloat16 (CUDA default)")
    parser.add_argument(
        "--chunk-size",
        type=int,
        help="rows per chunk for the crossent methods (default: crossent's, 48 MiB on CPU)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--child", metavar="METHOD", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1:
        parser.error("--repeats and --rounds must be >= 1")
    if args.chunk_size is not None and args.chunk_size < 1:
        parser.error(f"--chunk-size must be >= 1, got {args.chunk_size}")

    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    shapes_text = args.shapes or (GPU_SHAPES if args.device == "cuda" else CPU_SHAPES)
    try:
        shapes = [parse_shape(s) for s in shapes_text.split(",") if s]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")

    if args.child:
        print(
            json.dumps(
                child(Job(args.child, shapes[0], args.repeats, args.device, dtype, args.chunk_size))
            )
        )
        return 0

    runs: dict[tuple[str, str], list[dict]] = {}
    for round_ in range(args.rounds):
        for shape in shapes:
            shape_text = "x".join(map(str, shape))
            for method in methods:
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
                print(f"  round {round_ + 1}: {shape_text} {method} ...", flush=True)
                r = run_job(Job(method, shape, args.repeats, args.device, dtype, args.chunk_size))
                runs.setdefault((shape_text, method), []).append({**r, "load_before": load})
    results = [aggregate(shape, method, rs) for (shape, method), rs in runs.items()]
    config = {
        "device": args.device,
        "dtype": dtype,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "chunk_size": args.chunk_size,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "versions": versions("torch", "cut_cross_entropy", "liger_kernel", "crossent"),
        "time": "best of the timed forward+backward calls, seconds",
        "memory": "peak bytes above the inputs during one forward+backward call",
        "gradient_bytes": "bytes of the gradients of h and W (outputs, included in the peak)",
    }
    print(table(results))
    print(
        "\ntime: best forward+backward of the timed calls; peak MB: memory the call adds on top "
        "of its inputs\n(gradients and temporaries included); work MB: peak MB less the gradients "
        "of h and W\n(the loss's own working memory); x floor / x torch / x cce-tc: ratio to the "
        "three products alone / plain PyTorch / CCE torch_compile."
    )
    write_json(args.json, config, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
