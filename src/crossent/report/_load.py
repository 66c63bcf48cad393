"""Reading predictions and labels from .npz, .npy pairs, .csv and .parquet, with one-line errors.

Every problem a file can have (unreadable, a missing array or column, a wrong shape, NaN, labels
out of range) ends in a :class:`crossent.errors.UsageError` whose message is a single line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossent.errors import UsageError

PREDICTION_KEYS = ("predictions", "probs", "probabilities", "y_proba", "y_prob", "scores", "logits")
LABEL_KEYS = ("ground_truth", "labels", "label", "targets", "target", "y_true", "y")
ID_COLUMNS = ("id", "index", "idx", "example", "sample", "__index_level_0__")
SUFFIXES = (".npz", ".npy", ".csv", ".parquet")


@dataclass
class Predictions:
    """Validated predictions: ``values`` (N, K) float32 or float64, ``labels`` (N,) int64.

    ``kind`` is "probs" or "logits"; ``class_names`` one name per class; ``notes`` the findings
    worth showing (diagnostics, how the kind was decided).
    """

    values: np.ndarray
    labels: np.ndarray
    kind: str
    source: str
    class_names: list[str]
    notes: list[str] = field(default_factory=list)


def _error(message: str) -> UsageError:
    return UsageError(" ".join(str(message).split()))  # always one line


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _pick(names: list[str], wanted: str | None, candidates: tuple[str, ...], what: str) -> str:
    if wanted is not None:
        if wanted not in names:
            raise _error(f"no {what} {wanted!r} in the file; it has {', '.join(names) or 'none'}")
        return wanted
    lower = {n.lower(): n for n in names}
    for c in candidates:
        if c in lower:
            return lower[c]
    raise _error(
        f"no {what} found: expected one named {' or '.join(candidates[:4])} (or choose one with "
        f"the option), the file has {', '.join(names) or 'none'}"
    )


def _read_npz(path: Path, pred_key: str | None, label_key: str | None) -> tuple[Any, Any, str]:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise _error(f"cannot read {path} as .npz: it is not a zip archive of .npy arrays")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            pk = _pick(names, pred_key, PREDICTION_KEYS, "array of predictions")
            lk = _pick(names, label_key, LABEL_KEYS, "array of labels")
            return np.asarray(data[pk]), np.asarray(data[lk]), pk
    except Exception as error:
        if isinstance(error, UsageError):
            raise
        raise _error(f"cannot read {path} as .npz: {_first_line(error)}") from None


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except Exception as error:
        raise _error(f"cannot read {path} as .npy: {_first_line(error)}") from None


def _read_table(path: Path) -> Any:
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path)
    except Exception as error:
        raise _error(f"cannot read {path}: {_first_line(error)}") from None


def _table_arrays(
    table: Any, label_col: str | None
) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Labels and the (N, K) predictions of a table: one column per class, or one list column."""
    import pyarrow as pa

    names = list(table.column_names)
    lk = _pick(names, label_col, LABEL_KEYS, "label column")
    labels = table.column(lk).to_numpy(zero_copy_only=False)
    rest = [n for n in names if n != lk and n.lower() not in ID_COLUMNS]
    if not rest:
        raise _error(f"no prediction columns beside the label column {lk!r}")
    lists = [
        n
        for n in rest
        if pa.types.is_list(table.schema.field(n).type)
        or pa.types.is_fixed_size_list(table.schema.field(n).type)
        or pa.types.is_large_list(table.schema.field(n).type)
    ]
    if lists:
        col = lists[0]
        rows = table.column(col).to_pylist()
        widths = {len(r) if r is not None else -1 for r in rows}
        if len(widths) != 1 or -1 in widths:
            raise _error(f"the list column {col!r} has rows of different lengths (or nulls)")
        values = np.asarray(rows, dtype=np.float64)
        return values, labels, [str(i) for i in range(values.shape[1])], col
    columns = []
    for n in rest:
        kind = table.schema.field(n).type
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            raise _error(f"column {n!r} is not numeric ({kind}); give one numeric column per class")
        if table.column(n).null_count:
            raise _error(f"column {n!r} has {table.column(n).null_count} missing value(s)")
        columns.append(table.column(n).to_numpy(zero_copy_only=False))
    return np.stack(columns, axis=1), labels, rest, "columns"


def _labels_as_int(labels: np.ndarray) -> np.ndarray:
    if labels.ndim != 1:
        raise _error(f"labels must be one-dimensional (N,); got shape {labels.shape}")
    if labels.dtype == object:
        raise _error("labels hold missing or non-numeric values")
    if np.issubdtype(labels.dtype, np.integer):
        return labels.astype(np.int64)
    if np.issubdtype(labels.dtype, np.floating):
        bad = ~np.isfinite(labels)
        if bad.any():
            raise _error(f"labels hold NaN or inf; the first at index {int(np.argmax(bad))}")
        whole = labels == np.round(labels)
        if not whole.all():
            i = int(np.argmin(whole))
            raise _error(f"labels must be whole class indices; found {labels[i]} at index {i}")
        return labels.astype(np.int64)
    if labels.dtype == bool:
        return labels.astype(np.int64)
    raise _error(f"labels must be integer class indices; got dtype {labels.dtype}")


