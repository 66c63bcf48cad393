"""``crossent train``: a small classifier on scikit-learn's digits, with crossent's gradients.

A one-hidden-layer network (64 -> 64 tanh -> 10) learns the 8x8 digit images that ship with
scikit-learn (offline). The backward pass is written out by hand from the closed-form gradients
of ``crossent.grad`` (``p - y`` and its smoothed, weighted, focal and MSE forms), with plain SGD
and momentum: no autograd, no adaptive step that would hide a vanishing gradient.

With ``--loss all`` it turns three claims of the seeds into measurements on held-out digits:

1. cross-entropy learns faster than MSE on probabilities from a bad start (output weights drawn
   ``--init-scale`` times too large, so the softmax saturates and MSE's gradient vanishes);
2. label smoothing and focal loss change calibration (ECE, mean confidence) against plain
   cross-entropy;
3. class weights (``N / (K n_k)``) change what an imbalanced training set teaches.

It writes loss curves, reliability diagrams, ``results.json`` and, per loss, a predictions file
(test logits and labels) that ``crossent report`` reads.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

import crossent as ce
from crossent import calibration as cal
from crossent.errors import UsageError
from crossent.files import figure_bytes, path_taken, write_output
from crossent.report import N_BINS

__all__ = ["register"]

HIDDEN = 64
MINORITY = (5, 6, 7, 8, 9)  # the classes thinned out in the imbalanced experiment
MINORITY_KEEP = 0.1


class Loss(StrEnum):
    all = "all"
    ce = "ce"
    mse = "mse"
    smooth = "smooth"
    focal = "focal"
    weighted = "weighted"


@dataclass
class Settings:
    epochs: int = 40
    lr: float = 0.1
    momentum: float = 0.9
    batch: int = 32
    init_scale: float = 10.0
    label_smoothing: float = 0.1
    gamma: float = 2.0
    seed: int = 0


@dataclass
class Run:
    """One training run: its history per epoch and its held-out scores."""

    name: str
    loss: str
    start: str  # "normal" or "bad"
    data: str = "full"  # "full" or "imbalanced" training set
    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    test_nll: list[float] = field(default_factory=list)
    test_logits: np.ndarray | None = None
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_data(seed: int) -> Data:
    """Digits scaled to [0, 1], split 70/30 with a seeded, class-stratified shuffle."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float64) / 16.0
    y = np.asarray(digits.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    test = []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(y == c))
        test.append(members[: round(0.3 * len(members))])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[np.concatenate(test)] = True
    return Data(x[~is_test], y[~is_test], x[is_test], y[is_test])


def imbalanced(data: Data, seed: int) -> Data:
    """The training set with only ``MINORITY_KEEP`` of the ``MINORITY`` classes kept."""
    rng = np.random.default_rng(seed + 1)
    minority = np.isin(data.y_train, MINORITY)
    keep = ~minority | (rng.random(len(data.y_train)) < MINORITY_KEEP)
    return Data(data.x_train[keep], data.y_train[keep], data.x_test, data.y_test)


def _loss_and_grad(
    loss: str, z: np.ndarray, y: np.ndarray, s: Settings, weight: np.ndarray | None
) -> tuple[Callable[[], float], np.ndarray]:
    """The gradient d(mean loss)/d logits from crossent.grad, and a thunk for the loss value."""
    if loss == "mse":
        return lambda: float(ce.mse_loss(z, y)), np.asarray(ce.grad.mse_loss(z, y))
    if loss == "focal":
        return (
            lambda: float(ce.softmax_focal_loss(z, y, gamma=s.gamma)),
            np.asarray(ce.grad.softmax_focal_loss(z, y, gamma=s.gamma)),
        )
    e = s.label_smoothing if loss == "smooth" else 0.0
    w = weight if loss == "weighted" else None
    return (
        lambda: float(ce.softmax_cross_entropy(z, y, class_weight=w, label_smoothing=e)),
        np.asarray(ce.grad.softmax_cross_entropy(z, y, class_weight=w, label_smoothing=e)),
    )


def init_params(rng: np.random.Generator, d_in: int, scale: float) -> list[np.ndarray]:
    """[W1, b1, W2, b2]; the output weights drawn ``scale`` times the usual 1/sqrt(fan-in)."""
    return [
        rng.normal(0.0, 1.0 / math.sqrt(d_in), (d_in, HIDDEN)),
        np.zeros(HIDDEN),
        rng.normal(0.0, scale / math.sqrt(HIDDEN), (HIDDEN, 10)),
        np.zeros(10),
    ]


