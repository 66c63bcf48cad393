"""``crossent train``: the hand-written backward pass, the measured claims, the files it writes."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from crossent.apps import cli, train


def run(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["crossent", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), out, err


@pytest.mark.parametrize("loss", ["ce", "mse", "smooth", "focal", "weighted"])
def test_backward_pass_matches_finite_differences(loss: str) -> None:
    """crossent.grad's d loss / d logits, chained by hand through the network, is the gradient."""
    rng = np.random.default_rng(0)
    params = train.init_params(rng, 5, 3.0)
    x = rng.random((7, 5))
    y = rng.integers(0, 10, 7)
    weight = rng.uniform(0.5, 2.0, 10)
    s = train.Settings()
    grads = train.gradients(params, x, y, loss, s, weight)
    h = 1e-6
    for p, g in zip(params, grads, strict=True):
        for index in [tuple(rng.integers(0, n) for n in p.shape) for _ in range(4)]:
            old = p[index]
            p[index] = old + h
            up = train.loss_value(params, x, y, loss, s, weight)
            p[index] = old - h
            down = train.loss_value(params, x, y, loss, s, weight)
            p[index] = old
            assert g[index] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_train_measures_the_claims_and_feeds_the_report(tmp_path, capsys, monkeypatch) -> None:
    out_dir = tmp_path / "run"
    code, out, err = run(
        capsys, monkeypatch, "train", "--epochs", "8", "--out", str(out_dir), "--json"
    )
    assert code == 0, err
    results = json.loads(out)
    claims = {c["claim"].split(" (")[0]: c for c in results["claims"]}
    bad_start = claims["cross-entropy learns faster than MSE from a bad start"]
    assert bad_start["holds"]
    measured = bad_start["measured"]
    assert measured["ce_test_accuracy_final"] > 0.9 > measured["mse_test_accuracy_final"]
    calibration = claims["label smoothing and focal loss change calibration"]
    assert calibration["holds"]
    m = calibration["measured"]
    assert m["smooth_mean_confidence"] < m["ce_mean_confidence"]
    assert m["focal_mean_confidence"] < m["ce_mean_confidence"]
    assert results["test_examples"] == 539 and results["train_examples"] == 1258
    for name in ("curves.png", "calibration.png", "results.json", "predictions-ce.npz"):
        assert (out_dir / name).stat().st_size > 0
    assert (out_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(out_dir / "predictions-ce.npz") as d:
        assert d["logits"].shape == (539, 10) and d["labels"].shape == (539,)
    # the predictions file is what `crossent report` reads
    code, out, err = run(
        capsys, monkeypatch, "report", str(out_dir / "predictions-ce.npz"), "--json", "--no-html"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["kind"] == "logits"
    assert summary["before"]["accuracy"] == pytest.approx(results["runs"]["ce"]["accuracy"])
    # outputs are never overwritten silently
    code, out, err = run(capsys, monkeypatch, "train", "--epochs", "1", "--out", str(out_dir))
    assert code == 2 and err.count("\n") == 1 and "--force" in err


def test_one_loss(tmp_path, capsys, monkeypatch) -> None:
    code, out, err = run(
        capsys, monkeypatch, "train", "--loss", "weighted", "--epochs", "2", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("predictions-*.npz")) == [
        "predictions-weighted.npz"
    ]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["claims"] == []
    assert list(results["runs"]) == ["weighted"]
    assert out.strip().splitlines()[-1].startswith("predictions: ")


def test_calibration_picture_uses_the_reports_bins(tmp_path, monkeypatch) -> None:
    from crossent.report import N_BINS

    seen = []
    curve = train.cal.reliability_curve

    def recording(probs, labels, **options):
        seen.append(options.get("n_bins"))
        return curve(probs, labels, **options)

    monkeypatch.setattr(train.cal, "reliability_curve", recording)
    rng = np.random.default_rng(0)
    run_ = train.Run("ce", "ce", "normal", test_logits=rng.normal(0, 2, (60, 10)))
    run_.scores = {"ece": 0.1, "mean_confidence": 0.8, "accuracy": 0.7}
    png = train.calibration_figure({"ce": run_}, rng.integers(0, 10, 60))
    assert seen == [N_BINS] == [15] and png.startswith(b"\x89PNG")