def _check(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if values.dtype == object or not (
        np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)
    ):
        raise _error(f"predictions must be numbers; got dtype {values.dtype}")
    if values.ndim == 1 and values.shape == labels.shape:
        raise _error(
            f"predictions have shape {values.shape}, one value per example: give one column per "
            "class (for a binary problem, both class probabilities)"
        )
    if values.ndim != 2:
        raise _error(f"predictions must have shape (N, K); got shape {values.shape}")
    n, k = values.shape
    if k < 2:
        raise _error(f"predictions must have at least 2 classes; got shape {values.shape}")
    if n < 2:
        raise _error(f"need at least 2 examples; got {n}")
    labels = _labels_as_int(labels)
    if labels.shape[0] != n:
        raise _error(f"{n} rows of predictions but {labels.shape[0]} labels")
    # Keep float32/float64 data as it is (the log-loss clip is the dtype's epsilon, as in
    # scikit-learn); integers and float16 are read as float64 and float32.
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    elif np.finfo(values.dtype).bits < 32:
        values = values.astype(np.float32)
    nan = np.isnan(values)
    if nan.any():
        i, j = (int(a) for a in np.argwhere(nan)[0])
        raise _error(
            f"predictions hold {int(nan.sum())} NaN value(s); the first at row {i}, class {j}"
        )
    if np.isposinf(values).any():
        i, j = (int(a) for a in np.argwhere(np.isposinf(values))[0])
        raise _error(f"predictions hold +inf; the first at row {i}, class {j}")
    bad = (labels < 0) | (labels >= k)
    if bad.any():
        i = int(np.argmax(bad))
        raise _error(f"labels must be in [0, {k}) for {k} classes; found {labels[i]} at index {i}")
    return values, labels


def _decide_kind(values: np.ndarray, kind: str, key: str) -> tuple[str, list[str]]:
    notes = []
    in_unit = bool(np.all((values >= 0) & (values <= 1)))
    sums = values.sum(axis=1)
    tol = max(1e-4, 4 * values.shape[1] * float(np.finfo(values.dtype).eps))
    normalized = in_unit and bool(np.all(np.abs(sums - 1) <= tol))
    if kind == "auto":
        if key.lower() == "logits":
            kind = "logits"
            notes.append("read as logits (the array is named 'logits')")
        elif normalized:
            kind = "probs"
            notes.append("read as probabilities: every value is in [0, 1] and every row sums to 1")
        else:
            kind = "logits"
            notes.append("read as logits: the rows are not probability distributions")
    if kind == "probs":
        if not in_unit:
            bad = ~((values >= 0) & (values <= 1))
            i, j = (int(a) for a in np.argwhere(bad)[0])
            raise _error(
                f"--kind probs, but predictions hold {values[i, j]} at row {i}, class "
                f"{j}, outside [0, 1]; are they logits?"
            )
        if not normalized:
            row = int(np.argmax(np.abs(sums - 1)))
            notes.append(
                f"warning: rows do not sum to 1 (row {row} sums to {sums[row]:.6g}); "
                "the scores use them as given"
            )
    return kind, notes


def _diagnostics(values: np.ndarray, labels: np.ndarray, kind: str) -> list[str]:
    """Findings of :func:`crossent.diagnose` that apply to values read as ``kind``."""
    import crossent

    diagnose = getattr(crossent, "diagnose", None)
    if diagnose is None:  # an older crossent without diagnose(): nothing more to say
        return []
    notes = []
    for finding in diagnose(values, labels):
        if kind == "probs" and finding.code in ("probabilities_as_logits", "rows_not_normalized"):
            continue  # they are read as probabilities: the finding is about logits
        if kind == "logits" and finding.code == "log_probabilities":
            notes.append("the logits are log-probabilities (each row's exp sums to 1)")
            continue
        notes.append(f"{finding.severity}: {finding.message}")
    return notes


def load_predictions(
    path: Path,
    *,
    labels_path: Path | None = None,
    kind: str = "auto",
    pred_key: str | None = None,
    label_key: str | None = None,
) -> Predictions:
    """Read and validate predictions and labels (see the module notes)."""
    if not path.exists():
        raise _error(f"no such file: {path}")
    if path.is_dir():
        raise _error(f"{path} is a directory; give a .npz, .npy, .csv or .parquet file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise _error(
            f"unknown file type {suffix or '(none)'!r} of {path}; use {', '.join(SUFFIXES)}"
        )
    key = ""
    names: list[str] | None = None
    if suffix == ".npz":
        if labels_path is not None:
            raise _error("--labels is for .npy predictions; a .npz file holds its labels")
        values, labels, key = _read_npz(path, pred_key, label_key)
    elif suffix == ".npy":
        if labels_path is None:
            raise _error(f"{path.name} holds one array: give the labels with --labels LABELS.npy")
        if not labels_path.exists():
            raise _error(f"no such file: {labels_path}")
        values, labels = _read_npy(path), _read_npy(labels_path)
        key = path.stem
    else:
        if labels_path is not None:
            raise _error("--labels is for .npy predictions; a table holds its label column")
        values, labels, names, key = _table_arrays(_read_table(path), label_key)
    values, labels = _check(values, labels)
    kind, notes = _decide_kind(values, kind, key)
    if kind == "logits" and np.isneginf(values).all(axis=1).any():
        row = int(np.argmax(np.isneginf(values).all(axis=1)))
        raise _error(f"row {row} of the logits is all -inf: it is no distribution")
    if kind == "probs":
        p_y = values[np.arange(len(labels)), labels]
        if (p_y == 0).any():
            notes.append(
                f"{int((p_y == 0).sum())} label(s) have probability exactly 0: their "
                "log-loss is clipped at -log(eps)"
            )
    notes += _diagnostics(values, labels, kind)
    if names is None or len(names) != values.shape[1]:
        names = [str(i) for i in range(values.shape[1])]
    return Predictions(values, labels, kind, str(path), names, notes)
