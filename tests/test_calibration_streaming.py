"""StreamingCalibration against the one-shot functions on the same data (and torch.distributed).

The one-shot functions are themselves checked against scikit-learn and torchmetrics in
test_calibration.py; here the streamed figures must equal them: the counts exactly, the sums to
float64 rounding for float64 data and to the one-shot's float32 rounding for float32 data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import crossent as ce
import crossent.calibration as cal

SRC = Path(__file__).resolve().parents[1] / "src"


def sample(n: int, k: int, seed: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Over-confident softmax probabilities, some rows exactly on bin edges and at 1.0."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, k))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in 0.5 * p + 0.5 / k])
    # rows whose confidences sit on the edges of 5, 10 and 15 bins, and a certain row
    p[:4] = 0.0
    p[0, :2] = [0.6, 0.4]
    p[1, :2] = [0.2, 0.8]
    p[2, 0] = 1.0
    p[3, :3] = [0.4, 0.4, 0.2]
    return p.astype(dtype), y


def streamed(p, y, batch: int, **options) -> cal.StreamingCalibration:
    state = cal.StreamingCalibration(**options)
    for start in range(0, len(y), batch):
        state.update(p[start : start + batch], y[start : start + batch])
    return state


def assert_matches_one_shot(summary, p, y, *, rtol: float, **binning) -> None:
    kw = {"n_bins": binning.get("n_bins", 15), **binning}
    ece = cal.expected_calibration_error
    expected = {
        "log_loss": cal.log_loss(p, y),
        "brier": cal.brier_score(p, y),
        "accuracy": np.mean(p.argmax(1) == y),
        "mean_confidence": np.mean(p.max(1).astype(np.float64)),
        "ece": ece(p, y, **kw),
        "mce": ece(p, y, norm="max", **kw),
        "rmsce": ece(p, y, norm="l2", **kw),
        "ece_classwise": ece(p, y, scope="classwise", **kw),
    }
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(summary, name), float(value), rtol=rtol, err_msg=name)
    assert summary.examples == len(y)
    for scope, curve in (("top_label", summary.curve), ("classwise", summary.classwise_curve)):
        ref = cal.reliability_curve(p, y, scope=scope, **kw)
        np.testing.assert_array_equal(curve.counts, ref.counts)  # exact
        np.testing.assert_allclose(curve.edges, ref.edges, rtol=1e-7)
        np.testing.assert_allclose(curve.confidence, ref.confidence, rtol=rtol)
        np.testing.assert_allclose(curve.accuracy, ref.accuracy, rtol=rtol)


@pytest.mark.parametrize(
    "binning",
    [
        {},
        {"n_bins": 10, "right_closed": False},
        {"n_bins": 5, "right_closed": False, "ones_in_own_bin": True},
    ],
)
def test_equals_one_shot_float64(binning) -> None:
    p, y = sample(700, 6, seed=1)
    state = streamed(p, y, batch=97, classwise=True, **binning)
    assert_matches_one_shot(state.compute(), p, y, rtol=1e-12, **binning)
    # the debiased l2 from the same bins
    np.testing.assert_allclose(
        state.expected_calibration_error(norm="l2", debias=True),
        float(cal.expected_calibration_error(p, y, norm="l2", debias=True, **binning)),
        rtol=1e-12,
    )


def test_one_float64_batch_is_bitwise_the_one_shot() -> None:
    # the same per-example terms and the same additions (bincount per bin, one sum): equal to
    # the bit; the Brier term alone comes from another formula (sum p^2 - 2 p_y + 1)
    p, y = sample(500, 5, seed=8)
    state = cal.StreamingCalibration(classwise=True)
    state.update(p, y)
    summary = state.compute()
    ece = cal.expected_calibration_error
    assert summary.log_loss == float(cal.log_loss(p, y))
    assert summary.ece == float(ece(p, y))
    assert summary.mce == float(ece(p, y, norm="max"))
    assert summary.rmsce == float(ece(p, y, norm="l2"))
    assert summary.ece_classwise == float(ece(p, y, scope="classwise"))
    for scope, curve in (("top_label", summary.curve), ("classwise", summary.classwise_curve)):
        ref = cal.reliability_curve(p, y, scope=scope)
        np.testing.assert_array_equal(curve.confidence, ref.confidence)
        np.testing.assert_array_equal(curve.accuracy, ref.accuracy)


def test_float32_counts_exact_and_logits_as_the_report_reads_them() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 4, (900, 10)).astype(np.float32)
    y = rng.integers(0, 10, 900)
    probs = np.asarray(ce.softmax(logits))  # what `crossent report` scores for logits
    state = streamed(logits, y, batch=256, classwise=True)
    assert state.kind == "auto" and state._kind == "logits"
    assert_matches_one_shot(state.compute(), probs, y, rtol=2e-5)
    # float32 probabilities given directly: the same bins, decided in float32
    assert_matches_one_shot(streamed(probs, y, 128, classwise=True).compute(), probs, y, rtol=2e-5)


def test_per_class_statistics_by_brute_force() -> None:
    p, y = sample(400, 5, seed=3)
    classes = streamed(p, y, batch=150, classwise=True).compute().classes
    onehot = y[:, None] == np.arange(5)
    count = onehot.sum(0)
    loss = -np.log(np.clip(p[np.arange(len(y)), y], np.finfo(p.dtype).eps, 1))
    np.testing.assert_array_equal(classes.count, count)
    np.testing.assert_allclose(classes.mean_probability, p.mean(0), rtol=1e-12)
    np.testing.assert_allclose(
        classes.recall, ((p.argmax(1) == y)[:, None] & onehot).sum(0) / count, rtol=1e-12
    )
    np.testing.assert_allclose(classes.log_loss, (loss[:, None] * onehot).sum(0) / count)
    np.testing.assert_allclose(
        classes.ece.mean(),
        float(cal.expected_calibration_error(p, y, scope="classwise")),
        rtol=1e-12,
    )


def test_every_array_library(xp) -> None:
    # batches of one shape: JAX compiles each operation once per shape (seconds on 2 cores)
    p, y = sample(300, 4, seed=4)
    state = cal.StreamingCalibration(n_bins=10, classwise=True)
    for start in range(0, 300, 150):
        state.update(xp.asarray(p[start : start + 150]), xp.asarray(y[start : start + 150]))
    reference = streamed(p, y, 150, n_bins=10, classwise=True).compute()
    summary = state.compute()
    np.testing.assert_array_equal(summary.curve.counts, reference.curve.counts)
    np.testing.assert_array_equal(summary.classwise_curve.counts, reference.classwise_curve.counts)
    for name in ("log_loss", "brier", "accuracy", "ece", "mce", "rmsce", "ece_classwise"):
        assert getattr(summary, name) == pytest.approx(getattr(reference, name), rel=1e-12)
    # logits of this library
    logits = np.log(np.clip(p[:150], 1e-12, 1))
    from_logits = cal.StreamingCalibration(n_bins=10, kind="logits")
    from_logits.update(xp.asarray(logits), xp.asarray(y[:150]))
    probs = np.asarray(ce.softmax(logits))
    assert from_logits.compute().ece == pytest.approx(
        float(cal.expected_calibration_error(probs, y[:150], n_bins=10)), rel=1e-12
    )


def test_merge_add_and_reset() -> None:
    p, y = sample(500, 4, seed=5)
    a = streamed(p[:180], y[:180], 60, classwise=True)
    b = streamed(p[180:], y[180:], 100, classwise=True)
    both = a + b
    assert a.examples == 180 and b.examples == 320  # + leaves its operands alone
    assert_matches_one_shot(both.compute(), p, y, rtol=1e-12)
    empty = cal.StreamingCalibration(classwise=True)  # no class count yet: takes the other's
    assert_matches_one_shot(empty.merge(both).compute(), p, y, rtol=1e-12)
    with pytest.raises(ValueError, match="n_bins=15 and 10"):
        a.merge(cal.StreamingCalibration(n_bins=10, classwise=True))
    with pytest.raises(ValueError, match="4 classes but this state has num_classes=3"):
        cal.StreamingCalibration(num_classes=3, classwise=True).merge(a)
    both.reset()
    with pytest.raises(ValueError, match="no examples yet"):
        both.compute()


def test_integer_weights_equal_repeated_examples() -> None:
    p, y = sample(300, 5, seed=6)
    w = np.random.default_rng(6).integers(0, 4, 300)  # 0 drops an example
    repeated = np.repeat(np.arange(300), w)
    state = cal.StreamingCalibration(classwise=True)
    for start in range(0, 300, 100):
        s = slice(start, start + 100)
        state.update(p[s], y[s], weights=w[s].astype(np.float32))
    summary = state.compute()
    reference = streamed(p[repeated], y[repeated], 1000, classwise=True).compute()
    assert summary.examples == 300 and summary.weight == w.sum()
    for name in ("log_loss", "brier", "accuracy", "ece", "mce", "rmsce", "ece_classwise"):
        assert getattr(summary, name) == pytest.approx(getattr(reference, name), rel=1e-12), name
    np.testing.assert_allclose(
        summary.curve.accuracy, reference.curve.accuracy, rtol=1e-12, equal_nan=True
    )
    with pytest.raises(ValueError, match="unweighted"):
        state.expected_calibration_error(norm="l2", debias=True)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_ignore_index_leaves_out_padding_tokens(library) -> None:
    # a language model's batch (B, T, V) with padding labelled -100
    xp = pytest.importorskip(library)
    rng = np.random.default_rng(10)
    logits = rng.normal(0, 2, (4, 30, 12))
    labels = rng.integers(0, 12, (4, 30))
    labels[:, 20:] = -100
    state = cal.StreamingCalibration(kind="logits", classwise=True)
    state.update(xp.asarray(logits), xp.asarray(labels), ignore_index=-100)
    state.update(xp.asarray(logits[:1, 20:]), xp.asarray(labels[:1, 20:]), ignore_index=-100)
    kept = labels != -100
    probs, y = np.asarray(ce.softmax(logits[kept])), labels[kept]
    assert state.examples == kept.sum()  # the batch of padding only added nothing
    assert_matches_one_shot(state.compute(), probs, y, rtol=1e-12)


def test_per_example_summaries_give_the_top_label_figures() -> None:
    p, y = sample(600, 8, seed=7)
    confidence, correct = p.max(1), p.argmax(1) == y
    nll = -np.log(np.clip(p[np.arange(600), y], np.finfo(p.dtype).eps, 1))
    brier = ((p - (y[:, None] == np.arange(8))) ** 2).sum(1)
    state = cal.StreamingCalibration(classwise=True)
    for start in range(0, 600, 250):
        s = slice(start, start + 250)
        state.update_summaries(confidence[s], correct[s], nll[s], brier=brier[s])
    summary = state.compute()
    for name, value in {
        "ece": cal.expected_calibration_error(p, y),
        "mce": cal.expected_calibration_error(p, y, norm="max"),
        "rmsce": cal.expected_calibration_error(p, y, norm="l2"),
        "log_loss": cal.log_loss(p, y),
        "brier": cal.brier_score(p, y),
        "accuracy": np.mean(correct),
    }.items():
        assert getattr(summary, name) == pytest.approx(float(value), rel=1e-12), name
    np.testing.assert_array_equal(summary.curve.counts, cal.reliability_curve(p, y).counts)
    assert summary.ece_classwise is None and summary.classes is None
    with pytest.raises(ValueError, match="came as per-example summaries"):
        state.expected_calibration_error(scope="classwise")
    # tokens of a language model: 0/1 floats, a 0/1 mask as weights, no Brier term
    mask = (np.arange(600) % 3 != 0).astype(np.float32)
    tokens = cal.StreamingCalibration()
    tokens.update_summaries(confidence, correct.astype(np.float32), nll, weights=mask)
    kept = mask > 0
    assert tokens.compute().brier is None
    assert tokens.compute().ece == pytest.approx(
        float(cal.expected_calibration_error(p[kept], y[kept])), rel=1e-12
    )


def test_streaming_on_numpy_imports_no_framework() -> None:
    code = """
