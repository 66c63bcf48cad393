"""The ``crossent report`` command: :func:`crossent.report.write_report`, a summary on stdout."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from crossent.report import METRIC_LABELS, Report, to_json, write_report

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
    for key, label in METRIC_LABELS.items():
        if key not in report.before.metrics:
            continue
        row = [label, f"{report.before.metrics[key]:.4f}"]
        if report.after is not None:
            row.append(f"{report.after.metrics[key]:.4f}")
        table.add_row(*row)
    return table


def report(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Predictions: .npz, .npy (with --labels), .csv or .parquet. "
            "Default: CIFAR-10 predictions shipped with crossent."
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
    seed: Annotated[int, typer.Option(help="Seed of the split into two halves.")] = 0,
) -> None:
    """Report on predicted probabilities: log-loss, calibration, temperature scaling, HTML page."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

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
    task = progress.add_task("scoring", total=6 if not no_html else 3, start=False)

    def step(description: str) -> None:
        # The display starts at the first step, once the file is read, so that the error of a
        # bad file is the only line on stderr.
        progress.start_task(task)
        progress.start()
        progress.update(task, description=description, advance=1)

    try:
        result, page = write_report(
            path,
            labels=labels,
            kind=kind.value,
            pred_key=pred_key,
            label_key=label_key,
            output=output,
            html=not no_html,
            force=force,
            seed=seed,
            step=step,
        )
        step("done")
    finally:
        progress.stop()

    html_path = None if page is None else str(page)
    if as_json:
        typer.echo(json.dumps(to_json(result, html_path), indent=2))
        return
    out.print(_summary_table(result))
    for note in result.predictions.notes + result.notes:
        out.print(f"[dim]- {note}[/dim]", highlight=False)
    if result.temperatures:
        t = ", ".join(f"{x:.4f}" for x in result.temperatures)
        out.print(f"temperatures fitted on each half: {t}", highlight=False)
    if html_path is not None:
        typer.echo(f"report: {html_path}")


def register(app: typer.Typer) -> None:
    """Add ``crossent report`` to the CLI."""
    app.command("report")(report)
