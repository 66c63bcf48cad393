"""Per-example weights (``weights=``) of the calibration functions.

References: scikit-learn's ``sample_weight`` (log_loss, brier_score_loss, accuracy_score), and
the rule that integer weights equal repeated rows, checked against float64 brute-force loops
(ECE, MCE, RMSCE, class-wise ECE), the unweighted functions on the repeated rows (temperature
fit, Brier decomposition, smooth ECE, bootstrap estimates) and the streaming state.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent.calibration as cal


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """400 examples of 6 classes (over-confident softmax, labels drawn from a softer one),
    float64 probabilities, labels, integer weights 0..3 and the rows they repeat."""
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, (400, 6))
    soft = np.exp(z - z.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    labels = np.array([rng.choice(6, p=row) for row in soft])
    sharp = np.exp(2 * z - 2 * z.max(1, keepdims=True))
    probs = sharp / sharp.sum(1, keepdims=True)
    weights = rng.integers(0, 4, 400).astype(np.float64)
    rows = np.repeat(np.arange(400), weights.astype(np.intp))
    return probs, labels, weights, rows


def _brute_ece(conf: np.ndarray, hit: np.ndarray, n_bins: int) -> dict[str, float]:
    """ECE, MCE and RMSCE of one column by a loop over (lo, hi] bins, in float64."""
    n = len(conf)
    l1 = l2 = worst = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = [i for i in range(n) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0.0)]
        if not inside:
            continue
        gap = abs(
            sum(float(hit[i]) for i in inside) / len(inside) - sum(conf[inside]) / len(inside)
        )
        l1 += len(inside) / n * gap
        l2 += len(inside) / n * gap * gap
        worst = max(worst, gap)
    return {"l1": l1, "l2": math.sqrt(l2), "max": worst}


def test_scores_match_sklearn_sample_weight(data) -> None:
    from sklearn.metrics import accuracy_score, brier_score_loss, log_loss

    probs, labels, _, _ = data
    w = np.random.default_rng(1).uniform(0, 5, len(labels))  # real, not whole, weights
    k = range(probs.shape[1])
    assert float(cal.log_loss(probs, labels, weights=w)) == pytest.approx(
        log_loss(labels, probs, sample_weight=w, labels=k), rel=1e-12
    )
    assert float(cal.brier_score(probs, labels, weights=w)) == pytest.approx(
        brier_score_loss(labels, probs, sample_weight=w, labels=k), rel=1e-12
    )
    assert float(cal.top_k_accuracy(probs, labels, weights=w)) == pytest.approx(
        accuracy_score(labels, probs.argmax(1), sample_weight=w), rel=1e-12
    )
    # binary shorthand: scikit-learn's binary Brier is half the two-class sum of squares
    p1, y1 = probs[:, 0], (labels == 0).astype(np.int64)
    assert float(cal.brier_score(p1, y1, weights=w)) == pytest.approx(
        2 * brier_score_loss(y1, p1, sample_weight=w), rel=1e-12
    )


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_integer_weights_equal_repeated_rows_for_ece(data, norm: str) -> None:
    probs, labels, w, rows = data
    p, y = probs[rows], labels[rows]
    top = _brute_ece(p.max(1), p.argmax(1) == y, 15)[norm]
    assert float(cal.expected_calibration_error(probs, labels, weights=w, norm=norm)) == (
        pytest.approx(top, rel=1e-12, abs=1e-15)
    )
    per_class = [_brute_ece(p[:, c], y == c, 15)[norm] for c in range(6)]
    reduce = {"l1": np.mean, "l2": lambda e: math.sqrt(np.mean(np.square(e))), "max": np.max}
    ours = cal.expected_calibration_error(probs, labels, weights=w, norm=norm, scope="classwise")
    assert float(ours) == pytest.approx(reduce[norm](per_class), rel=1e-12, abs=1e-15)


def test_integer_weights_equal_repeated_rows_elsewhere(data) -> None:
    probs, labels, w, rows = data
    p, y = probs[rows], labels[rows]
    curve = cal.reliability_curve(probs, labels, weights=w)
    plain = cal.reliability_curve(p, y)
    np.testing.assert_allclose(curve.counts, plain.counts)
    np.testing.assert_allclose(curve.accuracy, plain.accuracy, rtol=1e-12)
    logits = np.log(probs)
    assert cal.fit_temperature(logits, labels, weights=w) == pytest.approx(
        cal.fit_temperature(logits[rows], y), rel=1e-9
    )
    d = cal.log_loss_decomposition(logits, labels, weights=w)
    e = cal.log_loss_decomposition(logits[rows], y)
    assert (d.log_loss, d.calibration) == pytest.approx((e.log_loss, e.calibration), rel=1e-9)
    got = cal.brier_sums(probs[:150], labels[:150], weights=w[:150])
    got = (got + cal.brier_sums(probs[150:], labels[150:], weights=w[150:])).decomposition()
    want = cal.brier_decomposition(p, y)
    for field in ("brier", "reliability", "resolution", "uncertainty"):
        assert getattr(got, field) == pytest.approx(getattr(want, field), rel=1e-10)
    conf, hit = probs.max(1), probs.argmax(1) == labels
    assert cal.smooth_ece_from_summaries(conf, hit, weights=w).value == pytest.approx(
        cal.smooth_ece_from_summaries(conf[rows], hit[rows]).value, rel=1e-10
    )


def test_streaming_state_agrees_with_the_weighted_one_shot(data) -> None:
    probs, labels, _, _ = data
    w = np.random.default_rng(2).uniform(0, 3, len(labels))
    state = cal.StreamingCalibration(classwise=True)
    for part in np.array_split(np.arange(len(labels)), 3):
        state.update(probs[part], labels[part], weights=w[part])
    summary = state.compute()
    assert summary.log_loss == pytest.approx(float(cal.log_loss(probs, labels, weights=w)))
    assert summary.ece == pytest.approx(
        float(cal.expected_calibration_error(probs, labels, weights=w)), rel=1e-12
    )
    assert summary.ece_classwise == pytest.approx(
        float(cal.expected_calibration_error(probs, labels, weights=w, scope="classwise")),
        rel=1e-12,
    )


def test_bootstrap_resamples_keep_the_weights_of_the_rows_drawn(data) -> None:
    probs, labels, _, _ = data
    w = np.random.default_rng(4).uniform(0, 3, len(labels))
    metrics = ["log_loss_nats", "ece", "ece_classwise", "brier", "accuracy", "smooth_ece"]
    result = cal.bootstrap_intervals(
        probs, labels, weights=w, metrics=metrics, n_resamples=3, seed=7
    )
    rng = np.random.default_rng(7)
    n = len(labels)
    for r in range(3):  # the resamples, drawn as the function draws them
        i = rng.integers(0, n, size=n)
        p, y, wi = probs[i], labels[i], w[i]
        assert result.replicates["log_loss_nats"][r] == pytest.approx(
            float(cal.log_loss(p, y, weights=wi)), rel=1e-12
        )
        assert result.replicates["ece"][r] == pytest.approx(
            float(cal.expected_calibration_error(p, y, weights=wi)), rel=1e-10
        )
        assert result.replicates["ece_classwise"][r] == pytest.approx(
            float(cal.expected_calibration_error(p, y, weights=wi, scope="classwise")), rel=1e-10
        )
        assert result.replicates["brier"][r] == pytest.approx(
            float(cal.brier_score(p, y, weights=wi)), rel=1e-12
        )
    assert result["accuracy"].estimate == pytest.approx(
        float(cal.top_k_accuracy(probs, labels, weights=w))
    )
    with pytest.raises(ValueError, match="aurc has no weighted form"):
        cal.bootstrap_intervals(probs, labels, weights=w, metrics=["aurc"], n_resamples=2)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([1.0, -1.0, 1.0], r"finite and >= 0; found -1.0 at index 1"),
        ([1.0, 1.0, math.nan], r"finite and >= 0; found nan at index 2"),
        ([math.inf, 1.0, 1.0], r"finite and >= 0; found inf at index 0"),
        ([1.0, 1.0], r"weights must have the labels' shape \(3,\).*got shape \(2,\)"),
        ([0.0, 0.0, 0.0], r"must not all be 0"),
    ],
)
def test_hostile_weights_are_named(weights, match) -> None:
    probs = [[0.7, 0.3], [0.4, 0.6], [0.5, 0.5]]
    labels = [0, 1, 1]
    w = np.asarray(weights)
    for call in (
        lambda: cal.log_loss(probs, labels, weights=w),
        lambda: cal.brier_score(probs, labels, weights=w),
        lambda: cal.top_k_accuracy(probs, labels, weights=w),
        lambda: cal.expected_calibration_error(probs, labels, weights=w),
        lambda: cal.fit_temperature(probs, labels, weights=w),
        lambda: cal.bin_statistics([0.7, 0.6, 0.5], [1, 1, 0], edges=[0, 0.5, 1], weights=w),
    ):
        with pytest.raises(ValueError, match=match):
            call()
    with pytest.raises(ValueError, match="debias=True needs unweighted"):
        cal.expected_calibration_error(probs, labels, weights=[1, 1, 1], norm="l2", debias=True)


def test_weights_on_every_backend(xp, data) -> None:
    """The same weighted figures on every array library (weights of the probabilities' kind)."""
    from conftest import to_np

    probs, labels, w, _ = data
    p, y, weights = xp.asarray(probs), xp.asarray(labels), xp.asarray(w)
    for fn in (cal.brier_score, cal.log_loss, cal.top_k_accuracy):
        ours = float(to_np(fn(p, y, weights=weights)))
        assert ours == pytest.approx(float(fn(probs, labels, weights=w)), rel=1e-5)
    for scope in ("top_label", "classwise"):
        ours = cal.expected_calibration_error(p, y, weights=weights, scope=scope)
        ref = cal.expected_calibration_error(probs, labels, weights=w, scope=scope)
        assert float(to_np(ours)) == pytest.approx(float(ref), rel=1e-5), scope
