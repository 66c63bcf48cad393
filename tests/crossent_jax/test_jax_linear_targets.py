"""crossent.jax.linear_cross_entropy in PyTorch's F.linear_cross_entropy conventions: probability
targets, a hidden state without batch dimension, the K-dimensional head (C, d1, ..., D).

The peer is ``torch.nn.functional.linear_cross_entropy`` (its reference path) on the same float64
inputs, values and gradients of hidden, weight and bias; the options PyTorch lacks (z-loss, soft
cap, temperature, per-token weights) against the materialized logits with ``jax.nn.log_softmax``.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
jnp = jax.numpy
jax.config.update("jax_enable_x64", True)

from crossent.jax import linear_cross_entropy  # noqa: E402

F = torch.nn.functional
N, D, C = 13, 6, 11

pytestmark = pytest.mark.skipif(
    not hasattr(F, "linear_cross_entropy"), reason="needs torch with F.linear_cross_entropy"
)


def _inputs(seed, hidden=(N, D), weight=(C, D)):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=hidden) / 2
    w = rng.normal(size=weight) / 2
    b = rng.normal(size=weight[:-1])
    return rng, h, w, b


def _distribution(rng, shape, class_axis=-1):
    """Probability rows along ``class_axis``, some entries exactly 0."""
    p = np.exp(2 * rng.normal(size=shape)) * (rng.random(shape) > 0.2)
    p = p + (p.sum(class_axis, keepdims=True) == 0)  # a row of zeros becomes uniform
    return p / p.sum(class_axis, keepdims=True)


def _torch(h, w, b, y, **kwargs):
    """(loss, (d h, d w, d b)) of F.linear_cross_entropy, for the upstream gradient ``u``."""
    u = kwargs.pop("u")
    leaves = [torch.tensor(x, requires_grad=True) for x in (h, w, b)]
    cw = kwargs.pop("class_weight", None)
    out = F.linear_cross_entropy(
        leaves[0], leaves[1], torch.tensor(y), linear_bias=leaves[2],
        weight=None if cw is None else torch.tensor(cw), **kwargs,
    )  # fmt: skip
    (out * torch.tensor(u)).sum().backward()
    return out.detach().numpy(), [x.grad.numpy() for x in leaves]


def _ours(h, w, b, y, *, jit=False, **kwargs):
    u = kwargs.pop("u")
    cw = kwargs.pop("class_weight", None)
    if cw is not None:
        kwargs["class_weight"] = jnp.asarray(cw)

    def f(h, w, b):
        out = linear_cross_entropy(h, w, jnp.asarray(y), bias=b, **kwargs)
        return jnp.sum(out * u), out

    f = jax.jit(f) if jit else f
    (_, out), grads = jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(h, w, b)
    return np.asarray(out), [np.asarray(g) for g in grads]


def _assert_same(ours, theirs):
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-10, atol=1e-12)
    for a, b in zip(ours[1], theirs[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize(
    "options", [{}, {"class_weight": True}, {"class_weight": True, "label_smoothing": 0.2}]
)
def test_probability_targets_match_torch(reduction, jit, options):
    rng, h, w, b = _inputs(1)
    y = _distribution(rng, (N, C))
    kwargs = {"reduction": reduction, "u": rng.normal(size=(N,) if reduction == "none" else ())}
    if options.get("class_weight"):
        kwargs["class_weight"] = rng.uniform(0.2, 2.0, C)
    if "label_smoothing" in options:
        kwargs["label_smoothing"] = options["label_smoothing"]
    ours = _ours(h, w, b, y, jit=jit, chunk_size=4, **dict(kwargs))
    _assert_same(ours, _torch(h, w, b, y, **kwargs))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_probability_targets_with_the_other_loss_options(reduction):
    """z-loss, soft cap, temperature and per-token weights: the materialized logits."""
    rng, h, w, b = _inputs(2)
    y = jnp.asarray(_distribution(rng, (N, C)))
    s = jnp.asarray(rng.normal(size=N))
    opts = {"z_loss": 1e-2, "softcap": 2.0, "temperature": 1.3}

    def fused(h, w, b):
        return linear_cross_entropy(
            h, w, y, bias=b, sample_weight=s, reduction=reduction, chunk_size=5, **opts
        )

    def materialized(h, w, b):
        z = 2.0 * jnp.tanh((h @ w.T + b) / 2.0) / 1.3
        lse = jax.nn.logsumexp(z, -1)
        rows = (-jnp.sum(y * jax.nn.log_softmax(z), -1) + 1e-2 * lse**2) * s
        return rows if reduction == "none" else jnp.sum(rows) / N

    np.testing.assert_allclose(fused(h, w, b), materialized(h, w, b), rtol=1e-10)
    g1 = jax.grad(lambda *a: jnp.sum(jnp.sin(fused(*a))), argnums=(0, 1, 2))(h, w, b)
    g2 = jax.grad(lambda *a: jnp.sum(jnp.sin(materialized(*a))), argnums=(0, 1, 2))(h, w, b)
    for a, c in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-12)


def test_one_hot_probabilities_equal_class_indices():
    rng, h, w, b = _inputs(3)
    t = rng.integers(0, C, N)
    kwargs = {"bias": b, "label_smoothing": 0.1, "z_loss": 1e-3, "chunk_size": 4}
    soft = jax.value_and_grad(
        lambda h: linear_cross_entropy(h, w, jax.nn.one_hot(t, C, dtype=jnp.float64), **kwargs)
    )(h)
    hard = jax.value_and_grad(lambda h: linear_cross_entropy(h, w, jnp.asarray(t), **kwargs))(h)
    np.testing.assert_allclose(soft[0], hard[0], rtol=1e-12)
    np.testing.assert_allclose(soft[1], hard[1], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", ["index", "probabilities"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_unbatched_hidden_matches_torch(kind, reduction):
    rng, h, w, b = _inputs(4, hidden=(D,))
    y = np.array(3) if kind == "index" else _distribution(rng, (C,))
    kwargs = {"reduction": reduction, "u": rng.normal(size=())}
    ours = _ours(h, w, b, y, **dict(kwargs))
    assert ours[0].shape == ()
    _assert_same(ours, _torch(h, w, b, y, **kwargs))


@pytest.mark.parametrize("kind", ["index", "probabilities"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_k_dimensional_weight_matches_torch(kind, reduction):
    """weight (C, 2, 3, D), bias (C, 2, 3): C classes at each of the 6 positions."""
    rng, h, w, b = _inputs(5, weight=(C, 2, 3, D))
    if kind == "index":
        y = rng.integers(0, C, (N, 2, 3))
        y[0, 1, 2] = y[4, 0, 0] = -100
    else:
        y = _distribution(rng, (N, C, 2, 3), class_axis=1)
    shape = (N, 2, 3) if reduction == "none" else ()
    kwargs = {"reduction": reduction, "u": rng.normal(size=shape), "label_smoothing": 0.1,
              "class_weight": rng.uniform(0.2, 2.0, C)}  # fmt: skip
    ours = _ours(h, w, b, y, jit=True, chunk_size=4, **dict(kwargs))
    _assert_same(ours, _torch(h, w, b, y, **kwargs))


def test_probability_targets_temporary_memory_is_chunks_not_n_by_v():
    """XLA's memory analysis: the targets are an argument (N x V), the temporaries a few chunks."""
    n, d, vocab, chunk = 2048, 32, 8192, 64
    k = jax.random.split(jax.random.key(0), 3)
    h = jax.random.normal(k[0], (n, d), jnp.float32)
    w = jax.random.normal(k[1], (vocab, d), jnp.float32)
    y = jax.nn.softmax(jax.random.normal(k[2], (n, vocab), jnp.float32))

    def fused(h, w):
        return linear_cross_entropy(h, w, y, chunk_size=chunk, label_smoothing=0.1)

    grad = jax.jit(jax.value_and_grad(fused, argnums=(0, 1)))
    temp = grad.lower(h, w).compile().memory_analysis().temp_size_in_bytes
    budget = 6 * chunk * vocab * 4 + 2 * vocab * d * 4 + 4 * n * d * 4
    assert temp <= budget < n * vocab * 4 / 2, (temp, budget)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (((4, D), (C, D), "p"), {"ignore_index": 0}, ValueError,
         r"ignore_index=0 applies to class-index targets only"),
        (((4, D), (C, D), "negative"), {}, ValueError,
         r"must be probabilities in \[0, 1\]; found -0.25 at index \(1, 2\)"),
        (((4, D), (C, D), "half"), {}, ValueError,
         r"the row at index 0 sums to 0.5 .*sample_weight of 0"),
        (((4, D), (C, D), "p"), {"outputs": ("entropy",)}, ValueError,
         r"outputs=\('entropy',\) is not supported with probability targets"),
        (((4, D), (C, 3, D), "p"), {}, ValueError,
         r"probability targets must have the logits' shape \(4, 11, 3\)"),
        (((4, D), (C, 3, D), np.zeros((4, 3), int)), {"shift": 1}, ValueError,
         r"shift=1 is not supported with a K-dimensional weight"),
        (((D,), (C, D), np.array(1)), {"shift": True}, ValueError,
         r"shift=True needs a sequence axis"),
    ],
)  # fmt: skip
def test_errors_name_the_value(args, kwargs, error, match):
    p = np.full((4, C), 1.0 / C)
    targets = {"p": p, "negative": p.copy(), "half": p / 2}
    targets["negative"][1, 2] = -0.25
    h, w, y = args
    y = targets[y] if isinstance(y, str) else y
    with pytest.raises(error, match=match):
        linear_cross_entropy(jnp.zeros(h), jnp.zeros(w), jnp.asarray(y), **kwargs)
