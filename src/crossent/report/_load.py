"""Reading predictions and labels from .npz, .npy pairs, .csv and .parquet, with one-line errors.

Every problem a file can have (unreadable, a missing array or column, a wrong shape, NaN, labels
out of range) ends in a :class:`crossent.errors.UsageError` whose message is a single line.

Size: before anything is read whole, the bytes it would take are computed from the file's
header or metadata (a ``.npy`` header's shape and dtype, inside a ``.npz`` too, without
decompressing; a parquet file's row-group metadata; a CSV file's size) and checked against
``max_bytes`` (default: half the machine's memory); a file that is not a regular file (a pipe,
a device) is refused before it is opened.

Memory: a ``.npz`` member and a CSV file are read whole (the array is in memory once); a
``.npy`` file is read through a memory map and a parquet file one row group at a time
(:class:`MappedRows`, :class:`ParquetRows`), so their predictions are never in memory whole:
every pass over them (the checks here, the scores and the temperature fits) reads a block of
rows at a time. Only per-example vectors (labels, confidences, losses: a few numbers a row) are
kept.
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossent.errors import UsageError

PREDICTION_KEYS = ("predictions", "probs", "probabilities", "y_proba", "y_prob", "scores", "logits")
LABEL_KEYS = ("ground_truth", "labels", "label", "targets", "target", "y_true", "y")
ID_COLUMNS = ("id", "index", "idx", "example", "sample", "__index_level_0__")
SUFFIXES = (".npz", ".npy", ".csv", ".parquet")
BLOCK_VALUES = 1 << 17  # values in a block of rows read at a time (512 kB of float32: the
# scoring pass was 15 % slower with blocks of 2^20 values and 30 % slower with 2^15)
RELEASE_BYTES = 1 << 24  # bytes of a memory-mapped file read between two releases of its pages
RELEASE_MARGIN = 1 << 18  # and from how far before them (the kernel maps pages around a fault)
DIAGNOSE_ROWS = 4096  # crossent.diagnose looks at the first rows only (it copies to float64)


def default_max_bytes() -> int:
    """Half the machine's physical memory (8 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def size_text(nbytes: int) -> str:
    """Bytes for a message: ``3.2 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def _check_bytes(nbytes: int, what: str, max_bytes: int) -> None:
    if nbytes > max_bytes:
        raise _error(
            f"{what} would take {size_text(nbytes)} of memory, over the limit of "
            f"{size_text(max_bytes)} (--max-bytes / max_bytes=)"
        )


def _regular_file(path: Path) -> None:
    """Refuse a missing path, a folder, and anything that is not a regular file (a FIFO would
    block the read forever, a device never ends)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise _error(f"no such file: {path}") from None
    except OSError as error:
        raise _error(f"cannot read {path}: {error.strerror or error}") from None
    if stat.S_ISDIR(mode):
        raise _error(f"{path} is a directory; give a .npz, .npy, .csv or .parquet file")
    if not stat.S_ISREG(mode):
        raise _error(f"{path} is not a regular file (a pipe, a device or a socket)")


