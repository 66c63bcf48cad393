"""One training step of a small Hugging Face causal LM, with its own loss and patched by crossent.

The model is a ``LlamaForCausalLM`` from random weights (``--layers`` decoder layers of width
``--hidden``, an untied output head of ``--vocab`` rows), trained by AdamW on random token ids
of ``--batch`` x ``--seq``. A step is ``model(ids, labels=ids).loss.backward(); opt.step();
opt.zero_grad()``. Two methods:

- ``hf``: transformers' own loss (the (batch, seq, vocab) logits, upcast to float32, then
  ``cross_entropy``);
- ``crossent``: the same model under ``crossent.transformers.patch(model)`` (the fused linear
  cross-entropy from the last hidden states: the logits never exist).

Each (shape, method) runs in a fresh subprocess: one warm-up step (AdamW's state is allocated
there), one step whose time and peak memory are measured (benchmarks/_peak.py: on CPU the
growth of the resident high-water mark above the start of the step), one forward + backward
whose peak is measured alone (the optimizer's update, whose temporaries are the size of the
parameters, is left out: this is where the logits live), then ``--repeats - 1`` more timed
steps. Both methods start from the same weights and data, so their first losses
must agree (the table shows both). Nothing here asserts on time.

Usage::

    python benchmarks/hf_step.py [--vocab 32000,128256] [--seq 1024,2048] [--batch 1]
        [--layers 2] [--hidden 512] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from _peak import measure, run_child, versions, write_json

METHODS = ("hf", "crossent")


@dataclass(frozen=True)
class Job:
    """One method at one (vocab, seq) shape of one model size, run in a child process."""

    method: str
    vocab: int
    seq: int
    batch: int
    layers: int
    hidden: int
    repeats: int
    device: str


def child(job: Job) -> dict[str, Any]:
    """Build the model, run the steps in this (fresh) process; return the figures."""
    import time

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=job.vocab,
        hidden_size=job.hidden,
        intermediate_size=4 * job.hidden,
        num_hidden_layers=job.layers,
        num_attention_heads=max(1, job.hidden // 64),
        max_position_embeddings=job.seq,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(job.device)
    if job.method == "crossent":
        from crossent.transformers import patch

        patch(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, job.vocab, (job.batch, job.seq), generator=gen).to(job.device)

    def forward_backward() -> float:
        loss = model(ids, labels=ids).loss
        loss.backward()
        return float(loss.detach())

    def step() -> float:
        loss = forward_backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    first_loss = step()  # warm-up: AdamW's state is allocated here
    measured = measure(step, device=job.device)
    loss_part = measure(forward_backward, device=job.device)  # where the logits live
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    times = [measured.seconds]
    for _ in range(job.repeats - 1):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    head = model.get_output_embeddings().weight
    return {
        "status": "ok",
        "first_loss": first_loss,
        "times_s": times,
        "best_s": min(times),
        "peak_extra_bytes": measured.peak_bytes,
        "forward_backward_peak_bytes": loss_part.peak_bytes,
        "memory_how": measured.how,
        "parameters": sum(p.numel() for p in model.parameters()),
        "logits_bytes": job.batch * job.seq * job.vocab * 4,  # float32, what hf materializes
        "head_bytes": head.numel() * head.element_size(),
    }


def run_job(job: Job) -> dict[str, Any]:
    """Run :func:`child` in a subprocess and read its JSON line."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(asdict(job))]
    return run_child(cmd)


def table(rows: list[dict[str, Any]]) -> str:
    """Per shape: step time and peak memory of each method, and crossent's ratio to hf."""
    out = [
        f"{'vocab':>7}{'seq':>6}  {'method':<9}{'step s':>8}{'x hf':>7}{'peak MB':>9}{'x hf':>7}"
        f"{'f+b MB':>8}{'x hf':>7}{'logits MB':>10}{'loss':>10}  status"
    ]
    by_shape: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_shape.setdefault((r["vocab"], r["seq"]), {})[r["method"]] = r
    for (vocab, seq), methods in by_shape.items():
        base = methods.get("hf")
        base = base if base and base["status"] == "ok" else None
        for name, r in methods.items():
            if r["status"] != "ok":
                out.append(f"{vocab:>7}{seq:>6}  {name:<9}{'':>66}  {r['status']}")
                continue
            t, m = r["best_s"], r["peak_extra_bytes"]
            rt = f"{t / base['best_s']:.2f}" if base else "-"
            rm = f"{m / base['peak_extra_bytes']:.2f}" if base else "-"
            fb = r["forward_backward_peak_bytes"]
            rf = f"{fb / base['forward_backward_peak_bytes']:.2f}" if base else "-"
            out.append(
                f"{vocab:>7}{seq:>6}  {name:<9}{t:>8.2f}{rt:>7}{m / 2**20:>9.0f}{rm:>7}"
                f"{fb / 2**20:>8.0f}{rf:>7}{r['logits_bytes'] / 2**20:>10.0f}"
                f"{r['first_loss']:>10.5f}  ok"
            )
    return "\n".join(out)


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=_ints, default=[32000, 128256])
    parser.add_argument("--seq", type=_ints, default=[1024, 2048])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after the warm-up")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(Job(**json.loads(args.child)))))
        return 0
    if min(args.batch, args.layers, args.hidden, args.repeats) < 1:
        parser.error("--batch, --layers, --hidden and --repeats must be >= 1")
    if args.hidden % 64 and args.hidden > 64:
        parser.error(f"--hidden must be a multiple of 64 (heads of 64), got {args.hidden}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if unknown := sorted(set(methods) - set(METHODS)):
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if importlib.util.find_spec("transformers") is None:
        print("benchmarks/hf_step.py needs transformers: pip install 'crossent[transformers]'")
        return 2
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for vocab in args.vocab:
        for seq in args.seq:
            for method in methods:
                print(f"  {method}: vocab {vocab}, seq {seq} ...", flush=True)
                job = Job(method, vocab, seq, args.batch, args.layers, args.hidden, args.repeats,
                          device)  # fmt: skip
                rows.append({**asdict(job), **run_job(job)})
    print(table(rows))
    print(
        f"\nLlamaForCausalLM, {args.layers} layers of width {args.hidden}, batch {args.batch}, "
        f"{device}, float32; step: forward + backward + AdamW.\nstep s: best of {args.repeats} "
        "timed steps; peak MB: memory one step adds above the start of the step (activations,\n"
        "gradients, logits, AdamW's temporaries); f+b MB: the same for forward + backward alone\n"
        "(where the logits live); logits MB: the float32 (batch, seq, vocab) logits hf "
        "materializes."
    )
    config = {"cpu_count": os.cpu_count(), **versions("torch", "transformers", "crossent")}
    write_json(args.json, config, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
