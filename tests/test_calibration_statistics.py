"""crossent.calibration's Brier decomposition and risk-coverage curve against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import crossent as ce
import crossent.calibration as cal


def problem(n: int = 400, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = np.asarray(ce.softmax(2 * rng.normal(size=(n, k))))
    probs[:20] = np.round(probs[:20], 1)  # entries on the bin edges
    probs[:20] /= probs[:20].sum(axis=1, keepdims=True)
    probs[20] = np.eye(k)[1]  # a confidence of exactly 1
    labels = (rng.random((n, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    return probs, np.minimum(labels, k - 1)


# ---------------------------------------------------------------- Brier decomposition


def brute_decomposition(forecasts: np.ndarray, outcomes: np.ndarray, bins: np.ndarray) -> dict:
    """Murphy's terms and the two within-bin terms, column by column and bin by bin."""
    n = forecasts.shape[0]
    terms = dict.fromkeys(("rel", "res", "unc", "wbv", "wbc"), 0.0)
    for c in range(forecasts.shape[1]):
        f, o, b = forecasts[:, c], outcomes[:, c], bins[:, c]
        base = o.mean()
        terms["unc"] += base * (1 - base)
        for j in np.unique(b):
            fj, oj = f[b == j], o[b == j]
            terms["rel"] += len(fj) * (fj.mean() - oj.mean()) ** 2 / n
            terms["res"] += len(fj) * (oj.mean() - base) ** 2 / n
            terms["wbv"] += np.sum((fj - fj.mean()) ** 2) / n
            terms["wbc"] += 2 * np.sum((fj - fj.mean()) * (oj - oj.mean())) / n
    return terms


def curve_bins(forecasts: np.ndarray, edges: np.ndarray, right_closed: bool) -> np.ndarray:
    """Bin of each forecast from a reliability curve's edges (one row per column)."""
    edges = np.atleast_2d(edges)
    inner = edges[:, 1:-1]
    above = forecasts[:, :, None] > inner if right_closed else forecasts[:, :, None] >= inner
    return above.sum(axis=-1)


@pytest.mark.parametrize("scope", ["classwise", "top_label"])
@pytest.mark.parametrize(
    "bins", [{}, {"binning": "quantile", "n_bins": 8}, {"right_closed": False, "n_bins": 10}]
)
def test_decomposition_against_brute_force(scope: str, bins: dict) -> None:
    probs, labels = problem()
    k = probs.shape[1]
    if scope == "classwise":
        forecasts, outcomes = probs, (labels[:, None] == np.arange(k)).astype(float)
        score = float(cal.brier_score(probs, labels))
    else:
        forecasts = probs.max(axis=1, keepdims=True)
        outcomes = (probs.argmax(axis=1) == labels).astype(float)[:, None]
        score = float(np.mean((forecasts - outcomes) ** 2))
    edges = cal.reliability_curve(probs, labels, scope=scope, **bins).edges
    brute = brute_decomposition(
        forecasts, outcomes, curve_bins(forecasts, edges, bins.get("right_closed", True))
    )
    d = cal.brier_decomposition(probs, labels, scope=scope, **bins)
    assert d.brier == pytest.approx(score, rel=1e-12)
    assert d.reliability == pytest.approx(brute["rel"], rel=1e-12)
    assert d.resolution == pytest.approx(brute["res"], rel=1e-12)
    assert d.uncertainty == pytest.approx(brute["unc"], rel=1e-12)
    assert d.within_bin_variance == pytest.approx(brute["wbv"], rel=1e-10)
    assert d.within_bin_covariance == pytest.approx(brute["wbc"], rel=1e-9, abs=1e-15)
    identity = (
        d.reliability
        - d.resolution
        + d.uncertainty
        + d.within_bin_variance
        - d.within_bin_covariance
    )
    assert identity == pytest.approx(score, rel=1e-12)
    assert d.within_bin_variance > 1e-4  # continuous forecasts: the extra terms are not 0


