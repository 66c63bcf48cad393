"""crossent.jax.linear_cross_entropy against the materialized logits, in float64.

The reference is written here from the definitions with JAX's own functions, independently of
crossent: the logits ``softcap(h W^T + b) / T``, ``jax.nn.log_softmax``, the smoothed target
distribution of each convention, the z-loss, the per-token weights and the documented
denominator (and ``optax.softmax_cross_entropy_with_integer_labels`` for the plain case).
Gradients of hidden, weight, bias and the per-token weights come from autodiff through it.
Several chunks with a padded last one; jit, grad, value_and_grad, vmap; float32, bfloat16;
bit-identical repeats; the outputs; XLA's compiled memory analysis (no N x V temporary);
the error messages. (Named test_jax_linear.py: tests/crossent_torch/test_linear.py exists and
these folders are not packages.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy
jax.config.update("jax_enable_x64", True)

from crossent.jax import linear_cross_entropy  # noqa: E402

B, T, D, V = 2, 7, 8, 37
IGNORE = -100


def make_inputs(seed=0, dtype=jnp.float64, ignore=True):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(B, T, D))
    w = rng.normal(size=(V, D)) / 2
    b = rng.normal(size=V)
    y = rng.integers(0, V, size=(B, T))
    if ignore:
        y[0, 2] = y[1, 5] = IGNORE
    cw = rng.uniform(0.2, 2.0, size=V)
    s = rng.normal(size=(B, T))  # negative per-token weights too (RL advantages)
    as_ = partial_asarray(dtype)
    return as_(h), as_(w), as_(b), jnp.asarray(y), as_(cw), as_(s)


def partial_asarray(dtype):
    return lambda x: jnp.asarray(x, dtype=dtype)


def reference(h, w, y, *, bias=None, class_weight=None, label_smoothing=0.0,
              smoothing_convention="uniform", z_loss=0.0, softcap=None, temperature=1.0,
              sample_weight=None, normalizer=None, reduction="mean", shift=False):  # fmt: skip
    """(loss, per-row dict) of the materialized logits, from the definitions."""
    z = h @ w.T
    if bias is not None:
        z = z + bias
    if softcap is not None:
        z = softcap * jnp.tanh(z / softcap)
    z = z / temperature
    s = sample_weight
    if shift:
        z, y = z[..., :-1, :], y[..., 1:]
        s = None if s is None else s[..., 1:]
    batch = y.shape
    z, y = z.reshape(-1, V), y.reshape(-1)
    s = None if s is None else s.reshape(-1)
    valid = y != IGNORE
    t = jnp.where(valid, y, 0)
    lp = jax.nn.log_softmax(z, axis=-1)
    onehot = jax.nn.one_hot(t, V, dtype=z.dtype)
    e = label_smoothing
    if smoothing_convention == "uniform":
        q = (1 - e) * onehot + e / V
    else:
        q = (1 - e) * onehot + e / (V - 1) * (1 - onehot)
    cw = jnp.ones(V, z.dtype) if class_weight is None else class_weight
    lse = jax.nn.logsumexp(z, axis=-1)
    w_t = cw[t] * valid
    rows = -jnp.sum(cw * q * lp, axis=-1) + z_loss * w_t * lse**2
    rows = jnp.where(valid, rows, 0.0)
    weighted = rows if s is None else s * rows
    if reduction == "none":
        loss = weighted.reshape(batch)
    elif reduction == "sum":
        loss = jnp.sum(weighted)
    else:
        den = jnp.sum(w_t) if normalizer is None else normalizer
        loss = jnp.where(den > 0, jnp.sum(weighted) / jnp.where(den > 0, den, 1.0), 0.0)
    p = jnp.exp(lp)
    per_row = {
        "lse": lse,
        "logprob": jnp.where(valid, jnp.take_along_axis(lp, t[:, None], 1)[:, 0], 0.0),
        "entropy": -jnp.sum(p * lp, axis=-1),
        "prediction": jnp.argmax(z, axis=-1),
        "confidence": jnp.max(p, axis=-1),
        "valid": valid,
        "y": y,
    }
    return loss, {k: v.reshape(batch) for k, v in per_row.items()}


CASES = [
    {},
    {"bias": True},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.1},
    {"label_smoothing": 0.2, "smoothing_convention": "others", "bias": True},
    {"class_weight": True},
    {"class_weight": True, "label_smoothing": 0.15, "reduction": "sum"},
    {"z_loss": 1e-2},
    {"z_loss": 1e-2, "class_weight": True, "reduction": "none"},
    {"softcap": 2.0, "bias": True},
    {"softcap": 1.5, "label_smoothing": 0.1, "z_loss": 1e-3},
    {"temperature": 0.7},
    {"temperature": 1.8, "softcap": 3.0, "label_smoothing": 0.1, "class_weight": True},
    {"sample_weight": True},
    {"sample_weight": True, "normalizer": 5.0, "class_weight": True},
    {"sample_weight": True, "reduction": "none", "shift": True},
    {"shift": True},
    {"shift": True, "sample_weight": True, "label_smoothing": 0.1, "bias": True},
    {"normalizer": 0.0},
]


def _options(case, b, cw, s):
    opts = dict(case)
    opts["bias"] = b if case.get("bias") else None
    opts["class_weight"] = cw if case.get("class_weight") else None
    opts["sample_weight"] = s if case.get("sample_weight") else None
    return opts


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_loss_and_gradients_match_the_reference(case):
    h, w, b, y, cw, s = make_inputs()
    opts = _options(case, b, cw, s)
    sw = opts.pop("sample_weight")

    def fused(h, w, b, sw):
        o = dict(opts, bias=b if opts["bias"] is not None else None)
        total = linear_cross_entropy(h, w, y, sample_weight=sw, chunk_size=4, **o)
        return jnp.sum(total * jnp.arange(1, total.size + 1).reshape(total.shape))

    def ref(h, w, b, sw):
        o = dict(opts, bias=b if opts["bias"] is not None else None)
        total = reference(h, w, y, sample_weight=sw, **o)[0]
        return jnp.sum(total * jnp.arange(1, total.size + 1).reshape(total.shape))

    argnums = (0, 1, 2) if sw is None else (0, 1, 2, 3)
    got, g_got = jax.jit(jax.value_and_grad(fused, argnums=argnums))(h, w, b, sw)
    want, g_want = jax.jit(jax.value_and_grad(ref, argnums=argnums))(h, w, b, sw)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    names = ("hidden", "weight", "bias", "sample_weight")[: len(g_got)]
    for name, a, e in zip(names, g_got, g_want, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12, err_msg=name)
    if not case.get("bias"):
        assert not np.any(np.asarray(g_got[2]))  # the unused bias argument


def test_plain_loss_equals_optax():
    optax = pytest.importorskip("optax")
    h, w, _, y, _, _ = make_inputs(ignore=False)
    got = linear_cross_entropy(h, w, y, chunk_size=5)
    z = (h @ w.T).reshape(-1, V)
    want = optax.softmax_cross_entropy_with_integer_labels(z, y.reshape(-1)).mean()
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_jit_value_and_grad_and_default_chunk():
    h, w, b, y, cw, _ = make_inputs(1)
    opts = {"label_smoothing": 0.1, "z_loss": 1e-3, "class_weight": cw}

    def f(h, w, b):
        return linear_cross_entropy(h, w, y, bias=b, **opts)

    def r(h, w, b):
        return reference(h, w, y, bias=b, **opts)[0]

    got = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(h, w, b)
    want = jax.value_and_grad(r, argnums=(0, 1, 2))(h, w, b)
    for a, e in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


def test_vmap_over_a_leading_batch_axis():
    h, w, b, y, _, _ = make_inputs(2)

    def f(h, w, y):
        return linear_cross_entropy(h, w, y, bias=b, chunk_size=3, z_loss=1e-2)

    grad = jax.grad(f, argnums=(0, 1))
    got_loss = jax.jit(jax.vmap(f, in_axes=(0, None, 0)))(h, w, y)
    got_gh, got_gw = jax.jit(jax.vmap(grad, in_axes=(0, None, 0)))(h, w, y)
    ref = jax.jit(
        jax.value_and_grad(lambda h, w, y: reference(h, w, y, bias=b, z_loss=1e-2)[0], (0, 1))
    )
    for i in range(B):
        want = ref(h[i], w, y[i])
        np.testing.assert_allclose(got_loss[i], want[0], rtol=1e-12)
        np.testing.assert_allclose(got_gh[i], want[1][0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_gw[i], want[1][1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_low_precision_accumulates_in_float32(dtype):
    h, w, b, y, _, _ = make_inputs(3, dtype=jnp.dtype(dtype))
    opts = {"label_smoothing": 0.1, "softcap": 4.0}
    fused = jax.jit(
        jax.value_and_grad(
            lambda h, w, b: linear_cross_entropy(h, w, y, bias=b, chunk_size=4, **opts),
            argnums=(0, 1, 2),
        )
    )
    loss, grads = fused(h, w, b)
    assert loss.dtype == jnp.dtype(dtype)
    assert [g.dtype for g in grads] == [jnp.dtype(dtype)] * 3
    # the reference on the same (rounded) inputs in float64
    h64, w64, b64 = (x.astype(jnp.float64) for x in (h, w, b))
    want, g_want = jax.value_and_grad(
        lambda h, w, b: reference(h, w, y, bias=b, **opts)[0], argnums=(0, 1, 2)
    )(h64, w64, b64)
    # float32: its own rounding; bfloat16: the rounding of the results to 8 bits only
    rtol = 1e-5 if dtype == "float32" else 1e-2
    np.testing.assert_allclose(np.float64(loss), want, rtol=rtol)
    for a, e in zip(grads, g_want, strict=True):
        scale = float(jnp.max(jnp.abs(e)))
        np.testing.assert_allclose(np.asarray(a, np.float64), e, atol=rtol * scale)


def test_bit_identical_repeats():
    h, w, _, y, cw, _ = make_inputs(4, dtype=jnp.float32)
    f = jax.jit(
        jax.value_and_grad(
            lambda h, w: linear_cross_entropy(h, w, y, class_weight=cw, chunk_size=4),
            argnums=(0, 1),
        )
    )
    first = jax.tree_util.tree_leaves(f(h, w))
    for _ in range(3):
        again = jax.tree_util.tree_leaves(f(h, w))
        assert all(np.array_equal(a, e) for a, e in zip(first, again, strict=True))


@pytest.mark.parametrize("shift", [False, True])
def test_outputs_match_the_reference(shift):
    h, w, b, y, _, _ = make_inputs(5)
    names = ("logprob", "entropy", "prediction", "correct", "accuracy", "confidence", "lse",
             "z_loss")  # fmt: skip
    opts = {"bias": b, "z_loss": 1e-2, "temperature": 1.3, "shift": shift}
    out = jax.jit(lambda h: linear_cross_entropy(h, w, y, chunk_size=4, outputs=names, **opts))(h)
    loss, rows = reference(h, w, y, **opts)
    np.testing.assert_allclose(out.loss, loss, rtol=1e-12)
    for name in ("logprob", "entropy", "confidence", "lse"):
        np.testing.assert_allclose(getattr(out, name), rows[name], rtol=1e-10, err_msg=name)
    np.testing.assert_array_equal(out.prediction, rows["prediction"])
    correct = (rows["prediction"] == rows["y"]) & rows["valid"]
    np.testing.assert_array_equal(out.correct, correct)
    np.testing.assert_allclose(out.accuracy, correct.sum() / rows["valid"].sum())
    z_want = 1e-2 * jnp.sum(jnp.where(rows["valid"], rows["lse"] ** 2, 0)) / rows["valid"].sum()
    np.testing.assert_allclose(out.z_loss, z_want, rtol=1e-12)


def test_logprob_and_entropy_gradients():
    """An objective on the outputs (a GRPO-like log-probability term and an entropy bonus)."""
    h, w, b, y, _, _ = make_inputs(6)
    a = jnp.linspace(-1.0, 2.0, B * T).reshape(B, T)

    def fused(h, w, b):
        out = linear_cross_entropy(h, w, y, bias=b, chunk_size=4, reduction="sum",
                                   outputs=("logprob", "entropy"), entropy_grad=True)  # fmt: skip
        return out.loss + jnp.sum(a * out.logprob) - 0.3 * jnp.sum(out.entropy * a[::-1])

    def ref(h, w, b):
        loss, rows = reference(h, w, y, bias=b, reduction="sum")
        return loss + jnp.sum(a * rows["logprob"]) - 0.3 * jnp.sum(rows["entropy"] * a[::-1])

    got = jax.value_and_grad(fused, argnums=(0, 1, 2))(h, w, b)
    want = jax.value_and_grad(ref, argnums=(0, 1, 2))(h, w, b)
    for x, e in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(x, e, rtol=1e-10, atol=1e-12)
    # without entropy_grad the entropy is a constant
    g = jax.grad(lambda h: jnp.sum(linear_cross_entropy(h, w, y, outputs=("entropy",)).entropy))(h)
    assert not np.any(np.asarray(g))


def test_return_lse_and_all_ignored():
    h, w, _, y, _, _ = make_inputs(7)
    loss, lse = linear_cross_entropy(h, w, y, return_lse=True, chunk_size=4)
    want, rows = reference(h, w, y)
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    np.testing.assert_allclose(lse, rows["lse"], rtol=1e-12)
    ignored = jnp.full_like(y, IGNORE)
    value, grads = jax.value_and_grad(
        lambda h, w: linear_cross_entropy(h, w, ignored), argnums=(0, 1)
    )(h, w)
    assert float(value) == 0.0
    assert all(not np.any(np.asarray(g)) for g in grads)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_temporary_memory_is_one_chunk_not_n_by_v():
    """XLA's compiled memory analysis of the jitted loss and gradients: the temporaries grow
    with the chunk, not with N x V (the materialized reference needs several N x V buffers)."""
    n, d, chunk = 2048, 32, 64
    k = jax.random.split(jax.random.key(0), 3)
    h = jax.random.normal(k[0], (n, d), jnp.float32)
    y = jax.random.randint(k[2], (n,), 0, 1000)

    def temp_bytes(fn, vocab):
        w = jax.random.normal(k[1], (vocab, d), jnp.float32)
        grad = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))
        return grad.lower(h, w).compile().memory_analysis().temp_size_in_bytes

    def fused(h, w):
        return linear_cross_entropy(h, w, y, chunk_size=chunk, label_smoothing=0.1)

    def materialized(h, w):
        z = h @ w.T
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1))

    for vocab in (4096, 16384):
        nv = n * vocab * 4
        fused_bytes = temp_bytes(fused, vocab)
        # the check can fail: the materialized loss's temporaries are N x V
        assert temp_bytes(materialized, vocab) >= nv
        # a few chunk buffers, the gradients of the weight and of hidden (and their copies)
        budget = 4 * chunk * vocab * 4 + 2 * vocab * d * 4 + 4 * n * d * 4
        assert fused_bytes <= budget < nv / 2, (vocab, fused_bytes, budget)


def test_import_crossent_imports_no_jax():
    code = "import sys, crossent; assert 'jax' not in sys.modules, 'jax imported'"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hidden": np.zeros((3, 5))}, ValueError, "features per class"),
        ({"weight": jnp.zeros((V, D), jnp.float32)}, TypeError, "same dtype"),
        ({"targets": jnp.full((B, T), V)}, ValueError, r"targets must be in \[0, 37\)"),
        ({"targets": jnp.zeros((B, T), jnp.float64)}, TypeError, "integer array"),
        ({"reduction": "avg"}, ValueError, "reduction"),
        ({"normalizer": 3.0, "reduction": "sum"}, ValueError, "normalizer"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"outputs": ("logits",)}, ValueError, "'logits'"),
        ({"sample_weight": jnp.full((B, T), jnp.nan)}, ValueError, "sample_weight must be finite"),
        ({"class_weight": -jnp.ones(V)}, ValueError, "class_weight must be finite and >= 0"),
        ({"bias": jnp.zeros(V + 1)}, ValueError, r"bias must have shape \(37,\)"),
        ({"temperature": 0.0}, ValueError, "temperature"),
    ],
)
def test_errors_name_the_value(kwargs, error, match):
    h, w, _, y, _, _ = make_inputs()
    args = {"hidden": h, "weight": w, "targets": y}
    for key in ("hidden", "weight", "targets"):
        if key in kwargs:
            args[key] = jnp.asarray(kwargs.pop(key))
    with pytest.raises(error, match=match):
        linear_cross_entropy(args["hidden"], args["weight"], args["targets"], **kwargs)


SHARDED = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
jax.config.update("jax_enable_x64", True)
from crossent.jax import linear_cross_entropy
assert jax.device_count() == 2, jax.devices()
mesh = jax.make_mesh((2,), ("v",))
rng = np.random.default_rng(0)
N, D, V = 14, 8, 38
h = jnp.asarray(rng.normal(size=(N, D)))
w = jnp.asarray(rng.normal(size=(V, D)))
b = jnp.asarray(rng.normal(size=V))
cw = jnp.asarray(rng.uniform(0.2, 2.0, V))
y = jnp.asarray(rng.integers(0, V, N)).at[3].set(-100)
names = ("logprob", "entropy", "prediction", "accuracy", "lse", "z_loss", "confidence")
CASES = [
    ({}, None),  # the reduced loss: gradients in the forward sweep
    ({"label_smoothing": 0.1, "z_loss": 1e-2, "class_weight": True, "bias": True}, None),
    ({"softcap": 2.0, "temperature": 1.3, "reduction": "none", "bias": True}, names),
    ({"label_smoothing": 0.2, "class_weight": True}, names),
]
put = lambda x, spec: jax.device_put(x, NamedSharding(mesh, spec))
worst = {}
for i, (case, outputs) in enumerate(CASES):
    opts = {k: v for k, v in case.items() if k not in ("bias", "class_weight")}

    def f(h, w, b, cw, axis=None):
        out = linear_cross_entropy(
            h, w, y, bias=b if case.get("bias") else None,
            class_weight=cw if case.get("class_weight") else None, chunk_size=4,
            vocab_axis=axis, outputs=outputs, **opts)
        loss = out if outputs is None else out.loss
        scalar = jnp.sum(loss * (1 + jnp.arange(loss.size).reshape(loss.shape)))
        if outputs is not None:
            scalar = scalar + jnp.sum(out.logprob)
        return scalar, out

    sharded = jax.shard_map(lambda *a: f(*a, axis="v"), mesh=mesh,
                            in_specs=(P(), P("v"), P("v"), P("v")), out_specs=(P(), P()))
    grad = jax.value_and_grad(sharded, argnums=(0, 1, 2), has_aux=True)
    (v1, o1), g1 = jax.jit(grad)(put(h, P()), put(w, P("v")), put(b, P("v")), put(cw, P("v")))
    (v2, o2), g2 = jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(h, w, b, cw)
    diffs = [abs(float(v1 - v2))] + [float(jnp.max(jnp.abs(a - c))) for a, c in zip(g1, g2)]
    for leaf1, leaf2 in zip(jax.tree_util.tree_leaves(o1), jax.tree_util.tree_leaves(o2)):
        diffs.append(float(jnp.max(jnp.abs(jnp.asarray(leaf1, float) - leaf2))))
    worst[i] = max(diffs)
print(json.dumps(worst))
"""