def _npy_bytes(stream: Any) -> int | None:
    """The bytes of the array whose ``.npy`` header starts ``stream`` (None: not readable
    here; np.load then says what is wrong)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
        shape, _, dtype = read[version](stream)
    except Exception:  # a header np.load will refuse with its own message
        return None
    return int(np.prod(shape, dtype=np.float64)) * dtype.itemsize


def _float_block(block: np.ndarray) -> np.ndarray:
    """Float32/float64 kept as they are (the log-loss clip is the dtype's epsilon, as in
    scikit-learn); integers read as float64 and float16 as float32."""
    if not np.issubdtype(block.dtype, np.floating):
        return block.astype(np.float64)
    if np.finfo(block.dtype).bits < 32:
        return block.astype(np.float32)
    return block


def _float_dtype(dtype: np.dtype) -> np.dtype:
    return _float_block(np.zeros(0, dtype=dtype)).dtype


class MappedRows:
    """The (N, K) array of a ``.npy`` file through a read-only memory map, read by rows.

    ``rows[a:b]`` copies the rows out (as float32 or float64). The pages read are handed back
    to the kernel (``madvise(MADV_DONTNEED)``; they stay in the page cache for the next pass)
    every :data:`RELEASE_BYTES`, so a pass over the file keeps about that much of it resident,
    not the file.
    """

    ndim = 2

    def __init__(self, array: np.memmap) -> None:
        self._array = array
        self.shape = (int(array.shape[0]), int(array.shape[1]))
        self.dtype = _float_dtype(array.dtype)
        self._map = array.base if isinstance(array.base, mmap.mmap) else None
        # where the data starts in the map (np.memmap maps from an allocation-granular offset)
        self._start = int(array.offset) % mmap.ALLOCATIONGRANULARITY
        self._row_bytes = int(array.strides[0]) if array.flags.c_contiguous else 0
        self._read = (0, 0)  # bytes of the map read since the last release

    def __len__(self) -> int:
        return self.shape[0]

    def _release(self, first: int, last: int) -> None:
        # From a little before: a page fault also maps the cached pages around it (the
        # kernel's fault-around, 64 kB), some of them already released.
        first = max(first - RELEASE_MARGIN, 0)
        first -= first % mmap.PAGESIZE
        if self._map is not None and last > first:
            self._map.madvise(mmap.MADV_DONTNEED, first, last - first)

    def __getitem__(self, rows: slice) -> np.ndarray:
        block = _float_block(np.array(self._array[rows]))
        if self._map is None or not self._row_bytes or not hasattr(mmap, "MADV_DONTNEED"):
            return block
        start, stop, _ = rows.indices(self.shape[0])
        first, last = self._start + start * self._row_bytes, self._start + stop * self._row_bytes
        low, high = self._read
        if not low <= first <= high:  # not the next rows (a new pass): release what was read
            self._release(low, high)
            low = first
        if last - low >= RELEASE_BYTES:
            self._release(low, last)
            low = last
        self._read = (low, last)
        return block


class ParquetRows:
    """The prediction columns of a parquet file, read one row group at a time.

    ``rows[a:b]`` decodes the row groups that hold those rows (the last one is kept for the
    next, sequential, slice): memory holds a row group, not the file.
    """

    ndim = 2

    def __init__(self, file: Any, columns: list[str], list_column: bool, dtype: np.dtype) -> None:
        self._file, self._columns, self._list = file, columns, list_column
        self._cached: tuple[int, np.ndarray] | None = None
        meta = file.metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        self._starts = np.cumsum([0, *sizes])
        width = len(columns)
        if list_column:  # the width of the lists, from the first row group
            width = self._group(0).shape[1] if meta.num_row_groups else 0
        self.shape = (int(self._starts[-1]), int(width))
        self.dtype = dtype

    def __len__(self) -> int:
        return self.shape[0]

    def _group(self, i: int) -> np.ndarray:
        if self._cached is not None and self._cached[0] == i:
            return self._cached[1]
        table = self._file.read_row_group(i, columns=self._columns)
        values = _table_values(table, self._columns, self._list)
        self._cached = (i, values)
        return values

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        if stop <= start:
            return np.zeros((0, self.shape[1]), dtype=self.dtype)
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        last = int(np.searchsorted(self._starts, stop, side="left")) - 1
        parts = []
        for i in range(first, last + 1):
            group = self._group(i)
            lo = max(start - int(self._starts[i]), 0)
            hi = min(stop - int(self._starts[i]), group.shape[0])
            parts.append(group[lo:hi])
        block = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return block.astype(self.dtype, copy=False)


def row_blocks(values: Any) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, rows)`` of (N, K) ``values`` (an array, or rows read on demand) in blocks
    of about :data:`BLOCK_VALUES` values."""
    n, k = values.shape
    step = max(1, BLOCK_VALUES // max(int(k), 1))
    for start in range(0, int(n), step):
        stop = min(start + step, int(n))
        yield start, stop, values[start:stop]


@dataclass
class Predictions:
    """Validated predictions: ``values`` (N, K), ``labels`` (N,) int64.

    ``values`` is a float32 or float64 array, or (``.npy``, parquet) an object with ``shape``,
    ``dtype`` and row slicing, ``values[a:b]``, that reads the rows on demand. ``kind`` is
    "probs" or "logits"; ``class_names`` one name per class; ``notes`` the findings worth
    showing (diagnostics, how the kind was decided); ``weights`` the per-example weights, or
    None. Multi-label (``multilabel``): ``labels`` is (N, K) bool and ``values`` K
    independent probabilities (or logits) per example.
    """

    values: Any
    labels: np.ndarray
    kind: str
    source: str
    class_names: list[str]
    notes: list[str] = field(default_factory=list)
    weights: np.ndarray | None = None  # (N,) float64, finite, >= 0, not all 0
    multilabel: bool = False  # labels (N, K) bool: K independent 0/1 labels per example


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


def _read_npz(
    path: Path,
    pred_key: str | None,
    label_key: str | None,
    weight_key: str | None = None,
    *,
    max_bytes: int,
) -> tuple[Any, Any, str, Any]:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise _error(f"cannot read {path} as .npz: it is not a zip archive of .npy arrays")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            pk = _pick(names, pred_key, PREDICTION_KEYS, "array of predictions")
            lk = _pick(names, label_key, LABEL_KEYS, "array of labels")
            wk = None if weight_key is None else _pick(names, weight_key, (), "array of weights")
            total = 0
            for name in filter(None, (pk, lk, wk)):  # the headers only: nothing inflated yet
                with data.zip.open(f"{name}.npy") as member:
                    total += _npy_bytes(member) or 0
            _check_bytes(total, f"the arrays of {path.name}", max_bytes)
            weights = None if wk is None else np.asarray(data[wk])
            return np.asarray(data[pk]), np.asarray(data[lk]), pk, weights
    except Exception as error:
        if isinstance(error, UsageError):
            raise
        raise _error(f"cannot read {path} as .npz: {_first_line(error)}") from None


def _read_npy(path: Path, *, max_bytes: int, mapped: bool = False) -> Any:
    """The array of a ``.npy`` file: loaded, or (``mapped``) a :class:`MappedRows` when 2-D
    (then never in memory whole, so not held to ``max_bytes``)."""
    _regular_file(path)
    try:
        with open(path, "rb") as f:
            nbytes = _npy_bytes(f) or 0
        if not mapped:  # checked before the read
            _check_bytes(nbytes, f"the array of {path.name}", max_bytes)
        array = np.load(path, allow_pickle=False, mmap_mode="r" if mapped else None)
    except UsageError:
        raise
    except Exception as error:
        raise _error(f"cannot read {path} as .npy: {_first_line(error)}") from None
    if mapped and array.ndim == 2 and _numeric(array.dtype):
        return MappedRows(array)
    _check_bytes(nbytes, f"the array of {path.name}", max_bytes)  # a map read whole
    return np.asarray(array)


def _numeric(dtype: np.dtype) -> bool:
    return bool(np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer))