def test_three_terms_are_exact_for_forecasts_constant_in_each_bin() -> None:
    """Murphy's identity BS = REL - RES + UNC, with forecasts taking one value per bin."""
    rng = np.random.default_rng(3)
    rows = np.array([[0.72, 0.18, 0.1], [0.1, 0.72, 0.18], [0.18, 0.1, 0.72], [0.45, 0.3, 0.25]])
    probs = rows[rng.integers(0, 4, size=500)]
    labels = (rng.random((500, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    d = cal.brier_decomposition(probs, labels, n_bins=10)
    assert abs(d.within_bin_variance) < 1e-13 and abs(d.within_bin_covariance) < 1e-13
    three = d.reliability - d.resolution + d.uncertainty
    assert three == pytest.approx(float(cal.brier_score(probs, labels)), rel=1e-13)


def test_reliability_is_the_squared_calibration_error() -> None:
    """REL (top-label) = RMSCE^2, and REL (class-wise) = K x class-wise RMSCE^2."""
    probs, labels = problem(k=6)
    top = cal.brier_decomposition(probs, labels, scope="top_label")
    rmsce = float(cal.expected_calibration_error(probs, labels, norm="l2"))
    assert top.reliability == pytest.approx(rmsce**2, rel=1e-12)
    classwise = cal.brier_decomposition(probs, labels)
    marginal = float(cal.expected_calibration_error(probs, labels, norm="l2", scope="classwise"))
    assert classwise.reliability == pytest.approx(6 * marginal**2, rel=1e-12)


def test_float32_at_scale_against_float64() -> None:
    """Many classes (the first bin holds most entries, found as a column total): float32 input
    against float64 input; and the binary shorthand equals its two columns."""
    probs, labels = problem(n=3000, k=200, seed=4)
    d32 = cal.brier_decomposition(probs.astype(np.float32), labels)
    d64 = cal.brier_decomposition(probs, labels)
    for name in ("brier", "reliability", "resolution", "uncertainty", "within_bin_variance"):
        assert getattr(d32, name) == pytest.approx(getattr(d64, name), rel=1e-5), name
    p1 = np.random.default_rng(5).uniform(0, 1, 500)
    labels = labels[:500]
    binary = cal.brier_decomposition(p1, (labels == 1).astype(int))
    two = cal.brier_decomposition(np.stack([1 - p1, p1], axis=1), (labels == 1).astype(int))
    assert binary == two


# ---------------------------------------------------------------- risk-coverage and AURC


def selective_risks(error_in_order: np.ndarray) -> np.ndarray:
    """E_k / k for k = 1..N, the examples taken in the given order."""
    return np.cumsum(error_in_order) / np.arange(1, len(error_in_order) + 1)


def test_risk_coverage_without_ties_against_brute_force() -> None:
    probs, labels = problem(n=300, seed=6)
    probs = probs[21:]  # no rounded rows: every confidence distinct
    labels = labels[21:]
    conf = probs.max(axis=1)
    assert len(np.unique(conf)) == len(conf)
    error = (probs.argmax(axis=1) != labels).astype(float)
    order = np.argsort(-conf)
    risks = selective_risks(error[order])
    rc = cal.risk_coverage_curve(probs, labels)
    np.testing.assert_allclose(rc.threshold, conf[order])
    np.testing.assert_allclose(rc.coverage, np.arange(1, len(conf) + 1) / len(conf))
    np.testing.assert_allclose(rc.risk, risks, rtol=1e-14)
    assert rc.aurc == pytest.approx(np.mean(risks), rel=1e-12)
    oracle = np.mean(selective_risks(np.sort(error)))  # every error last
    assert rc.optimal_aurc == pytest.approx(oracle, rel=1e-12)
    assert rc.excess_aurc == pytest.approx(np.mean(risks) - oracle, rel=1e-12)
    r = error.mean()  # Geifman et al.'s approximation of the optimum, O(1/N) away
    assert rc.optimal_aurc == pytest.approx(r + (1 - r) * math.log(1 - r), abs=2 / len(conf))


def test_ties_are_averaged_over_every_order() -> None:
    """With tied confidences, the AURC is the mean of the tie-broken AURCs over all orders."""
    conf = np.array([0.9, 0.8, 0.8, 0.8, 0.7, 0.6, 0.6, 0.55])
    error = np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = error.astype(int)  # the prediction is class 0
    rc = cal.risk_coverage_curve(probs, labels)
    groups = [[0], [1, 2, 3], [4], [5, 6], [7]]
    aurcs = []
    for orders in itertools.product(*(itertools.permutations(g) for g in groups)):
        ranking = [i for order in orders for i in order]
        aurcs.append(np.mean(selective_risks(error[ranking])))
    assert len(aurcs) == 12
    assert rc.aurc == pytest.approx(np.mean(aurcs), rel=1e-13)
    # one point per distinct confidence, the tied examples covered together
    np.testing.assert_allclose(rc.threshold, [0.9, 0.8, 0.7, 0.6, 0.55])
    np.testing.assert_allclose(rc.coverage, np.array([1, 4, 5, 7, 8]) / 8)
    np.testing.assert_allclose(rc.risk, [0, 2 / 4, 2 / 5, 3 / 7, 4 / 8])
    shuffled = np.random.default_rng(0).permutation(8)
    again = cal.risk_coverage_curve(probs[shuffled], labels[shuffled])
    assert again.aurc == rc.aurc  # independent of the input order


def test_risk_coverage_extremes_and_inputs() -> None:
    right = cal.risk_coverage_curve([[0.9, 0.1], [0.3, 0.7]], [0, 1])
    assert (right.aurc, right.optimal_aurc, right.excess_aurc) == (0.0, 0.0, 0.0)
    wrong = cal.risk_coverage_curve([[0.9, 0.1], [0.3, 0.7]], [1, 0])
    assert wrong.aurc == pytest.approx(1.0) and wrong.optimal_aurc == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"must be in \[0, 2\); found 2 at index 0"):
        cal.risk_coverage_curve([[0.9, 0.1]], [2])
    with pytest.raises(ValueError, match="scope must be one of"):
        cal.brier_decomposition([[0.9, 0.1]], [0], scope="binary")


def test_torch_input_gives_the_numpy_result() -> None:
    torch = pytest.importorskip("torch")
    probs, labels = problem()
    tp, tl = torch.from_numpy(probs), torch.from_numpy(labels)
    assert cal.brier_decomposition(tp, tl) == cal.brier_decomposition(probs, labels)
    assert cal.risk_coverage_curve(tp, tl).aurc == cal.risk_coverage_curve(probs, labels).aurc


def test_summaries_give_the_figures_of_the_probabilities():
    """The per-example entry points (a report's or a language model's summaries) equal the
    probability ones, and Brier sums of blocks add up to the whole set's decomposition."""
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(4), size=300)
    labels = rng.integers(0, 4, size=300)
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    assert cal.smooth_ece_from_summaries(conf, correct) == cal.smooth_ece(probs, labels)
    got = cal.risk_coverage_from_summaries(conf, correct.astype(int))
    want = cal.risk_coverage_curve(probs, labels)
    assert got.aurc == want.aurc and np.array_equal(got.risk, want.risk)
    sums = cal.brier_sums(probs[:100], labels[:100], n_bins=7) + cal.brier_sums(
        probs[100:], labels[100:], n_bins=7
    )
    whole = cal.brier_decomposition(probs, labels, n_bins=7)
    for field in ("brier", "reliability", "resolution", "uncertainty", "within_bin_variance"):
        assert getattr(sums.decomposition(), field) == pytest.approx(
            getattr(whole, field), rel=1e-12
        )
    with pytest.raises(ValueError, match=r"confidence must lie in \[0, 1\]; got 1.5 at index 1"):
        cal.risk_coverage_from_summaries([0.5, 1.5], [1, 0])
    with pytest.raises(ValueError, match="same non-zero length"):
        cal.smooth_ece_from_summaries([0.5, 0.7], [1])
    with pytest.raises(ValueError, match="0/1"):
        cal.smooth_ece_from_summaries([0.5, 0.7], [1, 2])