def test_sharded_over_the_vocabulary_equals_unsharded():
    """Under shard_map with weight, bias and class weights sharded by classes over 2 (CPU)
    devices: loss, gradients and outputs equal the unsharded op's (itself checked above)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    worst = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(worst) == 4
    assert all(d < 1e-12 for d in worst.values()), worst


def test_overflowing_logits_are_refused_outside_jit():
    """Finite inputs whose logits overflow float32 gave a NaN row: refused naming the row where
    the values can be read (eager); under jit they cannot, and the row stays NaN."""
    rng = np.random.default_rng(4)
    h = rng.normal(size=(6, 8)).astype(np.float32)
    w = (rng.normal(size=(11, 8)) * 1e3).astype(np.float32)
    h[3] *= 1e36  # finite, but its logits (~1e39) are not
    with pytest.raises(ValueError, match=r"logits of row 3 overflow float32"):
        linear_cross_entropy(jnp.asarray(h), jnp.asarray(w), jnp.arange(6), reduction="none")


@pytest.mark.parametrize("k", [2, 3])
def test_an_integer_shift_equals_slicing(k):
    """shift=k scores position t against target t + k: the loss, the per-position losses and
    the hidden gradient equal the call on hidden[..., :-k, :] and targets[..., k:]."""
    rng = np.random.default_rng(k)
    h = jnp.asarray(rng.normal(size=(2, 7, 8)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(11, 8)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 11, (2, 7)))
    rows = linear_cross_entropy(h, w, y, shift=k, reduction="none")
    sliced = linear_cross_entropy(h[:, :-k], w, y[:, k:], reduction="none")
    np.testing.assert_allclose(np.asarray(rows), np.asarray(sliced), rtol=1e-6)
    gh = jax.grad(lambda h: linear_cross_entropy(h, w, y, shift=k))(h)
    gs = jax.grad(lambda h: linear_cross_entropy(h[:, :-k], w, y[:, k:]))(h)
    np.testing.assert_allclose(np.asarray(gh), np.asarray(gs), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"shift must be a bool or an integer >= 0, got 2\.0"):
        linear_cross_entropy(h, w, y, shift=2.0)
