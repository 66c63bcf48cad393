"""Array namespace lookup and dtype policy shared by every public function.

This is the only module that knows about concrete frameworks, and it knows them only by name:
nothing here imports torch or jax. Every public function calls :func:`namespace` once at its
entry and hands the returned ``xp`` to the private helpers.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import array_api_compat
import numpy as np

Array = Any  # an array of any Array API library; the library does not have a common static type

F = TypeVar("F", bound=Callable[..., Any])


def quiet_numpy(fn: F) -> F:
    """Silence NumPy's warnings for log(0), inf - inf and overflow inside ``fn``.

    crossent produces those on purpose (the limits of infinite inputs) and resolves them with
    ``where``, so the warnings are noise (NumPy and array_api_strict raise them). The context is
    not entered for torch tensors: torch.compile cannot trace ``np.errstate``.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if any(_is_torch(a) for a in args):
            return fn(*args, **kwargs)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def namespace(*arrays: Any, names: Sequence[str] = ()) -> tuple[Any, list[Any]]:
    """Return the common array namespace of ``arrays`` and the arrays converted to it.

    Python lists, tuples and scalars are read as NumPy arrays, so ``ce.entropy([0.5, 0.5])``
    works. ``None`` entries stay ``None``. ``names`` (one per array, for the messages) makes
    the errors say which argument is wrong: a name ending in ``?`` may be None, any other must
    be an array; arrays of two libraries, and NumPy arrays of an ``ml_dtypes`` dtype (which
    NumPy's math cannot compute with), are refused naming the arguments.
    """
    labels = [n.rstrip("?") for n in names] or [f"argument {i + 1}" for i in range(len(arrays))]
    for name, a, label in zip(names, arrays, labels, strict=False):
        if a is None and not name.endswith("?"):
            raise TypeError(f"{label} must be an array, got None")
    for a, label in zip(arrays, labels, strict=True):
        if isinstance(a, np.ndarray) and a.dtype.kind == "V":
            raise TypeError(
                f"{label} is a NumPy array of dtype {a.dtype} (ml_dtypes), which NumPy's math "
                "cannot compute with: convert it (.astype(np.float32)), or pass a torch or JAX "
                "array of that dtype"
            )
    present = [a for a in arrays if a is not None]
    if present and all(_is_torch(a) for a in present):
        # Decided without array_api_compat's cached type checks, which torch.compile warns on.
        return _torch_namespace(), list(arrays)
    arrays_only = [a for a in present if _is_array(a)]
    try:
        xp = array_api_compat.array_namespace(*arrays_only) if arrays_only else _numpy_namespace()
    except TypeError as error:
        if "Multiple namespaces" not in str(error):
            raise
        kinds = ", ".join(
            f"{label} is a {type(a).__module__.split('.')[0]}.{type(a).__name__}"
            for a, label in zip(arrays, labels, strict=True)
            if a is not None and _is_array(a)
        )
        raise TypeError(
            f"the arrays come from different libraries ({kinds}); convert them to one "
            "(torch.as_tensor(x), jnp.asarray(x), np.asarray(x))"
        ) from None
    if getattr(xp, "__name__", "") == "array_api_compat.dask.array":
        xp = _dask_namespace()
    converted = [a if a is None or _is_array(a) else xp.asarray(a) for a in arrays]
    return xp, converted


def _numpy_namespace() -> Any:
    import array_api_compat.numpy as np_xp

    return np_xp


@functools.cache
def _dask_namespace() -> Any:
    """array_api_compat's Dask namespace with what it lacks (``take_along_axis``) added.

    Dask arrays stay lazy through crossent: :func:`is_concrete` is False for them (a value
    check would compute the graph), and every operation keeps the chunks of the batch axes.
    """
    import array_api_compat.dask.array as dask_xp

    return _DaskNamespace(dask_xp)


class _DaskNamespace:
    """A proxy of ``array_api_compat.dask.array`` (every name forwarded) that adds the Array
    API functions it does not have."""

    def __init__(self, base: Any) -> None:
        self._base = base

    def __getattr__(self, name: str) -> Any:
        if name in _QUIET_UFUNCS:
            return functools.partial(_quiet_elementwise, getattr(np, name))
        return getattr(self._base, name)

    def __repr__(self) -> str:
        return f"<crossent's Array API namespace over {self._base.__name__}>"

    @staticmethod
    def take_along_axis(x: Any, indices: Any, /, *, axis: int = -1) -> Any:
        """NumPy's ``take_along_axis`` block by block: the gathered axis is made one chunk
        (the class axis, which is one already in the usual layout), the others keep theirs."""
        import dask.array as da

        axis = axis % x.ndim
        x, indices = x.rechunk({axis: -1}), indices.rechunk({axis: -1})
        chunks = tuple(indices.chunks[a] if a == axis else x.chunks[a] for a in range(x.ndim))
        return da.map_blocks(
            np.take_along_axis, x, indices, axis=axis, dtype=x.dtype, chunks=chunks
        )


# The element-wise functions whose warnings crossent provokes on purpose (log 0, exp overflow)
# and resolves with ``where``: :func:`quiet_numpy` silences them when NumPy runs eagerly, but a
# Dask graph runs them later, in the scheduler's threads, so each block is computed quietly.
_QUIET_UFUNCS = frozenset({"log", "log1p", "exp", "expm1", "divide"})


