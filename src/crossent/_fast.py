"""The CPU fast path: cache-blocked loops for large NumPy arrays (and torch CPU tensors).

Array API code cannot write into an existing buffer (there is no ``out=``), so on NumPy every
``z - m`` and ``exp`` allocates and page-faults a fresh array as large as the logits. The two
softmax kernels walk the rows in blocks that stay in cache and reuse one buffer, which makes the
row log-sum-exp about twice as fast on a (65536, 1000) float32 array. :func:`map_blocks` applies
an element-wise rule (written once, in :mod:`crossent._semantics`) block by block, so that its
temporaries are cache-sized and reused instead of array-sized: 3-4x faster for the binary
cross-entropy. They are used only for large C-contiguous inputs; everything else takes the
Array API path.

On NumPy the blocks run on :data:`THREADS` threads (NumPy's ufuncs release the GIL): each
thread takes a contiguous run of blocks and has its own scratch buffer, each block writes only
its own rows, and a sum is added up block by block in block order, so the result is the same
bit for bit on any number of threads. torch CPU tensors run the blocks in order: torch's own
kernels already use its intra-op threads.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

BLOCK_ELEMENTS = 1 << 18  # ~1 MB of float32 per block: fits in L2 on current CPUs
MIN_ELEMENTS = 1 << 16  # below this the Array API path is as fast


def _available_cpus() -> int:
    setting = os.environ.get("CROSSENT_NUM_THREADS")
    if setting is not None and setting.strip().isdigit() and int(setting) > 0:
        return int(setting)
    affinity = getattr(os, "sched_getaffinity", None)  # the CPUs this process may run on
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


THREADS = _available_cpus()
"""Threads of the NumPy kernels: ``CROSSENT_NUM_THREADS``, else the CPUs this process may use."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_scratch = threading.local()
_T = TypeVar("_T")


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(THREADS, 1), thread_name_prefix="crossent")
        return _pool


_threshold_raised = False


def _raise_mmap_threshold() -> None:
    """Free one untouched 16 MB array, once per process, so that a block's temporaries are
    recycled on the heap instead of mapped and page-faulted afresh by every operation.

    glibc's malloc serves requests above a threshold (128 KB at start) with a fresh mmap, and
    raises that threshold to the size of the largest mapped chunk freed so far (up to 32 MB),
    trimming the heap above twice that. A block's dozen 1 MB temporaries were mapped, faulted
    in and unmapped per operation until some 1 MB chunk had been freed, and trimmed after:
    whether a (65536, 1000) float32 BCE gradient took 400 or 650 ms depended on what the
    process had freed before. This makes it 400 ms in every process (16 MB: the threshold
    then spans the temporaries of a block, and the trim threshold, 32 MB, their sum on both
    threads). Elsewhere than glibc it costs one allocation and changes nothing.
    """
    global _threshold_raised
    if not _threshold_raised:
        np.empty(1 << 22, dtype=np.float32)  # never written: only mapped and unmapped
        _threshold_raised = True


