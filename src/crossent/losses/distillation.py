"""Knowledge distillation (Hinton et al. 2015): the KL of softened distributions, times T².

The :math:`T^2` keeps the gradient's scale independent of the temperature.
"""

from __future__ import annotations

from typing import Any

from .._namespace import Array, namespace, numel, quiet_numpy, result_dtype, upcast
from .._primitives import _log_softmax
from .._semantics import distillation_rows, element_count, reduce
from .._validation import check_positive, check_reduction, check_same_shape, normalize_axis
from ._problem import class_last, gradient_of, restore_axis
from ._weighting import per_sample, per_sample_gradient

__all__ = ["distillation_loss", "distillation_loss_grad"]


def prepare_distillation(
    student_logits: Array, teacher_logits: Array, *, temperature: float, axis: int
) -> tuple[Any, Array, Array, float, int, Any]:
    """(xp, log p_teacher, log q_student, T, axis, dtype), the class axis moved last."""
    t = check_positive(temperature, "temperature")
    xp, (s, te) = namespace(
        student_logits, teacher_logits, names=("student_logits", "teacher_logits")
    )
    check_same_shape(s, te, ("student_logits", "teacher_logits"))
    axis = normalize_axis(axis, s.ndim)
    dtype = result_dtype(xp, s.dtype)
    log_q, log_p = (_log_softmax(xp, class_last(xp, upcast(xp, a), axis) / t, -1) for a in (s, te))
    return xp, log_p, xp.astype(log_q, log_p.dtype), t, axis, dtype


@quiet_numpy
@per_sample()
def distillation_loss(
    student_logits: Array,
    teacher_logits: Array,
    /,
    *,
    temperature: float = 1.0,
    axis: int = -1,
    reduction: str = "mean",
) -> Array:
    r"""Knowledge-distillation loss of Hinton et al.: KL of the softened distributions times T².

    .. math::

        \ell_i = T^2\, D_{KL}\bigl(\operatorname{softmax}(t_i / T) \,\|\,
                 \operatorname{softmax}(s_i / T)\bigr)

    The :math:`T^2` keeps the gradient's scale independent of the temperature. "mean" averages
    over samples (PyTorch's ``kl_div(..., reduction="batchmean")``).

    Parameters
    ----------
    student_logits, teacher_logits : array
        Logits of the same shape, classes along ``axis``.
    temperature : float, default 1
        Softening temperature T > 0.
    axis : int, default -1
        The class axis.
    reduction : {"mean", "sum", "none"}
        How per-sample losses are combined.

    Returns
    -------
    array
        The loss in the student logits' floating dtype.

    References
    ----------
    .. [1] Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015.

    Examples
    --------
    >>> import crossent as ce
    >>> print(float(ce.distillation_loss([[1.0, 2.0]], [[1.0, 2.0]], temperature=4.0)))
    0.0
    """
    check_reduction(reduction)
    xp, log_teacher, log_student, t, _, dtype = prepare_distillation(
        student_logits, teacher_logits, temperature=temperature, axis=axis
    )
    loss = (t * t) * distillation_rows(xp, log_teacher, log_student)[0]
    return xp.astype(reduce(xp, loss, reduction, element_count(xp, loss)), dtype)


@quiet_numpy
@gradient_of(distillation_loss)
@per_sample_gradient(distillation_loss)
def distillation_loss_grad(student_logits: Array, teacher_logits: Array, /, **options: Any) -> Any:
    r"""Gradient of :func:`crossent.distillation_loss` with respect to the student logits.

    .. math:: \frac{\partial \ell}{\partial s} = T\,\bigl(\operatorname{softmax}(s/T)
              - \operatorname{softmax}(t/T)\bigr)

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.distillation_loss([[0.0, 0.0]], [[0.0, 0.0]], temperature=2.0))
    [[0. 0.]]
    """
    check_reduction(options["reduction"])
    xp, log_teacher, log_student, t, axis, dtype = prepare_distillation(
        student_logits, teacher_logits, temperature=options["temperature"], axis=options["axis"]
    )
    _, grad = distillation_rows(xp, log_teacher, log_student, grad=True)
    assert grad is not None
    grad = t * grad
    if options["reduction"] == "mean":
        grad = grad / max(numel(grad) // max(int(grad.shape[-1]), 1), 1)
    return restore_axis(xp, grad, axis, dtype)
