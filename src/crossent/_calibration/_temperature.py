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

from .._namespace import Array, namespace, result_dtype, upcast
from .._primitives import _log_softmax, _lse, _softmax
from .._semantics import mul0 as _mul0
from .._validation import check_positive, check_unit_interval, first_bad, format_index
from ._inputs import (
    _check_finite_or_neg_inf,
    _choice,
    _log_of_base,
    _out,
    _precise,
    _prepare,
    _take,
)

KINDS = ("auto", "probs", "logits")


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


def _nll_terms(xp: Any, z: Array, z_y: Array, beta: float) -> tuple[float, float, float]:
    """Mean NLL of softmax(beta z) and its first two derivatives in beta.

    d/dbeta [lse(beta z) - beta z_y] = E_p[z] - z_y, and the second derivative is Var_p[z] >= 0:
    the NLL is convex in beta = 1/T.
    """
    s = beta * z
    log_p = _log_softmax(xp, s, -1)
    p = xp.exp(log_p)
    mean_z = xp.sum(_mul0(xp, p, z), axis=-1)
    d = z - mean_z[:, None]
    var = xp.sum(_mul0(xp, p, d * d), axis=-1)
    nll = _lse(xp, s, -1) - beta * z_y
    return float(xp.mean(nll)), float(xp.mean(mean_z - z_y)), float(xp.mean(var))


def _prepare_temperature(values: Array, labels: Array, kind: str) -> tuple[Any, Array, Array]:
    """Float64 (where available) logits shifted to row max 0, and the label's logit."""
    xp, v, y, _ = _prepare(values, labels, name="values")
    z = _as_logits(xp, v, _resolve_kind(xp, v, kind))
    z = _precise(xp, z)
    m = xp.max(z, axis=-1, keepdims=True)
    found = first_bad(xp, m[:, 0] == -math.inf, m[:, 0])
    if found is not None:
        index, _ = found
        raise ValueError(f"row {format_index(index)} has no finite value (all probabilities 0)")
    z = z - m  # NLL and its derivatives are invariant under a shift of each row
    z_y = _take(xp, z, y)
    found = first_bad(xp, z_y == -math.inf, z_y)
    if found is not None:
        index, _ = found
        raise ValueError(
            f"the label has probability 0 at example {format_index(index)}: the log-loss is "
            "infinite at every temperature; clip the probabilities first"
        )
    return xp, z, z_y


def fit_temperature(
    values: Array,
    labels: Array,
    /,
    *,
    kind: str = "auto",
    tol: float = 1e-12,
    max_iter: int = 200,
) -> float:
    r"""The temperature T > 0 that minimizes the log-loss of ``softmax(z / T)`` (Guo et al. 2017).

    .. math:: T^\ast = \arg\min_{T > 0} \frac{1}{N}\sum_i \Big[\operatorname{LSE}(z_i / T)
              - z_{i y_i} / T\Big]

    The objective is convex in :math:`\beta = 1/T` (its second derivative is the variance of
    the logits under the scaled softmax), so the minimum is found exactly: a bracket on the sign
    of the derivative, then Newton steps safeguarded by bisection, to a relative tolerance
    ``tol`` on :math:`\beta` (the result is computed in float64 where the library has it). It
    minimizes the log-loss, not the ECE, and can raise the ECE.

    Parameters
    ----------
    values : array
        Logits or log-probabilities, or probabilities (their log is taken), shape ``(..., K)``.
    labels : array
        Integer labels in [0, K) (the held-out set the temperature is fitted on).
    kind : {"auto", "probs", "logits"}
        What ``values`` are. "auto" reads them as probabilities when every value is in [0, 1]
        and every row sums to 1 (within ``max(1e-4, 4 K eps)``), else as logits.
    tol : float, default 1e-12
        Relative tolerance on :math:`1/T`.
    max_iter : int, default 200
        Iteration cap of the Newton/bisection phase.

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
    """
    xp, z, z_y = _prepare_temperature(values, labels, kind)
    tol = float(tol)
    # The derivative at beta -> inf is mean(max z - z_y) = mean(-z_y); at beta -> 0+ it is the
    # mean over examples of (average finite logit - label logit).
    if float(xp.mean(-z_y)) <= 0:
        raise ValueError(
            "no finite optimal temperature: every example's label has the top score, so the "
            "log-loss keeps falling as T -> 0"
        )
    finite = z > -math.inf
    zeros = xp.zeros_like(z)
    row_mean = xp.sum(xp.where(finite, z, zeros), axis=-1) / xp.sum(
        xp.astype(finite, z.dtype), axis=-1
    )
    if float(xp.mean(row_mean - z_y)) >= 0:
        raise ValueError(
            "no finite optimal temperature: the labels score no better than the average class, "
            "so the log-loss keeps falling as T -> inf"
        )

    def derivative(beta: float) -> tuple[float, float]:
        _, g, h = _nll_terms(xp, z, z_y, beta)
        return g, h

    # Bracket the root of the increasing derivative by doubling or halving beta from 1.
    beta, (g, _) = 1.0, derivative(1.0)
    growing = g < 0
    while (g < 0) if growing else (g > 0):
        if not 1e-300 < beta < 1e300:
            raise ValueError("no finite optimal temperature: the derivative never changes sign")
        beta = beta * 2.0 if growing else beta / 2.0
        g, _ = derivative(beta)
    if g == 0:
        return 1.0 / beta
    lo, hi = (beta / 2.0, beta) if growing else (beta, beta * 2.0)
    # Safeguarded Newton on the bracket [lo, hi].
    beta = math.sqrt(lo * hi)
    for _ in range(max_iter):
        g, h = derivative(beta)
        if g == 0:
            break
        if g > 0:
            hi = beta
        else:
            lo = beta
        step = g / h if h > 0 else math.inf
        if abs(step) <= tol * beta:  # converged: the last Newton step is below the tolerance
            beta = min(max(beta - step, lo), hi)
            break
        new = beta - step
        if not lo < new < hi:
            new = 0.5 * (lo + hi)  # Newton left the bracket: bisect instead
        if hi - lo <= tol * beta:
            beta = new
            break
        beta = new
    return 1.0 / beta


