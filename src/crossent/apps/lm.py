"""``crossent lm``: a small GPT-2 learns the standard library's pydoc topics, twice.

The text is ``pydoc_data.topics`` (about 465k characters of English that ship with every
Python), split by topic into training and held-out text; a byte-level BPE tokenizer is trained on
the training topics with ``tokenizers``. A randomly initialized GPT-2 from ``transformers`` is
trained twice from the same seed and batch order: once with its own loss (the (batch, time,
vocab) logits materialized) and once under :func:`crossent.transformers.patch` (the fused linear
cross-entropy: no logits). Each run is a child process, so that its peak memory is its own: the
growth of the resident high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``)
during steps 2..N over the resident set after step 1 (model, AdamW state and torch's code
paged in), which sees every allocator (torch's included).

On the held-out topics, the fused op's per-token outputs (log-probability of the target, top-1
confidence, correct or not; no N x V logits) give the per-token cross-entropy, the perplexity and
the top-1 token calibration (:class:`crossent.calibration.StreamingCalibration`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from crossent.errors import UsageError
from crossent.files import figure_bytes, path_taken, write_output

__all__ = ["register"]

EOT = "<|endoftext|>"  # the tokenizer's one special token (id 0), between topics
FILES = ("lm.png", "summary.json", "summary.md")
TOLERANCE = 1e-4  # relative, per step: float32 rounding that Adam carries over a few hundred steps


@dataclass(frozen=True)
class Settings:
    steps: int = 400
    batch: int = 16
    context: int = 128
    vocab: int = 4096
    d_model: int = 192
    layers: int = 4
    heads: int = 4
    lr: float = 1e-3
    held_out: float = 0.1
    n_bins: int = 15
    seed: int = 0
    threads: int = 1


# ---------------------------------------------------------------- data


def split_topics(topics: dict[str, str], *, held_out: float, seed: int) -> tuple[list, list]:
    """Topic names for training and held-out: a seeded shuffle of the sorted names, the first
    ones held out until they hold ``held_out`` of the characters (at least one topic each)."""
    names = sorted(topics)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    total, taken, held = sum(len(topics[n]) for n in names), 0, []
    for name in order[:-1]:
        if taken >= held_out * total:
            break
        held.append(name)
        taken += len(topics[name])
    return sorted(set(names) - set(held)), sorted(held)


def train_tokenizer(texts: list[str], *, vocab: int) -> Any:
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on ``texts``: deterministic, as the
    merges are chosen by count, ties broken by the pair itself."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[EOT],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def blocks(tokenizer: Any, texts: list[str], *, context: int) -> np.ndarray:
    """The texts as one token stream (EOT before each), cut into ``(n, context)`` blocks; the
    remainder shorter than a block is dropped."""
    ids = np.concatenate([[0, *e.ids] for e in tokenizer.encode_batch(texts)]).astype(np.int64)
    n = len(ids) // context
    return ids[: n * context].reshape(n, context)


def batch_order(n_blocks: int, *, steps: int, batch: int, seed: int) -> np.ndarray:
    """``(steps, batch)`` block indices: epochs of seeded permutations, read in order."""
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch // n_blocks)
    return np.concatenate([rng.permutation(n_blocks) for _ in range(epochs)])[
        : steps * batch
    ].reshape(steps, batch)


# ---------------------------------------------------------------- one run (a child process)


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1]) * 1024


def _reset_peak() -> int:
    """Reset the resident high-water mark to the resident set now (Linux); return the latter."""
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    return _status("VmRSS")


def build_model(s: Settings) -> Any:
    """A GPT-2 (tied embeddings, dropout 0.1) drawn from ``s.seed``."""
    import torch
    import transformers

    config = transformers.GPT2Config(
        vocab_size=s.vocab, n_positions=s.context, n_embd=s.d_model, n_layer=s.layers,
        n_head=s.heads, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(s.seed)
    return transformers.GPT2LMHeadModel(config)


def evaluate(model: Any, data: np.ndarray, *, batch: int, n_bins: int) -> dict[str, Any]:
    """Held-out per-token cross-entropy and top-1 calibration from the fused op's per-token
    outputs (the target's log-probability, the top-1 probability, correct or not)."""
    import torch

    from crossent.calibration import StreamingCalibration
    from crossent.torch import LinearCEOutput, linear_cross_entropy

    state = StreamingCalibration(n_bins=n_bins)
    head = model.get_output_embeddings()
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(data), batch):
            ids = torch.from_numpy(data[start : start + batch])
            hidden = model.base_model(ids).last_hidden_state
            out = linear_cross_entropy(
                hidden, head.weight, ids, bias=head.bias, shift=True,
                outputs=("logprob", "confidence", "correct"),
            )  # fmt: skip
            assert isinstance(out, LinearCEOutput) and out.logprob is not None
            nll = -out.logprob
            state.update_summaries(out.confidence, out.correct, nll)
            total += float(nll.double().sum())
            count += nll.numel()
    summary = state.compute()
    nats = total / count
    return {
        "tokens": count,
        "ce_nats": nats,
        "ce_bits": nats / math.log(2),
        "perplexity": math.exp(nats),
        "accuracy": summary.accuracy,
        "mean_confidence": summary.mean_confidence,
        "ece": summary.ece,
        "curve": {k: _listed(v) for k, v in asdict(summary.curve).items()},
    }


