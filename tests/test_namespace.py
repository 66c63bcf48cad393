"""crossent._namespace.namespace: the errors of the array arguments name the argument.

Three classes an audit found (each once an unhelpful message or an AttributeError): a required
array given as None, arrays of two libraries in one call, and a NumPy array of an ml_dtypes
dtype (bfloat16), which NumPy's math cannot compute with.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent as ce
from crossent import calibration as cal

torch = pytest.importorskip("torch")

P = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
Y = np.array([0, 2])

# (call with a None argument, the name the message must give)
NONE_CALLS = [
    (lambda: ce.softmax_cross_entropy(P, None), "targets"),
    (lambda: ce.softmax_cross_entropy(None, Y), "predictions"),
    (lambda: ce.sigmoid_binary_cross_entropy(P, None), "targets"),
    (lambda: ce.logsumexp(None), "x"),
    (lambda: ce.softmax(None), "x"),
    (lambda: ce.entropy(None), "p"),
    (lambda: ce.kl_divergence(P, None), "q"),
    (lambda: ce.distillation_loss(P, None), "teacher_logits"),
    (lambda: cal.expected_calibration_error(P, None), "labels"),
    (lambda: cal.log_loss(None, Y), "probs"),
]


@pytest.mark.parametrize(("call", "name"), NONE_CALLS)
def test_a_required_array_given_as_none_is_named(call, name) -> None:
    with pytest.raises(TypeError, match=rf"^{name} must be an array"):
        call()


MIXED_CALLS = [
    (lambda: ce.softmax_cross_entropy(torch.tensor(P), Y), "predictions is a torch.Tensor"),
    (lambda: ce.sigmoid_binary_cross_entropy(torch.tensor(P), P), "targets is a numpy.ndarray"),
    (lambda: ce.kl_divergence(torch.tensor(P), P), "q is a numpy.ndarray"),
    (lambda: cal.expected_calibration_error(torch.tensor(P), Y), "labels is a numpy.ndarray"),
    (lambda: ce.logsumexp(torch.tensor(P), b=P), "b is a numpy.ndarray"),
]


@pytest.mark.parametrize(("call", "fragment"), MIXED_CALLS)
def test_arrays_of_two_libraries_are_named(call, fragment) -> None:
    with pytest.raises(TypeError, match="come from different libraries") as info:
        call()
    assert fragment in str(info.value) and "module" not in str(info.value)


def test_an_ml_dtypes_array_says_how_to_convert_it() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    z = P.astype(ml_dtypes.bfloat16)
    for call in (lambda: ce.softmax_cross_entropy(z, Y), lambda: ce.softmax(z)):
        with pytest.raises(TypeError, match=r"dtype bfloat16 \(ml_dtypes\).*astype\(np.float32\)"):
            call()
    # the advice works: the same values in float32
    assert np.isfinite(float(ce.softmax_cross_entropy(z.astype(np.float32), Y)))


def test_optional_arrays_may_be_none_and_lists_still_work() -> None:
    assert float(ce.perplexity([0.5, 0.5])) == pytest.approx(2.0)
    assert float(ce.softmax_cross_entropy(P.tolist(), Y.tolist(), class_weight=None)) > 0


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
def test_clip_equals_the_library_clip(library):
    """The JAX form (two maxima) gives np.clip's values, NaN and +-inf included."""
    from crossent._namespace import clip, namespace

    x = np.array([-np.inf, -2.0, 1e-9, 0.3, 1.0, 5.0, np.inf, np.nan], dtype=np.float32)
    expected = np.clip(x, np.float32(1e-7), np.float32(1 - 1e-7))
    module = pytest.importorskip(library)
    make = {"numpy": np.asarray, "torch": getattr(module, "as_tensor", None)}
    a = module.numpy.asarray(x) if library == "jax" else make[library](x)
    xp, _ = namespace(a)
    np.testing.assert_array_equal(np.asarray(clip(xp, a, 1e-7, 1 - 1e-7)), expected)