def _is_list(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind))


def _table_layout(
    schema: Any, label_col: str | None, weight_col: str | None = None
) -> tuple[str, list[str], bool]:
    """Label column, prediction columns, and whether they are one list column, of a table.

    The predictions are one numeric column per class, or one list column of K values a row;
    columns named like an example id (``id``, ``index``, ...) and the weight column are
    skipped.
    """
    import pyarrow as pa

    names = list(schema.names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # a column read by name would be ambiguous (pyarrow raises a KeyError)
        raise _error(f"the table has several columns named {', '.join(map(repr, repeated))}")
    lk = _pick(names, label_col, LABEL_KEYS, "label column")
    if weight_col is not None:
        _pick(names, weight_col, (), "weight column")
    rest = [n for n in names if n not in (lk, weight_col) and n.lower() not in ID_COLUMNS]
    if not rest:
        raise _error(f"no prediction columns beside the label column {lk!r}")
    lists = [
        n
        for n in rest
        if _is_list(schema.field(n).type) or pa.types.is_large_list(schema.field(n).type)
    ]
    if lists:
        return lk, lists[:1], True
    for n in rest:
        kind = schema.field(n).type
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            raise _error(f"column {n!r} is not numeric ({kind}); give one numeric column per class")
    return lk, rest, False


def _table_values(table: Any, columns: list[str], list_column: bool) -> np.ndarray:
    """The (rows, K) predictions of a table (or of one row group of it)."""
    import pyarrow.compute as pc

    if list_column:
        col = table.column(columns[0]).combine_chunks()
        lengths = pc.list_value_length(col)
        widths = pc.min_max(lengths).as_py() if len(col) else {"min": 0, "max": 0}
        if col.null_count or widths["min"] != widths["max"]:
            raise _error(f"the list column {columns[0]!r} has rows of different lengths (or nulls)")
        flat = pc.list_flatten(col).to_numpy(zero_copy_only=False)
        return _float_block(flat.reshape(len(col), int(widths["max"] or 0)))
    parts = []
    for n in columns:
        column = table.column(n)
        if column.null_count:
            raise _error(f"column {n!r} has {column.null_count} missing value(s)")
        parts.append(column.to_numpy(zero_copy_only=False))
    return _float_block(np.stack(parts, axis=1))


def _read_table(
    path: Path, label_col: str | None, weight_col: str | None = None, *, max_bytes: int
) -> tuple[Any, np.ndarray, list[str], str, np.ndarray | None]:
    """Predictions (an array, or parquet rows read by row group), labels, column names, key,
    and the weight column (None without ``weight_col``)."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            file = pq.ParquetFile(path)
            schema = file.schema_arrow
            meta = file.metadata  # read at most: a row group whole, and a few columns of all rows
            largest = max((meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)),
                          default=0)  # fmt: skip
            _check_bytes(max(largest, 16 * meta.num_rows), f"a row group of {path.name}", max_bytes)
        else:
            import pyarrow.csv as pcsv

            # read whole: its numbers take about as many bytes as their text, times two while
            # pyarrow parses
            _check_bytes(2 * path.stat().st_size, f"the table {path.name}", max_bytes)
            table = pcsv.read_csv(path)
            schema = table.schema
    except (ModuleNotFoundError, UsageError):
        raise
    except Exception as error:
        raise _error(f"cannot read {path}: {_first_line(error)}") from None
    lk, columns, list_column = _table_layout(schema, label_col, weight_col)
    key = columns[0] if list_column else "columns"
    names = [] if list_column else columns
    wanted = [lk] if weight_col is None else [lk, weight_col]
    if path.suffix.lower() != ".parquet":
        small = table.select(wanted)
    else:
        try:
            small = file.read(columns=wanted)
        except Exception as error:
            raise _error(f"cannot read {path}: {_first_line(error)}") from None
    labels = small.column(lk).to_numpy(zero_copy_only=False)
    weights = None
    if weight_col is not None:
        column = small.column(weight_col)
        if column.null_count:
            raise _error(
                f"the weight column {weight_col!r} has {column.null_count} missing value(s)"
            )
        weights = column.to_numpy(zero_copy_only=False)
    if path.suffix.lower() != ".parquet":
        return _table_values(table, columns, list_column), labels, names, key, weights
    kinds = [schema.field(n).type for n in columns]
    if list_column:
        kinds = [kinds[0].value_type]
    dtype = np.result_type(*(np.dtype(k.to_pandas_dtype()) for k in kinds))
    if not _numeric(dtype):
        raise _error(f"the list column {columns[0]!r} does not hold numbers ({kinds[0]})")
    rows = ParquetRows(file, columns, list_column, _float_dtype(dtype))
    return rows, labels, names, key, weights


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


def _check(values: Any, labels: np.ndarray) -> tuple[Any, np.ndarray]:
    """Shapes, dtypes and labels: everything but the values themselves (see :func:`_scan`)."""
    if not _numeric(values.dtype):
        raise _error(f"predictions must be numbers; got dtype {values.dtype}")
    shape = tuple(values.shape)
    if len(shape) != 2:
        raise _error(f"predictions must have shape (N, K); got shape {shape}")
    n, k = shape
    if k < 2:
        raise _error(f"predictions must have at least 2 classes; got shape {shape}")
    if n < 2:
        raise _error(f"need at least 2 examples; got {n}")
    labels = _labels_as_int(labels)
    if labels.shape[0] != n:
        raise _error(f"{n} rows of predictions but {labels.shape[0]} labels")
    bad = (labels < 0) | (labels >= k)
    if bad.any():
        i = int(np.argmax(bad))
        raise _error(f"labels must be in [0, {k}) for {k} classes; found {labels[i]} at index {i}")
    if isinstance(values, np.ndarray):
        values = _float_block(values)
    return values, labels


@dataclass
class _Scan:
    """What one pass over the values finds (positions are (row, class))."""

    nan: int = 0
    first_nan: tuple[int, int] | None = None
    first_posinf: tuple[int, int] | None = None
    outside: tuple[int, int, float] | None = None  # first value outside [0, 1]
    worst_row: int = 0  # the row whose sum is farthest from 1
    worst_sum: float = 1.0
    all_neginf_row: int | None = None  # first row of all -inf
    zero_label_probs: int = 0  # rows whose label's value is exactly 0


def _first(mask: np.ndarray, start: int) -> tuple[int, int] | None:
    if not mask.any():
        return None
    i, j = np.unravel_index(int(np.argmax(mask)), mask.shape)
    return int(i) + start, int(j)


def _scan(values: Any, labels: np.ndarray | None) -> _Scan:
    """One pass over the values, a block of rows at a time (``labels`` None: multi-label,
    no label column to look up)."""
    scan = _Scan()
    worst = -1.0
    for start, stop, v in row_blocks(values):
        nan = np.isnan(v)
        count = int(nan.sum())
        if count:
            scan.nan += count
            scan.first_nan = scan.first_nan or _first(nan, start)
            continue
        if scan.first_posinf is None:
            scan.first_posinf = _first(np.isposinf(v), start)
        if scan.outside is None:
            where = _first(~((v >= 0) & (v <= 1)), start)
            if where is not None:
                scan.outside = (*where, float(v[where[0] - start, where[1]]))
        sums = v.sum(axis=1, dtype=np.float64)
        gaps = np.abs(sums - 1)
        row = int(np.argmax(gaps))
        if gaps[row] > worst:
            worst, scan.worst_row, scan.worst_sum = float(gaps[row]), row + start, float(sums[row])
        if scan.all_neginf_row is None:
            empty = np.isneginf(v).all(axis=1)
            if empty.any():
                scan.all_neginf_row = int(np.argmax(empty)) + start
        if labels is not None:
            rows = np.arange(stop - start)
            scan.zero_label_probs += int((v[rows, labels[start:stop]] == 0).sum())
    if scan.first_nan is not None:
        i, j = scan.first_nan
        raise _error(f"predictions hold {scan.nan} NaN value(s); the first at row {i}, class {j}")
    if scan.first_posinf is not None:
        i, j = scan.first_posinf
        raise _error(f"predictions hold +inf; the first at row {i}, class {j}")
    return scan


def _decide_kind(
    scan: _Scan, kind: str, key: str, k: int, dtype: np.dtype
) -> tuple[str, list[str]]:
    notes = []
    in_unit = scan.outside is None
    tol = max(1e-4, 4 * k * float(np.finfo(dtype).eps))
    normalized = in_unit and abs(scan.worst_sum - 1) <= tol
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
        if scan.outside is not None:
            i, j, value = scan.outside
            raise _error(
                f"--kind probs, but predictions hold {value} at row {i}, class "
                f"{j}, outside [0, 1]; are they logits?"
            )
        if not normalized:
            notes.append(
                f"warning: rows do not sum to 1 (row {scan.worst_row} sums to "
                f"{scan.worst_sum:.6g}); the scores use them as given"
            )
    return kind, notes


def _diagnostics(values: Any, labels: np.ndarray, kind: str) -> list[str]:
    """Findings of :func:`crossent.diagnose` that apply to values read as ``kind``.

    On the first :data:`DIAGNOSE_ROWS` rows: the mistakes it finds (probabilities passed as
    logits and the like) show in any sample, and it works on a float64 copy.
    """
    import crossent

    diagnose = getattr(crossent, "diagnose", None)
    if diagnose is None:  # an older crossent without diagnose(): nothing more to say
        return []
    n = int(values.shape[0])
    rows = min(n, DIAGNOSE_ROWS)
    prefix = "" if rows == n else f"in the first {rows:,} rows: "
    notes = []
    for finding in diagnose(values[:rows], labels[:rows]):
        if kind == "probs" and finding.code in ("probabilities_as_logits", "rows_not_normalized"):
            continue  # they are read as probabilities: the finding is about logits
        if kind == "logits" and finding.code == "log_probabilities":
            notes.append(f"{prefix}the logits are log-probabilities (each row's exp sums to 1)")
            continue
        notes.append(f"{finding.severity}: {prefix}{finding.message}")
    return notes


def _labels_by_name(labels: np.ndarray, names: list[str] | None) -> np.ndarray:
    """String labels as the indices of the class names (the prediction columns' order)."""
    if labels.dtype.kind == "O" and not all(isinstance(x, str) for x in labels.ravel()):
        raise _error("labels hold missing or non-numeric values")
    if not names:
        raise _error(
            "the labels are class names: name the prediction columns after the classes, or "
            "give the class order (--class-names, or class_names=)"
        )
    as_str = labels.astype(str)
    unknown = ~np.isin(as_str, np.asarray(names, dtype=str))
    if unknown.any():
        i = int(np.argmax(unknown))
        raise _error(
            f"label {as_str[i]!r} at index {i} is no class of the predictions "
            f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})"
        )
    order = np.argsort(np.asarray(names, dtype=str))
    position = np.searchsorted(np.asarray(names, dtype=str)[order], as_str)
    return order[position].astype(np.int64)