def _listed(values: Any) -> list[Any]:
    """A list for JSON, which has no NaN: null in its place (an empty bin's accuracy)."""
    return [None if x != x else x for x in np.asarray(values).tolist()]


def train_run(
    s: Settings, train: np.ndarray, order: np.ndarray, held: np.ndarray, *, patched: bool
) -> dict[str, Any]:
    """Train a fresh model (AdamW, warm-up then cosine decay) on ``train[order[step]]``, with
    the model's own loss or patched; its losses, peak memory, time per step and held-out
    figures."""
    import time

    import torch
    import transformers

    import crossent.transformers as cet

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(s.threads)
    model = build_model(s)
    if patched:
        cet.patch(model)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.1)
    warm = max(1, s.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda k: min(1.0, (k + 1) / warm) * (0.55 + 0.45 * math.cos(math.pi * k / s.steps)),
    )
    torch.manual_seed(s.seed)  # the same dropout masks in both runs
    losses, seconds = [], []
    before = _reset_peak()
    for rows in order:
        tick = time.perf_counter()
        ids = torch.from_numpy(train[rows])
        loss = model(ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        seconds.append(time.perf_counter() - tick)
        if len(losses) == 1 and s.steps > 1:
            # measure from the second step: the first pages in torch's kernels (hundreds of MB
            # of code, the same in both runs) and creates AdamW's state
            before = _reset_peak()
        if len(losses) % max(1, s.steps // 8) == 0:  # a sign of life, on the parent's stderr
            name = "patched" if patched else "own loss"
            print(f"{name}: step {len(losses)}/{s.steps}, loss {losses[-1]:.4f}", file=sys.stderr)
    peak = _status("VmHWM") - before
    if patched:
        cet.unpatch(model)
    return {
        "patched": patched,
        "losses": losses,
        "peak_mb": peak / 1e6,
        "resident_before_mb": before / 1e6,
        "median_step_s": float(np.median(seconds)),
        "held_out": evaluate(model, held, batch=s.batch, n_bins=s.n_bins),
    }


# ---------------------------------------------------------------- outputs


def figure(runs: list[dict[str, Any]]) -> bytes:
    """The two loss curves (and their difference) beside the reliability diagram."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 4), layout="constrained")
    ax_loss, ax_diff, ax_cal = fig.subplots(1, 3, width_ratios=(1.4, 1, 1))
    own, fused = (np.asarray(r["losses"]) for r in runs)
    steps = np.arange(1, len(own) + 1)
    ax_loss.plot(steps, own, color="#aab7b8", linewidth=3, label="model's own loss")
    ax_loss.plot(steps, fused, color="#2471a3", linewidth=1, label="crossent.transformers.patch")
    ax_loss.set(xlabel="step", ylabel="training loss (nats / token)", title="training loss")
    ax_loss.legend(loc="upper right")
    ax_diff.plot(steps, np.abs(fused - own) / own, color="#c0392b", linewidth=0.8)
    ax_diff.axhline(np.finfo(np.float32).eps, color="k", linestyle=":", label="float32 epsilon")
    ax_diff.set(xlabel="step", ylabel="|patched - own| / own", title="relative difference")
    ax_diff.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax_diff.legend(loc="upper left")
    held = runs[1]["held_out"]
    curve = held["curve"]
    edges = np.asarray(curve["edges"])
    accuracy = np.asarray(curve["accuracy"], dtype=float)
    ax_cal.bar(edges[:-1], np.nan_to_num(accuracy), width=np.diff(edges), align="edge",
               color="#2471a3", alpha=0.8, edgecolor="white")  # fmt: skip
    ax_cal.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax_cal.set(
        xlim=(0, 1), ylim=(0, 1), xlabel="top-1 token probability", ylabel="accuracy",
        title=f"held-out tokens (patched run): ECE {held['ece']:.3f}\n"
        f"mean conf. {held['mean_confidence']:.3f}, acc. {held['accuracy']:.3f}",
    )  # fmt: skip
    return figure_bytes(fig, format="png", dpi=96)


def markdown(summary: dict[str, Any]) -> str:
    rows = [
        "| run | final loss | peak memory of training (MB) | median step (s) | held-out CE "
        "(nats / bits) | perplexity | top-1 acc. | ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in zip(("own loss", "patched"), summary["runs"], strict=True):
        h = r["held_out"]
        rows.append(
            f"| {name} | {r['losses'][-1]:.4f} | {r['peak_mb']:.0f} | {r['median_step_s']:.3f} "
            f"| {h['ce_nats']:.4f} / {h['ce_bits']:.4f} | {h['perplexity']:.1f} "
            f"| {h['accuracy']:.3f} | {h['ece']:.4f} |"
        )
    return "\n".join(rows) + f"\n\nmax relative loss difference: {summary['max_rel_diff']:.2e}\n"


def lm_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs.")] = Path(
        "out/lm"
    ),
    steps: Annotated[int, typer.Option(min=1, help="Training steps of each run.")] = Settings.steps,
    batch: Annotated[int, typer.Option(min=1, help="Blocks per step.")] = Settings.batch,
    context: Annotated[
        int, typer.Option(min=2, max=4096, help="Tokens per block.")
    ] = Settings.context,
    vocab: Annotated[int, typer.Option(min=260, help="BPE vocabulary size.")] = Settings.vocab,
    d_model: Annotated[int, typer.Option(min=1, help="Model width.")] = Settings.d_model,
    layers: Annotated[int, typer.Option(min=1, help="Transformer blocks.")] = Settings.layers,
    heads: Annotated[int, typer.Option(min=1, help="Attention heads.")] = Settings.heads,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak AdamW learning rate.")] = Settings.lr,
    seed: Annotated[
        int, typer.Option(help="Seed of the split, the model and the batches.")
    ] = Settings.seed,
    threads: Annotated[
        int, typer.Option(min=1, help="Torch threads of each run.")
    ] = Settings.threads,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
) -> None:
    """Train a small GPT-2 on the pydoc topics twice: its own loss, then patched by crossent."""
    import matplotlib  # noqa: F401 -- a missing extra fails here, before minutes of training
    import tokenizers  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    if d_model % heads:
        raise UsageError(f"--d-model {d_model} must be a multiple of --heads {heads}")
    s = Settings(steps, batch, context, vocab, d_model, layers, heads, lr, seed=seed,
                 threads=threads)  # fmt: skip
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    existing = [out / n for n in FILES if path_taken(out / n)]
    if existing and not force:
        raise UsageError(f"{existing[0]} already exists; pass --force to overwrite")

    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    train_names, held_names = split_topics(topics, held_out=s.held_out, seed=seed)
    tokenizer = train_tokenizer([topics[n] for n in train_names], vocab=vocab)
    train = blocks(tokenizer, [topics[n] for n in train_names], context=context)
    held = blocks(tokenizer, [topics[n] for n in held_names], context=context)
    if len(train) < batch or len(held) == 0:
        raise UsageError(f"--context {context} x --batch {batch} leaves too few blocks of text")
    order = batch_order(len(train), steps=steps, batch=batch, seed=seed)
    typer.echo(f"training twice, {steps} steps, own loss and patched side by side", err=True)
    # one fresh process per run, so that each peak is the run's own; the two at once, each on
    # `threads` threads (one by default: on a loaded machine, torch's threads that wait for
    # each other cost far more than they give)
    with ProcessPoolExecutor(2, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        jobs = [pool.submit(train_run, s, train, order, held, patched=p) for p in (False, True)]
        runs = [job.result() for job in jobs]
    own, fused = (np.asarray(r["losses"]) for r in runs)
    rel = np.abs(fused - own) / np.abs(own)
    summary = {
        "settings": asdict(s),
        "text": {
            "train_topics": len(train_names), "held_out_topics": held_names,
            "train_tokens": int(train.size), "held_out_tokens": int(held.size),
            "vocab": tokenizer.get_vocab_size(), "cpus": os.cpu_count(),
        },
        "max_rel_diff": float(rel.max()),
        "agree": bool(rel.max() <= TOLERANCE),
        "peak_memory": "growth of the resident high-water mark (VmHWM) during steps 2..N over "
        "the resident set after step 1, each run in its own process",
        "runs": runs,
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_output(out / "lm.png", figure(runs), force=force)
    write_output(out / "summary.json", json.dumps(summary, indent=1), force=force)
    write_output(out / "summary.md", markdown(summary), force=force)
    every = max(1, steps // 10)
    typer.echo(f"{'step':>6} {'own loss':>10} {'patched':>10} {'rel. diff':>10}")
    for k in sorted({*range(0, steps, every), steps - 1}):
        typer.echo(f"{k + 1:>6} {own[k]:>10.5f} {fused[k]:>10.5f} {rel[k]:>10.1e}")
    typer.echo(markdown(summary))
    verdict = "agree" if summary["agree"] else "DO NOT agree"
    typer.echo(f"the curves {verdict} to {TOLERANCE:g} relative at every step")
    typer.echo(f"summary: {out / 'summary.json'}, {out / 'summary.md'}")
    typer.echo(str(out / "lm.png"))


def register(app: typer.Typer) -> None:
    """Add ``crossent lm`` to the CLI."""
    app.command("lm")(lm_command)