import sys
import numpy as np
import crossent.calibration as cal
state = cal.StreamingCalibration()
state.update(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0]))
state.compute()
assert not {"torch", "jax"} & set(sys.modules), "a framework was imported"
"""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


# ---------------------------------------------------------------- bad input


def _state(**kw):
    return cal.StreamingCalibration(**kw)


def _fed(**kw):
    s = _state(**kw)
    s.update(np.array([[0.7, 0.2, 0.1]]), np.array([0]))
    return s


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: _state(binning="quantile"), ValueError, "cannot stream"),
        (lambda: _state(num_classes=1), ValueError, "num_classes"),
        (lambda: _state(right_closed=True, ones_in_own_bin=True), ValueError, "right_closed"),
        (lambda: _fed().update(np.zeros((0, 3)), np.zeros(0, int)), ValueError, "no examples"),
        (lambda: _fed().update([[0.5, 0.5]], [0]), ValueError, "2 classes but this state has"),
        (lambda: _fed().update([[0.5, 0.2, 0.3]], [3]), ValueError, "found 3 at index 0"),
        (lambda: _fed().update([[0.5, np.nan, 0.3]], [1]), ValueError, r"nan at index \(0, 1\)"),
        (lambda: _fed().update([[1.5, -0.2, -0.3]], [1]), ValueError, r"1.5 at index \(0, 0\)"),
        (lambda: _fed().update([[0.5, 0.2, 0.3]], [0.0]), TypeError, "integer"),
        (
            lambda: _fed().update([[0.5, 0.2, 0.3]], [1], weights=[-1.0]),
            ValueError,
            "found -1.0 at index 0",
        ),
        (lambda: _fed().update_summaries([1.5], [True], [0.1]), ValueError, "confidence.*1.5"),
        (lambda: _fed().update_summaries([0.5], [2], [0.1]), ValueError, "correct.*2"),
        (lambda: _fed().update_summaries([0.5], [1], [np.nan]), ValueError, "nll.*nan"),
        (lambda: _fed().update_summaries([0.5, 0.6], [1], [0.1]), ValueError, "shape"),
        (lambda: _fed().update_summaries([], [], []), ValueError, "no examples"),
        (lambda: _state().compute(), ValueError, "no examples yet"),
        (lambda: _fed().expected_calibration_error(scope="classwise"), ValueError, "classwise="),
        (lambda: _fed().expected_calibration_error(norm="l3"), ValueError, "norm"),
    ],
)
def test_bad_input_is_named(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_nan_logits_are_named_and_a_failed_update_changes_nothing() -> None:
    state = cal.StreamingCalibration(kind="logits", classwise=True)
    state.update(np.array([[1.0, 2.0, 3.0]]), np.array([2]))
    before = state.copy()
    with pytest.raises(ValueError, match=r"logits must not be NaN; found nan at index \(1, 2\)"):
        state.update(np.array([[1.0, 2.0, 3.0], [0.0, 1.0, np.nan]]), np.array([0, 1]))
    for name, value in before._sums.items():
        np.testing.assert_array_equal(state._sums[name], value, err_msg=name)


def test_checks_work_where_the_data_cannot_be_read_for_free(monkeypatch) -> None:
    """On a GPU the usual validators skip (is_concrete is False); the packed counts still catch."""
    import crossent._validation as validation

    torch = pytest.importorskip("torch")
    monkeypatch.setattr(validation, "is_concrete", lambda x: False)
    state = cal.StreamingCalibration(kind="probs", classwise=True)
    with pytest.raises(ValueError, match="found 7 at index 1"):
        state.update(torch.tensor([[0.5, 0.5], [0.2, 0.8]]), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match=r"found 1.25 at index \(0, 0\)"):
        state.update(torch.tensor([[1.25, -0.25]]), torch.tensor([0]))
    assert state.examples == 0 and state.num_classes is None


def test_cuda_tensors_are_reduced_on_the_device() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    p, y = sample(2000, 10, seed=9)
    w = np.random.default_rng(9).random(2000)
    for weights in (None, w):
        on_gpu = cal.StreamingCalibration(classwise=True)
        on_cpu = cal.StreamingCalibration(classwise=True)
        for start in range(0, 2000, 512):
            s = slice(start, start + 512)
            ws = None if weights is None else weights[s]
            on_cpu.update(p[s], y[s], weights=ws)
            on_gpu.update(
                torch.from_numpy(p[s]).cuda(),
                torch.from_numpy(y[s]).cuda(),
                weights=None if ws is None else torch.from_numpy(ws).cuda(),
            )
        a, b = on_gpu.compute(), on_cpu.compute()
        np.testing.assert_array_equal(a.classwise_curve.counts, b.classwise_curve.counts)
        for name in ("log_loss", "brier", "ece", "mce", "rmsce", "ece_classwise"):
            assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-12), name
    with pytest.raises(ValueError, match="found 10 at index 3"):
        on_gpu.update(torch.rand(5, 10).cuda().softmax(1), torch.tensor([0, 1, 2, 10, 4]).cuda())


# ---------------------------------------------------------------- torch.distributed

WORKER = """
import json, os, sys
import numpy as np
import torch
import torch.distributed as dist
import crossent.calibration as cal

