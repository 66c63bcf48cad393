"""``crossent report``: one self-contained HTML page on a file of predictions and labels.

It reads ``.npz``, ``.npy`` pairs, ``.csv`` or ``.parquet``; computes the log-loss (nats and
bits), accuracy, Brier score, top-label and class-wise ECE, MCE, per-class cross-entropy and the
entropy of the predictions, before and after temperature scaling cross-fitted on two halves;
and writes the HTML page, figures embedded. :func:`write_report` does it from Python; the
``crossent report`` command (:mod:`crossent.apps.report`) also prints a summary table or JSON.
:func:`write_comparison` (``crossent report A B ...``) puts several models of the same labels
on one page, each difference from the first with its paired bootstrap interval.
Per-example weights (``weights=``, ``--weights``) weigh every mean; multi-label predictions
(labels of the predictions' 2-D shape, ``multilabel=``, ``--multilabel``) get a
:class:`MultilabelReport` (``_multilabel``: per-label and pooled BCE, Brier and ECE).

Scale: time is linear in N x K (each version of the predictions is scored in one pass, each
temperature fit costs a few passes). Memory is the predictions array when it is read whole
(``.npz``, ``.csv``) plus a few blocks of 2^17 values and under 100 bytes per example; a
``.npy`` file is read through a memory map and a parquet file one row group at a time, so
then the predictions are never in memory whole (the bound is then the per-example numbers,
under 100 bytes an example, 0.5 GB for 5 million rows, plus a parquet file's largest row
group). 200,000 x 1,000 float32 logits in a ``.npz`` took 16 s and 0.94 GB (the array is
0.8 GB) on a busy 2-core machine; see the README for the measurements.

With no file it reports on real CIFAR-10 predictions shipped in the package (a WideResNet-16-4
from the netcal project, Apache-2.0: see ``crossent/data/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

from crossent.calibration import MAX_RESAMPLES
from crossent.errors import UsageError
from crossent.files import path_taken, write_output

from ._compare import Comparison, comparison_json
from ._compute import (
    BINNINGS,
    INTERVALS,
    METRIC_LABELS,
    N_BINS,
    RESAMPLES,
    Report,
    metric_labels,
)
from ._multilabel import SUMMARY_LABELS as MULTILABEL_LABELS
from ._multilabel import MultilabelReport
from ._summary import to_json

__all__ = [
    "BINNINGS",
    "EXAMPLE",
    "METRIC_LABELS",
    "MULTILABEL_LABELS",
    "N_BINS",
    "RESAMPLES",
    "Comparison",
    "MultilabelReport",
    "Report",
    "comparison_json",
    "example_path",
    "metric_labels",
    "to_json",
    "write_comparison",
    "write_report",
]

EXAMPLE = "wideresnet-16-4-cifar-10.npz"
EXAMPLE_PROVENANCE = (
    "Example data: CIFAR-10 test-set predictions of a WideResNet-16-4, from the netcal "
    "calibration framework (EFS-OpenSource/calibration-framework, Apache License 2.0)."
)


def example_path() -> Path:
    """Path of the CIFAR-10 example shipped in the package."""
    return Path(str(resources.files("crossent") / "data" / EXAMPLE))


def _output_path(output: Path | None, source: Path, force: bool) -> Path:
    path = output if output is not None else Path(f"{source.stem}-report.html")
    if path_taken(path) and not force:  # early, before the work; the write itself checks again
        raise UsageError(f"{path} already exists; pass --force to overwrite it")
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a file name for the report")
    if not path.parent.exists():
        raise UsageError(f"the folder {path.parent} does not exist")
    if path.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"the report is an HTML page: give a name ending in .html, not {path}")
    return path


def _check_max_bytes(max_bytes: int | None) -> int | None:
    if max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
    ):
        raise UsageError(f"max_bytes is a positive whole number of bytes, not {max_bytes!r}")
    return max_bytes


def _check_options(
    kind: str, n_bins: int, binning: str, resamples: int, intervals: str = "given"
) -> None:
    if kind not in ("auto", "probs", "logits"):
        raise UsageError(f"kind is 'auto', 'probs' or 'logits', not {kind!r}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or not 1 <= n_bins <= 1000:
        raise UsageError(f"the number of bins is a whole number from 1 to 1000, not {n_bins!r}")
    if binning not in BINNINGS:
        raise UsageError(f"binning is 'uniform' or 'quantile', not {binning!r}")
    if (
        isinstance(resamples, bool)
        or not isinstance(resamples, int)
        or not 0 <= resamples <= MAX_RESAMPLES
        or resamples == 1
    ):
        raise UsageError(
            f"the number of resamples is 0 (none) or from 2 to {MAX_RESAMPLES:,}, not {resamples!r}"
        )
    if intervals not in INTERVALS:
        raise UsageError(f"intervals is 'given' or 'both', not {intervals!r}")


def write_report(
    path: str | PathLike[str] | None = None,
    /,
    *,
    labels: str | PathLike[str] | None = None,
    kind: str = "auto",
    pred_key: str | None = None,
    label_key: str | None = None,
    output: str | PathLike[str] | None = None,
    html: bool = True,
    force: bool = False,
    seed: int = 0,
    n_bins: int = N_BINS,
    binning: str = "uniform",
    resamples: int = RESAMPLES,
    intervals: str = "given",
    class_names: Sequence[str] | None = None,
    weights: Any = None,
    multilabel: bool | None = None,
    max_bytes: int | None = None,
    step: Callable[[str], Any] | None = None,
) -> tuple[Report | MultilabelReport, Path | None]:
    """Score a file of predictions and write the HTML report on it.

    Parameters
    ----------
    path : str or path-like, optional
        Predictions: ``.npz``, ``.npy`` (with ``labels``), ``.csv`` or ``.parquet``. Default: the
        CIFAR-10 predictions shipped with crossent (:func:`example_path`).
    labels : str or path-like, optional
        Labels ``.npy``, for ``.npy`` predictions.
    kind : {"auto", "probs", "logits"}, default "auto"
        What the predictions are; "auto" decides from the array's name and values.
    pred_key : str, optional
        Array of predictions in a ``.npz``; default the first of the usual names.
    label_key : str, optional
        Array (``.npz``) or column (``.csv``, ``.parquet``) of labels.
    output : str or path-like, optional
        HTML file to write; default ``<name>-report.html`` in the working folder.
    html : bool, default True
        Write the HTML page; False only scores.
    force : bool, default False
        Overwrite an existing page.
    seed : int, default 0
        Seed of the split into two halves for the cross-fitted temperature, and of the
        bootstrap resamples.
    n_bins : int, default 15
        Number of confidence bins of the calibration errors and the reliability diagram.
    binning : {"uniform", "quantile"}, default "uniform"
        Equal-width bins, or top-label bins holding equal numbers of examples (the class-wise
        ECE keeps equal-width bins: equal-mass bins of every class would need all N x K
        probabilities sorted).
    resamples : int, default 200
        Bootstrap resamples of the summary's confidence intervals (95 %, percentile); 0 for
        none. The bootstrap holds the probabilities whole (one N x K array). 200 keeps
        200,000 x 1,000 logits under a minute on 2 cores; the percentile endpoints then move
        by a few percent of the interval's width from one seed to another (more resamples:
        steadier endpoints, time linear in the count).
    intervals : {"given", "both"}, default "given"
        Intervals on the predictions as given, or also on the temperature-scaled ones (twice
        the bootstrap's time).
    class_names : sequence of str, optional
        The classes in the order of the prediction columns (names for a ``.npz``; for string
        labels, the order that matches them to the columns). Tables name their columns.
    weights : str, path-like or array_like, optional
        Per-example weights (non-negative, finite, not all 0): a ``.npy`` file, the name of
        an array of the ``.npz`` or of a column of the table (then not a class column), or
        the array itself. Every metric becomes a weighted mean (scikit-learn's
        ``sample_weight``: integer weights equal repeated examples), the temperature fits
        and the bootstrap too (a resampled example keeps its weight); the AURC and the
        risk-coverage curve are left out.
    multilabel : bool, optional
        True: the predictions are K independent sigmoid probabilities (or logits) per
        example and the labels an ``(N, K)`` array of 0/1 (:class:`MultilabelReport`:
        per-label and pooled BCE, Brier and ECE); None (default) detects it from labels of
        the predictions' 2-D shape, and says so in the notes.
    max_bytes : int, optional
        Most bytes a file's contents may take when read whole (a ``.npz`` member, the labels,
        a CSV file, a parquet row group), computed from the header or metadata before it is
        read; default half the machine's memory. A ``.npy`` of predictions is memory-mapped
        and not held to it.
    step : callable, optional
        Called with a description at each stage, once the file is read (for a progress bar).

    Returns
    -------
    report : Report or MultilabelReport
        The scores before and after temperature scaling, with the predictions read (the
        per-label and pooled scores, for multi-label predictions).
    page : Path or None
        Absolute path of the HTML page written; None when ``html`` is False.

    Raises
    ------
    crossent.errors.UsageError
        A file that cannot be read or is not predictions and labels, or an output that cannot
        be written; the message is one line. The output is checked before the file is read.

    Examples
    --------
    >>> report, page = write_report(html=False)  # the CIFAR-10 example, scored
    >>> report.predictions.kind, report.predictions.values.shape, page
    ('probs', (10000, 10), None)
    """
    from . import _compute, _load, _multilabel, _render

    _check_options(kind, n_bins, binning, resamples, intervals)
    source = Path(path) if path is not None else example_path()
    target = None
    if html:
        target = _output_path(None if output is None else Path(output), source, force)
    predictions = _load.load_predictions(
        source,
        labels_path=None if labels is None else Path(labels),
        kind=kind,
        pred_key=pred_key,
        label_key=label_key,
        class_names=None if class_names is None else [str(c) for c in class_names],
        weights=weights,
        multilabel=multilabel,
        max_bytes=_check_max_bytes(max_bytes),
    )
    step = step or (lambda _: None)
    provenance = EXAMPLE_PROVENANCE if path is None else ""
    if predictions.multilabel:
        step("scoring the labels")
        labelled = _multilabel.compute(
            predictions, n_bins=n_bins, binning=binning, resamples=resamples
        )
        if target is None:
            return labelled, None
        step("drawing the figures")
        pictures = {name: _render._png(labelled.figure(name)) for name in _multilabel.FIGURES}
        page = _multilabel.render_html(labelled, pictures, provenance=provenance)
        return labelled, write_output(target, page, force=force)
    result = _compute.compute(
        predictions,
        seed=seed,
        n_bins=n_bins,
        binning=binning,
        resamples=resamples,
        intervals=intervals,
        step=step,
    )
    if target is None:
        return result, None
    step("drawing the figures")
    pictures = _render.figures(result)
    step("writing the HTML page")
    page = _render.render_html(result, pictures, provenance=provenance)
    return result, write_output(target, page, force=force)


def write_comparison(
    paths: Sequence[str | PathLike[str]],
    /,
    *,
    labels: str | PathLike[str] | None = None,
    kind: str = "auto",
    pred_key: str | None = None,
    label_key: str | None = None,
    output: str | PathLike[str] | None = None,
    html: bool = True,
    force: bool = False,
    seed: int = 0,
    n_bins: int = N_BINS,
    binning: str = "uniform",
    resamples: int = RESAMPLES,
    class_names: Sequence[str] | None = None,
    weights: Any = None,
    max_bytes: int | None = None,
    step: Callable[[str], Any] | None = None,
) -> tuple[Comparison, Path | None]:
    """Compare several prediction files of the same labels on one page.

    Each file is read as :func:`write_report` reads one (the options apply to every file,
    ``weights`` too, which must then be the same for every file) and scored; each model's
    difference from the first gets a paired bootstrap interval.

    Returns
    -------
    comparison : Comparison
    page : Path or None
        The HTML page written (default ``<first name>-comparison.html``); None without ``html``.

    Raises
    ------
    crossent.errors.UsageError
        A file the report would refuse, or files of different examples, classes or labels.

    Examples
    --------
    >>> comparison, _ = write_comparison([example_path(), example_path()], html=False,
    ...                                  resamples=0)
    >>> comparison.names
    ['wideresnet-16-4-cifar-10.npz (1)', 'wideresnet-16-4-cifar-10.npz (2)']
    """
    from . import _compare, _load

    _check_options(kind, n_bins, binning, resamples)
    if len(paths) < 2:
        raise UsageError("a comparison needs at least two prediction files")
    sources = [Path(p) for p in paths]
    target = None
    if html:
        default = Path(f"{sources[0].stem}-comparison.html")
        target = _output_path(Path(output) if output is not None else default, sources[0], force)
    # distinct names: the file names, with their folders where two share a name
    names = [s.name for s in sources]
    if len(set(names)) < len(names):
        names = [str(s) for s in sources]
    if len(set(names)) < len(names):  # one file given twice: number them
        names = [f"{s.name} ({i + 1})" for i, s in enumerate(sources)]
    models = [
        _load.load_predictions(
            s,
            labels_path=None if labels is None else Path(labels),
            kind=kind,
            pred_key=pred_key,
            label_key=label_key,
            class_names=None if class_names is None else [str(c) for c in class_names],
            weights=weights,
            max_bytes=_check_max_bytes(max_bytes),
        )
        for s in sources
    ]
    result = _compare.compare(
        names, models, seed=seed, n_bins=n_bins, binning=binning, resamples=resamples, step=step
    )
    if target is None:
        return result, None
    (step or (lambda _: None))("writing the HTML page")
    return result, write_output(target, result.to_html(), force=force)
