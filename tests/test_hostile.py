"""Hostile inputs: extreme and non-finite values, empty and fully ignored batches, and misuse
that must fail loudly with the offending value in the message (no silent NaN)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import crossent as ce
from conftest import to_np

inf, nan = math.inf, math.nan
RNG = np.random.default_rng(5)
LOGITS = np.array([[2.0, 1.0, 0.1], [0.5, -1.0, 3.0]])
TARGETS = np.array([0, 2])


def has_float16(xp):
    return hasattr(xp, "float16")


# ------------------------------------------------------------------------------ extremes


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_float16_logits_of_1e4(xp, reduction):
    if not has_float16(xp):
        pytest.skip(f"{xp.__name__} has no float16")
    z = xp.asarray(
        np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]]), dtype=xp.float16
    )
    t = xp.asarray(np.array([0, 1, 2]))
    out = ce.softmax_cross_entropy(z, t, reduction=reduction)
    assert out.dtype == xp.float16
    want = np.array([0.0, 2e4, 0.0])
    np.testing.assert_allclose(to_np(out), want if reduction == "none" else want.mean(), rtol=1e-3)
    g = to_np(ce.grad.softmax_cross_entropy(z, t, reduction="sum"))
    np.testing.assert_allclose(g, [[0, 0, 0], [1, -1, 0], [0, 0, 0]], atol=1e-3)
    bce = to_np(
        ce.sigmoid_binary_cross_entropy(
            z, xp.asarray(np.ones((3, 3)), dtype=xp.float16), reduction="none"
        )
    )
    np.testing.assert_allclose(bce, [[0, 1e4, math.log(2)]] * 2 + [[1e4, 1e4, 0]], rtol=1e-3)


def test_float16_long_rows_accumulate_in_float32(xp):
    # pytorch #85791: 4096 classes of logit 8 -> sum of exp overflows float16 without the shift
    if not has_float16(xp):
        pytest.skip(f"{xp.__name__} has no float16")
    z = xp.asarray(np.full((2, 4096), 8.0), dtype=xp.float16)
    out = ce.softmax_cross_entropy(z, xp.asarray(np.array([0, 5])))
    assert out.dtype == xp.float16
    np.testing.assert_allclose(float(to_np(out)), math.log(4096), rtol=1e-3)


@pytest.mark.parametrize("scale", [1e30, 3e38])
def test_float32_logits_near_the_top_of_the_range(xp, scale):
    z = xp.asarray(
        np.array([[scale, -scale, 0.0], [scale, -scale, 0.0], [0.0, scale, 0.0]]), dtype=xp.float32
    )
    t = xp.asarray(np.array([0, 2, 0]))
    out = to_np(ce.softmax_cross_entropy(z, t, reduction="none"))
    np.testing.assert_allclose(out, [0.0, scale, scale], rtol=1e-6)
    assert np.isfinite(out).all()
    g = to_np(ce.grad.softmax_cross_entropy(z, t, reduction="sum"))
    np.testing.assert_allclose(g, [[0, 0, 0], [1, 0, -1], [-1, 1, 0]], atol=1e-6)


def test_float32_infinite_logits(xp):
    z = xp.asarray(
        np.array([[inf, 0.0, 1.0], [inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf, 0.0, 1.0]]),
        dtype=xp.float32,
    )
    t = xp.asarray(np.array([0, 1, 2, 0]))
    out = to_np(ce.softmax_cross_entropy(z, t, reduction="none"))
    np.testing.assert_allclose(out, [0.0, inf, np.logaddexp(0, 1) - 1, inf], rtol=1e-6)
    assert not np.isnan(out).any()
    g = to_np(ce.grad.softmax_cross_entropy(z[:1, ...], t[:1]))
    np.testing.assert_array_equal(g, [[0, 0, 0]])
    f = to_np(ce.softmax_focal_loss(z, t, reduction="none", gamma=0.5))
    assert not np.isnan(f).any()
    np.testing.assert_array_equal(np.isinf(f), [False, True, False, True])
    s = to_np(
        ce.sigmoid_focal_loss(
            xp.asarray(np.array([inf, -inf, inf]), dtype=xp.float32),
            xp.asarray(np.array([1.0, 0.0, 0.0]), dtype=xp.float32),
            reduction="none",
        )
    )
    np.testing.assert_array_equal(s[:2], [0.0, 0.0])
    assert s[2] == inf


def test_all_minus_inf_except_target(xp):
    z = xp.asarray(np.array([[-inf, 3.0, -inf]]))
    out = ce.softmax_cross_entropy(z, xp.asarray(np.array([1])))
    assert float(to_np(out)) == 0.0
    g = to_np(ce.grad.softmax_cross_entropy(z, xp.asarray(np.array([1]))))
    np.testing.assert_array_equal(g, [[0.0, 0.0, 0.0]])


@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_huge_logits_give_the_exact_margin(xp, scale):
    # float16 where the library has it (array_api_strict does not)
    dtype = getattr(xp, "float16", xp.float32) if scale == 1e4 else xp.float32
    logits = xp.asarray(np.array([[scale, -scale], [scale, -scale]]), dtype=dtype)
    losses = ce.softmax_cross_entropy(logits, xp.asarray(np.array([0, 1])), reduction="none")
    assert losses.dtype == dtype
    np.testing.assert_allclose(to_np(losses), [0.0, 2 * scale], rtol=1e-3)
    grads = to_np(ce.grad.softmax_cross_entropy(logits, xp.asarray(np.array([0, 1]))))
    np.testing.assert_allclose(grads, [[0, 0], [0.5, -0.5]], atol=1e-3)


def test_float64_infinite_logits_give_the_limit(xp):
    logits = xp.asarray(np.array([[inf, 0.0, 0.0], [inf, 0.0, 0.0], [0.0, -inf, 1.0], [-inf] * 3]))
    losses = to_np(
        ce.softmax_cross_entropy(logits, xp.asarray(np.array([0, 1, 1, 2])), reduction="none")
    )
    np.testing.assert_allclose(losses, [0.0, inf, inf, math.log(3)])
    bce = to_np(
        ce.sigmoid_binary_cross_entropy(
            xp.asarray(np.array([inf, -inf, inf, -inf])),
            xp.asarray(np.array([1.0, 0.0, 0.0, 0.5])),
            reduction="none",
        )
    )
    np.testing.assert_allclose(bce, [0.0, 0.0, inf, inf])


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32(name):
    torch = pytest.importorskip("torch")
    dtype = getattr(torch, name)
    logits = torch.tensor([[300.0, 0.0, -300.0]] * 4, dtype=dtype)
    loss = ce.softmax_cross_entropy(logits, torch.tensor([2, 2, 2, 2]))
    assert loss.dtype == dtype and loss.item() == 600.0  # float16 exp overflows at 11


# -------------------------------------------------------------------------------------- NaN


def test_nan_stays_in_its_sample(xp):
    z = RNG.normal(size=(4, 3))
    z[2, 1] = nan
    t = np.array([0, 1, 2, 0])
    per = to_np(ce.softmax_cross_entropy(xp.asarray(z), xp.asarray(t), reduction="none"))
    assert np.isnan(per[2])
    clean = to_np(
        ce.softmax_cross_entropy(
            xp.asarray(z[[0, 1, 3]]), xp.asarray(t[[0, 1, 3]]), reduction="none"
        )
    )
    np.testing.assert_allclose(per[[0, 1, 3]], clean, rtol=1e-14)
    # a NaN input makes the mean NaN (documented): it is never hidden behind a number
    assert np.isnan(to_np(ce.softmax_cross_entropy(xp.asarray(z), xp.asarray(t))))
    bce = to_np(
        ce.sigmoid_binary_cross_entropy(
            xp.asarray(np.array([0.0, nan, 1.0])),
            xp.asarray(np.array([1.0, 1.0, 0.0])),
            reduction="none",
        )
    )
    np.testing.assert_array_equal(np.isnan(bce), [False, True, False])
    # a NaN row next to a clean one, against the exact value of the clean one
    logits = xp.asarray(np.array([[nan, 0.0], [1.0, 0.0]]))
    losses = to_np(ce.softmax_cross_entropy(logits, xp.asarray(np.array([0, 0])), reduction="none"))
    assert np.isnan(losses[0]) and losses[1] == pytest.approx(math.log1p(math.exp(-1)))
    # an ignored row holding NaN contributes nothing
    kept = ce.softmax_cross_entropy(logits, xp.asarray(np.array([-100, 0])))
    assert float(to_np(kept)) == pytest.approx(math.log1p(math.exp(-1)))


# --------------------------------------------------------------------- empty and ignored


@pytest.mark.parametrize("shape", [(0, 3), (0, 2, 3), (2, 0, 3)])
def test_empty_batches(xp, shape):
    z = xp.asarray(np.zeros(shape))
    t = xp.asarray(np.zeros(shape[:-1], dtype=np.int64))
    assert float(to_np(ce.softmax_cross_entropy(z, t))) == 0.0
    assert float(to_np(ce.softmax_cross_entropy(z, t, reduction="sum"))) == 0.0
    assert tuple(ce.softmax_cross_entropy(z, t, reduction="none").shape) == shape[:-1]
    assert tuple(ce.grad.softmax_cross_entropy(z, t).shape) == shape
    assert float(to_np(ce.sigmoid_binary_cross_entropy(z, z))) == 0.0
    assert float(to_np(ce.softmax_focal_loss(z, t))) == 0.0
    assert float(to_np(ce.categorical_cross_entropy(z, t))) == 0.0
    # in the library's default float too (float32 in torch)
    assert float(to_np(ce.softmax_cross_entropy(xp.zeros(shape), t))) == 0.0


def test_all_targets_ignored(xp):
    z = xp.asarray(RNG.normal(size=(3, 4)))
    t = xp.asarray(np.full(3, -100))
    w = xp.asarray(np.array([1.0, 2.0, 0.5, 1.0]))
    for fn in (ce.softmax_cross_entropy, ce.softmax_focal_loss):
        out = (
            fn(z, t)
            if fn is ce.softmax_focal_loss
            else fn(z, t, class_weight=w, label_smoothing=0.1)
        )
        assert float(to_np(out)) == 0.0
    assert float(to_np(ce.softmax_cross_entropy(z, t))) == 0.0
    for opts in ({"class_weight": w}, {}):
        g = to_np(ce.grad.softmax_cross_entropy(z, t, **opts))
        np.testing.assert_array_equal(g, np.zeros((3, 4)))


def test_zero_total_weight_is_not_nan(xp):
    # every surviving target has weight 0: 0 / 0 must not leak out as NaN
    z = xp.asarray(RNG.normal(size=(3, 4)))
    t = xp.asarray(np.array([1, 1, -100]))
    w = xp.asarray(np.array([1.0, 0.0, 1.0, 1.0]))
    assert float(to_np(ce.softmax_cross_entropy(z, t, class_weight=w))) == 0.0


# ----------------------------------------------------------------------------------- errors


def message_names(err, *parts):
    text = str(err.value)
    for part in parts:
        assert re.search(part, text), (part, text)


def test_target_out_of_range_names_value_and_index(xp):
    z = xp.asarray(RNG.normal(size=(5, 3)))
    with pytest.raises(ValueError, match=r"\b7\b") as err:
        ce.softmax_cross_entropy(z, xp.asarray(np.array([0, 1, 2, 7, 1])))
    message_names(err, r"index\D*3")
    with pytest.raises(ValueError, match=r"-1\b") as err:
        ce.softmax_cross_entropy(z, xp.asarray(np.array([0, -1, 2, 1, 1])))
    message_names(err, r"index\D*1")


@pytest.mark.parametrize(
    "name", ["softmax_focal_loss", "hinge_loss", "mse_loss", "categorical_cross_entropy"]
)
def test_other_index_losses_check_range(name):
    z = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"\b3\b"):
        getattr(ce, name)(z, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"\b9\b"):
        getattr(ce.grad, name)(z, np.array([9, 0]))


def test_one_hot_and_class_weights_check_range():
    with pytest.raises(ValueError, match=r"\b4\b"):
        ce.one_hot(np.array([0, 4]), 4)
    with pytest.raises(ValueError, match=r"\b5\b"):
        ce.class_weights(np.array([0, 5, 1]), 3)


def test_non_integer_index_targets_are_a_type_error():
    z = RNG.normal(size=(4, 3))
    with pytest.raises(TypeError, match="float"):
        ce.softmax_cross_entropy(z, np.array([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(TypeError, match="bool"):
        ce.softmax_cross_entropy(z, np.array([True, False, True, True]))


def test_shape_mismatches_name_the_shapes(xp):
    z = xp.asarray(RNG.normal(size=(4, 3)))
    with pytest.raises(ValueError, match=r"\(5,?\)"):
        ce.softmax_cross_entropy(z, xp.asarray(np.zeros(5, dtype=np.int64)))
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        ce.softmax_cross_entropy(z, xp.asarray(np.full((4, 2), 0.5)))
    with pytest.raises(ValueError, match=r"\(4, 3\)|\(3,?\)"):
        ce.sigmoid_binary_cross_entropy(z, xp.asarray(np.zeros(3)))
    with pytest.raises(ValueError, match=r"\b4\b"):
        ce.softmax_cross_entropy(
            z, xp.asarray(np.zeros(4, dtype=np.int64)), class_weight=xp.asarray(np.ones(4))
        )
    with pytest.raises(ValueError, match=r"\(2, 3\)|\(4, 3\)"):
        ce.distillation_loss(z, xp.asarray(np.zeros((2, 3))))


def test_probabilities_outside_unit_interval(xp):
    good = np.full((3, 3), 1 / 3)
    bad = good.copy()
    bad[2, 1] = 1.5
    with pytest.raises(ValueError, match=r"1\.5"):
        ce.categorical_cross_entropy(xp.asarray(bad), xp.asarray(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match=r"-0\.25"):
        ce.binary_cross_entropy(
            xp.asarray(np.array([0.5, -0.25])), xp.asarray(np.array([1.0, 0.0]))
        )
    with pytest.raises(ValueError, match=r"1\.5"):
        ce.softmax_cross_entropy(xp.asarray(good), xp.asarray(bad))  # probability targets
    with pytest.raises(ValueError, match=r"2\.5"):
        ce.binary_cross_entropy(xp.asarray(np.array([0.5, 0.5])), xp.asarray(np.array([1.0, 2.5])))


@pytest.mark.parametrize("value", [-0.5, np.inf, np.nan])
@pytest.mark.parametrize("where", ["softmax_weight", "bce_weight", "bce_pos_weight"])
def test_bad_weights_name_the_value(xp, where, value):
    """Negative, infinite or NaN weights: an error naming the value (inf would give NaN)."""
    z = xp.asarray(RNG.normal(size=(2, 3)))
    bad = xp.asarray(np.array([1.0, value, 1.0]))
    with pytest.raises(ValueError, match=rf"finite and >= 0; found {value}") as err:
        if where == "softmax_weight":
            ce.softmax_cross_entropy(z, xp.asarray(np.array([0, 1])), class_weight=bad)
        elif where == "bce_weight":
            ce.sigmoid_binary_cross_entropy(z, xp.asarray(np.ones((2, 3))), weight=bad)
        else:
            ce.sigmoid_binary_cross_entropy(z, xp.asarray(np.ones((2, 3))), pos_weight=bad)
    message_names(err, r"\b1\b")  # where: class / index 1


@pytest.mark.parametrize(
    "name",
    [
        "softmax_cross_entropy",
        "sigmoid_binary_cross_entropy",
        "softmax_focal_loss",
        "sigmoid_focal_loss",
        "hinge_loss",
        "mse_loss",
        "categorical_cross_entropy",
        "binary_cross_entropy",
        "distillation_loss",
    ],
)
def test_unknown_reduction(name):
    z = np.full((2, 3), 0.25)
    second = (
        z
        if name
        in (
            "sigmoid_binary_cross_entropy",
            "sigmoid_focal_loss",
            "binary_cross_entropy",
            "distillation_loss",
        )
        else np.array([0, 1])
    )
    with pytest.raises(ValueError, match="avg"):
        getattr(ce, name)(z, second, reduction="avg")
    if hasattr(ce.grad, name):
        with pytest.raises(ValueError, match="avg"):
            getattr(ce.grad, name)(z, second, reduction="avg")


def test_axis_out_of_range(xp):
    z = xp.asarray(RNG.normal(size=(2, 3)))
    with pytest.raises(ValueError, match=r"\b2\b"):
        ce.softmax_cross_entropy(z, xp.asarray(np.array([0, 1])), axis=2)
    with pytest.raises(ValueError, match=r"-3"):
        ce.log_softmax(z, axis=-3)
    with pytest.raises(ValueError, match=r"\b5\b"):
        ce.entropy(xp.asarray(np.full((2, 3), 1 / 3)), axis=5)


def test_option_values_out_of_range():
    z, t = RNG.normal(size=(2, 3)), np.array([0, 1])
    with pytest.raises(ValueError, match=r"1\.5"):
        ce.softmax_cross_entropy(z, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"-0\.1"):
        ce.softmax_cross_entropy(z, t, label_smoothing=-0.1)
    with pytest.raises(ValueError, match=r"\b0(\.0)?\b"):
        ce.distillation_loss(z, z, temperature=0.0)
    with pytest.raises(ValueError, match=r"-1"):
        ce.softmax_focal_loss(z, t, gamma=-1.0)
    with pytest.raises(ValueError, match=r"others|uniform|bogus"):
        ce.smooth_labels(t, num_classes=3, label_smoothing=0.1, smoothing_convention="bogus")


def test_errors_never_become_silent_nan():
    # a label mistake must raise, not produce NaN (DESIGN.md)
    z = RNG.normal(size=(3, 4))
    with pytest.raises(ValueError):
        ce.grad.softmax_cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError):
        ce.sigmoid_binary_cross_entropy(z, np.ones((3, 5)))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ce.softmax_cross_entropy(LOGITS, [0, 7]), ValueError, r"found 7 at index 1"),
        (lambda: ce.softmax_cross_entropy(LOGITS, [0, -3]), ValueError, r"found -3 at index 1"),
        (lambda: ce.softmax_cross_entropy(LOGITS, [0.0, 2.0]), TypeError, r"integer"),
        (lambda: ce.softmax_cross_entropy(LOGITS, [0, 1, 2]), ValueError, r"shape \(2,\)"),
        (lambda: ce.softmax_cross_entropy(LOGITS, TARGETS, axis=2), ValueError, "axis=2"),
        (
            lambda: ce.softmax_cross_entropy(LOGITS, TARGETS, class_weight=[1.0, -1.0, 1.0]),
            ValueError,
            r"found -1.0 at class 1",
        ),
        (
            lambda: ce.softmax_cross_entropy(LOGITS, TARGETS, class_weight=[1.0]),
            ValueError,
            r"\(3,\)",
        ),
        (lambda: ce.binary_cross_entropy([0.5, 1.2], [1.0, 0.0]), ValueError, r"1.2 at index 1"),
        (lambda: ce.binary_cross_entropy([0.5], [1.0, 0.0]), ValueError, "same shape"),
        (lambda: ce.categorical_cross_entropy([[0.5, -0.1]], [0]), ValueError, "-0.1"),
        (lambda: ce.entropy([0.5, 1.5]), ValueError, r"1.5 at index 1"),
        (lambda: ce.entropy([0.5, 0.5], base=1), ValueError, "base"),
        (lambda: ce.kl_divergence([0.5, 0.5], [1.0]), ValueError, "same shape"),
        (lambda: ce.distillation_loss(LOGITS, LOGITS, temperature=0), ValueError, "temperature"),
        (lambda: ce.softmax_focal_loss(LOGITS, TARGETS, gamma=-1), ValueError, "gamma"),
        (lambda: ce.one_hot([0, 3], 3), ValueError, r"found 3 at index 1"),
        (lambda: ce.class_weights([0, 0, 2], 3), ValueError, "class 1 has no example"),
        (lambda: ce.sigmoid_binary_cross_entropy([0.0], [2.0]), ValueError, "2.0"),
    ],
)
def test_bad_input_raises_naming_the_value(call, error, match):
    with pytest.raises(error, match=match):
        call()
