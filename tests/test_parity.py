"""The executable specification: every option x every special row, through every path.

One float64 reference written from the definitions (torch autograd of the plain formula, with
the documented limits substituted as data) against: the core loss and ``grad`` on NumPy (the
generic code and the blocked fast path), the torch autograd Function (one kernel and the CPU
row blocks), JAX, and the fused linear cross-entropy with an identity head. Rows:

0, 7  ordinary logits               4  two +inf, one of them the target: log 2
1     target ignored                5  all -inf: uniform, log K
2     target ignored, NaN logits    6  the target's logit is -inf: +inf
3     +inf on a rival class: +inf   8  logits of +-1e4 (the fused op's 2**64 retry)
9     target of weight 0 with logit -inf (0 * inf = 0 with class weights)

The fused op takes logits from a matrix product, which cannot hold inf or NaN: it runs on the
finite rows only. A path's gradient is compared on the rows whose reference loss is finite.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import crossent as ce
from crossent import _fast

torch = pytest.importorskip("torch")

K = 5
WEIGHT = np.array([0.5, 2.0, 0.0, 1.0, 3.0])
INF = math.inf


def special_rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(10, K)) * 2
    t = np.array([0, -100, -100, 1, 3, 2, 4, 1, 3, 2])
    z[2] = np.nan
    z[3, 0] = INF
    z[4, [1, 3]] = INF
    z[5] = -INF
    z[6, 4] = -INF
    z[8] = np.array([1e4, -1e4, 0.5e4, 0.0, -0.3e4])
    z[9, 2] = -INF
    return z, t


FINITE_ROWS = [0, 1, 7, 8]  # what a matrix product can produce (the fused op's rows)

OPTIONS = [
    dict(class_weight=w, label_smoothing=e, smoothing_convention=c, z_loss=zl, softcap=cap)
    for w, (e, c), zl, cap in itertools.product(
        [None, WEIGHT],
        [(0.0, "uniform"), (0.1, "uniform"), (0.1, "others")],
        [0.0, 1e-3],
        [None, 30.0],
    )
]


def _id(options: dict) -> str:
    parts = ["w" if options["class_weight"] is not None else "-"]
    if options["label_smoothing"]:
        parts.append(options["smoothing_convention"][0] + "s")
    if options["z_loss"]:
        parts.append("z")
    if options["softcap"]:
        parts.append("cap")
    return "".join(parts)


def reference(z: np.ndarray, t: np.ndarray, reduction: str, opts: dict):
    """(per-row losses, d total / d z, finite-loss mask) in float64, from the definitions."""
    w = torch.ones(K, dtype=torch.float64)
    if opts["class_weight"] is not None:
        w = torch.tensor(opts["class_weight"])
    e, cap, zeta = opts["label_smoothing"], opts["softcap"], opts["z_loss"]
    valid = torch.tensor(t != -100)
    index = torch.tensor(np.where(t != -100, t, 0))
    onehot = torch.nn.functional.one_hot(index, K).double()
    # the smoothed target: e/K on every class, or exactly 1 - e on the target and e/(K-1) else
    if opts["smoothing_convention"] == "uniform":
        q = (1 - e) * onehot + e / K
    else:
        q = (1 - e) * onehot + e / (K - 1) * (1 - onehot)
    raw = torch.tensor(np.where(valid.numpy()[:, None], z, 0.0))  # ignored rows: masked anyway
    th = torch.tanh(raw / cap) if cap else None
    capped = cap * th if cap else raw
    lse_raw = torch.logsumexp(capped, 1)
    # the documented limit: a row with an infinite max is 0 on its maxima, -inf elsewhere
    m = capped.amax(1, keepdim=True)
    limit = torch.where(capped == m, 0.0, -INF)
    u = torch.where(torch.isinf(m), limit, capped).detach().requires_grad_()
    log_p = torch.log_softmax(u, 1)

    def times(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # 0 * inf = 0
        return torch.where(a == 0, 0.0, a * b)

    # PyTorch's weighted loss: sum_c w_c q_c (-log p_c), and the mean divides by sum_i w[y_i]
    w_t = torch.where(valid, w[index], 0.0)
    loss = times(w * q, -log_p).sum(1) + times(zeta * w_t, lse_raw**2)
    lse_lim = torch.logsumexp(u, 1)  # the z-loss's gradient is that of the limit row
    loss = loss + zeta * w_t * (lse_lim**2 - lse_lim.detach() ** 2)
    loss = torch.where(valid, loss, 0.0)
    finite = torch.isfinite(loss)
    count = w_t.sum()
    scale = (1 / count if count > 0 else 0.0) if reduction == "mean" else 1.0
    torch.where(finite, loss, 0.0).sum().mul(scale).backward()
    grad = u.grad * (1 - th * th) if cap else u.grad
    grad = torch.where(valid[:, None], grad, 0.0)
    return loss.detach().numpy(), grad.numpy(), finite.numpy()


def _total(per_row: np.ndarray, t: np.ndarray, reduction: str, opts: dict) -> float:
    if reduction == "sum":
        return float(per_row.sum())
    w = np.ones(K) if opts["class_weight"] is None else opts["class_weight"]
    count = float(np.where(t != -100, w[np.where(t != -100, t, 0)], 0).sum())
    return float(per_row.sum() / count) if count > 0 else 0.0


def check(loss, grad, z, t, reduction, opts, rows=None):
    """Compare a path's (loss, gradient) with the reference on ``rows`` (all by default)."""
    rows = list(range(len(t))) if rows is None else rows
    z, t = z[rows], t[rows]
    want_rows, want_grad, finite = reference(z, t, reduction, opts)
    loss = np.asarray(loss, dtype=np.float64)
    if reduction == "none":
        np.testing.assert_allclose(loss, want_rows, rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(loss, _total(want_rows, t, reduction, opts), rtol=1e-10)
    if grad is not None:
        grad = np.asarray(grad, dtype=np.float64)
        np.testing.assert_allclose(grad[finite], want_grad[finite], rtol=1e-9, atol=1e-12)


REDUCTIONS = ["mean", "sum", "none"]
GRID = pytest.mark.parametrize("opts", OPTIONS, ids=[_id(o) for o in OPTIONS])


@GRID
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kernels", ["generic", "blocked"])
def test_core_numpy(opts, reduction, kernels, monkeypatch):
    if kernels == "blocked":
        monkeypatch.setattr(_fast, "MIN_ELEMENTS", 0)
        monkeypatch.setattr(_fast, "BLOCK_ELEMENTS", 2 * K)  # ragged blocks of 2 rows
    z, t = special_rows()
    loss = ce.softmax_cross_entropy(z, t, reduction=reduction, **opts)
    with_loss, grad = ce.grad.softmax_cross_entropy(
        z, t, reduction=reduction, with_loss=True, **opts
    )
    check(loss, grad, z, t, reduction, opts)
    check(with_loss, None, z, t, reduction, opts)


@GRID
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kernels", ["one-kernel", "blocked"])
def test_torch_function(opts, reduction, kernels, monkeypatch):
    from crossent.torch import _functions

    if kernels == "blocked":
        monkeypatch.setattr(_functions, "CPU_BLOCK", 2 * K)
    z, t = special_rows()
    x = torch.tensor(z, requires_grad=True)
    options = dict(opts)
    if options["class_weight"] is not None:
        options["class_weight"] = torch.tensor(options["class_weight"])
    loss = ce.softmax_cross_entropy(x, torch.tensor(t), reduction=reduction, **options)
    fn = loss.grad_fn  # the closed-form Function (under a view for "none")
    fn = fn.next_functions[0][0] if reduction == "none" else fn
    assert type(fn).__name__ == "_IndexCEBackward"
    # the closed-form backward does not read the loss's value: an infinite total is fine
    loss.backward(torch.ones_like(loss))
    check(loss.detach(), x.grad, z, t, reduction, opts)


@GRID
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_jax(opts, reduction):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    z, t = special_rows()
    options = dict(opts)
    if options["class_weight"] is not None:
        options["class_weight"] = jnp.asarray(options["class_weight"])

    @jax.jit
    def total(x):
        loss = ce.softmax_cross_entropy(x, jnp.asarray(t), reduction=reduction, **options)
        return jnp.sum(loss), loss  # the closed-form gradient does not read an infinite value

    grad, loss = jax.grad(total, has_aux=True)(jnp.asarray(z))
    check(loss, grad, z, t, reduction, opts)


@GRID
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("precompute", [True, False])
def test_fused_identity_head(opts, reduction, precompute, monkeypatch):
    from crossent.torch import _linear, linear_cross_entropy

    monkeypatch.setattr(_linear, "PRECOMPUTE", precompute)
    z, t = special_rows()
    z, t = z[FINITE_ROWS], t[FINITE_ROWS]
    hidden = torch.tensor(z, requires_grad=True)
    head = torch.eye(K, dtype=torch.float64, requires_grad=True)  # logits = hidden @ I
    options = dict(opts)
    cw = options.pop("class_weight")
    loss = linear_cross_entropy(
        hidden,
        head,
        torch.tensor(t),
        class_weight=None if cw is None else torch.tensor(cw),
        reduction=reduction,
        chunk_size=3,
        **options,
    )
    loss.sum().backward()
    check(loss.detach(), hidden.grad, z, t, reduction, opts)
    # the head's gradient is hidden^T (d loss / d logits): both agree with the reference
    want = hidden.grad.numpy().T @ z
    np.testing.assert_allclose(head.grad.numpy(), want, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- softmax focal loss

FOCAL = [
    dict(alpha=alpha, gamma=gamma)
    for alpha, gamma in itertools.product([None, 0.25, WEIGHT], [0.0, 0.5, 2.0])
]
FOCAL_ROWS = [0, 1, 2, 6, 7, 8]  # ordinary, ignored, NaN ignored, target at -inf, +-1e4


def focal_reference(z: np.ndarray, t: np.ndarray, reduction: str, opts: dict):
    """(per-row losses, d total / d z, finite mask): -alpha_t (1 - p_t)^gamma log p_t."""
    valid = torch.tensor(t != -100)
    index = torch.tensor(np.where(t != -100, t, 0))
    u = torch.tensor(np.where(valid.numpy()[:, None], z, 0.0)).requires_grad_()
    log_p_t = torch.log_softmax(u, 1).gather(1, index[:, None])[:, 0]
    alpha = opts["alpha"]
    if alpha is None:
        alpha_t = torch.ones_like(log_p_t)
    elif isinstance(alpha, float):
        alpha_t = torch.full_like(log_p_t, alpha)
    else:
        alpha_t = torch.tensor(alpha)[index]
    # (1 - p_t)^gamma as exp(gamma log(-expm1(log p_t))): the plain formula, in float64
    modulation = (-torch.expm1(log_p_t)) ** opts["gamma"]
    loss = torch.where(valid, -alpha_t * modulation * log_p_t, 0.0)
    finite = torch.isfinite(loss)
    count = int(valid.sum())
    scale = (1 / count if count > 0 else 0.0) if reduction == "mean" else 1.0
    torch.where(finite, loss, 0.0).sum().mul(scale).backward()
    return loss.detach().numpy(), torch.where(valid[:, None], u.grad, 0.0).numpy(), finite.numpy()


def focal_check(loss, grad, z, t, reduction, opts):
    want_rows, want_grad, finite = focal_reference(z, t, reduction, opts)
    loss = np.asarray(loss, dtype=np.float64)
    if reduction == "none":
        np.testing.assert_allclose(loss, want_rows, rtol=1e-10, atol=1e-300)
    else:
        total = want_rows.sum() / max((t != -100).sum(), 1) if reduction == "mean" else None
        np.testing.assert_allclose(loss, want_rows.sum() if total is None else total, rtol=1e-10)
    grad = np.asarray(grad, dtype=np.float64)
    assert np.isfinite(grad).all()  # finite everywhere, even where the loss is +inf
    np.testing.assert_allclose(grad[finite], want_grad[finite], rtol=1e-8, atol=1e-12)


FOCAL_GRID = pytest.mark.parametrize(
    "opts", FOCAL, ids=[f"{'a' if o['alpha'] is not None else '-'}{o['gamma']}" for o in FOCAL]
)


@FOCAL_GRID
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kernels", ["generic", "blocked"])
def test_focal_core_numpy(opts, reduction, kernels, monkeypatch):
    if kernels == "blocked":
        monkeypatch.setattr(_fast, "MIN_ELEMENTS", 0)
        monkeypatch.setattr(_fast, "BLOCK_ELEMENTS", 2 * K)
    z, t = special_rows()
    z, t = z[FOCAL_ROWS], t[FOCAL_ROWS]
    loss = ce.softmax_focal_loss(z, t, reduction=reduction, **opts)
    focal_check(
        loss, ce.grad.softmax_focal_loss(z, t, reduction=reduction, **opts), z, t, reduction, opts
    )


@FOCAL_GRID
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kernels", ["one-kernel", "blocked"])
@pytest.mark.parametrize("rows", [FOCAL_ROWS, FINITE_ROWS], ids=["special", "finite"])
def test_focal_torch_function(opts, reduction, kernels, rows, monkeypatch):
    # finite rows take the one-pass blocked margin on CPU; a NaN or inf row, the masked path
    from crossent.torch import _functions

    if kernels == "blocked":
        monkeypatch.setattr(_functions, "CPU_BLOCK", 2 * K)
    z, t = special_rows()
    z, t = z[rows], t[rows]
    x = torch.tensor(z, requires_grad=True)
    options = dict(opts)
    if isinstance(options["alpha"], np.ndarray):
        options["alpha"] = torch.tensor(options["alpha"])
    loss = ce.softmax_focal_loss(x, torch.tensor(t), reduction=reduction, **options)
    loss.backward(torch.ones_like(loss))
    focal_check(loss.detach(), x.grad, z, t, reduction, opts)


@FOCAL_GRID
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("rows", [FOCAL_ROWS, FINITE_ROWS], ids=["special", "finite"])
def test_focal_jax(opts, reduction, rows):
    # finite rows take the custom_vjp's plain margin; a NaN or inf row, the core's guarded rule
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    z, t = special_rows()
    z, t = z[rows], t[rows]
    options = dict(opts)
    if isinstance(options["alpha"], np.ndarray):
        options["alpha"] = jnp.asarray(options["alpha"])

    @jax.jit
    def total(x):
        loss = ce.softmax_focal_loss(x, jnp.asarray(t), reduction=reduction, **options)
        return jnp.sum(loss), loss

    grad, loss = jax.grad(total, has_aux=True)(jnp.asarray(z))
    focal_check(loss, grad, z, t, reduction, opts)
