"""Temperature scaling (Guo et al. 2017) and the log-loss decomposition it gives.

:func:`fit_temperature` finds the T that minimizes the log-loss of ``softmax(z / T)``,
:func:`apply_temperature` rescales logits or probabilities by it, and
:func:`log_loss_decomposition` splits the log-loss into the part the optimal T removes
(calibration) and the rest (refinement). Values are logits or probabilities;
``kind="auto"`` tells them apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._namespace import Array, _is_array, namespace, result_dtype, to_numpy, upcast
from .._primitives import _softmax
from .._semantics import mul0 as _mul0
from .._validation import (
    check_positive,
    check_unit_interval,
    first_bad,
    format_index,
)
from ._inputs import (
    _check_finite_or_neg_inf,
    _choice,
    _drop_ignored,
    _log_of_base,
    _out,
    _precise,
    _prepare,
    _sample_weights,
    _take,
)

KINDS = ("auto", "probs", "logits")
TOL = 1e-6  # relative, on 1/T: see fit_temperature
# Values in a block of rows of a NumPy fit: its few temporaries stay small enough to be reused
# from the heap (blocks of 2^18 values, fresh pages each time, made a pass 1.6x slower).
BLOCK_VALUES = 1 << 15


def _looks_like_probs(xp: Any, v: Array) -> bool:
    """Every value in [0, 1] and every row summing to 1 (to a tolerance of the dtype)."""
    if not bool(xp.all((v >= 0) & (v <= 1))):
        return False
    k = int(v.shape[-1])
    tol = max(1e-4, 4 * k * float(xp.finfo(v.dtype).eps))
    return bool(xp.all(xp.abs(xp.sum(v, axis=-1) - 1) <= tol))


def _log_of_probs(xp: Any, p: Array) -> Array:
    # log(0) = -inf without the divide-by-zero warning of a bare log.
    positive = p > 0
    return xp.where(
        positive, xp.log(xp.where(positive, p, xp.ones_like(p))), xp.full_like(p, -math.inf)
    )


def _resolve_kind(xp: Any, v: Array, kind: str) -> str:
    _choice(kind, KINDS, "kind")
    if kind == "auto":
        return "probs" if _looks_like_probs(xp, v) else "logits"
    return kind


def _as_logits(xp: Any, v: Array, kind: str) -> Array:
    """Logits (log-probabilities for probabilities) of an ``(N, K)`` array of either kind."""
    if kind == "probs":
        check_unit_interval(xp, v, "probs")
        return _log_of_probs(xp, v)
    _check_finite_or_neg_inf(xp, v, "logits")
    return v


def _row_terms(xp: Any, z: Array, beta: float, finite: bool) -> tuple[Array, Array, Array]:
    """Per row: the log-sum-exp of ``beta z``, and the mean and variance of z under its softmax.

    ``z`` is shifted to a row max of 0, so ``exp(beta z) <= 1`` never overflows, its row sum is
    at least 1 (the max's term) and one exponential per value serves all three. With the NLL
    ``lse(beta z) - beta z_y``: d/dbeta = E_p[z] - z_y and d2/dbeta2 = Var_p[z] >= 0, so the
    NLL is convex in beta = 1/T. The variance is E[z^2] - E[z]^2: its cancellation only
    shortens or lengthens a Newton step (the root is where the first derivative is 0),
    never moves the optimum. ``finite=False`` guards the -inf logits (0 * inf = 0).
    """
    e = xp.exp(beta * z)
    total = xp.sum(e, axis=-1)
    ez = e * z if finite else _mul0(xp, e, z)
    mean = xp.sum(ez, axis=-1) / total
    square = xp.sum(ez * z if finite else _mul0(xp, ez, z), axis=-1) / total
    var = xp.maximum(square - mean * mean, xp.zeros_like(mean))
    return xp.log(total), mean, var


def _raise_at(xp: Any, bad: Array, values: Array, start: int, message: str) -> None:
    """A ValueError naming the first ``bad`` entry of a block that starts at row ``start``."""
    found = first_bad(xp, bad, values)
    if found is not None:
        index, value = found
        where = (index[0] + start, *index[1:])
        raise ValueError(message.format(value=value, index=format_index(where)))


@dataclass
class _Block:
    z: Array  # (rows, K) logits shifted to a row max of 0
    z_y: Array  # (rows,) the label's shifted logit
    weight: Array | None  # (rows,) float64 weights; None: every row counts 1
    finite: bool  # no -inf in z


@dataclass
class _Rows:
    """What the first pass learns about a block of rows, for the passes after it."""

    keep: Array | None  # the rows of nonzero weight (NumPy), None for all
    m: Array  # (rows, 1) each row's max
    z_y: Array
    weight: Array | None
    finite: bool


class _Data:
    """The values and labels of a fit, read a block of rows at a time as shifted logits.

    NumPy arrays (memory maps included) and row-sliceable objects are read in cache-sized
    blocks, prepared again at each pass (no copy of the data is kept); other libraries' arrays
    are one block, prepared once. The first pass checks the values and records the limits of
    the NLL's derivative at T -> 0 and T -> inf.
    """

    def __init__(
        self, values: Any, labels: Any, kind: str, weights: Any, ignore_index: Any = None
    ) -> None:
        _choice(kind, KINDS, "kind")
        sliceable = not _is_array(values) and not isinstance(values, (list, tuple))
        sliceable = sliceable and hasattr(values, "shape") and hasattr(values, "__getitem__")
        if ignore_index is not None:
            # Ignored rows get weight 0, which the fit skips: row-read values stay unread here.
            values, labels, weights = _drop_ignored(
                values, labels, weights, ignore_index, name="values", by_weight=True
            )
            weights = weights if weights is None else weights.reshape((-1,))  # one per row
        if sliceable:
            if len(values.shape) != 2:
                raise ValueError(
                    f"values read by rows must have shape (N, K); got {tuple(values.shape)}"
                )
            xp, (y,) = namespace(to_numpy(labels) if _is_array(labels) else labels)
            self.values, self.labels = values, y
            if tuple(y.shape) != (int(values.shape[0]),):
                raise ValueError(
                    f"labels must have shape ({int(values.shape[0])},); got {tuple(y.shape)}"
                )
        else:
            xp, v, y, _, _ = _prepare(values, labels, name="values")
            self.values, self.labels = v, y
        self.xp, self.sliceable = xp, sliceable
        self.n, self.k = int(self.values.shape[0]), int(self.values.shape[1])
        numpy = getattr(xp, "__name__", "") == "array_api_compat.numpy"
        step = max(1, BLOCK_VALUES // self.k) if numpy else self.n
        self.ranges = [(a, min(a + step, self.n)) for a in range(0, max(self.n, 1), step)]
        self.weights = None if weights is None else self._weights(weights)
        self.cache: list[_Block] | None = None  # the prepared block, when there is only one
        self.rows: list[_Rows] = []
        self.checked = False
        self.down = self.up = 0.0  # the derivative's limits at beta -> inf and beta -> 0
        self.kind = kind if kind != "auto" else self._detect_kind()

    def _weights(self, weights: Any) -> Array:
        host = self.sliceable and _is_array(weights)
        return _sample_weights(self.xp, to_numpy(weights) if host else weights, (self.n,),
                               like=self.labels)  # fmt: skip

    def _raw(self) -> Any:
        """(start, values (rows, K) in the compute dtype, labels) of each block of rows."""
        for a, b in self.ranges:
            if self.sliceable:
                _, v, y, _, _ = _prepare(self.values[a:b], self.labels[a:b], name="values")
            else:
                v, y = self.values[a:b, :], self.labels[a:b]
            yield a, b, v, y

    def _detect_kind(self) -> str:
        blocks = self._raw()
        return "probs" if all(_looks_like_probs(self.xp, v) for _, _, v, _ in blocks) else "logits"

    def _first(self, start: int, stop: int, v: Array, y: Array) -> _Block:
        """A block on the first pass: checked, shifted, and its rows' max and label kept."""
        xp = self.xp
        if self.kind == "probs":
            bad = ~((v >= 0) & (v <= 1))
            message = "probs must be probabilities in [0, 1]; found {value} at index {index}"
            _raise_at(xp, bad, v, start, message)
            v = _log_of_probs(xp, v)
        else:
            message = "logits must be finite (or -inf); found {value} at index {index}"
            _raise_at(xp, xp.isnan(v) | (v == math.inf), v, start, message)
        m = xp.max(v, axis=-1, keepdims=True)
        message = "row {index} has no finite value (all probabilities 0)"
        _raise_at(xp, m[:, 0] == -math.inf, m[:, 0], start, message)
        z = v - m  # NLL and its derivatives are invariant under a shift of each row
        z_y = _take(xp, z, y)
        message = (
            "the label has probability 0 at example {index}: the log-loss is infinite at "
            "every temperature; clip the probabilities first"
        )
        _raise_at(xp, z_y == -math.inf, z_y, start, message)
        weight = None if self.weights is None else self.weights[start:stop]
        keep = None
        if weight is not None and getattr(xp, "__name__", "") == "array_api_compat.numpy":
            keep = weight > 0  # rows of weight 0 cost nothing (a cross-fitted half)
            if bool(xp.all(keep)):
                keep = None
            else:
                z, z_y, weight, m = z[keep, :], z_y[keep], weight[keep], m[keep, :]
        block = _Block(z, z_y, weight, bool(xp.all(z > -math.inf)))
        self.rows.append(_Rows(keep, m, z_y, weight, block.finite))  # not z: a row's numbers
        return block

    def blocks(self) -> Any:
        """The shifted blocks; the first pass checks them and learns what later passes reuse."""
        if self.cache is not None:
            yield from self.cache
            return
        first = not self.checked
        for i, (start, stop, v, y) in enumerate(self._raw()):
            if first:
                block = self._first(start, stop, v, y)
                self._limits(block)
                if len(self.ranges) == 1:  # one block: keep it prepared
                    self.cache = [block]
            else:
                rows = self.rows[i]
                if rows.keep is not None:
                    v = v[rows.keep, :]
                if self.kind == "probs":
                    v = _log_of_probs(self.xp, v)
                block = _Block(v - rows.m, rows.z_y, rows.weight, rows.finite)
            yield block
        self.checked = True

    def _sum(self, x: Array, block: _Block) -> float:
        """Sum over the block's rows, weighted, in float64 where the library has it."""
        x = _precise(self.xp, x)
        return float(self.xp.sum(x if block.weight is None else x * block.weight))

    def _limits(self, block: _Block) -> None:
        # The derivative at beta -> inf is the mean of max z - z_y = -z_y; at beta -> 0+ it is
        # the mean over examples of (average finite logit - label logit).
        xp, z = self.xp, block.z
        finite = z > -math.inf
        row_mean = xp.sum(xp.where(finite, z, xp.zeros_like(z)), axis=-1) / xp.sum(
            xp.astype(finite, z.dtype), axis=-1
        )
        self.down += self._sum(-block.z_y, block)
        self.up += self._sum(row_mean - block.z_y, block)

    def total_weight(self) -> float:
        return float(self.n) if self.weights is None else float(self.xp.sum(self.weights))

    def terms(self, beta: float) -> tuple[float, float, float]:
        """The weighted mean NLL of softmax(beta z) and its first two derivatives in beta."""
        nll = g = h = 0.0
        for block in self.blocks():
            lse, mean, var = _row_terms(self.xp, block.z, beta, block.finite)
            nll += self._sum(lse - beta * block.z_y, block)
            g += self._sum(mean - block.z_y, block)
            h += self._sum(var, block)
        total = self.total_weight()
        return nll / total, g / total, h / total


@dataclass(frozen=True)
class _Fit:
    beta: float
    nll_at_one: float  # mean NLL as given (T = 1)
    nll_at_beta: float  # mean NLL at the optimum


def _fit(data: _Data, tol: float, max_iter: int) -> _Fit:
    """Safeguarded Newton on the convex NLL(beta), one pass over the data per step, from beta 1.

    The first pass (at beta = 1, the predictions as given) also checks the values and the
    limits of the derivative; a step that leaves the bracket of the root (the last points where
    the derivative was negative and positive) is replaced by doubling, halving or bisection.
    """
    beta = 1.0
    nll_at_one, g, h = data.terms(beta)
    if data.down <= 0:
        raise ValueError(
            "no finite optimal temperature: every example's label has the top score, so the "
            "log-loss keeps falling as T -> 0"
        )
    if data.up >= 0:
        raise ValueError(
            "no finite optimal temperature: the labels score no better than the average class, "
            "so the log-loss keeps falling as T -> inf"
        )
    nll, lo, hi = nll_at_one, 0.0, math.inf
    for _ in range(max_iter):
        if g == 0:
            break
        if g > 0:
            hi = beta
        else:
            lo = beta
        step = g / h if h > 0 else math.inf
        new = beta - step
        newton = lo < new < hi
        if not newton:  # Newton left the bracket: double, halve or bisect instead
            new = 2.0 * beta if hi == math.inf else (0.5 * beta if lo == 0 else 0.5 * (lo + hi))
        if newton and abs(step) <= tol * beta:
            # Converged: the last step is below the tolerance. The loss there from the Taylor
            # series (its error is of the order of step^3, far below the float precision).
            return _Fit(new, nll_at_one, nll - g * step + 0.5 * h * step * step)
        if not 1e-300 < new < 1e300:
            raise ValueError("no finite optimal temperature: the derivative never changes sign")
        if hi - lo <= tol * beta:
            break
        beta = new
        nll, g, h = data.terms(beta)
    return _Fit(beta, nll_at_one, nll)


def fit_temperature(
    values: Array,
    labels: Array,
    /,
    *,
    kind: str = "auto",
    weights: Array | None = None,
    ignore_index: int | None = None,
    tol: float = TOL,
    max_iter: int = 200,
) -> float:
    r"""The temperature T > 0 that minimizes the log-loss of ``softmax(z / T)`` (Guo et al. 2017).

    .. math:: T^\ast = \arg\min_{T > 0} \frac{\sum_i w_i \Big[\operatorname{LSE}(z_i / T)
              - z_{i y_i} / T\Big]}{\sum_i w_i}

    The objective is convex in :math:`\beta = 1/T` (its second derivative is the variance of
    the logits under the scaled softmax), so the minimum is found exactly, by Newton steps on
    :math:`\beta` from 1, safeguarded by the bracket of the root. Each step is one pass over
    the data that gives the loss and both derivatives, so a fit costs a few passes (about 5 for
    the usual 0.5 < T < 4). The values are read in row blocks in their own precision (float32
    stays float32, with no float64 copy of the data) and the per-row results are summed in
    float64. It minimizes the log-loss, not the ECE, and can raise the ECE.

    Parameters
    ----------
    values : array
        Logits or log-probabilities, or probabilities (their log is taken), shape ``(..., K)``.
        Also a NumPy memory map, or any object with an ``(N, K)`` ``shape`` that slices by rows
        (``values[a:b]`` gives an array: an HDF5 or zarr dataset, a reader of a file): it is
        read a block of rows at a time, never whole.
    labels : array
        Integer labels in [0, K) (the held-out set the temperature is fitted on).
    kind : {"auto", "probs", "logits"}
        What ``values`` are. "auto" reads them as probabilities when every value is in [0, 1]
        and every row sums to 1 (within ``max(1e-4, 4 K eps)``), else as logits.
    weights : array, optional
        Non-negative weight of each example (shape ``(N,)``); examples of weight 0 are skipped,
        so a 0/1 mask fits on a subset without copying it.
    ignore_index : int, optional
        Examples whose label equals it are left out (given weight 0), e.g. -100 for a
        language model's padding tokens (torchmetrics' ``ignore_index``).
    tol : float, default 1e-6
        Relative tolerance on :math:`1/T`: the fit stops after a Newton step smaller than
        ``tol / T``. Newton's convergence is quadratic, so the result is usually much closer
        than that; 1e-6 is well below the four decimals that ``crossent report`` prints of T and
        of the losses (the loss is flat at its minimum: an error ``d`` in T changes it by
        about ``d^2``).
    max_iter : int, default 200
        Cap on the Newton (or bisection) steps.

    Returns
    -------
    float
        The optimal temperature (T > 1 softens over-confident predictions).

    Raises
    ------
    ValueError
        When no finite optimum exists: every example's label has the top score (the log-loss
        keeps falling as T -> 0), or the labels score at most the row average (it falls as
        T -> inf); or a label has probability 0 (infinite loss at every T).

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> logits = [[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]]
    >>> labels = [0, 0, 1, 1]  # 75% right at 98% confidence: over-confident
    >>> print(round(cal.fit_temperature(logits, labels), 4))
    3.6410
    >>> print(round(cal.fit_temperature(logits, labels, weights=[1, 1, 1, 0]), 4))  # 3 of them
    5.7708
    """
    data = _Data(values, labels, kind, weights, ignore_index)
    return 1.0 / _fit(data, float(tol), max_iter).beta


def apply_temperature(values: Array, temperature: Any, /, *, kind: str = "auto") -> Array:
    r"""Scale by a temperature: logits to ``z / T``, probabilities to ``softmax(log p / T)``.

    .. math:: p_k(T) = \frac{e^{z_k / T}}{\sum_j e^{z_j / T}} \propto p_k^{1/T}

    Parameters
    ----------
    values : array
        Logits (classes last) or probabilities.
    temperature : float or array
        T > 0 (from :func:`fit_temperature`), or one per example (shape ``values.shape[:-1]``:
        e.g. each example scaled by the temperature fitted on the other half of a cross-fit).
    kind : {"auto", "probs", "logits"}
        What ``values`` are ("auto" as in :func:`fit_temperature`); the result is of the same
        kind.

    Returns
    -------
    array
        Scaled logits, or rescaled probabilities, with ``values``' shape and floating dtype.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> print(cal.apply_temperature([[0.9, 0.1]], 2.0).round(4))
    [[0.75 0.25]]
    >>> print(cal.apply_temperature([[0.9, 0.1], [0.9, 0.1]], [1.0, 2.0]).round(4))
    [[0.9  0.1 ]
     [0.75 0.25]]
    """
    per_example = _is_array(temperature) or isinstance(temperature, (list, tuple))
    xp, (values, t) = namespace(values, temperature if per_example else None)
    if values.ndim < 1:
        raise ValueError("values must have a class axis (the last axis)")
    dtype = result_dtype(xp, values.dtype)
    v = upcast(
        xp, values if xp.isdtype(values.dtype, "real floating") else xp.astype(values, dtype)
    )
    if per_example:
        if tuple(t.shape) != tuple(v.shape[:-1]):
            raise ValueError(
                f"temperature must be a number or have shape {tuple(v.shape[:-1])} (one per "
                f"example); got shape {tuple(t.shape)}"
            )
        bad = ~((t > 0) & (t < math.inf))
        _raise_at(
            xp, bad, t, 0, "temperature must be positive and finite; found {value} at index {index}"
        )
        t = xp.astype(t, v.dtype)[..., None]
    else:
        t = check_positive(temperature, "temperature")
    flat = xp.reshape(v, (-1, int(v.shape[-1])))
    resolved = _resolve_kind(xp, flat, kind)
    z = _as_logits(xp, flat, resolved)
    if resolved == "logits":
        return _out(xp, v / t, dtype)
    t_rows = xp.reshape(t, (-1, 1)) if per_example else t
    return _out(xp, xp.reshape(_softmax(xp, z / t_rows, -1), v.shape), dtype)


@dataclass(frozen=True)
class LogLossDecomposition:
    r"""The log-loss split into what the optimal temperature removes and the rest.

    ``log_loss = calibration + refinement`` (in the chosen base), with
    ``calibration = NLL(T=1) - NLL(T*) >= 0`` and ``refinement = NLL(T*)``.

    Attributes
    ----------
    log_loss : float
        The mean log-loss of the predictions as given.
    calibration : float
        The part removed by the optimal temperature ``T*`` on the same data.
    refinement : float
        The log-loss left after it.
    temperature : float
        ``T*``.
    """

    log_loss: float
    calibration: float
    refinement: float
    temperature: float


def log_loss_decomposition(
    values: Array,
    labels: Array,
    /,
    *,
    kind: str = "auto",
    base: float | None = None,
    weights: Array | None = None,
    ignore_index: int | None = None,
) -> LogLossDecomposition:
    r"""Split the log-loss into a calibration part and the rest, with the optimal temperature.

    Seed 003 splits the expected loss into the irreducible entropy and a divergence,
    :math:`\mathbb{E}[-\log q_Y] = \mathbb{E}[H(p(\cdot|x))] + \mathbb{E}[D_{KL}(p \| q)]`.
    Grouping the examples by their forecast gives the proper-scoring-rule decomposition
    :math:`\mathbb{E}[-\log q_Y] = \mathbb{E}[H(c)] + \mathbb{E}[D_{KL}(c \| q)]`, with
    :math:`c = P(Y \mid q)` the calibrated forecast: refinement plus calibration.

    This function estimates it with the temperature family, exactly (no bins):

    .. math::

        \text{calibration} = \text{NLL}(q) - \min_{T>0} \text{NLL}(q^{(T)}) \ge 0, \qquad
        \text{refinement} = \text{NLL}(q^{(T^\ast)})

    Because :math:`q \mapsto q^{(T)}` is invertible, :math:`c` is the same for both, so in the
    population the calibration part equals
    :math:`\mathbb{E}[D_{KL}(c\|q)] - \mathbb{E}[D_{KL}(c\|q^{(T^\ast)})]`: a lower bound on
    the true calibration term (a temperature cannot fix every miscalibration), and the
    refinement an upper bound on :math:`\mathbb{E}[H(c)] \ge \mathbb{E}[H(p(\cdot|x))]`. It is
    measured in-sample; fit ``T`` on held-out data to judge a recalibration (as
    ``crossent report`` does).

    Parameters
    ----------
    values : array
        Logits, log-probabilities or probabilities, shape ``(..., K)``, or what
        :func:`fit_temperature` reads by rows.
    labels : array
        Integer labels in [0, K).
    kind : {"auto", "probs", "logits"}
        What ``values`` are (see :func:`fit_temperature`).
    base : float, optional
        Logarithm base of the reported losses: None for nats, 2 for bits.
    weights : array, optional
        Non-negative weight of each example (see :func:`fit_temperature`).
    ignore_index : int, optional
        Examples whose label equals it are left out (see :func:`fit_temperature`).

    Returns
    -------
    LogLossDecomposition
        ``log_loss``, ``calibration``, ``refinement`` and ``temperature`` (floats). The log-loss
        here is unclipped (a probability of 0 for a label is an error), so it can differ from
        :func:`log_loss`, which clips probabilities at the machine epsilon. Both losses come
        from the passes of the fit (the first is at T = 1), at no extra cost.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> logits = [[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]]
    >>> d = cal.log_loss_decomposition(logits, [0, 0, 1, 1])
    >>> print(round(d.log_loss, 4), round(d.calibration, 4), round(d.refinement, 4))
    1.0181 0.4558 0.5623
    """
    log_b = _log_of_base(base)
    fit = _fit(_Data(values, labels, kind, weights, ignore_index), TOL, 200)
    before = fit.nll_at_one
    after = min(fit.nll_at_beta, before)  # T = 1 is feasible: the optimum is never worse
    return LogLossDecomposition(
        log_loss=before / log_b,
        calibration=(before - after) / log_b,
        refinement=after / log_b,
        temperature=1.0 / fit.beta,
    )
