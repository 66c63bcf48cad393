"""crossent.calibration against torchmetrics, scikit-learn, brute force and NumPy references.

The real predictions live in ``../shared/data/netcal-cifar/`` (relative to the repository root);
the tests that need them skip on a developer's machine without it and fail in CI.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crossent.calibration as cal
from conftest import to_np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "netcal-cifar"
FILES = (
    "lenet-5-cifar-10.npz",
    "wideresnet-16-4-cifar-10.npz",
    "densenet-bc-100-cifar-100.npz",
    "lenet-5-cifar-100.npz",
    "wideresnet-16-4-cifar-100.npz",
)


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    path = DATA / name
    if not path.exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(path)
        pytest.skip(f"{path} is not here (it is in CI)")
    with np.load(path, allow_pickle=False) as d:
        return d["predictions"], d["ground_truth"]


# ---------------------------------------------------------------- ECE against torchmetrics


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_reproduces_torchmetrics(name: str, norm: str) -> None:
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs, labels = load(name)
    k = probs.shape[1]
    theirs = multiclass_calibration_error(
        torch.from_numpy(probs), torch.from_numpy(labels), num_classes=k, n_bins=15, norm=norm
    )
    ours = cal.expected_calibration_error(
        probs, labels, norm=norm, right_closed=False, ones_in_own_bin=True
    )
    assert ours.dtype == np.float32
    # torchmetrics accumulates the bins in float32 with scatter_add: equal to its rounding
    assert float(ours) == pytest.approx(float(theirs), abs=1e-5)


@pytest.mark.parametrize("name", FILES)
def test_bins_reproduce_torchmetrics_exactly(name: str) -> None:
    """Bin by bin, in float64: the same counts, mean confidences and accuracies."""
    torch = pytest.importorskip("torch")
    bucketize = pytest.importorskip(
        "torchmetrics.functional.classification.calibration_error"
    )._binning_bucketize

    probs, labels = load(name)
    probs = probs.astype(np.float64)
    conf = torch.from_numpy(probs.max(axis=1))
    hit = torch.from_numpy((probs.argmax(axis=1) == labels).astype(np.float64))
    acc, mean_conf, prop = (
        t.numpy() for t in bucketize(conf, hit, torch.linspace(0, 1, 16, dtype=torch.float64))
    )
    curve = cal.reliability_curve(probs, labels, right_closed=False, ones_in_own_bin=True)
    np.testing.assert_array_equal(curve.counts, np.rint(prop * len(labels)).astype(np.int64))
    filled = curve.counts > 0
    np.testing.assert_allclose(curve.accuracy[filled], acc[filled], rtol=1e-12)
    np.testing.assert_allclose(curve.confidence[filled], mean_conf[filled], rtol=1e-12)


def test_torchmetrics_hidden_bin_matters_where_confidences_are_one() -> None:
    """torchmetrics #3510: confidences of exactly 1.0 sit in their own bin; it changes RMSCE."""
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs, labels = load("wideresnet-16-4-cifar-10.npz")
    probs = probs.astype(np.float64)
    assert (probs.max(axis=1) == 1.0).mean() > 0.2
    theirs = float(
        multiclass_calibration_error(
            torch.from_numpy(probs), torch.from_numpy(labels), num_classes=10, norm="l2"
        )
    )
    closed_last = float(
        cal.expected_calibration_error(probs, labels, norm="l2", right_closed=False)
    )
    own_bin = float(
        cal.expected_calibration_error(
            probs, labels, norm="l2", right_closed=False, ones_in_own_bin=True
        )
    )
    assert own_bin == pytest.approx(theirs, abs=1e-5)  # torchmetrics computes in float32
    assert abs(closed_last - theirs) > 1e-3  # 0.0749 against 0.0778
    curve = cal.reliability_curve(probs, labels, right_closed=False, ones_in_own_bin=True)
    assert curve.counts.shape == (16,)
    assert int(curve.counts[-1]) == int((probs.max(axis=1) == 1.0).sum())
    assert curve.confidence[-1] == 1.0


# ---------------------------------------------------------------- curves against scikit-learn


