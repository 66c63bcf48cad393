"""Closed-form gradients: crossent.grad.<loss> == torch autograd of an independent reference ==
central finite differences of crossent's loss, in float64, for every loss and option."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import crossent as ce
from conftest import to_np

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(99)
K = 4
W = np.array([0.5, 2.0, 1.0, 3.0])


def t64(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def total(out):
    return out.sum() if out.ndim else out


def finite_differences(fn, x, h=1e-6):
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = float(np.sum(fn(x)))
        flat[i] = old - h
        down = float(np.sum(fn(x)))
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return g


# --- independent references in torch (differentiable) ---------------------------------------


def ref_softmax_ce(z, t, *, weight=None, ignore_index=-100, label_smoothing=0.0, z_loss=0.0,
                   reduction="mean", axis=-1):  # fmt: skip
    zc = torch.movedim(z, axis, 1) if z.ndim > 2 or axis not in (-1, 1) else z
    tt = t if t.dtype == torch.int64 else (torch.movedim(t, axis, 1) if t.ndim > 2 else t)
    w = None if weight is None else t64(weight)
    per = F.cross_entropy(zc, tt, weight=w, ignore_index=ignore_index,
                          label_smoothing=label_smoothing, reduction="none")  # fmt: skip
    lse = torch.logsumexp(z, dim=axis)
    if t.dtype == torch.int64:
        valid = t != ignore_index
        wy = torch.where(valid, (torch.ones(z.shape[axis]) if w is None else w)[t.clamp(0)], 0)
        per = per + z_loss * wy * lse**2
        denom = wy.sum()
    else:
        per = per + z_loss * lse**2
        denom = per.numel()
    return {"none": per, "sum": per.sum(), "mean": per.sum() / denom}[reduction]


def reduce_t(per, reduction, denom=None):
    denom = per.numel() if denom is None else denom
    return {"none": per, "sum": per.sum(), "mean": per.sum() / denom}[reduction]


def ref_sigmoid_bce(z, t, *, weight=None, pos_weight=None, reduction="mean"):
    return F.binary_cross_entropy_with_logits(
        z,
        t,
        weight=None if weight is None else t64(weight),
        pos_weight=None if pos_weight is None else t64(pos_weight),
        reduction=reduction,
    )


def ref_softmax_focal(z, t, *, alpha=None, gamma=2.0, ignore_index=-100, reduction="mean"):
    logp = F.log_softmax(z, dim=-1)
    valid = t != ignore_index
    safe = t.clamp(0)
    logpt = logp.gather(-1, safe[..., None])[..., 0]
    a = 1.0 if alpha is None else (t64(np.asarray(alpha))[safe] if np.ndim(alpha) else alpha)
    per = torch.where(valid, -a * (1 - logpt.exp()) ** gamma * logpt, 0.0)
    return reduce_t(per, reduction, valid.sum())


def ref_sigmoid_focal(z, t, *, alpha=0.25, gamma=2.0, reduction="mean"):
    p = torch.sigmoid(z)
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = bce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return reduce_t(loss, reduction)


def ref_distillation(s, t, *, temperature=1.0, reduction="mean"):
    T = temperature
    per = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="none").sum(-1)
    return reduce_t(T * T * per, reduction)


def ref_mse(z, t, *, activation="softmax", reduction="mean"):
    if activation == "sigmoid":
        return reduce_t((torch.sigmoid(z) - t) ** 2, reduction)
    y = F.one_hot(t, z.shape[-1]).double() if t.dtype == torch.int64 else t
    return reduce_t(((F.softmax(z, -1) - y) ** 2).sum(-1), reduction)


def ref_hinge(z, t, *, margin=1.0, reduction="mean"):
    zy = z.gather(-1, t[..., None])[..., 0]
    others = torch.where(F.one_hot(t, z.shape[-1]).bool(), -torch.inf, z).amax(-1)
    return reduce_t(torch.clamp(margin + others - zy, min=0), reduction)


def ref_categorical(p, t, *, eps=1e-7, weight=None, label_smoothing=0.0, reduction="mean"):
    logp = torch.log(p.clamp(eps, 1 - eps))
    k = p.shape[-1]
    w = torch.ones(k, dtype=p.dtype) if weight is None else t64(weight)
    if t.dtype == torch.int64:
        wy = w[t]
        nll = -logp.gather(-1, t[..., None])[..., 0]
        per = (1 - label_smoothing) * wy * nll - label_smoothing / k * (w * logp).sum(-1)
        return reduce_t(per, reduction, wy.sum())
    q = (1 - label_smoothing) * t + label_smoothing / k
    return reduce_t(-(w * q * logp).sum(-1), reduction)


def ref_binary(p, t, *, weight=None, reduction="mean"):
    return F.binary_cross_entropy(
        p, t, weight=None if weight is None else t64(weight), reduction=reduction
    )


# --- the cases ------------------------------------------------------------------------------


def logits(*shape, scale=2.0):
    return RNG.normal(scale=scale, size=shape)


def labels(*shape, ignore=None):
    t = RNG.integers(0, K, size=shape)
    if ignore is not None:
        t.reshape(-1)[::3] = ignore
        t.reshape(-1)[1] = 1
    return t


def soft(*shape):
    return RNG.dirichlet(np.ones(K), size=shape)


def probs(*shape):
    p = RNG.dirichlet(np.ones(K) * 3, size=shape)
    return p


def binary_targets(*shape):
    y = RNG.uniform(size=shape)
    y.reshape(-1)[::2] = np.round(y.reshape(-1)[::2])
    return y


CASES = [
    # (id, loss name, torch reference, inputs, options)
    ("sce", "softmax_cross_entropy", ref_softmax_ce, (logits(5, K), labels(5)), {}),
    ("sce-sum", "softmax_cross_entropy", ref_softmax_ce, (logits(5, K), labels(5)),
     {"reduction": "sum"}),
    ("sce-none", "softmax_cross_entropy", ref_softmax_ce, (logits(5, K), labels(5)),
     {"reduction": "none"}),
    ("sce-weight", "softmax_cross_entropy", ref_softmax_ce, (logits(6, K), labels(6)),
     {"weight": W}),
    ("sce-ignore", "softmax_cross_entropy", ref_softmax_ce, (logits(2, 3, K), labels(2, 3,
     ignore=-100)), {"weight": W}),
    ("sce-ignore-class", "softmax_cross_entropy", ref_softmax_ce,
     (logits(6, K), labels(6, ignore=2)), {"ignore_index": 2, "label_smoothing": 0.1}),
    ("sce-smooth-weight", "softmax_cross_entropy", ref_softmax_ce, (logits(6, K), labels(6)),
     {"weight": W, "label_smoothing": 0.2}),
    ("sce-zloss", "softmax_cross_entropy", ref_softmax_ce,
     (logits(6, K) + 3.0, labels(6, ignore=-100)),
     {"weight": W, "z_loss": 0.05, "label_smoothing": 0.1}),
    ("sce-probs", "softmax_cross_entropy", ref_softmax_ce, (logits(5, K), soft(5)),
     {"weight": W, "label_smoothing": 0.1, "z_loss": 0.01}),
    ("sce-axis1", "softmax_cross_entropy", ref_softmax_ce, (logits(2, K, 3), labels(2, 3)),
     {"axis": 1, "weight": W, "label_smoothing": 0.1}),
    ("bce", "sigmoid_binary_cross_entropy", ref_sigmoid_bce,
     (logits(4, 3), binary_targets(4, 3)), {}),
    ("bce-weights", "sigmoid_binary_cross_entropy", ref_sigmoid_bce,
     (logits(4, 3), binary_targets(4, 3)),
     {"weight": RNG.uniform(0, 2, size=(4, 3)), "pos_weight": np.array([0.5, 2.0, 3.0])}),
    ("bce-sum", "sigmoid_binary_cross_entropy", ref_sigmoid_bce,
     (logits(4, 3), binary_targets(4, 3)), {"pos_weight": np.array([2.0, 1.0, 0.3]),
                                            "reduction": "sum"}),
    ("bce-none", "sigmoid_binary_cross_entropy", ref_sigmoid_bce,
     (logits(7), binary_targets(7)), {"reduction": "none"}),
    ("sfocal", "softmax_focal_loss", ref_softmax_focal, (logits(6, K), labels(6)), {}),
    ("sfocal-half", "softmax_focal_loss", ref_softmax_focal,
     (logits(6, K), labels(6, ignore=-100)), {"gamma": 0.5, "alpha": W / W.sum()}),
    ("sfocal-sum", "softmax_focal_loss", ref_softmax_focal, (logits(6, K), labels(6)),
     {"gamma": 1.0, "alpha": 0.25, "reduction": "sum"}),
    ("bfocal", "sigmoid_focal_loss", ref_sigmoid_focal, (logits(5, 3), binary_targets(5, 3)),
     {}),
    ("bfocal-opts", "sigmoid_focal_loss", ref_sigmoid_focal,
     (logits(5, 3), np.round(binary_targets(5, 3))),
     {"alpha": None, "gamma": 0.5, "reduction": "sum"}),
    ("distill", "distillation_loss", ref_distillation, (logits(5, K), logits(5, K)), {}),
    ("distill-T", "distillation_loss", ref_distillation, (logits(5, K), logits(5, K)),
     {"temperature": 3.0, "reduction": "sum"}),
    ("mse", "mse_loss", ref_mse, (logits(5, K), labels(5)), {}),
    ("mse-probs", "mse_loss", ref_mse, (logits(5, K), soft(5)), {"reduction": "sum"}),
    ("mse-sigmoid", "mse_loss", ref_mse, (logits(5, 3), binary_targets(5, 3)),
     {"activation": "sigmoid"}),
    ("hinge", "hinge_loss", ref_hinge, (logits(8, K), labels(8)), {}),
    ("hinge-margin", "hinge_loss", ref_hinge, (logits(8, K), labels(8)),
     {"margin": 0.5, "reduction": "sum"}),
    ("cce", "categorical_cross_entropy", ref_categorical, (probs(5), labels(5)),
     {"eps": 1e-7}),
    ("cce-opts", "categorical_cross_entropy", ref_categorical, (probs(5), labels(5)),
     {"eps": 1e-7, "weight": W, "label_smoothing": 0.1, "reduction": "sum"}),
    ("cce-soft", "categorical_cross_entropy", ref_categorical, (probs(5), soft(5)),
     {"eps": 1e-7, "weight": W}),
    ("binary", "binary_cross_entropy", ref_binary,
     (RNG.uniform(0.05, 0.95, size=(4, 3)), binary_targets(4, 3)), {}),
    ("binary-weight", "binary_cross_entropy", ref_binary,
     (RNG.uniform(0.05, 0.95, size=(6,)), binary_targets(6)),
     {"weight": RNG.uniform(0, 2, size=6), "reduction": "sum"}),
]  # fmt: skip
IDS = [c[0] for c in CASES]


def torch_targets(t):
    return t64(t)


@pytest.mark.parametrize(("name", "ref", "inputs", "opts"), [c[1:] for c in CASES], ids=IDS)
def test_closed_form_equals_autograd_of_reference(name, ref, inputs, opts):
    x, t = inputs
    closed = to_np(getattr(ce.grad, name)(x, t, **opts))
    assert closed.shape == x.shape
    z = t64(x.copy()).requires_grad_(True)
    total(ref(z, torch_targets(t), **opts)).backward()
    np.testing.assert_allclose(closed, z.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "ref", "inputs", "opts"), [c[1:] for c in CASES], ids=IDS)
def test_closed_form_equals_finite_differences(name, ref, inputs, opts):
    x, t = inputs
    fn = getattr(ce, name)
    # the loss itself agrees with the reference ...
    want = ref(t64(x), torch_targets(t), **opts).numpy()
    np.testing.assert_allclose(to_np(fn(x, t, **opts)), want, rtol=1e-12, atol=1e-12)
    # ... and its closed-form gradient with its own finite differences
    numerical = finite_differences(lambda v: to_np(fn(v, t, **opts)), x.copy())
    closed = to_np(getattr(ce.grad, name)(x, t, **opts))
    np.testing.assert_allclose(closed, numerical, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("name", "ref", "inputs", "opts"), [c[1:] for c in CASES], ids=IDS)
def test_autograd_through_crossent_equals_closed_form(name, ref, inputs, opts):
    del ref
    x, t = inputs
    z = t64(x.copy()).requires_grad_(True)
    topts = {k: t64(v) if isinstance(v, np.ndarray) else v for k, v in opts.items()}
    total(getattr(ce, name)(z, torch_targets(t), **topts)).backward()
    closed = to_np(getattr(ce.grad, name)(x, t, **opts))
    np.testing.assert_allclose(z.grad.numpy(), closed, rtol=1e-10, atol=1e-12)


def test_softmax_gradient_is_p_minus_y():
    x, t = logits(3, K), labels(3)
    g = ce.grad.softmax_cross_entropy(x, t, reduction="sum")
    np.testing.assert_allclose(g, special.softmax(x, axis=-1) - np.eye(K)[t], atol=1e-15)
    # rows sum to zero: the gradient moves probability mass, it does not create it
    np.testing.assert_allclose(g.sum(-1), 0.0, atol=1e-15)


def test_closed_form_on_every_backend(xp):
    x, t = logits(2, 3, K), labels(2, 3, ignore=-100)
    opts = {"label_smoothing": 0.1, "z_loss": 0.01}
    g = ce.grad.softmax_cross_entropy(xp.asarray(x), xp.asarray(t), weight=xp.asarray(W), **opts)
    assert type(g) is type(xp.asarray(x))
    want = ce.grad.softmax_cross_entropy(x, t, weight=W, **opts)
    np.testing.assert_allclose(to_np(g), want, rtol=1e-12, atol=1e-15)
    y = np.round(soft(2, 3))
    g = ce.grad.sigmoid_binary_cross_entropy(xp.asarray(x), xp.asarray(y))
    np.testing.assert_allclose(to_np(g), (special.expit(x) - y) / x.size, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_closed_form_keeps_dtype(dtype):
    x = logits(3, K).astype(dtype)
    g = ce.grad.softmax_cross_entropy(x, labels(3))
    assert g.dtype == np.dtype(dtype)


def test_all_ignored_gives_zero_gradient():
    g = ce.grad.softmax_cross_entropy(logits(3, K), np.full(3, -100), label_smoothing=0.1)
    np.testing.assert_array_equal(g, np.zeros((3, K)))


# --- check_gradient -------------------------------------------------------------------------


def test_check_gradient_passes_a_right_gradient():
    x, t = logits(3, K), labels(3)
    loss = lambda z: ce.softmax_cross_entropy(z, t, weight=W)
    right = ce.grad.softmax_cross_entropy(x, t, weight=W)
    result = ce.check_gradient(loss, x, grad=right)
    assert result
    assert result.ok
    assert result.max_abs_error < 1e-8
    assert ce.check_gradient(loss, x, grad=lambda z: ce.grad.softmax_cross_entropy(z, t, weight=W))


@pytest.mark.parametrize(
    "wrong",
    [
        lambda x, t: special.softmax(x, axis=-1) - np.eye(K)[t],  # forgot the weighted mean
        lambda x, t: 1.001 * ce.grad.softmax_cross_entropy(x, t, weight=W),  # 0.1 % off
        lambda x, t: -ce.grad.softmax_cross_entropy(x, t, weight=W),  # sign
        lambda x, t: ce.grad.softmax_cross_entropy(x, t),  # ignored the weights
    ],
    ids=["unnormalized", "scaled", "sign", "unweighted"],
)
def test_check_gradient_catches_a_wrong_gradient(wrong):
    x, t = logits(3, K), labels(3)
    loss = lambda z: ce.softmax_cross_entropy(z, t, weight=W)
    result = ce.check_gradient(loss, x, grad=wrong(x, t))
    assert not result
    assert not result.ok
    assert result.max_abs_error > 1e-6


def test_check_gradient_on_a_non_loss_function():
    x = RNG.normal(size=(5,))
    assert ce.check_gradient(lambda v: np.sum(np.sin(v)), x, grad=np.cos(x))
    assert not ce.check_gradient(lambda v: np.sum(np.sin(v)), x, grad=np.sin(x))
