"""PyTorch-only parts: drop-in loss modules and a fused linear cross-entropy.

Imported explicitly (``import crossent.torch``); ``import crossent`` never imports torch. The
core losses already take torch tensors (``crossent.softmax_cross_entropy(tensor, ...)`` runs an
autograd Function with a closed-form backward); what lives here is what only torch has:

- :class:`CrossEntropyLoss`, :class:`BCEWithLogitsLoss`, :class:`FocalLoss`: ``torch.nn``
  modules (same constructors, class dim 1) that are thin wrappers over the core losses, plus
  z-loss, soft-capping, finite values at infinite logits and 0 for all-ignored batches.
- :func:`linear_cross_entropy` / :class:`LinearCrossEntropyLoss`: the loss of
  ``softmax(hidden @ weight.T + bias)`` in chunks, never materializing the N x V logits;
  per-token weights, an explicit normalizer for gradient accumulation, and per-token outputs
  (log-probabilities, entropy, accuracy, confidence) in a :class:`LinearCEOutput`.
- :func:`linear_distillation_loss`: forward KL, reverse KL or JSD at temperature T between a
  student head and a teacher head, in the same chunks (neither's N x V logits exist).

The functions ``cross_entropy``, ``binary_cross_entropy_with_logits`` and ``focal_loss`` are
deprecated aliases of the core losses.

>>> import torch
>>> import crossent.torch as cet
>>> logits = torch.tensor([[2.0, 1.0, 0.1]])
>>> print(round(float(cet.CrossEntropyLoss()(logits, torch.tensor([0]))), 4))
0.417
"""

from ._functional import binary_cross_entropy_with_logits, cross_entropy, focal_loss
from ._linear import LinearCEOutput, LinearCrossEntropyLoss, linear_cross_entropy
from ._linear_distill import linear_distillation_loss
from ._modules import BCEWithLogitsLoss, CrossEntropyLoss, FocalLoss

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "LinearCEOutput",
    "LinearCrossEntropyLoss",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "focal_loss",
    "linear_cross_entropy",
    "linear_distillation_loss",
]