rank, world, store = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
rng = np.random.default_rng(0)
p = rng.dirichlet(np.full(7, 0.3), size=1000)
y = rng.integers(0, 7, 1000)
shards = np.split(np.arange(1000), [100, 650])
state = cal.StreamingCalibration(n_bins=12, classwise=True)
if rank < world - 1:  # the last rank sees no batch at all: its class count comes from the others
    rows = shards[rank]
    for start in range(0, len(rows), 128):
        batch = rows[start : start + 128]
        values, labels = p[batch], y[batch]
        if rank == 1:  # another library on another rank
            values, labels = torch.from_numpy(values), torch.from_numpy(labels)
        state.update(values, labels)
total = state.sync()
again = state.sync()  # the local state is unchanged: syncing twice gives the same total
s = total.compute()
assert (again.examples, again.compute().ece) == (s.examples, s.ece)
print(json.dumps({"examples": s.examples, "ece": s.ece, "ece_classwise": s.ece_classwise,
                  "log_loss": s.log_loss, "counts": s.classwise_curve.counts.tolist()}))
dist.barrier()  # every rank done before any leaves
# leave without gloo's teardown, which aborts now and then under load (SIGABRT, "terminate
# called without an active exception"; see test_linear_parallel)
sys.stdout.flush()
os._exit(0)
"""


def test_sync_without_a_process_group_says_so() -> None:
    pytest.importorskip("torch.distributed")
    with pytest.raises(RuntimeError, match="init_process_group"):
        _fed().sync()


def test_sync_over_gloo_gives_every_rank_the_full_data(tmp_path) -> None:
    pytest.importorskip("torch.distributed")
    world = 3
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    store = tmp_path / "store"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(world), str(store)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank in range(world)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(7, 0.3), size=1000)
    y = rng.integers(0, 7, 1000)
    seen = slice(0, 650)  # shards 0 and 1; the last rank had none
    p, y = p[seen], y[seen]
    counts = cal.reliability_curve(p, y, n_bins=12, scope="classwise").counts
    for r in results:
        assert r["examples"] == 650
        assert r["counts"] == counts.tolist()
        assert r["ece"] == pytest.approx(
            float(cal.expected_calibration_error(p, y, n_bins=12)), rel=1e-12
        )
        assert r["ece_classwise"] == pytest.approx(
            float(cal.expected_calibration_error(p, y, n_bins=12, scope="classwise")), rel=1e-12
        )
        assert r["log_loss"] == pytest.approx(float(cal.log_loss(p, y)), rel=1e-12)
