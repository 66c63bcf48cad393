"""crossent.diagnose: each classic mistake is found, measured, and clean inputs give nothing."""

from __future__ import annotations

import numpy as np
import pytest

import crossent as ce
from conftest import to_np

RNG = np.random.default_rng(7)
LOGITS = RNG.normal(size=(8, 5)) * 2
TARGETS = RNG.integers(0, 5, size=8)


def codes(findings):
    return [f.code for f in findings]


def test_clean_inputs_give_no_finding(xp):
    assert ce.diagnose(xp.asarray(LOGITS), xp.asarray(TARGETS)) == []


def test_double_softmax_is_found_and_measured():
    probs = ce.softmax(LOGITS)
    (finding,) = ce.diagnose(probs, TARGETS)
    assert finding.code == "probabilities_as_logits"
    # Independent measurement with torch autograd through softmax applied twice.
    torch = pytest.importorskip("torch")
    z = torch.tensor(LOGITS, requires_grad=True)
    torch.nn.functional.cross_entropy(torch.softmax(z, -1), torch.tensor(TARGETS)).backward()
    wrong = z.grad.norm(dim=-1).mean().item()
    z.grad = None
    torch.nn.functional.cross_entropy(z, torch.tensor(TARGETS)).backward()
    right = z.grad.norm(dim=-1).mean().item()
    assert f"{wrong / right:.1%}" in finding.message
    assert wrong / right < 0.5  # the bug's gradient really is much smaller


@pytest.mark.parametrize(
    ("values", "targets", "code"),
    [
        (LOGITS, np.where(np.arange(8) == 3, 9, TARGETS), "targets_out_of_range"),
        (LOGITS, ce.one_hot(TARGETS, 5), "one_hot_targets"),
        (LOGITS, ce.one_hot(TARGETS, 5).astype(np.int64), "one_hot_integer_targets"),
        (LOGITS, TARGETS.astype(np.float32), "float_index_targets"),
        (LOGITS, TARGETS[:, None], "targets_extra_axis"),
        (LOGITS, np.full(8, -100), "all_ignored"),
        (LOGITS, TARGETS[:4], "targets_shape"),
        (LOGITS, ce.softmax(LOGITS) * 0.5, "targets_not_normalized"),
        (np.where(np.arange(5) == 2, np.nan, LOGITS), TARGETS, "nan"),
        (np.where(np.arange(5) == 2, np.inf, LOGITS), TARGETS, "inf"),
        (ce.sigmoid(LOGITS), TARGETS, "rows_not_normalized"),
        (ce.log_softmax(LOGITS), TARGETS, "log_probabilities"),
    ],
)
def test_each_mistake_is_named(values, targets, code):
    assert code in codes(ce.diagnose(values, targets))


def test_out_of_range_message_names_value_and_index():
    targets = TARGETS.copy()
    targets[3] = 9
    (finding,) = ce.diagnose(LOGITS, targets)
    assert "found 9 at index 3" in finding.message
    assert finding.severity == "error"


def test_class_axis_is_respected(xp):
    values = xp.asarray(np.moveaxis(ce.softmax(LOGITS), -1, 0))
    assert codes(ce.diagnose(values, xp.asarray(TARGETS), axis=0)) == ["probabilities_as_logits"]
    assert to_np(values).shape == (5, 8)