@pytest.mark.parametrize("name", ["lenet-5-cifar-10.npz", "wideresnet-16-4-cifar-10.npz"])
@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_reproduces_sklearn(name: str, strategy: str) -> None:
    from sklearn.calibration import calibration_curve

    probs, labels = load(name)
    probs = probs.astype(np.float64)  # scikit-learn's edges are float64
    # one-vs-rest curve of every class
    curve = cal.reliability_curve(probs, labels, n_bins=10, binning=strategy, scope="classwise")
    for k in range(probs.shape[1]):
        prob_true, prob_pred = calibration_curve(
            labels == k, probs[:, k], n_bins=10, strategy=strategy
        )
        filled = curve.counts[k] > 0
        np.testing.assert_allclose(curve.accuracy[k][filled], prob_true, rtol=1e-12)
        np.testing.assert_allclose(curve.confidence[k][filled], prob_pred, rtol=1e-12)
    # top-label curve: the binary problem "the prediction is right"
    top = cal.reliability_curve(probs, labels, n_bins=15, binning=strategy)
    prob_true, prob_pred = calibration_curve(
        probs.argmax(axis=1) == labels, probs.max(axis=1), n_bins=15, strategy=strategy
    )
    filled = top.counts > 0
    np.testing.assert_allclose(top.accuracy[filled], prob_true, rtol=1e-12)
    np.testing.assert_allclose(top.confidence[filled], prob_pred, rtol=1e-12)
    assert int(top.counts.sum()) == len(labels)


def _reference_ece(conf, hit, edges, norm="l1", debias=False, right=True):
    """Plain NumPy: bins by searchsorted on the inner edges, then the weighted gaps."""
    side = "left" if right else "right"
    idx = np.searchsorted(edges[1:-1], conf, side=side)
    n = len(conf)
    total, worst = 0.0, 0.0
    for b in range(len(edges) - 1):
        m = idx == b
        nb = int(m.sum())
        if nb == 0:
            continue
        gap = hit[m].mean() - conf[m].mean()
        worst = max(worst, abs(gap))
        if norm == "l1":
            total += nb / n * abs(gap)
        elif debias:
            if nb >= 2:
                acc = hit[m].mean()
                total += nb / n * (gap**2 - acc * (1 - acc) / (nb - 1))
        else:
            total += nb / n * gap**2
    return worst if norm == "max" else total


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_classwise_ece_against_reference(norm: str) -> None:
    probs, labels = load("lenet-5-cifar-10.npz")
    probs = probs.astype(np.float64)
    edges = np.linspace(0, 1, 16)
    per_class = [_reference_ece(probs[:, k], labels == k, edges, norm) for k in range(10)]
    expected = {"l1": np.mean, "l2": lambda e: math.sqrt(np.mean(e)), "max": np.max}[norm](
        per_class
    )
    ours = cal.expected_calibration_error(probs, labels, norm=norm, scope="classwise")
    assert float(ours) == pytest.approx(expected, rel=1e-12)


def test_debiased_l2_is_kumar_estimator() -> None:
    probs, labels = load("lenet-5-cifar-100.npz")
    probs = probs.astype(np.float64)
    conf, hit = probs.max(axis=1), probs.argmax(axis=1) == labels
    squared = _reference_ece(conf, hit, np.linspace(0, 1, 16), "l2", debias=True)
    ours = cal.expected_calibration_error(probs, labels, norm="l2", debias=True)
    biased = cal.expected_calibration_error(probs, labels, norm="l2")
    assert float(ours) == pytest.approx(math.sqrt(max(squared, 0.0)), rel=1e-12)
    assert float(ours) < float(biased)
    # a perfectly calibrated coin flip: the plug-in RMSCE is noise, the debiased one is ~0
    rng = np.random.default_rng(0)
    p = rng.uniform(0.5, 1.0, 2000)
    y = (rng.random(2000) < p).astype(np.int64)
    two = np.stack([p, 1 - p], axis=1)
    lab = 1 - y
    plug_in = float(cal.expected_calibration_error(two, lab, norm="l2"))
    debiased = float(cal.expected_calibration_error(two, lab, norm="l2", debias=True))
    assert debiased < plug_in


# ---------------------------------------------------------------- proper scores


@pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one:UserWarning")
@pytest.mark.parametrize("name", FILES)
def test_scores_reproduce_sklearn(name: str) -> None:
    from sklearn.metrics import brier_score_loss, log_loss, top_k_accuracy_score

    probs, labels = load(name)
    k = probs.shape[1]
    assert float(cal.log_loss(probs, labels)) == pytest.approx(
        log_loss(labels, probs, labels=np.arange(k)), rel=1e-6
    )
    assert float(cal.log_loss(probs.astype(np.float64), labels)) == pytest.approx(
        log_loss(labels, probs.astype(np.float64), labels=np.arange(k)), rel=1e-12
    )
    assert float(cal.log_loss(probs, labels, base=2)) == pytest.approx(
        float(cal.log_loss(probs, labels)) / math.log(2), rel=1e-6
    )
    assert float(cal.label_perplexity(probs, labels)) == pytest.approx(
        math.exp(float(cal.log_loss(probs, labels))), rel=1e-6
    )
    assert float(cal.brier_score(probs, labels)) == pytest.approx(
        brier_score_loss(labels, probs, labels=np.arange(k), scale_by_half=False), rel=1e-6
    )
    for top in (1, 5):
        assert float(cal.top_k_accuracy(probs, labels, k=top)) == pytest.approx(
            top_k_accuracy_score(labels, probs, k=top, labels=np.arange(k)), abs=1e-7
        )


def test_binary_shorthand_matches_sklearn() -> None:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss, log_loss

    rng = np.random.default_rng(1)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(np.int64)
    assert float(cal.brier_score(p, y)) == pytest.approx(2 * brier_score_loss(y, p), rel=1e-12)
    assert float(cal.log_loss(p, y)) == pytest.approx(log_loss(y, p), rel=1e-12)
    curve = cal.reliability_curve(p, y, n_bins=8, scope="classwise")
    prob_true, prob_pred = calibration_curve(y, p, n_bins=8)
    filled = curve.counts[1] > 0
    np.testing.assert_allclose(curve.accuracy[1][filled], prob_true, rtol=1e-12)
    np.testing.assert_allclose(curve.confidence[1][filled], prob_pred, rtol=1e-12)


def test_bin_edge_conventions_by_hand() -> None:
    # confidences exactly on the inner edge 0.6 (5 bins): (lo, hi] puts them below, [lo, hi) above
    probs = np.array([[0.6, 0.4], [0.6, 0.4], [0.9, 0.1], [1.0, 0.0]])
    labels = np.array([0, 1, 0, 0])
    right = cal.reliability_curve(probs, labels, n_bins=5)
    left = cal.reliability_curve(probs, labels, n_bins=5, right_closed=False)
    hidden = cal.reliability_curve(
        probs, labels, n_bins=5, right_closed=False, ones_in_own_bin=True
    )
    assert right.counts.tolist() == [0, 0, 2, 0, 2]
    assert left.counts.tolist() == [0, 0, 0, 2, 2]
    assert hidden.counts.tolist() == [0, 0, 0, 2, 1, 1]
    assert np.isnan(right.confidence[0])
    assert float(cal.expected_calibration_error(probs, labels, n_bins=5)) == pytest.approx(
        0.5 * 0.1 + 0.5 * 0.05
    )


# ---------------------------------------------------------------- temperature


def _nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    from scipy.special import log_softmax

    return float(-log_softmax(logits / t, axis=1)[np.arange(len(labels)), labels].mean())


@pytest.mark.parametrize(
    ("name", "points"), [("lenet-5-cifar-10.npz", 601), ("densenet-bc-100-cifar-100.npz", 81)]
)
def test_temperature_is_the_grid_minimum(name: str, points: int) -> None:
    from scipy.optimize import minimize_scalar

    probs, labels = load(name)
    log_probs = np.log(probs.astype(np.float64))
    t = cal.fit_temperature(probs, labels)  # detected as probabilities: fitted on their log
    # float64 logs of the float32 probabilities: the same optimum to float32 rounding
    assert t == pytest.approx(cal.fit_temperature(log_probs, labels, kind="logits"), rel=1e-7)
    grid = np.exp(np.linspace(math.log(0.5), math.log(4.0), points))
    losses = np.array([_nll(log_probs, labels, g) for g in grid])
    best = int(np.argmin(losses))
    step = math.log(grid[1] / grid[0])
    assert abs(math.log(t) - math.log(grid[best])) <= step
    assert _nll(log_probs, labels, t) <= losses.min() + 1e-12
    fine = minimize_scalar(
        lambda u: _nll(log_probs, labels, math.exp(u)),
        bounds=(math.log(grid[best]) - step, math.log(grid[best]) + step),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert t == pytest.approx(math.exp(fine.x), rel=1e-6)


def test_temperature_recovers_a_known_scale() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 3, (4000, 5))
    p = np.exp(true_logits - true_logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(5, p=row) for row in p])
    t = cal.fit_temperature(2.5 * true_logits, labels)  # over-confident by 2.5
    assert t == pytest.approx(2.5, rel=0.08)


