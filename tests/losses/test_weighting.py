"""where=, sample_weight= and normalizer= on every core loss: against scikit-learn's
log_loss(sample_weight=), Keras' sum_over_batch_size formula in float64, optax's where=, and
the loss's own per-sample values (the rule of the weighted mean written out here once)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import crossent as ce
from crossent.losses import LOSSES

from ._support import close, load, t64

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(909)
N, K = 6, 4
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])


def labels(ignore=False):
    t = RNG.integers(0, K, size=N)
    if ignore:
        t[::3] = -100
    return t


def inputs(name):
    """(x, targets, options, per-sample shape) of a small problem for each registry loss."""
    z = RNG.normal(scale=2.0, size=(N, K))
    probs = special.softmax(z, axis=-1)
    soft = special.softmax(RNG.normal(size=(N, K)), axis=-1)
    elementwise_targets = RNG.random((N, K))
    return {
        "softmax_cross_entropy": (z, labels(True), {"class_weight": WEIGHT,
                                                    "label_smoothing": 0.1}),
        "sigmoid_binary_cross_entropy": (z, elementwise_targets, {}),
        "softmax_focal_loss": (z, labels(True), {"gamma": 2.0}),
        "sigmoid_focal_loss": (z, elementwise_targets, {}),
        "categorical_cross_entropy": (probs, labels(True), {"class_weight": WEIGHT}),
        "binary_cross_entropy": (special.expit(z), elementwise_targets, {}),
        "distillation_loss": (z, RNG.normal(size=(N, K)), {"temperature": 2.0}),
        "mse_loss": (z, labels(), {}),
        "hinge_loss": (z, labels(), {}),
        "nll_loss": (special.log_softmax(z, axis=-1), labels(True), {"class_weight": WEIGHT}),
        "kl_div_loss": (special.log_softmax(z, axis=-1), soft, {}),
        "poly_loss": (z, labels(True), {"label_smoothing": 0.1}),
    }[name]  # fmt: skip


def counts(name, x, t, opts):
    """c_i: the class weight of the target (1 without), 0 where ignored; 1 per sample else."""
    if t.dtype.kind in "iu" and t.shape != x.shape:
        w = opts.get("class_weight")
        valid = t != -100
        c = np.where(valid, 1.0 if w is None else w[np.where(valid, t, 0)], 0.0)
        return c.astype(np.float64)
    shape = x.shape if name in ("sigmoid_binary_cross_entropy", "sigmoid_focal_loss",
                                "binary_cross_entropy") else x.shape[:-1]  # fmt: skip
    return np.ones(shape)


def per_sample(name, x, t, opts):
    rows = np.asarray(getattr(ce, name)(x, t, reduction="none", **opts), dtype=np.float64)
    return rows.sum(-1) if name == "kl_div_loss" else rows


def weighted_mean(rows, c, s, m, normalizer):
    """sum_i m_i s_i l_i over sum_i m_i s_i c_i (None), sum_i m_i c_i ("count"), or a number."""
    total = (m * s * rows).sum()
    if normalizer is None:
        return total / (m * s * c).sum()
    return total / ((m * c).sum() if normalizer == "count" else normalizer)


@pytest.mark.parametrize("normalizer", [None, "count", 7.0])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_takes_masks_and_sample_weights(name, normalizer):
    x, t, opts = inputs(name)
    rows = per_sample(name, x, t, opts)
    c = counts(name, x, t, opts)
    shape = rows.shape
    s = RNG.uniform(0.2, 3.0, size=shape[:1] + (1,) * (len(shape) - 1))  # broadcasts
    m = RNG.random(shape) > 0.3
    s_full, m_full = np.broadcast_to(s, shape), m.astype(np.float64)
    loss, grad = getattr(ce, name), getattr(ce.grad, name)
    got = loss(x, t, sample_weight=s, where=m, normalizer=normalizer, **opts)
    close(got, weighted_mean(rows, c, s_full, m_full, normalizer), rtol=1e-12)
    summed = loss(x, t, sample_weight=s, where=m, reduction="sum", **opts)
    close(summed, (m_full * s_full * rows).sum(), rtol=1e-12)
    # the gradient: autograd of the torch path with the same options equals the closed form
    z = t64(x.copy()).requires_grad_(True)
    tt = t64(t)
    topts = {k: t64(v) if isinstance(v, np.ndarray) else v for k, v in opts.items()}
    loss(z, tt, sample_weight=t64(s), where=torch.from_numpy(m), normalizer=normalizer,
         **topts).backward()  # fmt: skip
    closed = grad(x, t, sample_weight=s, where=m, normalizer=normalizer, **opts)
    np.testing.assert_allclose(z.grad.numpy(), closed, rtol=1e-10, atol=1e-12)
    both = (
        grad(x, t, sample_weight=s, where=m, normalizer=normalizer, **opts, with_loss=True)
        if name == "softmax_cross_entropy"
        else None
    )
    if both is not None:
        close(both[0], got)
        np.testing.assert_allclose(both[1], closed, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "kl_div_loss", "sigmoid_focal_loss"])
def test_reduction_none_is_the_weighted_per_sample_loss(name):
    x, t, opts = inputs(name)
    raw = np.asarray(getattr(ce, name)(x, t, reduction="none", **opts))
    shape = per_sample(name, x, t, opts).shape
    s, m = RNG.normal(size=shape), RNG.random(shape) > 0.5
    got = getattr(ce, name)(x, t, reduction="none", sample_weight=s, where=m, **opts)
    expand = (lambda a: a[..., None]) if raw.shape != shape else (lambda a: a)
    close(got, np.where(expand(m), expand(s) * raw, 0.0))


def test_categorical_matches_sklearn_log_loss_with_sample_weight(xp):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    p = special.softmax(RNG.normal(scale=2.0, size=(40, K)), axis=-1)
    y = RNG.integers(0, K, size=40)
    s = RNG.uniform(0.0, 4.0, size=40)
    want = sklearn_metrics.log_loss(y, p, sample_weight=s, labels=np.arange(K))
    close(ce.categorical_cross_entropy(xp.asarray(p), xp.asarray(y), sample_weight=xp.asarray(s)),
          want)  # fmt: skip
    z = np.log(p)  # logits whose softmax is p
    close(ce.softmax_cross_entropy(xp.asarray(z), xp.asarray(y), sample_weight=xp.asarray(s)),
          want)  # fmt: skip
    q = special.expit(RNG.normal(size=40))
    yb = (RNG.random(40) > 0.5).astype(np.float64)
    close(ce.binary_cross_entropy(xp.asarray(q), xp.asarray(yb), sample_weight=xp.asarray(s)),
          sklearn_metrics.log_loss(yb, q, sample_weight=s))  # fmt: skip


def test_keras_sum_over_batch_size_formula():
    """Keras: mean = sum_i s_i l_i / (number of unmasked samples), class weights aside."""
    z, y = RNG.normal(size=(8, K)), RNG.integers(0, K, size=8)
    s, m = RNG.uniform(0.0, 2.0, size=8), RNG.random(8) > 0.25
    nll = special.logsumexp(z, axis=-1) - z[np.arange(8), y]  # float64 CE per sample
    want = (np.where(m, s * nll, 0.0)).sum() / m.sum()
    got = ce.softmax_cross_entropy(z, y, sample_weight=s, where=m, normalizer="count")
    close(got, want)


def test_composes_with_class_weights_ignore_index_and_smoothing_as_torch():
    z, y = RNG.normal(size=(9, K)), labels_n(9)
    s = RNG.uniform(0.1, 2.0, size=9)
    per = F.cross_entropy(t64(z), t64(y), weight=t64(WEIGHT), label_smoothing=0.2,
                          reduction="none").numpy()  # fmt: skip
    valid = y != -100
    w_t = np.where(valid, WEIGHT[np.where(valid, y, 0)], 0.0)
    got = ce.softmax_cross_entropy(z, y, class_weight=WEIGHT, label_smoothing=0.2,
                                   sample_weight=s)  # fmt: skip
    close(got, (s * per).sum() / (s * w_t).sum())
    # unit sample weights give PyTorch's class-weighted mean back
    close(
        ce.softmax_cross_entropy(
            z, y, class_weight=WEIGHT, label_smoothing=0.2, sample_weight=np.ones(9)
        ),
        F.cross_entropy(t64(z), t64(y), weight=t64(WEIGHT), label_smoothing=0.2).numpy(),
    )


def labels_n(n):
    t = RNG.integers(0, K, size=n)
    t[::4] = -100
    return t


def test_where_matches_optax():
    optax = pytest.importorskip("optax")
    jnp = load("jax")
    z, y = RNG.normal(size=(3, 5, K)), RNG.integers(0, K, size=(3, 5))
    m = RNG.random((3, 5)) > 0.4
    want = optax.losses.softmax_cross_entropy_with_integer_labels(
        jnp.asarray(z), jnp.asarray(y), where=jnp.asarray(m)
    )
    close(ce.softmax_cross_entropy(jnp.asarray(z), jnp.asarray(y), where=jnp.asarray(m),
                                   reduction="none"), want)  # fmt: skip
    # optax's mean over the unmasked samples, as numpy.mean(where=)
    close(ce.softmax_cross_entropy(z, y, where=m), np.mean(np.asarray(want), where=m))
    q = special.softmax(RNG.normal(size=z.shape), axis=-1)
    want = optax.losses.softmax_cross_entropy(jnp.asarray(z), jnp.asarray(q), where=jnp.asarray(m))
    close(ce.softmax_cross_entropy(z, q, where=m, reduction="none"), want)


def test_masked_samples_holding_nan_are_zero_with_zero_gradient():
    z = RNG.normal(size=(4, K))
    z[1] = np.nan
    y = RNG.integers(0, K, size=4)
    m = np.array([True, False, True, True])
    assert np.isfinite(ce.softmax_cross_entropy(z, y, where=m))
    g = ce.grad.softmax_cross_entropy(z, y, where=m)
    assert np.isfinite(g).all() and (g[1] == 0).all()


def test_bad_options_name_the_value():
    z, y = RNG.normal(size=(4, K)), RNG.integers(0, K, size=4)
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3,\) does not broadcast"):
        ce.softmax_cross_entropy(z, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sample_weight must be finite; found nan at index 2"):
        ce.softmax_cross_entropy(z, y, sample_weight=np.array([1.0, 1.0, np.nan, 1.0]))
    with pytest.raises(TypeError, match="where must be a boolean array"):
        ce.softmax_cross_entropy(z, y, where=np.ones(4))
    with pytest.raises(ValueError, match='normalizer must be None, "count" or a number'):
        ce.softmax_cross_entropy(z, y, normalizer="mean")
    with pytest.raises(ValueError, match="normalizer is the denominator of reduction='mean'"):
        ce.softmax_cross_entropy(z, y, normalizer=3.0, reduction="sum")


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict", "torch", "jax"])
def test_backends_agree(backend):
    xp = load(backend)
    z, y = RNG.normal(size=(5, K)), labels_n(5)
    s, m = RNG.normal(size=5), RNG.random(5) > 0.3
    want = ce.softmax_cross_entropy(z, y, sample_weight=s, where=m, class_weight=WEIGHT)
    got = ce.softmax_cross_entropy(
        xp.asarray(z),
        xp.asarray(y),
        sample_weight=xp.asarray(s),
        where=xp.asarray(m),
        class_weight=xp.asarray(WEIGHT),
    )
    close(got, want)
    g = ce.grad.softmax_cross_entropy(
        xp.asarray(z),
        xp.asarray(y),
        sample_weight=xp.asarray(s),
        where=xp.asarray(m),
        class_weight=xp.asarray(WEIGHT),
    )
    close(g, ce.grad.softmax_cross_entropy(z, y, sample_weight=s, where=m, class_weight=WEIGHT))


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize(("lib", "dtype"), [("numpy", "float16"), ("torch", "bfloat16")])
def test_float32_output_of_half_inputs(name, lib, dtype):
    """The loss of a float16/bfloat16 input in float32 (Cut Cross-Entropy's output dtype):
    that of the same (rounded) values given in float64, to float32 precision."""
    x, t, opts = inputs(name)
    if lib == "torch":
        half = torch.from_numpy(x).to(getattr(torch, dtype))
        exact = half.double().numpy()
        tt = t64(t)
        topts = {k: t64(v) if isinstance(v, np.ndarray) else v for k, v in opts.items()}
    else:
        half = x.astype(dtype)
        exact, tt, topts = half.astype(np.float64), t, opts
    if name == "categorical_cross_entropy":
        topts = {**topts, "renormalize": True}  # the rounded rows no longer sum to 1 exactly
        opts = {**opts, "renormalize": True}
    got = getattr(ce, name)(half, tt, float32_output=True, **topts)
    assert str(got.dtype).endswith("float32")
    want = getattr(ce, name)(exact, t, **opts)
    close(got, want, rtol=2e-6, atol=1e-6)
    assert getattr(ce, name)(half, tt, **topts).dtype == half.dtype  # the default: unchanged
    g = getattr(ce.grad, name)(half, tt, float32_output=True, **topts)
    assert g.dtype == half.dtype