def _quiet_elementwise(ufunc: Any, *args: Any) -> Any:
    import dask.array as da

    def quiet(*blocks: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return ufunc(*blocks)

    return da.core.elemwise(quiet, *args)


def _torch_namespace() -> Any:
    import array_api_compat.torch as torch_xp

    return torch_xp


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a Dask array (lazy: its values exist only after ``.compute()``)."""
    return type(x).__module__.startswith("dask")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _is_array(x: Any) -> bool:
    if _is_torch(x):
        return True
    return array_api_compat.is_array_api_obj(x) and not isinstance(x, (int, float, bool))


def numel(x: Array) -> int:
    """Number of elements (``x.size`` is a method on torch tensors)."""
    return int(array_api_compat.size(x) or 0)


def default_int(xp: Any) -> Any:
    """The namespace's default integer dtype (int64 in NumPy and torch, int32 in JAX without x64).

    One integer dtype per backend: torch gathers only with int64, and JAX warns on int64.
    """
    return xp.asarray(0).dtype


def compute_dtype(xp: Any, dtype: Any) -> Any:
    """The floating dtype the math is done in: float16/bfloat16 are raised to float32.

    Half-precision exponentials and sums overflow or lose every digit (pytorch #85791), so the
    reductions always run in at least float32 and the result is cast back at the end.
    """
    if xp.isdtype(dtype, "integral") or dtype == xp.bool:
        return xp.asarray(0.0).dtype  # the library's default floating dtype
    if not xp.isdtype(dtype, "real floating"):
        raise TypeError(f"expected a real floating or integer array, got dtype {dtype}")
    if xp.finfo(dtype).bits < 32:
        return xp.float32
    return dtype


def result_dtype(xp: Any, dtype: Any) -> Any:
    """The dtype a result is returned in: the input's floating dtype, or the default float."""
    if xp.isdtype(dtype, "real floating"):
        return dtype
    return compute_dtype(xp, dtype)


def as_dtype(xp: Any, x: Array, dtype: Any) -> Array:
    """``x`` in ``dtype``, itself when it already is (``xp.astype`` copies by default, which
    costs a full pass over a gradient the size of the logits)."""
    return x if x.dtype == dtype else xp.astype(x, dtype)


def upcast(xp: Any, x: Array) -> Array:
    """``x`` in its :func:`compute_dtype` (a no-op for float32/float64 arrays)."""
    return as_dtype(xp, x, compute_dtype(xp, x.dtype))


def clip(xp: Any, x: Array, low: float, high: float) -> Array:
    """``xp.clip(x, low, high)``; on JAX as two maxima, ``-max(-max(x, low), -high)``: XLA's
    CPU ``minimum`` is not vectorized (a clip before the two logs of the binary
    cross-entropy ran 2.4x slower than with maxima only, 65536 x 1000 float32)."""
    if "jax" in getattr(xp, "__name__", ""):
        return -xp.maximum(-xp.maximum(x, low), -high)
    return xp.clip(x, low, high)


def is_concrete(x: Any) -> bool:
    """Whether the data of ``x`` can be read now, for free (value checks, fast-path tests).

    Not under tracing (a jax tracer, torch.compile, a fake tensor): there value checks are
    skipped rather than crashing the trace. Not on an accelerator either: reading a CUDA
    tensor synchronizes the host with the device and breaks CUDA-graph capture, so there an
    out-of-range target fails inside the gather, as in PyTorch, and the branch-free path runs.
    """
    module = type(x).__module__
    if is_dask(x):
        return False  # reading a value would compute the graph: Dask arrays stay lazy
    if module.startswith("jax"):
        return not any(cls.__name__ == "Tracer" for cls in type(x).__mro__) and not _jax_tracing()
    if module.startswith("torch"):
        torch = sys.modules["torch"]
        if torch.compiler.is_compiling() or x.device.type != "cpu":
            return False
        return not (hasattr(torch, "_subclasses") and _is_fake_tensor(torch, x))
    return True


def _jax_tracing() -> bool:
    """Whether JAX is tracing (``jit``, ``vmap``): then an operation on a concrete array (one a
    traced function closes over) gives a tracer, whose value cannot be read either."""
    jax = sys.modules["jax"]
    try:  # the cheap test: no trace at all (the common, eager case)
        from jax._src import core

        if core.trace_state_clean():
            return False
    except (ImportError, AttributeError):  # a JAX without it: the test below decides alone
        pass
    return isinstance(jax.numpy.zeros(()) + 0, jax.core.Tracer)


def all_finite(xp: Any, x: Array) -> bool:
    """Whether ``x`` is readable and finite everywhere (False under tracing: the guarded path).

    One reduction, no temporary: a sum is finite only if every term is (an overflow of finite
    terms reads as "not finite", which only costs the guarded path).
    """
    if not is_concrete(x):
        return False
    if _is_torch(x):
        x = x.detach()  # a read, not part of the graph
    return numel(x) == 0 or math.isfinite(float(xp.sum(x)))


def _is_fake_tensor(torch: Any, x: Any) -> bool:
    fake = getattr(torch._subclasses, "FakeTensor", None)
    return fake is not None and isinstance(x, fake)


def to_numpy(x: Array) -> np.ndarray:
    """A NumPy copy of a concrete array of any library (for error messages and diagnostics)."""
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError, RuntimeError):
        return np.from_dlpack(x)