def test_temperature_fails_loudly_without_an_optimum() -> None:
    with pytest.raises(ValueError, match="T -> 0"):
        cal.fit_temperature([[3.0, 0.0], [0.0, 2.0]], [0, 1])
    with pytest.raises(ValueError, match="T -> inf"):
        cal.fit_temperature([[3.0, 0.0], [0.0, 2.0]], [1, 0])
    with pytest.raises(ValueError, match="probability 0 at example 1"):
        cal.fit_temperature([[0.5, 0.5], [1.0, 0.0]], [0, 1])
    with pytest.raises(ValueError, match="finite"):
        cal.fit_temperature([[np.nan, 0.0], [0.0, 1.0]], [0, 1])


def test_apply_temperature_and_decomposition() -> None:
    from scipy.special import softmax

    probs, labels = load("wideresnet-16-4-cifar-10.npz")
    probs = probs.astype(np.float64)
    t = cal.fit_temperature(probs, labels)
    scaled = cal.apply_temperature(probs, t)
    np.testing.assert_allclose(scaled, softmax(np.log(probs) / t, axis=1), rtol=1e-10, atol=1e-300)
    logits = np.log(probs)
    np.testing.assert_allclose(cal.apply_temperature(logits, t), logits / t)
    d = cal.log_loss_decomposition(probs, labels)
    assert d.temperature == t
    assert d.calibration > 0
    assert d.log_loss == pytest.approx(d.calibration + d.refinement, rel=1e-12)
    assert d.log_loss == pytest.approx(_nll(logits, labels, 1.0), rel=1e-12)
    assert d.refinement == pytest.approx(_nll(logits, labels, t), rel=1e-12)
    bits = cal.log_loss_decomposition(probs, labels, base=2)
    assert bits.calibration == pytest.approx(d.calibration / math.log(2), rel=1e-12)
    # temperature scaling optimizes NLL and here also cuts the ECE (5.37% -> about 1%)
    before = float(cal.expected_calibration_error(probs, labels))
    after = float(cal.expected_calibration_error(scaled, labels))
    assert after < before / 3


# ---------------------------------------------------------------- every array library


def test_metrics_on_every_backend(xp) -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (300, 4))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    probs, labels = xp.asarray(p), xp.asarray(y)
    for kwargs in (
        {},
        {"norm": "l2", "debias": True},
        {"binning": "quantile"},
        {"scope": "classwise"},
        {"norm": "max", "right_closed": False},
    ):
        ours = cal.expected_calibration_error(probs, labels, **kwargs)
        ref = cal.expected_calibration_error(p, y, **kwargs)
        assert float(to_np(ours)) == pytest.approx(float(ref), rel=1e-6), kwargs
    for fn in (cal.brier_score, cal.log_loss, cal.top_k_accuracy, cal.label_perplexity):
        assert float(to_np(fn(probs, labels))) == pytest.approx(float(fn(p, y)), rel=1e-6)
    curve = cal.reliability_curve(probs, labels, n_bins=5)
    np.testing.assert_allclose(to_np(curve.counts), cal.reliability_curve(p, y, n_bins=5).counts)
    t = cal.fit_temperature(xp.asarray(logits), labels)
    assert t == pytest.approx(cal.fit_temperature(logits, y), rel=1e-5)
    scaled = cal.apply_temperature(xp.asarray(logits), t)
    np.testing.assert_allclose(to_np(scaled), logits / t, rtol=1e-6)


