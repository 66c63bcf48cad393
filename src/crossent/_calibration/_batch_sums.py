"""A batch reduced, on its own device, to the sufficient statistics of the calibration figures.

:class:`~crossent._calibration._streaming.StreamingCalibration` calls these: each returns small
arrays (per-bin counts and sums, the sums of the per-example log-loss and Brier terms, and
counts of invalid entries) in the batch's library and on its device, in float64 where the
library has it. Nothing here reads the data; :func:`diagnose` does, on the error path only, to
name the first offending value.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat
import numpy as np

from .._dispatch import bincount
from .._namespace import Array, default_int, namespace, to_numpy, upcast
from .._validation import format_index
from ._binning import _bin_statistics, _uniform_edges, _weighted_sums
from ._inputs import _precise, _take
from ._scores import _nll_of_probs


def refuse_traced(x: Array) -> None:
    if type(x).__module__.startswith("jax") and any(
        cls.__name__ == "Tracer" for cls in type(x).__mro__
    ):
        raise TypeError(
            "StreamingCalibration reads each batch's sums on the host; call update() outside "
            "jax.jit (on the jitted function's outputs)"
        )


def shape_of(a: Any) -> tuple[int, ...]:
    return tuple(a.shape) if hasattr(a, "shape") else np.shape(a)


def _floating(xp: Any, a: Array) -> Array:
    if xp.isdtype(a.dtype, "real floating"):
        return a
    return xp.astype(a, xp.asarray(0.0).dtype)


def weights_of(xp: Any, weights: Array | None, shape: tuple[int, ...], like: Array) -> Array | None:
    """Per-example weights as a flat float64 array on the device of ``like``."""
    if weights is None:
        return None
    _, (w,) = namespace(weights)
    if tuple(w.shape) != shape:
        raise ValueError(f"weights must have the labels' shape {shape}; got {tuple(w.shape)}")
    w = xp.asarray(xp.reshape(xp.asarray(w), (-1,)), device=array_api_compat.device(like))
    return _precise(xp, _floating(xp, w))


def _binned_sums(
    xp: Any,
    conf: Array,
    hit: Array,
    w: Array | None,
    *,
    n_bins: int,
    right_closed: bool,
    ones_in_own_bin: bool,
) -> tuple[Array, Array, Array, Array]:
    """Per-bin count, weight, weighted confidence and weighted hits of ``conf`` (N, C), (C, B).

    ``hit`` is (N, C) bool or (N,) the hit column of each row, as for ``_bin_statistics``,
    whose equal-width bins and sums these are (with weights, its weighted sums).
    """
    edges = _uniform_edges(xp, n_bins, conf.dtype, getattr(conf, "device", None))
    if w is None:
        stats = _bin_statistics(
            xp, conf, hit, edges, right_closed=right_closed, ones_in_own_bin=ones_in_own_bin
        )
        sums = stats.sum_confidence
        return (
            stats.counts,
            xp.astype(stats.counts, sums.dtype),
            sums,
            xp.astype(stats.sum_hits, sums.dtype),
        )
    return _weighted_sums(
        xp, conf, hit, w, edges, right_closed=right_closed, ones_in_own_bin=ones_in_own_bin
    )


def _top_sums(
    xp: Any,
    conf: Array,
    hit: Array,
    w: Array | None,
    nll: Array,
    brier: Array | None,
    *,
    n_bins: int,
    right_closed: bool,
    ones_in_own_bin: bool,
) -> dict[str, Array]:
    """Top-label bins and the sums of the per-example terms, for ``(N,)`` arrays."""
    counts, weight, confidence, hits = _binned_sums(
        xp,
        conf[:, None],
        hit[:, None],
        w,
        n_bins=n_bins,
        right_closed=right_closed,
        ones_in_own_bin=ones_in_own_bin,
    )
    if w is not None:
        nll, brier = nll * w, None if brier is None else brier * w
    out = {
        "counts": counts[0, :],
        "weight": weight[0, :],
        "confidence": confidence[0, :],
        "hits": hits[0, :],
        "nll": xp.sum(nll),
    }
    if brier is not None:
        out["brier"] = xp.sum(brier)
    if w is not None:
        out["bad_weights"] = xp.sum(xp.astype(~((w >= 0) & (w < math.inf)), default_int(xp)))
    return out


def prediction_sums(
    xp: Any,
    p: Array,
    y: Array,
    w: Array | None,
    *,
    classwise: bool,
    n_bins: int,
    right_closed: bool,
    ones_in_own_bin: bool,
    eps: float | None,
    check_range: bool,
) -> dict[str, Array]:
    """Every sum of a batch of probabilities ``(N, K)`` and labels ``(N,)``, on its device."""
    n, k = (int(d) for d in p.shape)
    # An out-of-range label would fail inside the gathers (a device-side assert on CUDA); it is
    # counted, clamped, and reported after the one read of the batch's sums.
    valid = (y >= 0) & (y < k)
    y = xp.where(valid, y, xp.zeros_like(y))
    pred = xp.argmax(p, axis=-1)
    conf = _take(xp, p, pred)  # the row max (NaN where the row has one)
    hit = pred == y
    p_y = _take(xp, p, y)
    nll = _precise(xp, _nll_of_probs(xp, p, y, eps))
    # sum_k (p_k - [y = k])^2 = sum_k p_k^2 - 2 p_y + 1: one pass over the row, no one-hot.
    square = xp.vecdot(p, p)
    brier = _precise(xp, square) - 2 * _precise(xp, p_y) + 1
    out = _top_sums(
        xp,
        conf,
        hit,
        w,
        nll,
        brier,
        n_bins=n_bins,
        right_closed=right_closed,
        ones_in_own_bin=ones_in_own_bin,
    )
    int_dtype = default_int(xp)
    out["bad_labels"] = n - xp.sum(xp.astype(valid, int_dtype))
    # A NaN anywhere in a row makes its sum of squares NaN; a probability outside [0, 1] shows
    # in the row's max or min (the min is one extra pass, needed only for given probabilities).
    bad = ~((conf >= 0) & (conf <= 1)) | xp.isnan(square)
    if check_range:
        bad = bad | (xp.min(p, axis=-1) < 0)
    out["bad_values"] = xp.sum(xp.astype(bad, int_dtype))
    if classwise:
        # (a NaN or out-of-range probability still gets a bin in range; its batch is refused)
        counts, weight, confidence, hits = _binned_sums(
            xp,
            p,
            y,
            w,
            n_bins=n_bins,
            right_closed=right_closed,
            ones_in_own_bin=ones_in_own_bin,
        )
        h = xp.astype(hit, nll.dtype)
        weighted = (h, nll) if w is None else (h * w, nll * w)
        out.update(
            class_counts=counts,
            class_weight=weight,
            class_confidence=confidence,
            class_hits=hits,
            label_hits=bincount(xp, y, length=k, weights=weighted[0]),
            label_nll=bincount(xp, y, length=k, weights=weighted[1]),
        )
    return out


def diagnose(check: str, values: Any, extra: Any) -> None:
    """Raise the error of a batch whose packed checks found a bad entry (host copies only here).

    The rules are applied to NumPy copies directly: the library's validators skip data they
    cannot read for free (an accelerator's), and here it has to be read to name the value.
    """
    if check == "bad_labels":
        k = int(extra)
        _raise_first(values, lambda a: (a >= 0) & (a < k), f"labels must be in [0, {k})")
    elif check == "bad_weights":
        _raise_first(values, lambda a: (a >= 0) & (a < math.inf), "weights must be finite and >= 0")
    elif extra == "probs":
        _raise_first(values, lambda a: (a >= 0) & (a <= 1), "probs must be probabilities in [0, 1]")
    elif extra == "logits":
        _raise_first(values, lambda a: ~np.isnan(a), "logits must not be NaN")
    else:  # per-example summaries: (arrays, names)
        for a, name in zip(values, extra, strict=True):
            if a is not None and name in _SUMMARY_RULES:
                rule, text = _SUMMARY_RULES[name]
                _raise_first(a, rule, f"{name} must be {text}")
    raise AssertionError(f"the {check} check fired but no bad value was found")  # pragma: no cover


def _raise_first(values: Array, rule: Any, message: str) -> None:
    host = to_numpy(values)
    bad = np.argwhere(~rule(host))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        value = host[index]
        value = value.item() if hasattr(value, "item") else value
        raise ValueError(f"{message}; found {value} at index {format_index(index)}")


def summary_sums(
    confidence: Array,
    correct: Array,
    nll: Array,
    weights: Array | None,
    brier: Array | None,
    *,
    n_bins: int,
    right_closed: bool,
    ones_in_own_bin: bool,
) -> tuple[Any, dict[str, Array], dict[str, Any], int]:
    """Namespace, sums, the arrays to diagnose, and the size of a batch of summaries."""
    xp, arrays = namespace(confidence, correct, nll, weights, brier)
    names = ("confidence", "correct", "nll", "weights", "brier")
    shape = tuple(arrays[0].shape)
    for a, name in zip(arrays, names, strict=True):
        if a is not None and tuple(a.shape) != shape:
            raise ValueError(f"{name} must have the shape of confidence {shape}; got {a.shape}")
        if a is not None and not (xp.isdtype(a.dtype, "numeric") or a.dtype == xp.bool):
            raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    if math.prod(shape) == 0:
        raise ValueError(f"confidence holds no examples (shape {shape})")
    flat: list[Any] = [None if a is None else xp.reshape(a, (-1,)) for a in arrays]
    conf = upcast(xp, _floating(xp, flat[0]))
    refuse_traced(conf)
    given = flat[1]
    hit = given if given.dtype == xp.bool else given == 1
    loss = _precise(xp, _floating(xp, flat[2]))
    w = None if flat[3] is None else _precise(xp, _floating(xp, flat[3]))
    terms = None if flat[4] is None else _precise(xp, _floating(xp, flat[4]))
    batch = _top_sums(
        xp,
        conf,
        hit,
        w,
        loss,
        terms,
        n_bins=n_bins,
        right_closed=right_closed,
        ones_in_own_bin=ones_in_own_bin,
    )
    bad = ~((conf >= 0) & (conf <= 1)) | ~(loss >= 0)
    if given.dtype != xp.bool:
        bad = bad | ~(hit | (given == 0))
    if terms is not None:
        bad = bad | ~((terms >= 0) & (terms <= 2))
    batch["bad_values"] = xp.sum(xp.astype(bad, default_int(xp)))
    values = {"bad_values": (flat, names), "bad_weights": (w, None)}
    return xp, batch, values, int(conf.shape[0])


_SUMMARY_RULES = {
    "confidence": (lambda a: (a >= 0) & (a <= 1), "probabilities in [0, 1]"),
    "correct": (lambda a: (a == 0) | (a == 1), "booleans or 0/1"),
    "nll": (lambda a: a >= 0, "log-losses >= 0 (not NaN)"),
    "brier": (lambda a: (a >= 0) & (a <= 2), "Brier terms in [0, 2]"),
}
