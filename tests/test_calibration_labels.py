"""Class-name targets and ``labels=`` of :func:`crossent.calibration.log_loss`.

Reference: scikit-learn's ``log_loss(y_true, y_proba, labels=..., sample_weight=...)`` on the
same inputs, for string, object, boolean, float and integer class names, every order of
``labels``, the binary 1-D shorthand, and its refusals (a target outside ``labels``, one class,
a class count other than the number of columns).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import crossent.calibration as cal

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _probs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.dirichlet(np.full(k, 0.7), size=n)


NAMES = {
    "str": np.array(["owl", "cat", "eel", "ant"]),
    "object": np.array(["owl", ("a", 1), "eel", "ant"], dtype=object)[[0, 2, 3]],
    "float": np.array([2.0, -1.0, 7.0, 0.0]),
    "int": np.array([10, 3, 7, 42]),
    "bool": np.array([True, False]),
}


@pytest.mark.parametrize("kind", sorted(NAMES))
@pytest.mark.parametrize("weighted", [False, True])
def test_class_names_match_sklearn(kind: str, weighted: bool) -> None:
    rng = np.random.default_rng(len(kind) + 10 * weighted)
    names = NAMES[kind]
    targets = names[rng.integers(0, len(names), 60)]
    targets[: len(names)] = names  # every class present, so both infer the same classes
    probs = _probs(rng, 60, len(names))
    weights = rng.uniform(0, 3, 60) if weighted else None
    expected = sklearn_metrics.log_loss(targets, probs, sample_weight=weights)
    if kind == "int":  # integers are column indices unless labels= says they are names
        got = cal.log_loss(probs, targets, weights=weights, labels=np.sort(names))
    else:
        got = cal.log_loss(probs, targets, weights=weights)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    # a list of names reads as the array does
    got_list = cal.log_loss(probs, targets.tolist(), weights=weights, labels=np.sort(names))
    assert float(got_list) == pytest.approx(expected, rel=1e-12)


def test_labels_name_classes_absent_from_the_targets() -> None:
    rng = np.random.default_rng(5)
    classes = ["a", "b", "c", "d", "e"]
    targets = np.array(["b", "d", "d", "a", "b", "d"])  # "c" and "e" never occur
    probs = _probs(rng, 6, 5)
    for base in (None, 2.0):
        expected = sklearn_metrics.log_loss(targets, probs, labels=classes)
        scale = 1.0 if base is None else np.log(base)
        got = cal.log_loss(probs, targets, labels=classes, base=base)
        assert float(got) == pytest.approx(expected / scale, rel=1e-12)


def test_unsorted_labels_warn_and_keep_the_sorted_column_order() -> None:
    rng = np.random.default_rng(6)
    targets = np.array(["x", "z", "y", "y", "x"])
    probs = _probs(rng, 5, 3)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        expected = sklearn_metrics.log_loss(targets, probs, labels=["z", "x", "y"])
    assert any("lexicographically" in str(w.message) for w in theirs)
    with pytest.warns(UserWarning, match=r"sorted classes \['x', 'y', 'z'\]"):
        got = cal.log_loss(probs, targets, labels=["z", "x", "y"])
    assert float(got) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("labels", [None, ["ham", "spam"]])
def test_binary_shorthand_is_the_probability_of_the_second_class(labels) -> None:
    rng = np.random.default_rng(7)
    targets = np.array(["spam", "ham"] * 20)[rng.permutation(40)]
    p = rng.uniform(0, 1, 40)
    p[:3] = [0.0, 1.0, 0.5]  # the clip at the machine epsilon, as scikit-learn clips
    expected = sklearn_metrics.log_loss(targets, p, labels=labels)
    assert float(cal.log_loss(p, targets, labels=labels)) == pytest.approx(expected, rel=1e-12)


def test_ignore_index_with_class_names_drops_those_rows() -> None:
    rng = np.random.default_rng(8)
    targets = np.array(["a", "b", "pad", "c", "pad", "b", "a", "c"])
    probs = _probs(rng, 8, 3)
    keep = targets != "pad"
    expected = sklearn_metrics.log_loss(targets[keep], probs[keep])
    got = cal.log_loss(probs, targets, ignore_index="pad")
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_integer_targets_without_labels_stay_column_indices() -> None:
    """The numeric fast path: integer targets index the columns, no class inference."""
    rng = np.random.default_rng(9)
    probs = _probs(rng, 30, 4)
    targets = rng.integers(1, 3, 30)  # only classes 1 and 2 occur
    expected = sklearn_metrics.log_loss(targets, probs, labels=[0, 1, 2, 3])
    assert float(cal.log_loss(probs, targets)) == pytest.approx(expected, rel=1e-12)


def _sklearn_error(*args, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        sklearn_metrics.log_loss(*args, **kwargs)
    return str(info.value)


def test_refusals_match_sklearn() -> None:
    probs = _probs(np.random.default_rng(10), 4, 3)
    targets = np.array(["a", "b", "q", "a"])
    # a target outside labels: both name it
    assert "'q'" in _sklearn_error(targets, probs, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"contain \['q'\] not among the classes"):
        cal.log_loss(probs, targets, labels=["a", "b", "c"])
    # one class only
    assert "only one label" in _sklearn_error(["a"] * 4, [0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ValueError, match="only one class"):
        cal.log_loss([0.2, 0.3, 0.4, 0.5], ["a"] * 4)
    with pytest.raises(ValueError, match="at least two classes"):
        cal.log_loss([0.2, 0.3], ["a", "a"], labels=["a"])
    # a class count other than the number of columns
    assert "different number of classes" in _sklearn_error(["a", "b", "a", "b"], probs)
    with pytest.raises(ValueError, match=r"2 classes \['a', 'b'\] but probs has 3 columns"):
        cal.log_loss(probs, ["a", "b", "a", "b"])
    # float targets that are not whole numbers are continuous values, not classes
    assert "Unknown label type" in _sklearn_error([0.0, 0.5, 1.0, 2.0], probs)
    with pytest.raises(ValueError, match=r"whole numbers.*found 0.5 at index 1"):
        cal.log_loss(probs, [0.0, 0.5, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"whole numbers.*found nan at index 1"):
        cal.log_loss(probs, [0.0, np.nan, 1.0, 2.0])
    with pytest.raises(TypeError, match="cannot be ordered"):
        cal.log_loss(probs, np.array(["a", 1, 2.5, "a"], dtype=object))


def test_other_metrics_still_refuse_class_names() -> None:
    with pytest.raises(TypeError, match="log_loss also takes class names"):
        cal.brier_score([[0.5, 0.5]], ["a"])
