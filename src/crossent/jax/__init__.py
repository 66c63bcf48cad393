"""JAX-only parts of crossent (imported on first use; ``import crossent`` never imports JAX).

The core losses already take JAX arrays: ``crossent.softmax_cross_entropy(jax_array, ...)`` runs
a ``jax.custom_vjp`` with the closed-form gradient (:mod:`crossent.jax._functions`), under
``jax.jit``, ``jax.grad`` and ``jax.vmap``.
"""