def _each_block(
    rows: int, cols: int, body: Callable[[int, int], _T], *, threaded: bool = True
) -> list[_T]:
    """``[body(start, stop) for each block of rows]``, in block order, the blocks on
    :data:`THREADS` threads when ``threaded``.

    The workers run in a copy of the caller's context, so ``np.errstate`` (a context variable)
    holds in them as it does in the caller.
    """
    _raise_mmap_threshold()
    step = max(1, BLOCK_ELEMENTS // max(cols, 1))
    spans = [(start, min(start + step, rows)) for start in range(0, rows, step)]
    threads = min(THREADS, len(spans)) if threaded else 1
    if threads <= 1:
        return [body(start, stop) for start, stop in spans]
    runs = [
        spans[i * len(spans) // threads : (i + 1) * len(spans) // threads] for i in range(threads)
    ]

    def run(part: list[tuple[int, int]]) -> list[_T]:
        return [body(start, stop) for start, stop in part]

    pool = _executor()
    futures = [pool.submit(contextvars.copy_context().run, run, part) for part in runs[1:]]
    first = run(runs[0])  # the caller takes the first run instead of waiting idle
    return first + [value for future in futures for value in future.result()]


def _buffer(rows: int, cols: int, dtype: Any) -> np.ndarray:
    """This thread's scratch array of shape ``(rows, cols)``, reused across blocks and calls
    (a fresh array per block would page-fault its memory in each time)."""
    size = rows * cols
    held = getattr(_scratch, "array", None)
    if held is None or held.dtype != dtype or held.size < size:
        held = np.empty(max(size, BLOCK_ELEMENTS), dtype=dtype)
        _scratch.array = held
    return held[:size].reshape(rows, cols)


def applies(xp: Any, x: Any) -> bool:
    """Whether ``x`` (classes last) is a NumPy array worth the blocked kernels."""
    return (
        getattr(xp, "__name__", "") == "array_api_compat.numpy"
        and x.ndim == 2
        and x.size >= MIN_ELEMENTS
        and x.flags.c_contiguous
    )


def blockable(xp: Any, x: Any, *others: Any) -> bool:
    """Whether an element-wise rule over ``x`` is worth :func:`map_blocks`: a large C-contiguous
    NumPy array, or a torch CPU tensor outside ``torch.compile`` (which fuses it itself) and
    outside autograd's recording (block-wise writes and a float sum would cut the graph)."""
    name = getattr(xp, "__name__", "")
    if name == "array_api_compat.numpy":
        return x.ndim >= 1 and x.size >= MIN_ELEMENTS and x.flags.c_contiguous
    if name == "array_api_compat.torch":
        torch = sys.modules["torch"]
        recording = torch.is_grad_enabled() and any(
            getattr(a, "requires_grad", False) for a in (x, *others)
        )
        return (
            not torch.compiler.is_compiling()
            and not recording
            and x.device.type == "cpu"
            and x.ndim >= 1
            and x.numel() >= MIN_ELEMENTS
            and x.is_contiguous()
        )
    return False


def fits_blocks(x: Any, *others: Any) -> bool:
    """Whether every one of ``others`` is None, has ``x``'s shape, or broadcasts along its last
    axis only (what :func:`map_blocks` can slice)."""
    cols = int(x.shape[-1]) if x.ndim else 1
    return all(
        o is None
        or tuple(o.shape) == tuple(x.shape)
        or (o.ndim <= 1 and int(o.size if isinstance(o, np.ndarray) else o.numel()) in (1, cols))
        for o in others
    )


def map_blocks(
    fn: Callable[..., Any],
    x: Any,
    *others: Any,
    out: Any = None,
    total: bool = False,
    pair: bool = False,
) -> Any:
    """``fn(x, *others)`` of an element-wise ``fn``, computed over cache-sized blocks of rows.

    ``others`` have ``x``'s shape (sliced like it), or broadcast along its last axis, or are
    None. Returns the result in ``out`` (a new array like ``x`` if None), or with ``total`` its
    sum as a Python float (accumulated in double precision, the array never formed). With
    ``pair``, ``fn`` returns two arrays, the result and one to sum (a gradient and its loss
    from one pass): returns (the result, that sum).
    """
    cols = int(x.shape[-1]) if x.ndim else 1
    flat = x.reshape(-1, cols)
    full = [o is not None and tuple(o.shape) == tuple(x.shape) for o in others]
    flat_others = [o.reshape(-1, cols) if f else o for o, f in zip(others, full, strict=True)]
    total_only = total and not pair
    if not total_only and out is None:
        out = x.new_empty(x.shape) if hasattr(x, "new_empty") else np.empty_like(x)
    flat_out = None if total_only else out.reshape(-1, cols)

    def block(start: int, stop: int) -> float:
        args = [o[start:stop] if f else o for o, f in zip(flat_others, full, strict=True)]
        value = fn(flat[start:stop], *args)
        if flat_out is None:
            return float(value.sum())
        if pair:
            value, summed = value
            flat_out[start:stop] = value
            return float(summed.sum())
        flat_out[start:stop] = value
        return 0.0

    sums = _each_block(int(flat.shape[0]), cols, block, threaded=isinstance(x, np.ndarray))
    if pair:
        return out, sum(sums)
    return sum(sums) if total else out


def row_logsumexp(z: np.ndarray, *, precise: bool = False) -> np.ndarray:
    """log(sum(exp(z))) of each row of a 2-D array, shifted by the row max.

    With ``precise``, a row whose other terms add up to less than its maximum's (sum of the
    shifted exponentials < 2, so the maximum is unique) takes ``m + log1p(rest)``, the sum of
    the other terms apart (SciPy after gh-18295): ``log(1 + 4e-18)`` would round to 0. Only
    those rows are summed again, so a row with many comparable terms costs nothing more.
    """
    rows, cols = z.shape
    out = np.empty(rows, dtype=z.dtype)

    def block(start: int, stop: int) -> None:
        work = _buffer(stop - start, cols, z.dtype)
        m = z[start:stop].max(axis=1, keepdims=True)
        finite = np.isfinite(m[:, 0])
        m[~finite] = 0  # as the Array API path: a +-inf max shifts by 0, giving +-inf
        np.subtract(z[start:stop], m, out=work)
        np.exp(work, out=work)
        total = work.sum(axis=1)
        out[start:stop] = np.log(total) + m[:, 0]
        close = (total < 2) & finite if precise else None
        if close is not None and close.any():
            near = work[close]
            near[near == 1] = 0  # the maximum's own term exp(0) = 1, exactly
            out[start:stop][close] = np.log1p(near.sum(axis=1)) + m[close, 0]

    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf for all -inf rows
        _each_block(rows, cols, block)
    return out


def softmax_with_lse(
    z: np.ndarray, row_scale: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``softmax(z) * row_scale`` and the row log-sum-exp, in one blocked pass over ``z``.

    Rows whose max is not finite come out NaN here; the caller takes the safe path for them.
    """
    rows, cols = z.shape
    out = np.empty_like(z)
    lse = np.empty(rows, dtype=z.dtype)

    def block(start: int, stop: int) -> None:
        work = out[start:stop]
        m = z[start:stop].max(axis=1, keepdims=True)
        np.subtract(z[start:stop], m, out=work)
        np.exp(work, out=work)
        total = work.sum(axis=1)
        lse[start:stop] = np.log(total) + m[:, 0]
        factor = 1 / total if row_scale is None else row_scale[start:stop] / total
        work *= factor[:, None]

    with np.errstate(divide="ignore", invalid="ignore"):
        _each_block(rows, cols, block)
    return out, lse


def subtract_at(g: np.ndarray, index: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """``g[i, index[i]] -= amount[i]`` in place (no one-hot mask over the whole array)."""
    rows = np.arange(g.shape[0])
    g[rows, index] -= amount
    return g


def focal_margin(z: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d = LSE of the other classes - z_t, the rivals' sum of exp(z - max)) of each row.

    One blocked pass: exp(z - max) once, the target's term set to 0 before the sum, so the
    rivals' sum never comes from ``total - target`` (no cancellation where p_t -> 1). Rows whose
    max is not finite, or whose rivals' sum is so small that its terms may be subnormal, are for
    the caller to redo on the Array API path.
    """
    rows, cols = z.shape
    d = np.empty(rows, dtype=z.dtype)
    rivals = np.empty(rows, dtype=z.dtype)

    def block(start: int, stop: int) -> None:
        part, t = z[start:stop], index[start:stop]
        here = np.arange(stop - start)
        work = _buffer(stop - start, cols, z.dtype)
        m = part.max(axis=1)
        np.subtract(part, m[:, None], out=work)
        np.exp(work, out=work)
        work[here, t] = 0
        total = work.sum(axis=1)
        rivals[start:stop] = total
        d[start:stop] = np.log(total) + m - part[here, t]

    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        _each_block(rows, cols, block)
    return d, rivals


def focal_gradient(z: np.ndarray, index: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """``slope * (softmax of the rivals - onehot(t))`` per row, in one blocked pass over z."""
    rows, cols = z.shape
    out = np.empty_like(z)

    def block(start: int, stop: int) -> None:
        part, g, t, s = z[start:stop], out[start:stop], index[start:stop], slope[start:stop]
        here = np.arange(stop - start)
        np.subtract(part, part.max(axis=1, keepdims=True), out=g)
        np.exp(g, out=g)
        g[here, t] = 0
        g *= (s / g.sum(axis=1))[:, None]
        g[here, t] = -s

    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        _each_block(rows, cols, block)
    return out


def uniform_bin_index(x: np.ndarray, edges: np.ndarray, *, right_closed: bool) -> np.ndarray:
    """``searchsorted(edges[1:-1], x)`` for the equal-width edges ``float(i / B)``, faster.

    ``np.searchsorted`` of unsorted keys costs about 20 ns a value (a branchy binary search);
    ``floor(B x)`` lands within one bin of the answer (both it and the edges are rounded to
    the last bit only), and comparing ``x`` with the two edges of that bin settles it, so the
    index is the same to the bit as the binary search's in about 6 ns a value.
    ``right_closed`` is ``side="left"`` (a value on an edge goes to the bin below it).
    """
    n_bins = int(edges.shape[0]) - 1
    guess = np.multiply(x, x.dtype.type(n_bins)).astype(np.intp)
    np.clip(guess, 0, n_bins - 1, out=guess)
    lower = edges.copy()  # lower[g] = edges[g], upper[g] = edges[g + 1]; the outer ones never move
    lower[0] = -np.inf
    upper = np.append(edges[1:-1], np.inf).astype(edges.dtype)
    bound = np.take(lower, guess)
    below = x <= bound if right_closed else x < bound
    np.take(upper, guess, out=bound)
    above = x > bound if right_closed else x >= bound
    guess -= below
    guess += above
    return guess


def sparse_bin_sums(
    conf: np.ndarray,
    hit: np.ndarray,
    edges: np.ndarray,
    bins: Callable[[np.ndarray], np.ndarray],
    *,
    right_closed: bool,
    ones_in_own_bin: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Count, sum and hits per (column, bin) of a block whose first bin holds most values.

    ``bins`` gives the bin of values (``crossent._dispatch.bin_index``: the one rule).

    A softmax over K classes puts most probabilities below the first edge (1/15 for 15 bins:
    at most 14 values a row lie above it), so only the values above it are binned; the first
    bin's count and sum are what they leave of each column's. Returns flat ``column * bins +
    bin`` arrays, or None when over a quarter of the values lie above the first edge (then
    binning them all is as fast). ``hit`` is (rows,) the hit column of each row, or (rows, C).
    """
    rows, columns = conf.shape
    n_bins = int(edges.shape[0]) - 1
    nb = n_bins + 1 if ones_in_own_bin else n_bins
    above = conf > edges[1] if right_closed else conf >= edges[1]
    if 4 * np.count_nonzero(above) > conf.size:
        return None
    r, c = np.nonzero(above)
    values = conf[r, c]
    flat = c * nb + bins(values)
    length = columns * nb
    counts = np.bincount(flat, minlength=length)
    sums = np.bincount(flat, weights=values, minlength=length)
    counts[::nb] = rows - counts.reshape(columns, nb).sum(axis=1)
    sums[::nb] = conf.sum(axis=0, dtype=np.float64) - sums.reshape(columns, nb).sum(axis=1)
    if hit.ndim == 1:
        hit_cols, hit_values = hit, conf[np.arange(rows), hit]
    else:
        hit_rows, hit_cols = np.nonzero(hit)
        hit_values = conf[hit_rows, hit_cols]
    hits = np.bincount(hit_cols * nb + bins(hit_values), minlength=length)
    return counts, sums, hits
