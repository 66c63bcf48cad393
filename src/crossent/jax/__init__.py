"""JAX-only parts of crossent (imported on first use; ``import crossent`` never imports JAX).

The core losses already take JAX arrays: ``crossent.softmax_cross_entropy(jax_array, ...)`` runs
a ``jax.custom_vjp`` with the closed-form gradient (:mod:`crossent.jax._functions`), under
``jax.jit``, ``jax.grad`` and ``jax.vmap``. :func:`linear_cross_entropy` is the fused linear
cross-entropy of a language model's head, chunk by chunk, never holding the N x V logits.
"""

from .._linear_common import LinearCEOutput
from ._linear import linear_cross_entropy

__all__ = ["LinearCEOutput", "linear_cross_entropy"]