def _binary_columns(values: Any, kind: str, key: str) -> tuple[Any, str]:
    """One value per example (shape (N,) or (N, 1): scikit-learn's ``predict_proba[:, 1]``) as
    the two columns of a binary problem, and the note that says so; other values unchanged.

    Probabilities ``p`` (every value in [0, 1], unless ``kind`` or a key named "logits" says
    otherwise) become ``[1 - p, p]``; a logit ``z`` becomes ``[0, z]``, whose softmax is
    ``[1 - sigmoid(z), sigmoid(z)]``.
    """
    shape = tuple(values.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or not _numeric(values.dtype):
        return values, ""
    v = _float_block(np.asarray(values[:]).reshape(-1))  # N numbers: read whole
    finite = v[np.isfinite(v)]
    in_unit = bool(np.all((finite >= 0) & (finite <= 1)))
    if kind == "logits" or (kind == "auto" and (key.lower() == "logits" or not in_unit)):
        return np.stack([np.zeros_like(v), v], axis=1), (
            "binary: one logit per example, read as the log-odds of class 1 (columns [0, z])"
        )
    return np.stack([1 - v, v], axis=1), (
        "binary: one probability per example, read as P(y = 1) (columns [1 - p, p])"
    )


def load_predictions(
    path: Path,
    *,
    labels_path: Path | None = None,
    kind: str = "auto",
    pred_key: str | None = None,
    label_key: str | None = None,
    class_names: list[str] | None = None,
    weights: Any = None,
    multilabel: bool | None = None,
    max_bytes: int | None = None,
) -> Predictions:
    """Read and validate predictions and labels (see the module notes); ``class_names`` (in
    the order of the prediction columns) replaces the names of a table's columns; nothing
    is read whole that would take more than ``max_bytes`` (default :func:`default_max_bytes`).

    ``weights``: per-example weights, an array, or a string: a ``.npy`` file (the one way for
    ``.npy`` predictions), else the array of a ``.npz`` or the column of a table of that name.
    """
    _regular_file(path)
    limit = default_max_bytes() if max_bytes is None else max_bytes
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise _error(
            f"unknown file type {suffix or '(none)'!r} of {path}; use {', '.join(SUFFIXES)}"
        )
    key = ""
    names: list[str] | None = None
    weight_key, in_file = None, None
    if isinstance(weights, (str, Path)):
        if Path(weights).suffix.lower() == ".npy" or suffix == ".npy":
            if not Path(weights).is_file():
                raise _error(f"no such file: {weights} (the weights: a .npy file, or for a "
                             ".npz or a table the name of an array or column)")  # fmt: skip
            weights = _read_npy(Path(weights), max_bytes=limit)
        else:
            weight_key, weights = str(weights), None
    if suffix == ".npz":
        if labels_path is not None:
            raise _error("--labels is for .npy predictions; a .npz file holds its labels")
        values, labels, key, in_file = _read_npz(
            path, pred_key, label_key, weight_key, max_bytes=limit
        )
    elif suffix == ".npy":
        if labels_path is None:
            raise _error(f"{path.name} holds one array: give the labels with --labels LABELS.npy")
        values = _read_npy(path, max_bytes=limit, mapped=True)
        labels = _read_npy(labels_path, max_bytes=limit)
        key = path.stem
    else:
        if labels_path is not None:
            raise _error("--labels is for .npy predictions; a table holds its label column")
        values, labels, names, key, in_file = _read_table(
            path, label_key, weight_key, max_bytes=limit
        )
    if weight_key is not None:
        weights = in_file
    if class_names is not None:
        k = int(values.shape[1]) if values.ndim == 2 else 2
        if len(class_names) != k:
            raise _error(f"{len(class_names)} class names for {k} columns of predictions")
        names = class_names
    predictions = from_arrays(
        values,
        labels,
        kind=kind,
        source=str(path),
        key=key,
        class_names=names,
        weights=weights,
        multilabel=multilabel,
    )
    if weight_key is not None:
        predictions.notes.insert(0, f"weighted by the {weight_key!r} of {path.name}")
    return predictions


def from_arrays(
    values: Any,
    labels: Any,
    *,
    kind: str = "auto",
    source: str = "arrays",
    key: str = "",
    class_names: list[str] | None = None,
    weights: Any = None,
    multilabel: bool | None = None,
) -> Predictions:
    """Validate predictions and labels given as arrays (the checks every file goes through).

    ``multilabel``: None detects it (labels of the predictions' 2-D shape), True requires it.
    """
    from . import _multilabel
    from ._weights import check_weights, weights_note

    labels = np.asarray(labels)
    if multilabel or (multilabel is None and _multilabel.looks_multilabel(values, labels)):
        w = None if weights is None else check_weights(weights, int(labels.shape[0]))
        return _multilabel.check(
            values,
            labels,
            kind=kind,
            source=source,
            key=key,
            class_names=class_names,
            weights=w,
            detected=multilabel is None,
        )
    values, binary = _binary_columns(values, kind, key)
    if labels.dtype.kind in "USO":
        labels = _labels_by_name(labels, class_names)
    values, labels = _check(values, labels)
    names = class_names
    scan = _scan(values, labels)
    kind, notes = _decide_kind(scan, kind, key, int(values.shape[1]), values.dtype)
    if binary:
        notes.insert(0, binary)
    if kind == "logits" and scan.all_neginf_row is not None:
        raise _error(f"row {scan.all_neginf_row} of the logits is all -inf: it is no distribution")
    if kind == "probs" and scan.zero_label_probs:
        notes.append(
            f"{scan.zero_label_probs} label(s) have probability exactly 0: their "
            "log-loss is clipped at -log(eps)"
        )
    notes += _diagnostics(values, labels, kind)
    if not names or len(names) != values.shape[1]:
        names = [str(i) for i in range(values.shape[1])]
    w = None if weights is None else check_weights(weights, len(labels))
    if w is not None:
        notes.append(
            weights_note(w) + "; the AURC and the risk-coverage curve have no weighted form "
            "here and are left out"
        )
    return Predictions(values, labels, kind, source, names, notes, w)