def test_half_precision_is_computed_in_float32() -> None:
    probs, labels = load("lenet-5-cifar-10.npz")
    half = probs.astype(np.float16)
    ece = cal.expected_calibration_error(half, labels)
    assert ece.dtype == np.float16
    assert float(ece) == pytest.approx(
        float(cal.expected_calibration_error(half.astype(np.float32), labels)), abs=1e-3
    )


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: cal.expected_calibration_error([[0.5, 0.5]], [2]), ValueError, "found 2"),
        (lambda: cal.expected_calibration_error([[np.nan, 0.5]], [0]), ValueError, "nan"),
        (lambda: cal.expected_calibration_error([[1.5, -0.5]], [0]), ValueError, r"\[0, 1\]"),
        (lambda: cal.expected_calibration_error([[0.5, 0.5]], [0, 1]), ValueError, "shape"),
        (lambda: cal.expected_calibration_error([[0.5, 0.5]], [0.0]), TypeError, "integer"),
        (lambda: cal.expected_calibration_error([[0.5, 0.5]], [0], n_bins=0), ValueError, "n_bins"),
        (lambda: cal.expected_calibration_error([[0.5, 0.5]], [0], norm="l3"), ValueError, "norm"),
        (
            lambda: cal.expected_calibration_error([[0.5, 0.5]], [0], debias=True),
            ValueError,
            "norm='l2'",
        ),
        (
            lambda: cal.expected_calibration_error([[0.5, 0.5]], [0], ones_in_own_bin=True),
            ValueError,
            "right_closed=False",
        ),
        (
            lambda: cal.expected_calibration_error(np.zeros((0, 3)), np.zeros(0, int)),
            ValueError,
            "no examples",
        ),
        (lambda: cal.reliability_curve([[0.5, 0.5]], [0], scope="all"), ValueError, "scope"),
        (lambda: cal.reliability_curve([[0.5, 0.5]], [0], binning="x"), ValueError, "binning"),
        (lambda: cal.log_loss([[0.5, 0.5]], [0], base=1), ValueError, "base"),
        (lambda: cal.top_k_accuracy([[0.5, 0.5]], [0], k=0), ValueError, "k must"),
        (lambda: cal.apply_temperature([[0.5, 0.5]], 0.0), ValueError, "temperature"),
        (lambda: cal.fit_temperature([[0.5, 0.5]], [0], kind="x"), ValueError, "kind"),
        (lambda: cal.fit_temperature([1.0, 2.0], [0, 1]), ValueError, "class axis"),
    ],
)
def test_bad_input_is_named(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_jax_without_x64_gives_no_dtype_warnings() -> None:
    """Under JAX's default config (no float64/int64) every metric runs without a warning."""
    pytest.importorskip("jax")
    code = """
import warnings
warnings.simplefilter("error")
import jax.numpy as jnp
import numpy as np
import crossent.calibration as cal
rng = np.random.default_rng(0)
p = rng.dirichlet(np.ones(4), size=50).astype(np.float32)
y = rng.integers(0, 4, 50)
P, Y = jnp.asarray(p), jnp.asarray(y)
for fn in (cal.expected_calibration_error, cal.brier_score, cal.log_loss):
    assert abs(float(fn(P, Y)) - float(fn(p, y))) < 1e-5, fn
assert float(cal.top_k_accuracy(P, Y, k=2)) == float(cal.top_k_accuracy(p, y, k=2))
assert float(cal.expected_calibration_error(P, Y, scope="classwise")) >= 0
cal.reliability_curve(P, Y)
"""
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("n", [7, 10, 97, 1000, 4099])
@pytest.mark.parametrize("n_bins", [3, 10, 15])
def test_quantile_edges_are_numpys_percentiles_to_the_bit(n, n_bins):
    # scikit-learn's quantile strategy bins by np.percentile's edges; an edge one ulp off moves
    # a confidence that lies on it into the next bin, so the edges must be NumPy's exactly
    # (its _lerp: a + d t below t = 0.5, b - d (1 - t) above).
    from crossent._calibration import _bin_edges

    rng = np.random.default_rng(n * 31 + n_bins)
    conf = rng.random((n, 2)) ** 3  # skewed, distinct values: every edge interpolates
    edges = np.asarray(_bin_edges(np, conf, n_bins, "quantile"))
    for column in range(2):
        want = np.percentile(conf[:, column], np.linspace(0, 1, n_bins + 1) * 100)
        np.testing.assert_array_equal(edges[column], want)


# ---------------------------------------------------------------- per-bin sufficient statistics


def _brute_force_bins(conf, hit, edges, right_closed, ones_in_own_bin):
    """Membership by the interval tests themselves (no search), one mask per bin and column."""
    columns = conf.shape[1]
    nb = edges.shape[-1] - 1
    extra = 1 if ones_in_own_bin else 0
    counts = np.zeros((columns, nb + extra), np.int64)
    sums = np.zeros((columns, nb + extra))
    hits = np.zeros((columns, nb + extra), np.int64)
    for c in range(columns):
        e = edges[c] if edges.ndim == 2 else edges
        x = conf[:, c]
        for b in range(nb):
            lo, hi = e[b], e[b + 1]
            if right_closed:
                m = ((x > lo) | (b == 0)) & ((x <= hi) | (b == nb - 1))
            else:
                m = ((x >= lo) | (b == 0)) & ((x < hi) | (b == nb - 1))
            if ones_in_own_bin:
                m &= x < 1
            counts[c, b], sums[c, b], hits[c, b] = (
                m.sum(),
                x[m].astype(np.float64).sum(),
                hit[m, c].sum(),
            )
        if ones_in_own_bin:
            m = x >= 1
            counts[c, nb], sums[c, nb], hits[c, nb] = m.sum(), x[m].sum(), hit[m, c].sum()
    return counts, sums, hits


def _values_on_edges(rng, shape, n_bins, dtype, sparse=False):
    """Random confidences, a third of them exactly on an edge or one ulp either side of it.

    ``sparse``: probabilities of a softmax over many classes (most below the first edge, which
    NumPy bins apart), with 3 % of them on an edge.
    """
    if sparse:
        x = rng.dirichlet(np.full(shape[1], 0.05), shape[0]).astype(dtype)
    else:
        x = rng.random(shape).astype(dtype)
    edges = np.asarray([i / n_bins for i in range(n_bins + 1)], dtype)
    pick = rng.random(shape) < (0.03 if sparse else 1 / 3)
    on = edges[rng.integers(0, n_bins + 1, shape)]
    nudge = rng.integers(-1, 2, shape)
    on = np.where(nudge < 0, np.nextafter(on, dtype(-1)), on)
    on = np.where(nudge > 0, np.nextafter(on, dtype(2)), on)
    return np.clip(np.where(pick, on, x), 0, 1).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("right_closed", "ones_in_own_bin"), [(True, False), (False, False), (False, True)]
)
@pytest.mark.parametrize("n_bins", [1, 7, 15])
@pytest.mark.parametrize("sparse", [False, True])
def test_bin_statistics_against_interval_masks(
    dtype, right_closed, ones_in_own_bin, n_bins, sparse
):
    rng = np.random.default_rng(n_bins)
    # 300 x 250 values: large enough for NumPy's blocked path and its equal-width fast search
    conf = _values_on_edges(rng, (300, 250), n_bins, dtype, sparse)
    labels = rng.integers(0, 250, 300)
    onehot = labels[:, None] == np.arange(250)
    options = {"right_closed": right_closed, "ones_in_own_bin": ones_in_own_bin}
    for edges in (
        cal.bin_edges(conf, n_bins=n_bins),
        cal.bin_edges(conf, n_bins=n_bins, binning="quantile"),
    ):
        want = _brute_force_bins(conf, onehot, np.asarray(edges), **options)
        for hits in (labels, onehot):  # the label of each row, or the (N, K) hits
            got = cal.bin_statistics(conf, hits, edges=edges, **options)
            np.testing.assert_array_equal(got.counts, want[0])
            np.testing.assert_allclose(got.sum_confidence, want[1], rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(got.sum_hits, want[2])
    # 1-D confidences (top-label), shared edges
    top = conf[:, 0]
    right = rng.random(300) < top
    got = cal.bin_statistics(top, right, edges=cal.bin_edges(top, n_bins=n_bins), **options)
    want = _brute_force_bins(
        top[:, None], right[:, None], np.asarray(got.edges[: n_bins + 1]), **options
    )
    assert got.counts.shape == ((n_bins + 1,) if ones_in_own_bin else (n_bins,))
    np.testing.assert_array_equal(got.counts, want[0][0])
    np.testing.assert_allclose(got.sum_confidence, want[1][0], rtol=1e-12)
    np.testing.assert_array_equal(got.sum_hits, want[2][0])


def test_bin_statistics_of_batches_add_up_and_give_the_metrics() -> None:
    probs, labels = load("lenet-5-cifar-100.npz")
    edges = cal.bin_edges(probs, n_bins=15)
    parts = [
        cal.bin_statistics(probs[i : i + 3000], labels[i : i + 3000], edges=edges)
        for i in range(0, len(labels), 3000)
    ]
    whole = cal.bin_statistics(probs, labels, edges=edges)
    for field in ("counts", "sum_confidence", "sum_hits"):
        total = sum(getattr(p, field) for p in parts)
        np.testing.assert_allclose(total, getattr(whole, field), rtol=1e-12)
    for norm in ("l1", "l2", "max"):
        assert float(whole.calibration_error(norm=norm)) == pytest.approx(
            float(cal.expected_calibration_error(probs, labels, norm=norm, scope="classwise")),
            rel=1e-6,
        )
    curve = whole.reliability_curve()
    ref = cal.reliability_curve(probs, labels, scope="classwise")
    np.testing.assert_array_equal(curve.counts, ref.counts)
    np.testing.assert_allclose(curve.accuracy, ref.accuracy, rtol=1e-6)


def test_bin_statistics_on_every_backend(xp) -> None:
    rng = np.random.default_rng(5)
    conf = _values_on_edges(rng, (400, 6), 10, np.float32)
    labels = rng.integers(0, 6, 400)
    for binning in ("uniform", "quantile"):
        edges = cal.bin_edges(conf, n_bins=10, binning=binning)
        ref = cal.bin_statistics(conf, labels, edges=edges, right_closed=False)
        got = cal.bin_statistics(
            xp.asarray(conf), xp.asarray(labels), edges=xp.asarray(edges), right_closed=False
        )
        np.testing.assert_array_equal(to_np(got.counts), ref.counts)
        np.testing.assert_allclose(to_np(got.sum_confidence), ref.sum_confidence, rtol=1e-6)
        np.testing.assert_array_equal(to_np(got.sum_hits), ref.sum_hits)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cal.bin_statistics([0.5, 1.5], [1, 0], edges=[0, 1]), r"\[0, 1\]"),
        (lambda: cal.bin_statistics([0.5, 0.5], [1, 2], edges=[0, 1]), "0/1"),
        (lambda: cal.bin_statistics([[0.5, 0.5]], [2], edges=[0, 1]), "found 2"),
        (lambda: cal.bin_statistics([0.5, 0.5], [1, 0], edges=[0]), "shape"),
        (lambda: cal.bin_statistics([0.5, 0.5], [1, 0], edges=[0, 0.6, 0.5, 1]), "increasing"),
        (
            lambda: cal.bin_statistics([0.5], [1], edges=[0, 1], ones_in_own_bin=True),
            "right_closed",
        ),
        (lambda: cal.bin_edges([0.5], n_bins=0), "n_bins"),
    ],
)
def test_bin_statistics_bad_input_is_named(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- temperature at scale


def _overconfident(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 logits twice as sharp as the softmax their labels are drawn from."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k)).astype(np.float32)
    z[np.arange(n), rng.integers(0, k, n)] += 3.0
    labels = np.argmax(z + rng.gumbel(size=(n, k)), axis=1)
    return 2 * z, labels


def _float64_root(logits: np.ndarray, labels: np.ndarray, weights=None) -> float:
    """T* from scipy's brentq on the float64 derivative of the NLL in 1/T (no crossent code)."""
    from scipy.optimize import brentq
    from scipy.special import softmax

    z = logits.astype(np.float64)
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)

    def derivative(beta: float) -> float:
        p = softmax(beta * z, axis=1)
        return float(np.sum(w * ((p * z).sum(axis=1) - z[np.arange(len(labels)), labels])))

    return 1.0 / brentq(derivative, 0.05, 20.0, xtol=1e-15, rtol=1e-15)


class _Rows:
    """Rows read on demand (what a memory map or a file reader gives): counts what is read."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.reads = array, array.shape, []

    def __getitem__(self, rows: slice) -> np.ndarray:
        self.reads.append((rows.start, rows.stop))
        return self.array[rows]


def test_temperature_of_float32_logits_against_a_float64_root() -> None:
    logits, labels = _overconfident(4000, 300, 0)  # 1.2 M values: several row blocks
    t = cal.fit_temperature(logits, labels, kind="logits")
    assert t == pytest.approx(_float64_root(logits, labels), rel=1e-7)
    assert 1.8 < t < 2.2
    # weights: a 0/1 mask is the fit on that subset; general weights, the weighted optimum
    half = np.arange(4000) % 3 == 0
    masked = cal.fit_temperature(logits, labels, kind="logits", weights=half)
    subset = cal.fit_temperature(logits[half], labels[half], kind="logits")
    assert masked == pytest.approx(subset, rel=1e-10)
    w = np.random.default_rng(1).uniform(0, 3, 4000)
    weighted = cal.fit_temperature(logits, labels, kind="logits", weights=w)
    assert weighted == pytest.approx(_float64_root(logits, labels, w), rel=1e-7)


def test_temperature_reads_rows_on_demand_in_a_few_passes() -> None:
    logits, labels = _overconfident(3000, 200, 2)
    rows = _Rows(logits)
    t = cal.fit_temperature(rows, labels, kind="logits")
    assert t == cal.fit_temperature(logits, labels, kind="logits")  # the same blocks, sums
    passes = sum(1 for start, _ in rows.reads if start == 0)
    assert passes <= 6  # the first pass at T = 1, then Newton steps (4 here)
    assert max(stop - start for start, stop in rows.reads) < 3000  # never the whole array
    d = cal.log_loss_decomposition(_Rows(logits), labels, kind="logits")
    assert d.temperature == t
    from scipy.special import log_softmax

    z = logits.astype(np.float64)
    nll = -log_softmax(z, axis=1)[np.arange(3000), labels].mean()
    nll_t = -log_softmax(z / t, axis=1)[np.arange(3000), labels].mean()
    assert d.log_loss == pytest.approx(nll, rel=1e-6)  # float32 rows, float64 sums
    assert d.refinement == pytest.approx(nll_t, rel=1e-6)


def test_temperature_errors_name_the_row_of_any_block() -> None:
    logits, labels = _overconfident(2000, 300, 3)
    bad = logits.copy()
    bad[1500, 7] = np.nan
    with pytest.raises(ValueError, match=r"index \(1500, 7\)"):
        cal.fit_temperature(bad, labels, kind="logits")
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    probs[1700, labels[1700]] = 0.0
    with pytest.raises(ValueError, match="probability 0 at example 1700"):
        cal.fit_temperature(_Rows(probs), labels, kind="probs")
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        cal.fit_temperature(logits, labels, weights=-np.ones(2000))
    with pytest.raises(ValueError, match="shape"):
        cal.fit_temperature(logits, labels, weights=np.ones(3))


def test_apply_temperature_per_example() -> None:
    from scipy.special import softmax

    rng = np.random.default_rng(6)
    logits = rng.normal(0, 3, (50, 7))
    t = rng.uniform(0.5, 3.0, 50)
    np.testing.assert_allclose(cal.apply_temperature(logits, t), logits / t[:, None], rtol=1e-15)
    probs = softmax(logits, axis=1)
    want = softmax(np.log(probs) / t[:, None], axis=1)
    np.testing.assert_allclose(cal.apply_temperature(probs, t), want, rtol=1e-12)
    batched = cal.apply_temperature(probs.reshape(5, 10, 7), t.reshape(5, 10))
    np.testing.assert_allclose(batched.reshape(50, 7), want, rtol=1e-12)
    with pytest.raises(ValueError, match=r"shape \(50,\)"):
        cal.apply_temperature(logits, t[:10])
    with pytest.raises(ValueError, match=r"found 0\.0 at index 3"):
        cal.apply_temperature(logits, np.where(np.arange(50) == 3, 0.0, t))


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_classwise_error_per_class(norm: str) -> None:
    probs, labels = load("lenet-5-cifar-10.npz")
    probs = probs.astype(np.float64)
    edges = np.linspace(0, 1, 16)
    stats = cal.bin_statistics(probs, labels, edges=cal.bin_edges(probs))
    per_class = np.asarray(stats.calibration_error(norm=norm, average=False))
    want = [_reference_ece(probs[:, k], labels == k, edges, norm) for k in range(10)]
    if norm == "l2":
        want = np.sqrt(want)
    np.testing.assert_allclose(per_class, want, rtol=1e-12)


def test_n_bins_has_a_range_and_a_cost_linear_in_it() -> None:
    """n_bins=10**9 once asked for 24 GB, 10**7 took minutes in Python loops over the bins:
    the range is validated, and inside it the edges are computed without a loop."""
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(4), 500)
    y = rng.integers(0, 4, 500)
    for bad in (0, 100_001, 10**9):
        with pytest.raises(ValueError, match=f"from 1 to 100,000, got {bad}"):
            cal.expected_calibration_error(p, y, n_bins=bad)
    many = cal.reliability_curve(p, y, n_bins=100_000, binning="quantile")
    assert int(np.asarray(many.counts).sum()) == 500
    edges = np.asarray(cal.bin_edges(p.max(1), n_bins=100_000, binning="quantile"))
    reference = np.percentile(p.max(1), np.linspace(0, 1, 100_001) * 100)
    np.testing.assert_array_equal(edges.ravel(), reference)
