"""Target helpers: one-hot encoding, label smoothing (both conventions), balanced class weights."""

from __future__ import annotations

from typing import Any

from ._namespace import Array, namespace, quiet_numpy
from ._semantics import smoothing as smoothing_rule
from ._validation import (
    check_fraction,
    check_index_targets,
    check_smoothing_convention,
    first_bad,
    renamed,
)

__all__ = ["class_weights", "one_hot", "smooth_labels"]


def _check_labels(xp: Any, labels: Array, num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    check_index_targets(xp, labels, num_classes, None)


@quiet_numpy
def one_hot(labels: Array, num_classes: int, /, *, dtype: Any = None) -> Array:
    r"""One-hot encoding of integer class indices, with a new last axis of length K.

    .. math:: y_{ic} = [\, c = \text{labels}_i \,]

    Parameters
    ----------
    labels : array
        Integer class indices in [0, K).
    num_classes : int
        K.
    dtype : dtype, optional
        Result dtype; default the library's default floating dtype.

    Returns
    -------
    array
        Shape ``labels.shape + (K,)``.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.one_hot([2, 0], 3))
    [[0. 0. 1.]
     [1. 0. 0.]]
    """
    xp, (labels,) = namespace(labels)
    _check_labels(xp, labels, num_classes)
    dtype = dtype if dtype is not None else xp.asarray(0.0).dtype
    return xp.astype(labels[..., None] == xp.arange(num_classes), dtype)


@quiet_numpy
def smooth_labels(
    targets: Array,
    /,
    *,
    label_smoothing: float | None = None,
    num_classes: int | None = None,
    smoothing_convention: str = "uniform",
    smoothing: float | None = None,
    convention: str | None = None,
) -> Array:
    r"""Label-smoothed target distributions, in either convention the literature uses.

    .. math::

        \text{uniform:}\quad y' = (1 - e)\, y + \frac{e}{K}
        \qquad
        \text{others:}\quad y' = (1 - e)\, y + \frac{e}{K - 1} (1 - y)

    "uniform" (Szegedy et al., PyTorch, optax, Keras) gives the true class
    :math:`1 - e + e/K`; "others" (seed 002: "0.9 for the correct class and 0.1/(K−1) spread
    across the rest") gives it exactly :math:`1 - e` (pytorch #148884 is the confusion).

    Parameters
    ----------
    targets : array
        Integer class indices (then ``num_classes`` is required) or one-hot / probability rows
        along the last axis.
    label_smoothing : float
        e in [0, 1] (required).
    num_classes : int, optional
        K, for index targets.
    smoothing_convention : {"uniform", "others"}
        Which smoothing: e/K on every class, or e/(K-1) on the other classes (the same
        option as the losses').
    smoothing, convention
        Deprecated names of ``label_smoothing`` and ``smoothing_convention``.

    Returns
    -------
    array
        Target distributions, classes along the last axis.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.smooth_labels([0], label_smoothing=0.1, num_classes=4))
    [[0.925 0.025 0.025 0.025]]
    >>> print(ce.smooth_labels(
    ...     [0], label_smoothing=0.1, num_classes=4, smoothing_convention="others"
    ... ))
    [[0.9        0.03333333 0.03333333 0.03333333]]
    """
    label_smoothing = renamed(label_smoothing, smoothing, "label_smoothing", "smoothing")
    convention = renamed(smoothing_convention, convention, "smoothing_convention", "convention",
                         default="uniform")  # fmt: skip
    if label_smoothing is None:
        raise TypeError("smooth_labels() needs label_smoothing=")
    e = check_fraction(label_smoothing, "label_smoothing")
    check_smoothing_convention(convention)
    xp, (targets,) = namespace(targets)
    if xp.isdtype(targets.dtype, "integral"):
        if num_classes is None:
            raise ValueError("num_classes is required when targets are class indices")
        y = one_hot(targets, num_classes)
    else:
        y = targets
    # The rule lives in crossent._semantics, shared with every loss's label smoothing.
    rule = smoothing_rule(e, int(y.shape[-1]), convention)
    return rule.on_target * y + rule.per_class


@quiet_numpy
def class_weights(labels: Array, num_classes: int, /) -> Array:
    r"""Balanced class weights :math:`w_k = N / (K\, n_k)` (seed 000; scikit-learn's "balanced").

    A class seen half as often as average gets weight 2; the weights average to 1 over the
    samples, so the weighted loss keeps the scale of the unweighted one.

    Parameters
    ----------
    labels : array
        Integer class indices of the training set, in [0, K).
    num_classes : int
        K.

    Returns
    -------
    array
        Shape (K,), in the default floating dtype.

    Raises
    ------
    ValueError
        If a class has no example (its weight N / (K * 0) is undefined).

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.class_weights([0, 0, 0, 1], 2))
    [0.66666667 2.        ]
    """
    xp, (labels,) = namespace(labels)
    _check_labels(xp, labels, num_classes)
    counts = xp.sum(one_hot(xp.reshape(labels, (-1,)), num_classes), axis=0)
    found = first_bad(xp, counts == 0, counts)
    if found is not None:
        index, _ = found
        raise ValueError(
            f"class {index[0]} has no example in labels; its weight N / (K * 0) is undefined"
        )
    n = xp.sum(counts)
    return n / (num_classes * counts)
