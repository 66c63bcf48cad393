"""Information measures of discrete distributions: entropy, cross-entropy, KL, JS, perplexity.

Distributions lie along ``axis`` (default -1). Inputs are not renormalized (scipy.stats.entropy
renormalizes; crossent computes exactly what it is given, and rejects values outside [0, 1]).
``0 log 0 = 0`` throughout, and a zero of q where p is positive gives +inf, as in the math.
"""

from __future__ import annotations

import math
from typing import Any

from ._namespace import Array, namespace, quiet_numpy, upcast
from ._primitives import _xlogy
from ._validation import check_base, check_same_shape, check_unit_interval, normalize_axis

__all__ = ["cross_entropy", "entropy", "js_divergence", "kl_divergence", "perplexity"]


def _prepare(
    p: Array, q: Array | None, axis: int, base: float | None, *, q_optional: bool = False
) -> tuple[Any, ...]:
    """Validate once for every measure: namespace, shapes, [0, 1] range, axis, base, dtype."""
    xp, (p, q) = namespace(p, q, names=("p", "q?" if q_optional else "q"))
    log_base = math.log(b) if (b := check_base(base)) is not None else 1.0
    arrays = [p] if q is None else [p, q]
    if q is not None:
        check_same_shape(p, q, ("p", "q"))
    for name, array in zip(("p", "q"), arrays, strict=False):
        if array.ndim == 0:
            raise ValueError(f"{name} must have at least one dimension (the distribution axis)")
        check_unit_interval(xp, array, name)
    axis = normalize_axis(axis, p.ndim)
    dtype = xp.result_type(*arrays)
    dtype = dtype if xp.isdtype(dtype, "real floating") else xp.asarray(0.0).dtype
    return xp, [upcast(xp, xp.astype(a, dtype)) for a in arrays], axis, log_base, dtype


def _kl(xp: Any, p: Array, q: Array, axis: int) -> Array:
    # Each term p log p - p log q is exactly 0 where p == q, so KL(p, p) = 0 to the last bit.
    return xp.sum(_xlogy(xp, p, p) - _xlogy(xp, p, q), axis=axis)


# Entropies are written 0.0 - sum(...) so that a certain outcome prints 0.0, not -0.0.


@quiet_numpy
def entropy(p: Array, /, *, axis: int = -1, base: float | None = None) -> Array:
    r"""Shannon entropy of the distributions along ``axis``.

    .. math:: H(p) = -\sum_i p_i \log p_i \qquad (0 \log 0 = 0)

    Parameters
    ----------
    p : array
        Probabilities in [0, 1] (not renormalized).
    axis : int, default -1
        The distribution axis.
    base : float, optional
        Logarithm base: None for nats, 2 for bits.

    Returns
    -------
    array
        Entropy, with ``axis`` removed.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.entropy([[0.5, 0.5], [0.9, 0.1], [1.0, 0.0]], base=2).round(2))
    [1.   0.47 0.  ]
    """
    xp, (p,), axis, log_base, dtype = _prepare(p, None, axis, base, q_optional=True)
    return xp.astype((0.0 - xp.sum(_xlogy(xp, p, p), axis=axis)) / log_base, dtype)


@quiet_numpy
def cross_entropy(p: Array, q: Array, /, *, axis: int = -1, base: float | None = None) -> Array:
    r"""Cross-entropy of ``q`` relative to ``p``: the cost of coding ``p`` with ``q``'s code.

    .. math:: H(p, q) = -\sum_i p_i \log q_i = H(p) + D_{KL}(p \,\|\, q)

    Parameters
    ----------
    p : array
        The true distribution, probabilities in [0, 1].
    q : array
        The predicted distribution, same shape as ``p``.
    axis : int, default -1
        The distribution axis.
    base : float, optional
        Logarithm base: None for nats, 2 for bits.

    Returns
    -------
    array
        Cross-entropy, with ``axis`` removed; +inf where ``q`` is 0 and ``p`` is not.

    Examples
    --------
    >>> import crossent as ce
    >>> print(round(float(ce.cross_entropy([0.0, 1.0, 0.0], [0.2, 0.7, 0.1])), 4))
    0.3567
    """
    xp, (p, q), axis, log_base, dtype = _prepare(p, q, axis, base)
    return xp.astype((0.0 - xp.sum(_xlogy(xp, p, q), axis=axis)) / log_base, dtype)


