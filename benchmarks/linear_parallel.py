"""Vocabulary-parallel fused linear cross-entropy against a Megatron-style reference, one run.

``world`` local processes (gloo on CPU, or NCCL with one GPU each when ``--backend nccl``)
hold the same hidden states and targets and uneven-or-even contiguous slices of the head
weight's rows; each rank computes the loss forward + backward (gradients of h and of its
slice of W) by:

- ``megatron``: the reference, as Megatron-LM's ``vocab_parallel_cross_entropy`` after a
  column-parallel head: the local logits shard ``h @ W_r.T`` (N x V/world) is materialized,
  shifted by the all_reduce MAX of the row maxima, the target logit and the sum of exps are
  two all_reduce SUMs, the softmax shard is saved for the backward, whose hidden gradient
  ``G_r @ W_r`` is one all_reduce SUM;
- ``crossent``: ``linear_cross_entropy(h, W_r, y, process_group=..., vocab_start=...)``
  (the local slice swept in chunks; its logits never exist whole).

Both run in the same process group, in turns (``--rounds``), after one warm-up each. Per
method and rank the table gives the best time of a call (wall clock between two barriers),
the peak memory the call adds on top of its inputs, the gradients of h and W_r included (the
growth of the resident high-water mark, reset before the call, as in ``linear_ce.py``; on
CUDA ``max_memory_allocated``), and the bytes handed to all_reduce per token in the forward
and the backward (torch.distributed's all_reduce is wrapped and the payload of each call
counted; a ring all_reduce sends and receives about 2 (world - 1) / world times that per
rank).

Usage::

    python benchmarks/linear_parallel.py [--shape 4096x1024x32000] [--world 2]
        [--repeats 3] [--rounds 1] [--threads 1] [--chunk-size ROWS] [--json PATH]

Numbers depend on the machine and its load; nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from linear_ce import _status_bytes, _trim_heap, parse_shape

METHODS = ("megatron", "crossent")


class _MegatronCE(torch.autograd.Function):
    """Megatron-LM's vocab-parallel cross-entropy (mean over tokens) fused with its head."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, w: torch.Tensor, y: torch.Tensor, start: int) -> Any:
        logits = h @ w.t()  # (N, V_r): the shard Megatron materializes
        m = logits.amax(1)
        dist.all_reduce(m, op=dist.ReduceOp.MAX)
        logits.sub_(m.unsqueeze(1))
        local = y - start
        here = (local >= 0) & (local < w.shape[0])
        index = torch.where(here, local, 0)
        target = logits.gather(1, index.unsqueeze(1))[:, 0] * here
        dist.all_reduce(target)
        logits.exp_()
        sum_exp = logits.sum(1)
        dist.all_reduce(sum_exp)
        loss = (sum_exp.log() - target).mean()
        logits.div_(sum_exp.unsqueeze(1))  # the softmax shard, kept for the backward
        ctx.save_for_backward(logits, h, w, index, here)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        softmax, h, w, index, here = ctx.saved_tensors
        rows = torch.arange(softmax.shape[0])
        softmax[rows, index] -= here.to(softmax.dtype)  # in place, as Megatron does
        softmax.mul_(grad / softmax.shape[0])
        gh = softmax @ w
        dist.all_reduce(gh)
        return gh, softmax.t() @ h, None, None


def _counted(calls: list[tuple[str, int]]) -> Any:
    real = dist.all_reduce

    def all_reduce(tensor: torch.Tensor, op: Any = dist.ReduceOp.SUM, **kwargs: Any) -> Any:
        calls.append((str(op).rsplit(".", 1)[-1], tensor.numel() * tensor.element_size()))
        return real(tensor, op=op, **kwargs)

    return all_reduce


