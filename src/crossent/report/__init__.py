"""``crossent report``: one self-contained HTML page on a file of predictions and labels.

It reads ``.npz``, ``.npy`` pairs, ``.csv`` or ``.parquet``; computes the log-loss (nats and
bits), accuracy, Brier score, top-label and class-wise ECE, MCE, per-class cross-entropy and the
entropy of the predictions, before and after temperature scaling cross-fitted on two halves;
prints a summary table (or JSON) and writes the HTML page, figures embedded.

With no file it reports on real CIFAR-10 predictions shipped in the package (a WideResNet-16-4
from the netcal project, Apache-2.0: see ``crossent/data/README.md``).
"""

from __future__ import annotations

import json
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from ._compute import METRIC_LABELS, Report

__all__ = ["EXAMPLE", "register"]

EXAMPLE = "wideresnet-16-4-cifar-10.npz"
EXAMPLE_PROVENANCE = (
    "Example data: CIFAR-10 test-set predictions of a WideResNet-16-4, from the netcal "
    "calibration framework (EFS-OpenSource/calibration-framework, Apache License 2.0)."
)


class Kind(StrEnum):
    auto = "auto"
    probs = "probs"
    logits = "logits"


def example_path() -> Path:
    """Path of the CIFAR-10 example shipped in the package."""
    return Path(str(resources.files("crossent") / "data" / EXAMPLE))


def _output_path(output: Path | None, source: Path, force: bool) -> Path:
    from crossent.cli import UsageError

    path = output if output is not None else Path(f"{source.stem}-report.html")
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it")
    if path.exists() and path.is_dir():
        raise UsageError(f"{path} is a directory; give a file name for the report")
    if not path.parent.exists():
        raise UsageError(f"the folder {path.parent} does not exist")
    if path.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"the report is an HTML page: give a name ending in .html, not {path}")
    return path


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

    from . import _compute, _load, _render

    err = Console(stderr=True)
    out = Console()
    source = path if path is not None else example_path()
    target = None if no_html else _output_path(output, source, force)
    provenance = EXAMPLE_PROVENANCE if path is None else ""

    # Read (and reject a bad file) before any live display starts, so that an error is the only
    # line on stderr.
    predictions = _load.load_predictions(
        source, labels_path=labels, kind=kind.value, pred_key=pred_key, label_key=label_key
    )
    steps = 6 if not no_html else 3
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # no live display in a pipe or a log
    ) as progress:
        task = progress.add_task("scoring", total=steps)

        def step(description: str) -> None:
            progress.update(task, description=description, advance=1)

        result = _compute.compute(predictions, seed=seed, step=step)
        html_path = None
        if target is not None:
            step("drawing the figures")
            pictures = _render.figures(result)
            step("writing the HTML page")
            page = _render.render_html(result, pictures, provenance=provenance)
            target.write_text(page, encoding="utf-8")
            html_path = str(target.resolve())
        step("done")

    if as_json:
        typer.echo(json.dumps(_compute.to_json(result, html_path), indent=2))
        return
    out.print(_summary_table(result))
    for note in predictions.notes + result.notes:
        out.print(f"[dim]- {note}[/dim]", highlight=False)
    if result.temperatures:
        t = ", ".join(f"{x:.4f}" for x in result.temperatures)
        out.print(f"temperatures fitted on each half: {t}", highlight=False)
    if html_path is not None:
        typer.echo(f"report: {html_path}")


def register(app: typer.Typer) -> None:
    """Add ``crossent report`` to the CLI."""
    app.command("report")(report)