@quiet_numpy
def kl_divergence(p: Array, q: Array, /, *, axis: int = -1, base: float | None = None) -> Array:
    r"""Kullback-Leibler divergence of ``q`` from ``p`` (forward KL).

    .. math:: D_{KL}(p \,\|\, q) = \sum_i p_i \log \frac{p_i}{q_i} = H(p, q) - H(p) \ge 0

    Parameters
    ----------
    p : array
        The true distribution, probabilities in [0, 1].
    q : array
        The approximating distribution, same shape as ``p``.
    axis : int, default -1
        The distribution axis.
    base : float, optional
        Logarithm base: None for nats, 2 for bits.

    Returns
    -------
    array
        The divergence, with ``axis`` removed; exactly 0 when ``p == q``.

    Examples
    --------
    >>> import crossent as ce
    >>> print(round(float(ce.kl_divergence([0.5, 0.5], [0.9, 0.1], base=2)), 4))
    0.737
    """
    xp, (p, q), axis, log_base, dtype = _prepare(p, q, axis, base)
    return xp.astype(_kl(xp, p, q, axis) / log_base, dtype)


@quiet_numpy
def js_divergence(p: Array, q: Array, /, *, axis: int = -1, base: float | None = None) -> Array:
    r"""Jensen-Shannon divergence: the symmetric, bounded average KL to the midpoint.

    .. math:: JS(p, q) = \tfrac12 D_{KL}(p \,\|\, m) + \tfrac12 D_{KL}(q \,\|\, m),
              \quad m = \tfrac12 (p + q)

    It is at most :math:`\log 2` (1 bit). ``scipy.spatial.distance.jensenshannon`` returns its
    square root.

    Parameters
    ----------
    p, q : array
        Probabilities in [0, 1], same shape.
    axis : int, default -1
        The distribution axis.
    base : float, optional
        Logarithm base: None for nats, 2 for bits.

    Returns
    -------
    array
        The divergence, with ``axis`` removed.

    Examples
    --------
    >>> import crossent as ce
    >>> print(float(ce.js_divergence([1.0, 0.0], [0.0, 1.0], base=2)))
    1.0
    """
    xp, (p, q), axis, log_base, dtype = _prepare(p, q, axis, base)
    m = (p + q) / 2
    js = (_kl(xp, p, m, axis) + _kl(xp, q, m, axis)) / 2
    return xp.astype(js / log_base, dtype)


@quiet_numpy
def perplexity(p: Array, q: Array | None = None, /, *, axis: int = -1) -> Array:
    r"""Perplexity: the effective number of equally likely outcomes.

    .. math:: \operatorname{PP}(p) = e^{H(p)}, \qquad \operatorname{PP}(p, q) = e^{H(p, q)}

    With ``q``, it is the perplexity of the model ``q`` on data distributed as ``p`` (for a
    language model, ``exp`` of the mean token cross-entropy).

    Parameters
    ----------
    p : array
        Probabilities in [0, 1].
    q : array, optional
        A second distribution of the same shape.
    axis : int, default -1
        The distribution axis.

    Returns
    -------
    array
        Perplexity, with ``axis`` removed.

    Examples
    --------
    >>> import crossent as ce
    >>> print(float(ce.perplexity([0.25, 0.25, 0.25, 0.25])))
    4.0
    """
    xp, arrays, axis, _, dtype = _prepare(p, q, axis, None, q_optional=True)
    p = arrays[0]
    h = -xp.sum(_xlogy(xp, p, arrays[-1]), axis=axis)
    return xp.astype(xp.exp(h), dtype)