def _rank(rank: int, world: int, store: str, args: argparse.Namespace, out: str) -> None:
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", rank)
        torch.cuda.set_device(device)
    dist.init_process_group(
        args.backend, store=dist.FileStore(store, world), rank=rank, world_size=world
    )
    from crossent.torch import linear_cross_entropy

    n, d, v = args.shape
    bounds = [v * r // world for r in range(world + 1)]
    start, stop = bounds[rank], bounds[rank + 1]
    gen = torch.Generator().manual_seed(0)
    h0 = torch.randn(n, d, generator=gen)
    y = torch.randint(0, v, (n,), generator=gen).to(device)
    # every rank draws the whole weight from one seed and keeps its rows
    w0 = (torch.randn(v, d, generator=gen) / d**0.5)[start:stop].clone().to(device)
    h0 = h0.to(device)
    calls: list[tuple[str, int]] = []
    dist.all_reduce = _counted(calls)  # type: ignore[assignment]

    def leaves() -> tuple[torch.Tensor, torch.Tensor]:
        return h0.clone().requires_grad_(), w0.clone().requires_grad_()

    def step(method: str, h: torch.Tensor, w: torch.Tensor) -> tuple[float, dict[str, list]]:
        calls.clear()
        if method == "megatron":
            loss = _MegatronCE.apply(h, w, y, start)
        else:
            loss = linear_cross_entropy(
                h, w, y, process_group=dist.group.WORLD, vocab_start=start,
                chunk_size=args.chunk_size,
            )  # fmt: skip
        forward = list(calls)
        calls.clear()
        loss.backward()
        return float(loss.detach()), {"forward": forward, "backward": list(calls)}

    results: dict[str, dict] = {m: {"times": [], "peaks": []} for m in METHODS}
    for method in METHODS:
        step(method, *leaves())  # warm-up
    for _ in range(args.rounds):
        for method in METHODS:
            for _ in range(args.repeats):
                h, w = leaves()  # the inputs, not counted in the peak
                _trim_heap()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    before = torch.cuda.memory_allocated()
                else:
                    with open("/proc/self/clear_refs", "w") as f:
                        f.write("5")  # reset VmHWM to the current RSS
                    before = _status_bytes("VmRSS")
                dist.barrier()
                t0 = time.perf_counter()
                loss, comm = step(method, h, w)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - t0
                if device.type == "cuda":
                    peak = torch.cuda.max_memory_allocated() - before
                else:
                    peak = _status_bytes("VmHWM") - before
                res = results[method]
                res["times"].append(elapsed)
                res["peaks"].append(peak)
                res["loss"], res["comm"] = loss, comm
                del h, w
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "slice": [start, stop], "results": results}, f)
    dist.destroy_process_group()


def table(ranks: list[dict], n: int) -> str:
    lines = [
        "| method | loss | time, s (slowest rank's best) | peak, MB (largest rank) "
        "| all_reduce calls fwd / bwd | bytes per token fwd / bwd |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method in METHODS:
        per = [r["results"][method] for r in ranks]
        time_s = max(min(p["times"]) for p in per)
        peak = max(max(p["peaks"]) for p in per) / 2**20
        comm = per[0]["comm"]
        fwd, bwd = (sum(b for _, b in comm[k]) / n for k in ("forward", "backward"))
        counts = f"{len(comm['forward'])} / {len(comm['backward'])}"
        lines.append(
            f"| {method} | {per[0]['loss']:.5f} | {time_s:.3f} | {peak:.0f} | {counts} "
            f"| {fwd:.2f} / {bwd:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--shape", type=parse_shape, default=(4096, 1024, 32000))
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--backend", choices=("gloo", "nccl"), default="gloo")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_rank, args=(args.world, os.path.join(tmp, "store"), args, tmp), nprocs=args.world)
        ranks = []
        for r in range(args.world):
            with open(os.path.join(tmp, f"rank{r}.json")) as f:
                ranks.append(json.load(f))
    n, d, v = args.shape
    load = os.getloadavg()[0]
    print(f"N x D x V = {n} x {d} x {v}, world {args.world} ({args.backend}), "
          f"{args.threads} thread(s) per rank, load average {load:.1f} after the run")  # fmt: skip
    print(table(ranks, n))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"shape": [n, d, v], "world": args.world, "ranks": ranks}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