def forward(params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden activations and logits."""
    w1, b1, w2, b2 = params
    h = np.tanh(x @ w1 + b1)
    return h, h @ w2 + b2


def gradients(
    params: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    loss: str,
    s: Settings,
    weight: np.ndarray | None = None,
) -> list[np.ndarray]:
    """d(mean loss)/d params: crossent's closed-form d loss / d logits, then the chain rule."""
    h, z = forward(params, x)
    _, g = _loss_and_grad(loss, z, y, s, weight)  # p - y and its generalizations
    dh = (g @ params[2].T) * (1.0 - h * h)  # back through the tanh layer
    return [x.T @ dh, dh.sum(axis=0), h.T @ g, g.sum(axis=0)]


def loss_value(
    params: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    loss: str,
    s: Settings,
    weight: np.ndarray | None = None,
) -> float:
    """The mean loss of the network on (x, y)."""
    _, z = forward(params, x)
    value, _ = _loss_and_grad(loss, z, y, s, weight)
    return value()


def train(
    data: Data,
    run: Run,
    s: Settings,
    *,
    weight: np.ndarray | None = None,
    on_epoch: Callable[[], Any] | None = None,
) -> Run:
    """Train the network with ``run.loss`` (SGD with momentum) and fill ``run``."""
    rng = np.random.default_rng(s.seed)
    scale = s.init_scale if run.start == "bad" else 1.0
    params = init_params(rng, data.x_train.shape[1], scale)
    velocity = [np.zeros_like(p) for p in params]
    n = len(data.y_train)
    for _ in range(s.epochs):
        order = rng.permutation(n)
        for start in range(0, n, s.batch):
            batch = order[start : start + s.batch]
            grads = gradients(params, data.x_train[batch], data.y_train[batch], run.loss, s, weight)
            for p, v, g in zip(params, velocity, grads, strict=True):
                v *= s.momentum
                v -= s.lr * g
                p += v
        run.train_loss.append(loss_value(params, data.x_train, data.y_train, run.loss, s, weight))
        _, z_test = forward(params, data.x_test)
        run.test_accuracy.append(float(np.mean(z_test.argmax(axis=1) == data.y_test)))
        run.test_nll.append(float(ce.softmax_cross_entropy(z_test, data.y_test)))
        if on_epoch is not None:
            on_epoch()
    _, z_test = forward(params, data.x_test)
    run.test_logits = z_test
    run.scores = scores(z_test, data.y_test)
    return run


def scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    probs = np.asarray(ce.softmax(logits))
    pred = probs.argmax(axis=1)
    recall = [float(np.mean(pred[labels == c] == c)) for c in range(10)]
    return {
        "accuracy": float(np.mean(pred == labels)),
        "balanced_accuracy": float(np.mean(recall)),
        "minority_recall": float(np.mean([recall[c] for c in MINORITY])),
        "log_loss": float(ce.softmax_cross_entropy(logits, labels)),
        "ece": float(cal.expected_calibration_error(probs, labels)),
        "mean_confidence": float(probs.max(axis=1).mean()),
        "brier": float(cal.brier_score(probs, labels)),
    }


def epochs_to(accuracy: list[float], level: float) -> int | None:
    """The first epoch (1-based) whose test accuracy reaches ``level``."""
    return next((i + 1 for i, a in enumerate(accuracy) if a >= level), None)


# ---------------------------------------------------------------- the experiments


def plan(loss: Loss) -> list[Run]:
    """The runs to make (the weighted loss always trains on the imbalanced set)."""
    if loss is not Loss.all:
        data = "imbalanced" if loss is Loss.weighted else "full"
        return [Run(loss.value, loss.value, "normal", data)]
    return [
        Run("ce-bad-start", "ce", "bad"),
        Run("mse-bad-start", "mse", "bad"),
        Run("ce", "ce", "normal"),
        Run("mse", "mse", "normal"),
        Run("smooth", "smooth", "normal"),
        Run("focal", "focal", "normal"),
        Run("ce-imbalanced", "ce", "normal", "imbalanced"),
        Run("weighted-imbalanced", "weighted", "normal", "imbalanced"),
    ]


def claims(runs: dict[str, Run], s: Settings) -> list[dict[str, Any]]:
    """The seeds' claims, each with the measured figures and whether they bear it out."""
    out = []
    if "ce-bad-start" in runs and "mse-bad-start" in runs:
        c, m = runs["ce-bad-start"], runs["mse-bad-start"]
        ce90, mse90 = epochs_to(c.test_accuracy, 0.9), epochs_to(m.test_accuracy, 0.9)
        out.append(
            {
                "claim": "cross-entropy learns faster than MSE from a bad start "
                f"(output weights x{s.init_scale:g})",
                "measured": {
                    "ce_epochs_to_90pct": ce90,
                    "mse_epochs_to_90pct": mse90,
                    "ce_test_accuracy_epoch_1": c.test_accuracy[0],
                    "mse_test_accuracy_epoch_1": m.test_accuracy[0],
                    "ce_test_accuracy_final": c.test_accuracy[-1],
                    "mse_test_accuracy_final": m.test_accuracy[-1],
                },
                "holds": ce90 is not None and (mse90 is None or ce90 < mse90),
            }
        )
    if all(k in runs for k in ("ce", "smooth", "focal")):
        base, ls, fo = runs["ce"].scores, runs["smooth"].scores, runs["focal"].scores
        out.append(
            {
                "claim": "label smoothing and focal loss change calibration",
                "measured": {
                    f"{name}_{key}": r[key]
                    for name, r in (("ce", base), ("smooth", ls), ("focal", fo))
                    for key in ("ece", "mean_confidence", "accuracy", "log_loss")
                },
                "holds": ls["mean_confidence"] < base["mean_confidence"]
                and fo["mean_confidence"] < base["mean_confidence"]
                and ls["ece"] != base["ece"]
                and fo["ece"] != base["ece"],
            }
        )
    if "ce-imbalanced" in runs and "weighted-imbalanced" in runs:
        u, w = runs["ce-imbalanced"].scores, runs["weighted-imbalanced"].scores
        out.append(
            {
                "claim": "class weights raise the recall of rare classes "
                f"(classes {MINORITY[0]}-{MINORITY[-1]} kept at {MINORITY_KEEP:.0%})",
                "measured": {
                    "unweighted_minority_recall": u["minority_recall"],
                    "weighted_minority_recall": w["minority_recall"],
                    "unweighted_balanced_accuracy": u["balanced_accuracy"],
                    "weighted_balanced_accuracy": w["balanced_accuracy"],
                },
                "holds": w["minority_recall"] > u["minority_recall"],
            }
        )
    return out


# ---------------------------------------------------------------- pictures


def _png(fig: Any) -> bytes:
    return figure_bytes(fig, format="png", dpi=96, bbox_inches="tight")


def curves_figure(runs: dict[str, Run]) -> bytes:
    """Training loss, held-out accuracy and held-out log-loss against epochs."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.2), layout="constrained")
    ax_loss, ax_acc, ax_nll = fig.subplots(1, 3)
    for run in runs.values():
        epochs = np.arange(1, len(run.test_accuracy) + 1)
        style = "--" if run.start == "bad" else (":" if run.data == "imbalanced" else "-")
        ax_loss.plot(epochs, run.train_loss, style, label=f"{run.name} ({run.loss})")
        ax_acc.plot(epochs, run.test_accuracy, style, label=run.name)
        ax_nll.plot(epochs, run.test_nll, style, label=run.name)
    ax_loss.set(
        xlabel="epoch",
        ylabel="training loss (each run's own loss)",
        yscale="log",
        title="training loss",
    )
    ax_acc.set(
        xlabel="epoch",
        ylabel="accuracy",
        ylim=(0, 1),
        title="held-out accuracy (dashed: bad start, dotted: imbalanced)",
    )
    ax_nll.set(
        xlabel="epoch",
        ylabel="log-loss (nats)",
        yscale="log",
        title="held-out log-loss (cross-entropy)",
    )
    for ax in (ax_loss, ax_acc, ax_nll):
        ax.legend(fontsize=7)
    return _png(fig)


def calibration_figure(runs: dict[str, Run], labels: np.ndarray) -> bytes:
    """Reliability diagrams of the normal-start runs on the full training set."""
    from matplotlib.figure import Figure

    chosen = [r for r in runs.values() if r.start == "normal" and r.data == "full"]
    chosen = chosen or list(runs.values())
    fig = Figure(figsize=(3.6 * max(len(chosen), 1), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(chosen), 1)))
    for ax, run in zip(axes, chosen, strict=False):
        assert run.test_logits is not None
        probs = np.asarray(ce.softmax(run.test_logits))
        curve = cal.reliability_curve(probs, labels, n_bins=N_BINS)  # the report's bins
        edges = np.asarray(curve.edges)
        ax.bar(
            edges[:-1],
            np.nan_to_num(np.asarray(curve.accuracy)),
            width=np.diff(edges),
            align="edge",
            color="#2471a3",
            alpha=0.8,
            edgecolor="white",
        )
        ax.plot([0, 1], [0, 1], "k--", linewidth=1)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence",
            ylabel="accuracy",
            title=f"{run.name}: ECE {run.scores['ece']:.3f}\n"
            f"mean conf. {run.scores['mean_confidence']:.3f}, acc. "
            f"{run.scores['accuracy']:.3f}",
        )
    return _png(fig)


# ---------------------------------------------------------------- the command


def _outputs(out: Path, runs: list[Run]) -> list[Path]:
    names = ["curves.png", "calibration.png", "results.json"]
    names += [f"predictions-{r.name}.npz" for r in runs if r.start == "normal"]
    return [out / n for n in names]


def train_command(
    loss: Annotated[Loss, typer.Option(help="Loss to train with; 'all' measures the claims.")] = (
        Loss.all
    ),
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs.")] = Path(
        "crossent-train"
    ),
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training set.")] = 40,
    lr: Annotated[float, typer.Option(min=0.0, help="SGD learning rate.")] = 0.1,
    init_scale: Annotated[
        float, typer.Option(min=0.0, help="Output-weight scale of the bad start.")
    ] = 10.0,
    label_smoothing: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.1,
    gamma: Annotated[float, typer.Option(min=0.0, help="Focal loss exponent.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Seed of the split, the start and the batches.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Train a small classifier on scikit-learn's digits with crossent's closed-form gradients."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    s = Settings(epochs, lr, 0.9, 32, init_scale, label_smoothing, gamma, seed)
    todo = plan(loss)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    existing = [p for p in _outputs(out, todo) if path_taken(p)]
    if existing and not force:
        raise UsageError(f"{existing[0]} already exists; pass --force to overwrite")
    out.mkdir(parents=True, exist_ok=True)

    full = load_data(seed)
    sets = {"full": full, "imbalanced": imbalanced(full, seed)}
    weight = np.asarray(ce.class_weights(sets["imbalanced"].y_train, 10))
    err = Console(stderr=True)
    runs: dict[str, Run] = {}
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # no live display in a pipe or a log
    ) as progress:
        task = progress.add_task("training", total=len(todo) * s.epochs)
        for run in todo:
            progress.update(task, description=f"training {run.name}")
            data = sets[run.data]
            w = weight if run.loss == "weighted" else None
            runs[run.name] = train(data, run, s, weight=w, on_epoch=lambda: progress.advance(task))

    write_output(out / "curves.png", curves_figure(runs), force=force)
    write_output(out / "calibration.png", calibration_figure(runs, full.y_test), force=force)
    written = []
    for run in runs.values():
        if run.start == "normal" and run.test_logits is not None:
            path = out / f"predictions-{run.name}.npz"
            buffer = io.BytesIO()
            np.savez(buffer, logits=run.test_logits.astype(np.float32), labels=full.y_test)
            write_output(path, buffer.getvalue(), force=force)
            written.append(path)
    found = claims(runs, s)
    results = {
        "settings": s.__dict__,
        "train_examples": len(full.y_train),
        "test_examples": len(full.y_test),
        "runs": {name: {"loss": r.loss, "start": r.start, **r.scores} for name, r in runs.items()},
        "claims": found,
        "files": [str(p) for p in (out / "curves.png", out / "calibration.png", *written)],
    }
    write_output(out / "results.json", json.dumps(results, indent=2), force=force)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    _print(runs, found, written, out)


def _print(
    runs: dict[str, Run], found: list[dict[str, Any]], written: list[Path], out: Path
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="held-out digits")
    for column in ("run", "loss", "start", "data", "accuracy", "log-loss", "ECE", "mean conf."):
        left = column in ("run", "loss", "start", "data")
        table.add_column(column, justify="left" if left else "right")
    for run in runs.values():
        r = run.scores
        table.add_row(
            run.name,
            run.loss,
            run.start,
            run.data,
            f"{r['accuracy']:.3f}",
            f"{r['log_loss']:.3f}",
            f"{r['ece']:.3f}",
            f"{r['mean_confidence']:.3f}",
        )
    console.print(table)
    if found:
        claims_table = Table(title="the seeds' claims, measured")
        claims_table.add_column("claim")
        claims_table.add_column("measured")
        claims_table.add_column("verdict")
        for claim in found:
            figures = "\n".join(
                f"{k} = {v:.3f}" if isinstance(v, float) else f"{k} = {v}"
                for k, v in claim["measured"].items()
            )
            verdict = "[green]holds[/green]" if claim["holds"] else "[red]does not hold[/red]"
            claims_table.add_row(claim["claim"], figures, verdict)
        console.print(claims_table)
    console.print(f"loss curves: {out / 'curves.png'}", highlight=False)
    console.print(f"calibration: {out / 'calibration.png'}", highlight=False)
    for path in written:
        typer.echo(f"predictions: {path}")


def register(app: typer.Typer) -> None:
    """Add ``crossent train`` to the CLI."""
    app.command("train")(train_command)