def apply_temperature(values: Array, temperature: float, /, *, kind: str = "auto") -> Array:
    r"""Scale by a temperature: logits to ``z / T``, probabilities to ``softmax(log p / T)``.

    .. math:: p_k(T) = \frac{e^{z_k / T}}{\sum_j e^{z_j / T}} \propto p_k^{1/T}

    Parameters
    ----------
    values : array
        Logits (classes last) or probabilities.
    temperature : float
        T > 0 (from :func:`fit_temperature`).
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
    """
    t = check_positive(temperature, "temperature")
    xp, (values,) = namespace(values)
    if values.ndim < 1:
        raise ValueError("values must have a class axis (the last axis)")
    dtype = result_dtype(xp, values.dtype)
    v = upcast(
        xp, values if xp.isdtype(values.dtype, "real floating") else xp.astype(values, dtype)
    )
    flat = xp.reshape(v, (-1, int(v.shape[-1])))
    resolved = _resolve_kind(xp, flat, kind)
    z = _as_logits(xp, flat, resolved)
    if resolved == "logits":
        return _out(xp, v / t, dtype)
    return _out(xp, xp.reshape(_softmax(xp, z / t, -1), v.shape), dtype)


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
    values: Array, labels: Array, /, *, kind: str = "auto", base: float | None = None
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
        Logits, log-probabilities or probabilities, shape ``(..., K)``.
    labels : array
        Integer labels in [0, K).
    kind : {"auto", "probs", "logits"}
        What ``values`` are (see :func:`fit_temperature`).
    base : float, optional
        Logarithm base of the reported losses: None for nats, 2 for bits.

    Returns
    -------
    LogLossDecomposition
        ``log_loss``, ``calibration``, ``refinement`` and ``temperature`` (floats). The log-loss
        here is unclipped (a probability of 0 for a label is an error).

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> logits = [[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]]
    >>> d = cal.log_loss_decomposition(logits, [0, 0, 1, 1])
    >>> print(round(d.log_loss, 4), round(d.calibration, 4), round(d.refinement, 4))
    1.0181 0.4558 0.5623
    """
    log_b = _log_of_base(base)
    temperature = fit_temperature(values, labels, kind=kind)
    xp, z, z_y = _prepare_temperature(values, labels, kind)
    before, _, _ = _nll_terms(xp, z, z_y, 1.0)
    after, _, _ = _nll_terms(xp, z, z_y, 1.0 / temperature)
    after = min(after, before)  # T = 1 is feasible: the optimum is never worse
    return LogLossDecomposition(
        log_loss=before / log_b,
        calibration=(before - after) / log_b,
        refinement=after / log_b,
        temperature=temperature,
    )
