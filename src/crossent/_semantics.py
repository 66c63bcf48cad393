"""The loss rules, written once: per-row losses and the coefficients of their gradients.

Every path that computes a loss (the generic Array API code, the NumPy fast path, the torch
autograd Functions and the fused linear cross-entropy) obtains a few statistics per row in its
own way (the log-sum-exp, the target logit, a class-weighted sum) and hands them to these
functions, which return the per-row loss and the coefficients of its gradient. They are
elementwise over per-row vectors and written against the Array API (``xp``), so the same code
runs on NumPy arrays, torch tensors (eager, compiled, on any device) and JAX tracers.

The rules, each in one place:

- the target distribution of label smoothing, in either convention (:func:`smoothing`);
- the softmax cross-entropy of a row and its gradient ``a softmax - b onehot - r w``
  (:func:`softmax_ce_loss`, :func:`softmax_ce_coefficients`) and the probability-target form
  (:func:`probability_targets`);
- the focal modulation as a function of the margin (:func:`focal_loss`, :func:`focal_slope`);
- binary cross-entropy from logits (:func:`binary_ce_loss`, :func:`binary_ce_grad`);
- the divergences of distillation, forward and reverse KL and JSD, and their gradients
  (:func:`distillation_rows`: the core's ``distillation_loss`` and the fused one);
- ``0 * inf = 0`` for zero weights (:func:`mul0`), the limit of rows with an infinite
  log-sum-exp (:func:`limit_rows`), and the safe mean (:func:`mean_scale`, :func:`reduce`);
- per-sample weights and the mean's denominator, an explicit normalizer included
  (:func:`weight_samples`, :func:`denominator`, :func:`loss_row_scale`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Array = Any

SMOOTHING_CONVENTIONS = ("uniform", "others")
REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------- elementary rules


def mul0(xp: Any, a: Array, b: Array) -> Array:
    """``a * b`` with ``0 * inf = 0``: a zero weight removes its term even where it is infinite."""
    product = a * b
    return xp.where(a == 0, xp.zeros_like(product), product)


def softplus(xp: Any, x: Array) -> Array:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): the exponent is never positive, so nothing
    # overflows, and log1p keeps the digits of a tiny e^-|x|.
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


def heaviside(xp: Any, x: Array) -> Array:
    """1 above 0, 0 below, 1/2 at 0 (NaN at NaN), in ``x``'s dtype.

    Picks a branch by arithmetic: a select on a random mask (``np.where``) costs ten times an
    exp in NumPy, and XLA:CPU vectorizes neither a select nor a bool-to-float conversion in
    an exp's chain (2-4x slower). The rules that use it take one value at 0 from either branch,
    so 1/2 there is exact too; its derivative is 0, so autodiff must not differentiate a
    product of ``2 H(x) - 1`` at x = 0 (see :func:`binary_ce_grad`).
    """
    return xp.sign(x) * 0.5 + 0.5


def sigmoid(xp: Any, x: Array, exp_neg_abs: Array | None = None) -> Array:
    """The logistic function; ``exp_neg_abs``: ``exp(-|x|)`` if the caller has it already."""
    # e = e^-|x| <= 1 in both branches, so neither overflows. A select, not arithmetic: losses
    # such as mse_loss(activation="sigmoid") are differentiated through it by autodiff, which
    # must see one smooth branch at x = 0 (max(e, H(x)) gave -0.25 there under jax.grad).
    e = xp.exp(-xp.abs(x)) if exp_neg_abs is None else exp_neg_abs
    return xp.where(x >= 0, xp.ones_like(e), e) / (1 + e)  # one division, the same values


def limit_rows(xp: Any, z: Array, inf_rows: Array) -> Array:
    """``z`` (classes last) with each row flagged in ``inf_rows`` replaced by its limit.

    A row holding +inf puts all its mass on its +inf entries, and a row of -inf is uniform
    (softmax is shift invariant): such a row becomes 0 on its maxima and -inf elsewhere, whose
    softmax is that limit and whose log-sum-exp is finite, so no ``inf - inf`` becomes NaN.
    """
    m = xp.max(z, axis=-1, keepdims=True)
    limit = xp.where(z == m, xp.zeros_like(z), xp.full_like(z, -math.inf))
    return xp.where(inf_rows[..., None], limit, z)


def mean_scale(xp: Any, count: Array) -> Array:
    """``1 / count``, or 0 when nothing counts: the mean of nothing is 0 with a zero gradient.

    PyTorch gives 0/0 = NaN for a batch whose targets are all ignored (pytorch #70348).
    """
    positive = count > 0
    return xp.where(positive, 1 / xp.where(positive, count, xp.ones_like(count)), 0 * count)


def element_count(xp: Any, x: Array) -> Array:
    """The number of elements of ``x``, as an array: the mean's normalizer of an unweighted loss."""
    size = 1
    for n in x.shape:
        size *= int(n)
    return xp.asarray(float(size), dtype=x.dtype)


def weight_samples(xp: Any, losses: Array, sample_weight: Array | None) -> Array:
    """Per-row losses times per-sample weights ``s_i`` (any real: negative RL advantages too).

    ``0 * inf = 0``: a sample of weight 0 is removed even where its loss is infinite.
    """
    return losses if sample_weight is None else mul0(xp, sample_weight, losses)


def denominator(count: Array, normalizer: Array | None) -> Array:
    r"""The mean's denominator: ``normalizer`` when one is given, else ``count``.

    ``count`` is what the batch itself counts: :math:`\sum_i w_{y_i}` over non-ignored rows
    for class indices (PyTorch's weighted mean; the number of such rows without class
    weights). Per-sample weights never enter it: the mean of ``s_i l_i`` is a mean over
    tokens, defined when the weights are negative or sum to 0 (RL advantages); a mean
    normalized by the weights is ``normalizer=sum(s)``. An explicit normalizer serves gradient
    accumulation: with the count of the whole accumulated batch, the micro-batches' means add
    up to the full batch's mean, which per-micro-batch means do not (Liger #802, #1298).
    """
    return count if normalizer is None else normalizer


NORMALIZERS = (None, "count")


def weighted_count(
    xp: Any, counts: Array, sample_weight: Array | None, normalizer: Any
) -> tuple[Array, Array | None]:
    r"""``(count, explicit normalizer)`` of a mean over samples weighted by ``sample_weight``.

    ``counts`` holds what each sample counts for: :math:`c_i = w_{y_i}` with class weights
    (1 without), 0 for an ignored or masked sample. The core losses' mean divides by

    - ``normalizer=None``: :math:`\sum_i s_i c_i`, the weighted mean of scikit-learn's
      ``sample_weight`` (and PyTorch's class-weighted mean, which it extends);
    - ``normalizer="count"``: :math:`\sum_i c_i`, Keras' ``sum_over_batch_size`` (a mask
      removes its samples from it) and the fused op's default (:func:`denominator`);
    - a number: that number (gradient accumulation), as the fused op's ``normalizer``.
    """
    if isinstance(normalizer, str):
        return xp.sum(counts), None
    if normalizer is not None:
        return xp.sum(counts), normalizer
    total = xp.sum(counts if sample_weight is None else mul0(xp, sample_weight, counts))
    return total, None


def loss_row_scale(
    xp: Any,
    reduction: str,
    count: Array,
    *,
    sample_weight: Array | None = None,
    normalizer: Array | None = None,
) -> Array | float:
    """``d reduce(...) / d l_i``: ``s_i``, divided by the denominator for "mean" (a scalar
    without sample weights; 1.0 for an unweighted "sum" or "none")."""
    scale: Array | float = 1.0
    if reduction == "mean":
        d = denominator(count, normalizer)
        scale = mean_scale(xp, xp.astype(d, count.dtype))
    if sample_weight is None:
        return scale
    return sample_weight * scale if reduction == "mean" else sample_weight


def reduce(
    xp: Any,
    losses: Array,
    reduction: str,
    count: Array,
    *,
    sample_weight: Array | None = None,
    normalizer: Array | None = None,
) -> Array:
    r"""Apply ``reduction`` to per-row losses weighted by ``sample_weight``.

    "none": :math:`s_i \ell_i`; "sum": :math:`\sum_i s_i \ell_i`; "mean": that sum over
    :func:`denominator` (``count``, or ``normalizer``), 0 when it is 0 (see mean_scale).
    """
    losses = weight_samples(xp, losses, sample_weight)
    if reduction == "none":
        return losses
    total = xp.sum(losses)
    if reduction == "sum":
        return total
    return total * mean_scale(xp, xp.astype(denominator(count, normalizer), total.dtype))


# ---------------------------------------------------------------- label smoothing


@dataclass(frozen=True)
class Smoothing:
    """Target distribution ``q = on_target * onehot(y) + per_class`` (before class weights)."""

    on_target: float
    per_class: float


def smoothing(label_smoothing: float, num_classes: int, convention: str = "uniform") -> Smoothing:
    """The smoothed target's coefficients in one of the two conventions of the literature.

    "uniform" (Szegedy et al., PyTorch, optax, Keras) mixes e of the uniform distribution in:
    the true class gets 1 - e + e/K. "others" spreads e over the other classes: the true class
    gets exactly 1 - e and every other class e/(K-1) (pytorch #148884 is the confusion).
    """
    e = label_smoothing
    if e == 0:
        return Smoothing(1.0, 0.0)
    if convention == "uniform":
        return Smoothing(1 - e, e / num_classes)
    if num_classes < 2:
        raise ValueError("the 'others' smoothing convention needs at least 2 classes")
    return Smoothing(1 - e - e / (num_classes - 1), e / (num_classes - 1))


# ---------------------------------------------------------------- softmax cross-entropy


@dataclass(frozen=True)
class SoftmaxCE:
    """The checked options of a softmax cross-entropy over ``num_classes`` classes."""

    num_classes: int
    label_smoothing: float = 0.0
    smoothing_convention: str = "uniform"
    z_loss: float = 0.0
    softcap: float | None = None

    @property
    def smoothing(self) -> Smoothing:
        return smoothing(self.label_smoothing, self.num_classes, self.smoothing_convention)


def softmax_ce_loss(
    xp: Any,
    rule: SoftmaxCE,
    *,
    nll_t: Array,
    smooth_nll: Array | None,
    lse: Array,
    w_t: Array,
    valid: Array,
) -> Array:
    r"""Per-row loss against class indices, from the row statistics.

    .. math:: \ell = \alpha\, w_t\, (-\log p_t) + \beta \sum_c w_c (-\log p_c)
              + \zeta\, w_t \operatorname{LSE}^2

    with :math:`(\alpha, \beta)` the smoothing coefficients, ``nll_t`` = :math:`-\log p_t`,
    ``smooth_nll`` = :math:`\sum_c w_c (-\log p_c)` (needed only with smoothing), ``lse`` the
    raw log-sum-exp (a row whose LSE is infinite has an infinite z-loss), ``w_t`` the class
    weight of the target (0 where ignored). Ignored rows are exactly 0, whatever they hold.
    """
    s = rule.smoothing
    loss = mul0(xp, s.on_target * w_t, nll_t)
    if s.per_class > 0:
        assert smooth_nll is not None
        loss = loss + s.per_class * smooth_nll
    if rule.z_loss > 0:
        loss = loss + _z_term(xp, rule, lse, w_t)
    return xp.where(valid, loss, xp.zeros_like(loss))


def _z_term(xp: Any, rule: SoftmaxCE, lse: Array, w_t: Array) -> Array:
    # weighted like the NLL; 0 * inf = 0 for a zero class weight
    return mul0(xp, rule.z_loss * w_t, lse * lse)


def z_loss_rows(xp: Any, rule: SoftmaxCE, *, lse: Array, w_t: Array, valid: Array) -> Array:
    r"""The z-loss part :math:`\zeta\, w_t \operatorname{LSE}^2` of :func:`softmax_ce_loss`'s
    rows (0 on ignored rows and without z-loss): the value a training log reports apart."""
    if rule.z_loss == 0:
        return xp.zeros_like(lse)
    return xp.where(valid, _z_term(xp, rule, lse, w_t), xp.zeros_like(lse))


def softmax_ce_coefficients(
    xp: Any, rule: SoftmaxCE, *, lse: Array, w_t: Array, valid: Array, w_sum: Array | float
) -> tuple[Array, Array, Array | None]:
    r"""``(a, b, r)`` with :math:`\partial\ell/\partial z = a\,p - b\,e_t - r\,w` per row.

    :math:`a = \alpha w_t + \beta \sum_c w_c + 2 \zeta w_t \operatorname{LSE}`,
    :math:`b = \alpha w_t`, :math:`r = \beta` on valid rows (None without smoothing); ``lse``
    is that of the row's limit (finite), so a row with an infinite log-sum-exp gets the
    gradient of its limit. The famous ``p - y`` is ``a = b = 1``, ``r = 0``.
    """
    s = rule.smoothing
    b = s.on_target * w_t
    a = b
    r = None
    if s.per_class > 0:
        r = s.per_class * xp.astype(valid, w_t.dtype)
        a = a + w_sum * r
    if rule.z_loss > 0:
        a = a + 2 * rule.z_loss * mul0(xp, w_t, lse)
    return a, b, r


def probability_targets(xp: Any, rule: SoftmaxCE, y: Array, class_weight: Array | None) -> Array:
    """The weighted, smoothed target distribution ``q = w (alpha y + beta)`` of soft targets.

    The loss is :math:`-\\sum_c q_c \\log p_c + \\zeta \\operatorname{LSE}^2`, its gradient
    :math:`(\\sum_c q_c + 2\\zeta \\operatorname{LSE})\\, p - q`.
    """
    s = rule.smoothing
    q = y if s.per_class == 0 else s.on_target * y + s.per_class
    return q if class_weight is None else q * class_weight


def probability_ce_loss(xp: Any, rule: SoftmaxCE, *, cross: Array, lse: Array) -> Array:
    """Per-row loss against soft targets: ``cross`` = -sum_c q_c log p_c, plus the z-loss."""
    return cross + rule.z_loss * (lse * lse) if rule.z_loss > 0 else cross


def probability_ce_coefficient(xp: Any, rule: SoftmaxCE, *, q_sum: Array, lse: Array) -> Array:
    """``a`` of the gradient ``a p - q`` against soft targets (``lse`` of the row's limit)."""
    return q_sum + 2 * rule.z_loss * lse if rule.z_loss > 0 else q_sum


# ---------------------------------------------------------------- focal loss


def focal_loss(xp: Any, d: Array, gamma: float) -> Array:
    r"""Softmax focal loss of a row, from its margin :math:`d = \operatorname{LSE}_{c \ne t} - z_t`.

    :math:`1 - p_t = \sigma(d)` and :math:`-\log p_t = \operatorname{softplus}(d)`, so the
    loss :math:`\sigma(d)^\gamma \operatorname{softplus}(d)` has no :math:`1 - p_t`
    cancellation; the power is taken in log space, finite at saturated logits for every
    :math:`\gamma \ge 0` (optax #1267).
    """
    nll = softplus(xp, d)
    return nll if gamma == 0 else xp.exp(-gamma * softplus(xp, -d)) * nll


def focal_slope(xp: Any, d: Array, gamma: float) -> Array:
    r""":math:`f'(d) = \sigma(d)^\gamma [\gamma \sigma(-d) \operatorname{softplus}(d) + \sigma(d)]`.

    The gradient of a row is :math:`f'(d)\,(r - e_t)`, with :math:`r` the softmax over the
    other classes. At :math:`d = \pm\infty` the product :math:`\sigma(-d)\operatorname{softplus}(d)`
    is :math:`0 \cdot \infty`, whose limit is 0 (a target logit of -inf, or a certain target).
    """
    sig = sigmoid(xp, d)
    if gamma == 0:
        return sig
    tail = mul0(xp, sigmoid(xp, -d), softplus(xp, d))
    return xp.exp(-gamma * softplus(xp, -d)) * (gamma * tail + sig)


# ---------------------------------------------------------------- binary cross-entropy


def binary_targets(xp: Any, y: Array, label_smoothing: float, convention: str) -> Array:
    """Binary targets after label smoothing: the two-class case of :func:`smoothing`."""
    if label_smoothing == 0:
        return y
    s = smoothing(label_smoothing, 2, convention)
    return s.on_target * y + s.per_class


def binary_ce_loss(
    xp: Any, z: Array, y: Array, pos_weight: Array | None, *, guard_infinite: bool,
    exp_neg_abs: Array | None = None,
) -> Array:  # fmt: skip
    r""":math:`\pi y \operatorname{softplus}(-z) + (1-y) \operatorname{softplus}(z)`.

    ``softplus(-z) = -log sigmoid(z)`` and ``softplus(z) = -log(1 - sigmoid(z))`` share their
    costly part ``log1p(exp(-|z|))`` and are exact, without overflow, at every z including
    +-inf. With ``guard_infinite`` a zero coefficient removes its term where the softplus is
    +inf (``y = 1`` at ``z = +inf``); the caller skips the guard when every logit is finite.
    ``exp_neg_abs``: ``exp(-|z|)``, shared with the gradient by a caller that computes both.
    """
    positive = y if pos_weight is None else pos_weight * y
    tail = xp.log1p(xp.exp(-xp.abs(z)) if exp_neg_abs is None else exp_neg_abs)
    if guard_infinite:
        zero = xp.zeros_like(z)
        nll_positive = xp.maximum(-z, zero) + tail  # softplus(-z)
        nll_negative = xp.maximum(z, zero) + tail  # softplus(z)
        return mul0(xp, positive, nll_positive) + mul0(xp, 1 - y, nll_negative)
    # Finite z: the tail's coefficients y + (1 - y) sum to 1 without weights, and the rest,
    # y max(-z, 0) + (1 - y) max(z, 0), is z (1 - y) above 0 and -z y below: z (H(z) - y), a
    # product of two factors of one sign, so no cancellation (never softplus(z) - y z, which
    # cancels for y near 1), in four operations fewer.
    if pos_weight is None:
        return tail + z * (heaviside(xp, z) - y)
    relu = xp.maximum(z, xp.zeros_like(z))
    return positive * (relu - z + tail) + (1 - y) * (relu + tail)


def binary_ce_grad(
    xp: Any, z: Array, y: Array, pos_weight: Array | None, exp_neg_abs: Array | None = None
) -> Array:
    r""":math:`(1-y)\sigma(z) - \pi y\, \sigma(-z)`: ``sigmoid(z) - y`` without weights
    (``exp_neg_abs`` as in :func:`binary_ce_loss`)."""
    if exp_neg_abs is None:
        exp_neg_abs = xp.exp(-xp.abs(z))
    if pos_weight is None:
        # sigmoid(z) - y = (H(z) - y) - sign(z) sigmoid(-|z|): a confident right logit
        # (y = H(z)) gives -+sigmoid(-|z|) itself, where sigmoid(z) - y would cancel to a few
        # digits or to 0 (1 / (1 + 1e-26) - 1 in float64).
        # H(0) = 1 here, not 1/2: jax.hessian differentiates this rule (the custom_vjp's
        # backward), and at z = 0 only the branch z >= 0 has the derivative sigmoid'(0) = 1/4.
        h = xp.astype(z >= 0, z.dtype)
        return (h - y) - (2 * h - 1) * (exp_neg_abs / (1 + exp_neg_abs))
    return (1 - y) * sigmoid(xp, z, exp_neg_abs) - (pos_weight * y) * sigmoid(xp, -z, exp_neg_abs)


# ---------------------------------------------------------------- KL divergence


def kl_terms(xp: Any, p: Array, log_p: Array, log_q: Array) -> Array:
    r"""The terms :math:`p_c (\log p_c - \log q_c)` of :math:`KL(p \| q)`, elementwise.

    ``0 log 0 = 0``: a zero target probability removes its term, even where ``log q`` is
    -inf (PyTorch's ``kl_div`` gives NaN there). Its gradient in ``log q`` is ``-p``.
    """
    return mul0(xp, p, log_p - log_q)


# ---------------------------------------------------------------- distillation

DISTILLATION_KINDS = ("forward", "reverse", "jsd")


def distillation_rows(
    xp: Any,
    log_p: Array,
    log_q: Array,
    *,
    kind: str = "forward",
    beta: float = 0.5,
    axis: int = -1,
    grad: bool = False,
) -> tuple[Array, Array | None]:
    r"""The divergence of each row between teacher ``p`` and student ``q`` (given as
    log-probabilities, classes along ``axis``) and, with ``grad``, its gradient with respect
    to the student's logits :math:`s` (:math:`q = \operatorname{softmax}(s)`).

    - "forward": :math:`D = KL(p \| q) = \sum_c p_c (\log p_c - \log q_c)`,
      :math:`\partial D / \partial s = q - p`;
    - "reverse": :math:`D = KL(q \| p)`, :math:`\partial D / \partial s = q (\log q - \log p - D)`;
    - "jsd": with :math:`m = \beta p + (1 - \beta) q`,
      :math:`D = \beta KL(p \| m) + (1 - \beta) KL(q \| m)`, and with :math:`u = \log q - \log m`,
      :math:`\partial D / \partial s = (1 - \beta)\, q (u - \sum_c q_c u_c)`
      (the terms through :math:`m` cancel: :math:`\beta p / m + (1 - \beta) q / m = 1`).

    ``0 log 0 = 0`` (:func:`mul0`). The distillation losses scale :math:`D` by :math:`T^2` and
    its gradient by :math:`T` (logits divided by T); that scaling is the callers'.
    """

    def total(a: Array, b: Array) -> Array:
        return xp.sum(mul0(xp, a, b), axis=axis, keepdims=True)

    p, q = xp.exp(log_p), xp.exp(log_q) if grad or kind != "forward" else None
    g = None
    if kind == "forward":
        div = xp.sum(kl_terms(xp, p, log_p, log_q), axis=axis, keepdims=True)
        if grad:
            g = q - p
    elif kind == "reverse":
        u = log_q - log_p
        div = total(q, u)
        if grad:
            g = mul0(xp, q, u - div)
    elif kind == "jsd":
        log_m = xp.logaddexp(log_p + math.log(beta), log_q + math.log1p(-beta))
        u = log_q - log_m
        kl_q = total(q, u)
        div = beta * total(p, log_p - log_m) + (1 - beta) * kl_q
        if grad:
            g = (1 - beta) * mul0(xp, q, u - kl_q)
    else:
        raise ValueError(f"kind must be one of {DISTILLATION_KINDS}, got {kind!r}")
    return xp.squeeze(div, axis=axis), g
