"""``crossent lm``: the split, the tokenizer, the held-out figures against materialized logits,
and a tiny run of the command (its own loss and patched: the same curve)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import pydoc_data.topics  # noqa: E402

import torch.nn.functional as F  # noqa: E402

import crossent.calibration as cal  # noqa: E402
from crossent.apps import cli, lm  # noqa: E402

TOPICS = pydoc_data.topics.topics
TINY = ["--steps", "5", "--batch", "4", "--context", "16", "--vocab", "300", "--d-model", "16",
        "--layers", "1", "--heads", "2"]  # fmt: skip


def run(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["crossent", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), out, err


def test_split_is_by_topic_deterministic_and_just_large_enough() -> None:
    train, held = lm.split_topics(TOPICS, held_out=0.1, seed=0)
    assert (train, held) == lm.split_topics(TOPICS, held_out=0.1, seed=0)
    assert held != lm.split_topics(TOPICS, held_out=0.1, seed=1)[1]
    assert not set(train) & set(held) and sorted(train + held) == sorted(TOPICS)
    total = sum(map(len, TOPICS.values()))
    chars = [len(TOPICS[n]) for n in held]
    # the held-out topics reach the fraction, and would not without the last one taken
    assert sum(chars) >= 0.1 * total
    order = [sorted(TOPICS)[i] for i in np.random.default_rng(0).permutation(len(TOPICS))]
    assert set(order[: len(held)]) == set(held)
    assert sum(len(TOPICS[n]) for n in order[: len(held) - 1]) < 0.1 * total


def test_tokenizer_is_deterministic_and_lossless() -> None:
    texts = [TOPICS[n] for n in sorted(TOPICS)[:20]]
    first, second = (lm.train_tokenizer(texts, vocab=500) for _ in range(2))
    assert first.get_vocab() == second.get_vocab() and first.get_vocab_size() == 500
    text = TOPICS["if"]
    assert first.encode(text).ids == second.encode(text).ids
    assert first.decode(first.encode(text).ids) == text  # byte-level: nothing is lost
    assert first.token_to_id(lm.EOT) == 0


def test_blocks_and_batch_order() -> None:
    tokenizer = lm.train_tokenizer([TOPICS["if"], TOPICS["while"]], vocab=300)
    data = lm.blocks(tokenizer, [TOPICS["if"], TOPICS["while"]], context=8)
    stream = [0, *tokenizer.encode(TOPICS["if"]).ids, 0, *tokenizer.encode(TOPICS["while"]).ids]
    assert data.shape == (len(stream) // 8, 8)
    np.testing.assert_array_equal(data.ravel(), stream[: data.size])
    order = lm.batch_order(10, steps=7, batch=3, seed=0)
    assert order.shape == (7, 3)
    assert sorted(order.ravel()[:10]) == list(range(10))  # each epoch sees every block once
    np.testing.assert_array_equal(order, lm.batch_order(10, steps=7, batch=3, seed=0))


def test_held_out_figures_match_the_materialized_logits() -> None:
    s = lm.Settings(vocab=300, context=16, d_model=16, layers=1, heads=2)
    model = lm.build_model(s)
    data = np.random.default_rng(0).integers(0, 300, (9, 16))
    got = lm.evaluate(model, data, batch=4, n_bins=15)  # two full batches and a ragged one
    with torch.no_grad():
        logits = model(torch.from_numpy(data)).logits[:, :-1].double().reshape(-1, 300)
    targets = torch.from_numpy(data[:, 1:]).reshape(-1)
    nll = F.cross_entropy(logits, targets).item()
    probs = logits.softmax(-1).numpy()
    assert got["tokens"] == targets.numel()
    assert got["ce_nats"] == pytest.approx(nll, rel=1e-6)
    assert got["ce_bits"] == pytest.approx(nll / np.log(2), rel=1e-6)
    assert got["perplexity"] == pytest.approx(np.exp(nll), rel=1e-6)
    assert got["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == targets.numpy()))
    assert got["mean_confidence"] == pytest.approx(probs.max(1).mean(), rel=1e-6)
    assert got["ece"] == pytest.approx(
        cal.expected_calibration_error(probs, targets.numpy()), abs=1e-6
    )
    curve = cal.reliability_curve(probs, targets.numpy(), n_bins=15)
    assert got["curve"]["counts"] == np.asarray(curve.counts).tolist()


def test_tiny_run_same_curve_patched_and_unpatched(tmp_path, capsys, monkeypatch) -> None:
    out_dir = tmp_path / "lm"
    code, out, err = run(capsys, monkeypatch, "lm", *TINY, "--out", str(out_dir))
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str(out_dir / "lm.png")
    assert (out_dir / "lm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| patched |" in (out_dir / "summary.md").read_text(encoding="utf-8")
    text = (out_dir / "summary.json").read_text(encoding="utf-8")
    summary = json.loads(text, parse_constant=pytest.fail)  # strict JSON: no NaN
    assert None in summary["runs"][0]["held_out"]["curve"]["accuracy"]  # an empty bin
    own, fused = (np.asarray(r["losses"]) for r in summary["runs"])
    assert own.shape == fused.shape == (5,)
    np.testing.assert_allclose(fused, own, rtol=1e-5)
    assert summary["agree"] and summary["max_rel_diff"] <= lm.TOLERANCE
    # the first loss is the model's cross-entropy on the first batch, from the logits
    s = lm.Settings(**summary["settings"])
    train, _ = lm.split_topics(TOPICS, held_out=s.held_out, seed=s.seed)
    texts = [TOPICS[n] for n in train]
    data = lm.blocks(lm.train_tokenizer(texts, vocab=s.vocab), texts, context=s.context)
    ids = torch.from_numpy(data[lm.batch_order(len(data), steps=1, batch=4, seed=0)[0]])
    model = lm.build_model(s).train()
    torch.manual_seed(s.seed)  # the first step's dropout masks
    logits = model(ids).logits[:, :-1].double()
    first = F.cross_entropy(logits.reshape(-1, s.vocab), ids[:, 1:].reshape(-1)).item()
    assert own[0] == pytest.approx(first, rel=1e-5)
    for r in summary["runs"]:
        assert r["peak_mb"] >= 0 and r["resident_before_mb"] > 0 and r["held_out"]["tokens"] > 0
    held = [r["held_out"]["ce_nats"] for r in summary["runs"]]
    assert held[1] == pytest.approx(held[0], rel=1e-4)
    # outputs are never overwritten silently
    code, _, err = run(capsys, monkeypatch, "lm", *TINY, "--out", str(out_dir))
    assert code == 2 and err.count("\n") == 1 and "--force" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--steps", "0"], "--steps"),
        (["--steps", "ten"], "--steps"),
        (["--batch", "-2"], "--batch"),
        (["--vocab", "100"], "--vocab"),
        (["--context", "1"], "--context"),
        (["--lr", "-1"], "--lr"),
        (["--heads", "5"], "multiple of --heads 5"),
        (["--bogus"], "--bogus"),
        (["--batch", "100000"], "too few blocks"),
    ],
)
def test_hostile_options_give_one_line_and_exit_2(
    args: list[str], expected: str, tmp_path, capsys, monkeypatch
) -> None:
    code, out, err = run(capsys, monkeypatch, "lm", *args, "--out", str(tmp_path / "x"))
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("crossent: error: ") and expected in err, err
    assert not (tmp_path / "x").exists()


def test_out_must_be_a_folder(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "file").write_text("keep me")
    code, _, err = run(capsys, monkeypatch, "lm", "--out", str(tmp_path / "file"))
    assert code == 2 and err.count("\n") == 1 and "not a folder" in err
    assert (tmp_path / "file").read_text() == "keep me"


def test_a_missing_extra_is_one_line_with_the_hint(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers now fails
    code, _, err = run(capsys, monkeypatch, "lm", "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert "pip install 'crossent[transformers]'" in err
