"""The ``crossent report`` command: :func:`crossent.report.write_report`, a summary on stdout."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from crossent.errors import UsageError
from crossent.report import (
    MULTILABEL_LABELS,
    N_BINS,
    RESAMPLES,
    Comparison,
    MultilabelReport,
    Report,
    comparison_json,
    metric_labels,
    to_json,
    write_comparison,
    write_report,
)

__all__ = ["register"]


class Kind(StrEnum):
    auto = "auto"
    probs = "probs"
    logits = "logits"


def _summary_table(report: Report) -> Any:
    from rich.table import Table

    p = report.predictions
    table = Table(
        title=f"{Path(p.source).name}: {p.values.shape[0]} examples, "
        f"{p.values.shape[1]} classes ({p.kind})"
    )
    table.add_column("metric")
    table.add_column("as given", justify="right")
    if report.after is not None:
        table.add_column("temperature-scaled", justify="right")
    for key, label in metric_labels(report).items():
        if key not in report.before.metrics:
            continue
        row = [label, f"{report.before.metrics[key]:.4f}"]
        if report.after is not None:
            row.append(f"{report.after.metrics[key]:.4f}")
        table.add_row(*row)
    return table


def _multilabel_table(report: MultilabelReport, rows: int = 10) -> list[Any]:
    """The pooled/macro summary, and the labels of largest ECE (the JSON has every one)."""
    from rich.table import Table

    p = report.predictions
    n, k = p.values.shape
    table = Table(title=f"{Path(p.source).name}: {n} examples, {k} labels (multi-label, {p.kind})")
    table.add_column("metric")
    table.add_column("pooled pairs (micro)", justify="right")
    table.add_column("mean over labels (macro)", justify="right")
    for key, label in MULTILABEL_LABELS.items():
        table.add_row(label, f"{report.pooled[key]:.4f}", f"{report.macro[key]:.4f}")
    worst = Table(title=f"labels of largest ECE ({min(rows, k)} of {k})")
    for column in ("label", "prevalence", "BCE (nats)", "Brier", "ECE"):
        worst.add_column(column, justify="left" if column == "label" else "right")
    b = report.per_label
    for i in sorted(range(k), key=lambda j: -b["ece"][j])[:rows]:
        worst.add_row(
            p.class_names[i],
            *(f"{b[m][i]:.4f}" for m in ("prevalence", "bce_nats", "brier", "ece")),
        )
    return [table, worst]


def _comparison_table(comparison: Comparison) -> Any:
    from rich.table import Table

    first = comparison.reports[0]
    n = first.predictions.values.shape[0]
    table = Table(title=f"{len(comparison.names)} models on the same {n} examples (as given)")
    table.add_column("metric")
    for i, name in enumerate(comparison.names):
        table.add_column(name, justify="right")
        if i:
            table.add_column(f"- {comparison.names[0]} [95% CI]", justify="right")
    for key, label in metric_labels(first).items():
        if key not in first.before.metrics:
            continue
        row = [label]
        for i, (name, r) in enumerate(zip(comparison.names, comparison.reports, strict=True)):
            row.append(f"{r.before.metrics[key]:.4f}")
            if i:
                cell = f"{r.before.metrics[key] - first.before.metrics[key]:+.4f}"
                diff = comparison.differences.get(name)
                if diff is not None and key in diff.intervals:
                    cell += f" [{diff[key].low:+.4f}, {diff[key].high:+.4f}]"
                row.append(cell)
        table.add_row(*row)
    return table


_UNITS = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def _size(text: str) -> int:
    """``500M``, ``4G``, ``1.5G`` or a number of bytes, as an int."""
    value, scale = text.strip().upper().removesuffix("B"), 1
    if value[-1:] in _UNITS:
        value, scale = value[:-1], _UNITS[value[-1]]
    try:
        size = float(value) * scale
    except ValueError:
        size = -1
    if not 1 <= size < 1e18:
        raise UsageError(f"--max-bytes takes a size such as 500M, 4G or 1000000, not {text!r}")
    return int(size)


def report(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Predictions: .npz, .npy (with --labels), .csv or .parquet; several files of "
            "the same labels are compared on one page. "
            "Default: CIFAR-10 predictions shipped with crossent.",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Labels .npy, for .npy predictions.")
    ] = None,
    kind: Annotated[
        Kind, typer.Option("--kind", help="What the predictions are (auto: detected).")
    ] = Kind.auto,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="HTML file to write (default: <name>-report.html)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing report.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
    no_html: Annotated[bool, typer.Option("--no-html", help="Write no HTML file.")] = False,
    pred_key: Annotated[
        str | None, typer.Option("--pred-key", help="Array of predictions in a .npz.")
    ] = None,
    label_key: Annotated[
        str | None,
        typer.Option("--label-key", help="Array (.npz) or column (.csv, .parquet) of labels."),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the split into two halves and of the bootstrap.")
    ] = 0,
    bins: Annotated[
        str,
        typer.Option(
            "--bins",
            metavar="N",
            help=f"Confidence bins of the calibration errors and the reliability diagram, "
            f"1 to 1000 (default {N_BINS}).",
        ),
    ] = str(N_BINS),
    resamples: Annotated[
        str,
        typer.Option(
            "--resamples",
            metavar="N",
            help=f"Bootstrap resamples of the 95% intervals beside the summary (default "
            f"{RESAMPLES}; 0: none). Seeded with --seed.",
        ),
    ] = str(RESAMPLES),
    intervals: Annotated[
        str,
        typer.Option(
            "--intervals",
            metavar="given|both",
            help="Bootstrap intervals on the predictions as given, or also on the "
            "temperature-scaled ones (twice the bootstrap's time).",
        ),
    ] = "given",
    class_names: Annotated[
        str | None,
        typer.Option(
            "--class-names",
            metavar="A,B,...",
            help="The classes in the order of the prediction columns, comma-separated: names "
            "for the tables, and the order that matches string labels to the columns.",
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            metavar="FILE|KEY",
            help="Per-example weights (finite, >= 0): a .npy file, or the name of an array "
            "of the .npz or of a column of the table. Every metric becomes a weighted mean "
            "(sum w x / sum w, as scikit-learn's sample_weight); the temperature fits and the "
            "bootstrap too. The AURC is left out.",
        ),
    ] = None,
    multilabel: Annotated[
        bool,
        typer.Option(
            "--multilabel",
            help="The predictions are K independent sigmoid probabilities (or logits) per "
            "example and the labels an N x K array of 0/1: per-label and pooled BCE, Brier "
            "and ECE. Detected (and said) when the labels have the predictions' 2-D shape.",
        ),
    ] = False,
    max_bytes: Annotated[
        str | None,
        typer.Option(
            "--max-bytes",
            metavar="SIZE",
            help="Most memory a file's contents may take when read whole (500M, 4G, or "
            "bytes), checked from its header before reading; default half the machine's "
            "memory. A .npy of predictions is memory-mapped and not held to it.",
        ),
    ] = None,
    binning: Annotated[
        str,
        typer.Option(
            "--binning",
            metavar="uniform|quantile",
            help="Equal-width bins, or top-label bins holding equal numbers of examples "
            "(the class-wise ECE keeps equal-width bins).",
        ),
    ] = "uniform",
) -> None:
    """Report on predicted probabilities: log-loss, calibration, temperature scaling, HTML page.

    \b
    Files it reads (probabilities or logits, detected, or --kind):
    - .npz: an array of predictions (N, K) named predictions, probs, probabilities, y_proba,
      y_prob, scores or logits, and one of labels (N,) named ground_truth, labels, label,
      targets, target, y_true or y (or --pred-key / --label-key);
    - .npy: the (N, K) predictions, with --labels LABELS.npy (read through a memory map);
    - .csv and .parquet: one row per example; a label column (named as in .npz, or
      --label-key) and one numeric column per class (the column names become the class
      names), or one list column of K numbers a row; columns named id, index, idx, example
      or sample are skipped. For example, a header "cat,dog,bird,label" and rows
      "0.7,0.2,0.1,0". Parquet is read one row group at a time.
    Binary: one value per example (a 1-D array, or one column beside the labels) is P(y = 1),
    as scikit-learn's predict_proba(X)[:, 1] (log-odds if outside [0, 1]). Labels may be class
    names, matched to the columns named after the classes (or give --class-names).
    Multi-label: labels of the predictions' shape (N, K), 0/1 (a .npz array, or a .npy with
    --labels), each column its own P(label = 1) (detected, or --multilabel).
    Several files of the same labels are compared on one page (differences from the first,
    with paired bootstrap intervals).
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    # Parsed here, not by typer, so that a bad value is one line like every other error.
    try:
        n_bins = int(bins)
    except ValueError:
        raise UsageError(f"--bins takes a whole number from 1 to 1000, not {bins!r}") from None
    try:
        n_resamples = int(resamples)
    except ValueError:
        raise UsageError(
            f"--resamples takes a whole number, 0 (none) or at least 2, not {resamples!r}"
        ) from None
    limit = None if max_bytes is None else _size(max_bytes)
    err = Console(stderr=True)
    out = Console()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # no live display in a pipe or a log
    )
    task = progress.add_task("scoring", total=7 if not no_html else 4, start=False)

    def step(description: str) -> None:
        # The display starts at the first step, once the file is read, so that the error of a
        # bad file is the only line on stderr.
        progress.start_task(task)
        progress.start()
        progress.update(task, description=description, advance=1)

    names = None if class_names is None else [c.strip() for c in class_names.split(",")]
    common: dict[str, Any] = {
        "labels": labels,
        "kind": kind.value,
        "pred_key": pred_key,
        "label_key": label_key,
        "output": output,
        "html": not no_html,
        "force": force,
        "seed": seed,
        "n_bins": n_bins,
        "binning": binning,
        "resamples": n_resamples,
        "class_names": names,
        "weights": weights,
        "max_bytes": limit,
        "step": step,
    }
    if paths and len(paths) > 1:
        try:
            comparison, page = write_comparison(paths, **common)
            step("done")
        finally:
            progress.stop()
        html_path = None if page is None else str(page)
        if as_json:
            typer.echo(json.dumps(comparison_json(comparison, html_path), indent=2))
            return
        out.print(_comparison_table(comparison))
        if html_path is not None:
            typer.echo(f"report: {html_path}")
        return
    try:
        result, page = write_report(
            paths[0] if paths else None,
            intervals=intervals,
            multilabel=True if multilabel else None,
            **common,
        )
        step("done")
    finally:
        progress.stop()

    html_path = None if page is None else str(page)
    if as_json:
        typer.echo(json.dumps(to_json(result, html_path), indent=2))
        return
    if isinstance(result, MultilabelReport):
        tables = _multilabel_table(result)
    else:
        tables = [_summary_table(result)]
    for table in tables:
        out.print(table)
    for note in result.predictions.notes + result.notes:
        out.print(f"[dim]- {note}[/dim]", highlight=False)
    if isinstance(result, Report) and result.temperatures:
        t = ", ".join(f"{x:.4f}" for x in result.temperatures)
        out.print(f"temperatures fitted on each half: {t}", highlight=False)
    if html_path is not None:
        typer.echo(f"report: {html_path}")


def register(app: typer.Typer) -> None:
    """Add ``crossent report`` to the CLI."""
    app.command("report")(report)
