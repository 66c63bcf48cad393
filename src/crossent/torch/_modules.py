"""Drop-in ``torch.nn`` loss modules backed by crossent's closed-form autograd Functions."""

from __future__ import annotations

import torch
from torch import nn

from .. import losses
from .._validation import check_fraction, check_nonnegative, check_reduction, check_softcap
from ._functional import class_axis

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "FocalLoss"]


class CrossEntropyLoss(nn.CrossEntropyLoss):
    r"""``torch.nn.CrossEntropyLoss`` with less memory, z-loss, soft-capping and a safe mean.

    Same constructor, buffers and class dimension (dim 1) as the PyTorch module, of which it is
    a subclass, so it loads the same state dicts; a thin wrapper over
    :func:`crossent.softmax_cross_entropy` with ``axis=1``. Differences: the backward is the
    closed form from a saved log-sum-exp (no log-softmax kept between forward and backward); a
    batch whose targets are all ignored gives 0 with a zero gradient instead of NaN; and two
    extras,
    ``z_loss`` (:math:`\zeta\, w_{y_i} \operatorname{LSE}(z_i)^2`) and ``softcap``
    (:math:`s \tanh(z/s)` applied to the logits first).

    Parameters
    ----------
    weight, size_average, ignore_index, reduce, reduction, label_smoothing
        As in ``torch.nn.CrossEntropyLoss``.
    z_loss : float, default 0
        Coefficient of the squared log-sum-exp.
    softcap : float, optional
        Soft cap of the logits.

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import CrossEntropyLoss
    >>> logits = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], requires_grad=True)
    >>> loss = CrossEntropyLoss(label_smoothing=0.1)(logits, torch.tensor([0, 1]))
    >>> same = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(logits, torch.tensor([0, 1]))
    >>> print(round(loss.item(), 4), bool(torch.isclose(loss, same)))
    0.4369 True
    """

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        z_loss: float = 0.0,
        softcap: float | None = None,
    ) -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
        check_reduction(self.reduction)  # at construction, not at the first call
        self.z_loss = check_nonnegative(z_loss, "z_loss")
        self.softcap = check_softcap(softcap)
        check_fraction(label_smoothing, "label_smoothing")

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return losses.softmax_cross_entropy(
            input,
            target,
            axis=class_axis(input),
            class_weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            z_loss=self.z_loss,
            softcap=self.softcap,
        )

    def extra_repr(self) -> str:
        parts = [f"reduction={self.reduction!r}"]
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        if self.z_loss:
            parts.append(f"z_loss={self.z_loss}")
        if self.softcap is not None:
            parts.append(f"softcap={self.softcap}")
        return ", ".join(parts)


class BCEWithLogitsLoss(nn.BCEWithLogitsLoss):
    r"""``torch.nn.BCEWithLogitsLoss`` that stays finite at :math:`\pm\infty` logits.

    Same constructor and buffers as the PyTorch module (a subclass of it), plus
    ``label_smoothing`` (targets become :math:`(1-e) y + e/2`). At logits of :math:`\pm\infty`
    the loss is its limit and the gradient finite, where PyTorch gives NaN. A thin wrapper over
    :func:`crossent.sigmoid_binary_cross_entropy`.

    Parameters
    ----------
    weight, size_average, reduce, reduction, pos_weight
        As in ``torch.nn.BCEWithLogitsLoss``.
    label_smoothing : float, default 0
        Binary label smoothing.

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import BCEWithLogitsLoss
    >>> z = torch.tensor([float("inf"), -2.0])
    >>> print(round(float(BCEWithLogitsLoss()(z, torch.tensor([1.0, 0.0]))), 4))
    0.0635
    """

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: torch.Tensor | None = None,
        *,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction, pos_weight)
        check_reduction(self.reduction)
        self.label_smoothing = check_fraction(label_smoothing, "label_smoothing")

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return losses.sigmoid_binary_cross_entropy(
            input,
            target,
            weight=self.weight,
            pos_weight=self.pos_weight,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class FocalLoss(nn.Module):
    r"""Softmax focal loss as a module (classes along dim 1, like ``nn.CrossEntropyLoss``).

    :math:`-\alpha_t (1 - p_t)^\gamma \log p_t`, computed in log space so that gradients stay
    finite at saturated logits for every :math:`\gamma \ge 0`. A thin wrapper over
    :func:`crossent.softmax_focal_loss` with ``axis=1``.

    Parameters
    ----------
    alpha : float or torch.Tensor, optional
        A scalar, or one weight per class (registered as a buffer). None means 1.
    gamma : float, default 2
        Focusing exponent.
    ignore_index : int, default -100
        Targets equal to it contribute nothing.
    reduction : {"mean", "sum", "none"}
        "mean" averages over non-ignored samples.

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import FocalLoss
    >>> loss = FocalLoss(gamma=2.0)(torch.tensor([[2.0, 1.0, 0.1]]), torch.tensor([0]))
    >>> print(round(float(loss), 4))
    0.0485
    """

    alpha: torch.Tensor | None

    def __init__(
        self,
        alpha: float | torch.Tensor | None = None,
        gamma: float = 2.0,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if isinstance(alpha, torch.Tensor):
            self.register_buffer("alpha", alpha)
            self.alpha_scalar: float | None = None
        else:
            self.alpha = None
            self.alpha_scalar = None if alpha is None else check_nonnegative(alpha, "alpha")
        self.gamma = check_nonnegative(gamma, "gamma")
        self.ignore_index = ignore_index
        check_reduction(reduction)
        self.reduction = reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha if self.alpha is not None else self.alpha_scalar
        return losses.softmax_focal_loss(
            input,
            target,
            axis=class_axis(input),
            alpha=alpha,
            gamma=self.gamma,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        alpha = "tensor" if self.alpha is not None else self.alpha_scalar
        return f"alpha={alpha}, gamma={self.gamma}, reduction={self.reduction!r}"
