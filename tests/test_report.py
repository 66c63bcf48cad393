"""``crossent report`` end to end: every input format, every bad file, the page in a browser."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import crossent.calibration as cal
from crossent.apps import cli
from crossent.errors import UsageError
from crossent.report import EXAMPLE, example_path, write_report

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "netcal-cifar"
CHROMIUM = Path("/usr/bin/chromium")


def run(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Run the real entry point (``crossent.apps.cli:main``) in-process: code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["crossent", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), out, err


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """300 examples, 4 classes: logits, their softmax, labels drawn from it (over-confident x2)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (300, 4))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(4, p=row) for row in p])
    sharp = 2 * logits
    probs = np.exp(sharp - sharp.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return 2 * logits, probs, labels


def test_example_ships_with_licence_and_provenance() -> None:
    path = example_path()
    assert path.name == EXAMPLE and path.exists()
    assert (path.parent / "LICENSE.txt").read_text().lstrip().startswith("Apache License")
    readme = (path.parent / "README.md").read_text()
    assert "Apache License 2.0" in readme and "2a3db8d7cb2a557f3b563c98ce00954f43dfe927" in readme
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest in readme
    if (SHARED / EXAMPLE).exists():
        assert hashlib.sha256((SHARED / EXAMPLE).read_bytes()).hexdigest() == digest


def test_default_report_on_the_shipped_example(tmp_path, capsys, monkeypatch) -> None:
    html = tmp_path / "cifar.html"
    code, out, err = run(capsys, monkeypatch, "report", "--output", str(html), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["examples"] == 10000 and summary["classes"] == 10 and summary["kind"] == "probs"
    before, after = summary["before"], summary["after_temperature"]
    with np.load(example_path()) as d:
        probs, labels = d["predictions"], d["ground_truth"]
    assert before["ece"] == pytest.approx(float(cal.expected_calibration_error(probs, labels)))
    assert before["log_loss_nats"] == pytest.approx(float(cal.log_loss(probs, labels)), rel=1e-6)
    assert before["log_loss_bits"] == pytest.approx(before["log_loss_nats"] / np.log(2))
    # temperature scaling fitted on the other half: ECE 5.4% -> under 1%, accuracy unchanged
    assert before["ece"] > 0.05 and after["ece"] < 0.01
    assert after["log_loss_nats"] < before["log_loss_nats"]
    assert after["accuracy"] == before["accuracy"]
    assert all(1.8 < t < 2.3 for t in summary["temperatures"])
    d = summary["decomposition_nats"]
    assert d["log_loss"] == pytest.approx(d["calibration"] + d["refinement"])
    assert len(summary["per_class_before"]["cross_entropy"]) == 10
    page = html.read_text()
    assert page.count('src="data:image/png;base64,') == 5
    assert "http://" not in page.replace("http://www.apache.org", "") and "https://" not in page
    assert summary["html"] == str(html.resolve())


def test_terminal_summary_ends_with_the_path(tmp_path, capsys, monkeypatch, small) -> None:
    logits, _, labels = small
    np.savez(tmp_path / "p.npz", logits=logits, labels=labels)
    code, out, _ = run(
        capsys, monkeypatch, "report", str(tmp_path / "p.npz"), "-o", str(tmp_path / "r.html")
    )
    assert code == 0
    assert "ECE (top-label, 15 bins)" in out and "temperature-scaled" in out
    assert out.strip().splitlines()[-1] == f"report: {(tmp_path / 'r.html').resolve()}"


def _write_all_formats(tmp_path: Path, values: np.ndarray, labels: np.ndarray) -> dict[str, list]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    np.savez(tmp_path / "a.npz", predictions=values, ground_truth=labels)
    np.save(tmp_path / "v.npy", values)
    np.save(tmp_path / "y.npy", labels)
    header = ",".join(f"p{k}" for k in range(values.shape[1]))
    rows = [
        ",".join(repr(float(x)) for x in row) + f",{y}"
        for row, y in zip(values, labels, strict=True)
    ]
    (tmp_path / "t.csv").write_text(header + ",label\n" + "\n".join(rows) + "\n")
    columns = {f"p{k}": values[:, k] for k in range(values.shape[1])}
    pq.write_table(pa.table({**columns, "label": labels}), tmp_path / "t.parquet")
    pq.write_table(
        pa.table({"id": np.arange(len(labels)), "probs": list(values), "y": labels}),
        tmp_path / "l.parquet",
    )
    return {
        "npz": [str(tmp_path / "a.npz")],
        "npy": [str(tmp_path / "v.npy"), "--labels", str(tmp_path / "y.npy")],
        "csv": [str(tmp_path / "t.csv")],
        "parquet": [str(tmp_path / "t.parquet")],
        "parquet-list": [str(tmp_path / "l.parquet")],
    }


def test_every_format_gives_the_same_report(tmp_path, capsys, monkeypatch, small) -> None:
    _, probs, labels = small
    results = {}
    for name, args in _write_all_formats(tmp_path, probs, labels).items():
        code, out, err = run(capsys, monkeypatch, "report", *args, "--json", "--no-html")
        assert code == 0, (name, err)
        results[name] = json.loads(out)
    reference = results.pop("npz")
    assert reference["kind"] == "probs"
    for name, summary in results.items():
        for key, value in reference["before"].items():
            assert summary["before"][key] == pytest.approx(value, rel=1e-9), (name, key)
        assert summary["temperatures"] == pytest.approx(reference["temperatures"], rel=1e-9)
    assert results["csv"]["class_names"] == ["p0", "p1", "p2", "p3"]


def test_logits_and_probabilities_give_the_same_scores(tmp_path, capsys, monkeypatch, small):
    logits, probs, labels = small
    np.savez(tmp_path / "logits.npz", scores=logits, labels=labels)
    np.savez(tmp_path / "probs.npz", scores=probs, labels=labels)
    code, out, err = run(
        capsys, monkeypatch, "report", str(tmp_path / "logits.npz"), "--json", "--no-html"
    )
    assert code == 0, err
    as_logits = json.loads(out)
    code, out, err = run(
        capsys, monkeypatch, "report", str(tmp_path / "probs.npz"), "--json", "--no-html"
    )
    assert code == 0, err
    as_probs = json.loads(out)
    assert as_logits["kind"] == "logits" and as_probs["kind"] == "probs"
    for key in ("log_loss_nats", "ece", "brier", "ece_classwise"):
        assert as_logits["before"][key] == pytest.approx(as_probs["before"][key], rel=1e-9)
        assert as_logits["after_temperature"][key] == pytest.approx(
            as_probs["after_temperature"][key], rel=1e-6
        )
    # probabilities forced to be read as logits: crossent.diagnose measures the mistake
    code, out, err = run(
        capsys,
        monkeypatch,
        "report",
        str(tmp_path / "probs.npz"),
        "--kind",
        "logits",
        "--json",
        "--no-html",
    )
    assert code == 0, err
    forced = json.loads(out)
    assert any("look like probabilities" in note for note in forced["notes"])
    assert forced["before"]["log_loss_nats"] > as_probs["before"]["log_loss_nats"]


def test_report_without_a_temperature(tmp_path, capsys, monkeypatch) -> None:
    """Every label has the top score: no finite temperature; the report says so and goes on."""
    logits = np.array([[3.0, 0.0, 1.0], [0.0, 2.0, 1.0], [1.0, 0.0, 4.0], [5.0, 1.0, 0.0]] * 5)
    labels = np.array([0, 1, 2, 0] * 5)
    np.savez(tmp_path / "perfect.npz", logits=logits, labels=labels)
    html = tmp_path / "perfect.html"
    code, out, err = run(
        capsys, monkeypatch, "report", str(tmp_path / "perfect.npz"), "-o", str(html), "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["after_temperature"] is None and summary["temperatures"] == []
    assert any("temperature scaling skipped" in note for note in summary["notes"])
    assert summary["before"]["accuracy"] == 1.0
    assert html.read_text().count("data:image/png;base64,") == 5  # every figure, one version


def test_write_report_is_the_command_from_python(tmp_path, small) -> None:
    logits, _, labels = small
    np.savez(tmp_path / "p.npz", logits=logits, labels=labels)
    page = tmp_path / "r.html"
    steps: list[str] = []
    report, written = write_report(tmp_path / "p.npz", output=page, step=steps.append)
    assert written == page.resolve() and page.read_text().count("data:image/png;base64,") == 5
    assert report.predictions.kind == "logits" and len(report.temperatures) == 2
    assert steps[-1] == "writing the HTML page" and len(steps) == 6  # the command adds "done"
    with pytest.raises(UsageError, match="already exists"):
        write_report(tmp_path / "p.npz", output=page)
    with pytest.raises(UsageError, match="'auto', 'probs' or 'logits'"):
        write_report(tmp_path / "p.npz", kind="probabilities", html=False)


def test_existing_report_is_never_overwritten_silently(tmp_path, capsys, monkeypatch, small):
    logits, _, labels = small
    np.savez(tmp_path / "p.npz", logits=logits, labels=labels)
    target = tmp_path / "r.html"
    target.write_text("keep me")
    code, _, err = run(capsys, monkeypatch, "report", str(tmp_path / "p.npz"), "-o", str(target))
    assert code == 2 and "--force" in err and target.read_text() == "keep me"
    code, _, _ = run(
        capsys, monkeypatch, "report", str(tmp_path / "p.npz"), "-o", str(target), "--force"
    )
    assert code == 0 and target.read_text().startswith("<!DOCTYPE html>")


def _bad_files(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, a piece of the expected message)."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), 20)
    y = rng.integers(0, 3, 20)
    cases: dict[str, tuple[list[str], str]] = {}

    def npz(name: str, **arrays) -> str:
        np.savez(tmp / f"{name}.npz", **arrays)
        return str(tmp / f"{name}.npz")

    cases["missing file"] = ([str(tmp / "nope.npz")], "no such file")
    cases["directory"] = ([str(tmp)], "is a directory")
    (tmp / "x.txt").write_text("1,2")
    cases["unknown type"] = ([str(tmp / "x.txt")], "unknown file type")
    (tmp / "garbage.npz").write_bytes(b"\x00\x01not a zip at all")
    cases["unreadable npz"] = ([str(tmp / "garbage.npz")], "cannot read")
    (tmp / "empty.npy").write_bytes(b"")
    cases["unreadable npy"] = (
        [str(tmp / "empty.npy"), "--labels", str(tmp / "empty.npy")],
        "cannot read",
    )
    (tmp / "garbage.parquet").write_bytes(b"PAR1 nope")
    cases["unreadable parquet"] = ([str(tmp / "garbage.parquet")], "cannot read")
    (tmp / "empty.csv").write_text("")
    cases["empty csv"] = ([str(tmp / "empty.csv")], "cannot read")
    cases["missing labels array"] = ([npz("nolabels", predictions=p)], "no array of labels")
    cases["missing predictions array"] = (
        [npz("nopreds", ground_truth=y)],
        "no array of predictions",
    )
    cases["wrong key asked"] = (
        [npz("ok", predictions=p, ground_truth=y), "--pred-key", "zz"],
        "no array of predictions 'zz'",
    )
    cases["one column"] = (  # read as P(y = 1) of a binary problem: the labels say no
        [npz("onecol", predictions=p[:, 0], ground_truth=y)],
        "labels must be in [0, 2) for 2 classes",
    )
    cases["3-d predictions"] = (
        [npz("threed", predictions=p[:, :, None], ground_truth=y)],
        "shape (N, K)",
    )
    cases["length mismatch"] = (
        [npz("short", predictions=p, ground_truth=y[:-1])],
        "20 rows of predictions but 19 labels",
    )
    bad = p.copy()
    bad[4, 1] = np.nan
    cases["nan"] = ([npz("nan", predictions=bad, ground_truth=y)], "NaN")
    inf = p.copy()
    inf[2, 0] = np.inf
    cases["inf"] = ([npz("inf", predictions=inf, ground_truth=y)], "+inf")
    high = y.copy()
    high[7] = 3
    cases["label out of range"] = (
        [npz("high", predictions=p, ground_truth=high)],
        "found 3 at index 7",
    )
    negative = y.copy()
    negative[0] = -1
    cases["negative label"] = ([npz("neg", predictions=p, ground_truth=negative)], "found -1")
    cases["fractional label"] = (
        [npz("frac", predictions=p, ground_truth=y + 0.5)],
        "whole class indices",
    )
    cases["string labels"] = (
        [npz("str", predictions=p, ground_truth=np.array(["a"] * 20))],
        "the labels are class names",
    )
    cases["npy without labels"] = ([str(tmp / "v.npy")], "--labels")
    np.save(tmp / "v.npy", p)
    cases["probs out of range"] = (
        [npz("logits", predictions=p * 3 - 1, ground_truth=y), "--kind", "probs"],
        "outside [0, 1]",
    )
    (tmp / "nolabel.csv").write_text("a,b\n0.5,0.5\n0.2,0.8\n")
    cases["csv without label column"] = ([str(tmp / "nolabel.csv")], "no label column")
    (tmp / "text.csv").write_text("a,b,label\n0.5,x,0\n0.2,0.8,1\n")
    cases["csv with text"] = ([str(tmp / "text.csv")], "not numeric")
    (tmp / "holes.csv").write_text("a,b,label\n0.5,,0\n0.2,0.8,1\n")
    cases["csv with a hole"] = ([str(tmp / "holes.csv")], "missing value")
    (tmp / "ragged.csv").write_text("a,b,label\n0.5,0.5,0\n0.2,0.8\n")
    cases["ragged csv"] = ([str(tmp / "ragged.csv")], "cannot read")
    cases["output not html"] = (
        [npz("ok2", predictions=p, ground_truth=y), "-o", str(tmp / "r.txt")],
        ".html",
    )
    cases["output folder missing"] = (
        [npz("ok3", predictions=p, ground_truth=y), "-o", str(tmp / "no" / "r.html")],
        "does not exist",
    )
    w = np.ones(20)
    for name, value, message in (
        ("negative weight", -1.0, "weights must be finite and >= 0; found -1.0 at index 3"),
        ("nan weight", np.nan, "found nan at index 3"),
        ("inf weight", np.inf, "found inf at index 3"),
    ):
        bad_w = w.copy()
        bad_w[3] = value
        cases[name] = (
            [npz(name.replace(" ", "_"), predictions=p, ground_truth=y, w=bad_w), "--weights", "w"],
            message,
        )
    np.save(tmp / "short_w.npy", w[:-2])
    cases["weights of the wrong length"] = (
        [npz("okw", predictions=p, ground_truth=y), "--weights", str(tmp / "short_w.npy")],
        "shape (20,); got shape (18,)",
    )
    cases["all-zero weights"] = (
        [npz("zw", predictions=p, ground_truth=y, w=0 * w), "--weights", "w"],
        "weights are all 0",
    )
    cases["missing weight key"] = (
        [npz("okw2", predictions=p, ground_truth=y), "--weights", "nope"],
        "no array of weights 'nope'",
    )
    cases["missing weight file"] = (
        [npz("okw3", predictions=p, ground_truth=y), "--weights", str(tmp / "nope.npy")],
        "no such file",
    )
    return cases


def test_every_bad_file_ends_with_one_line_and_exit_2(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, (args, expected) in _bad_files(tmp_path).items():
        code, out, err = run(capsys, monkeypatch, "report", *args)
        lines = err.splitlines()
        assert code == 2, (name, out, err)
        assert len(lines) == 1 and err.endswith("\n"), (name, err)
        assert lines[0].startswith("crossent: error: "), (name, err)
        assert expected in lines[0], (name, lines[0])
        assert "Traceback" not in out + err, name
    assert not list(tmp_path.glob("*.html"))  # nothing written for a bad input


@pytest.mark.browser
def test_report_opens_in_headless_chromium(tmp_path, capsys, monkeypatch) -> None:
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        if os.environ.get("CI"):
            raise FileNotFoundError("CI needs Debian's chromium at /usr/bin/chromium")
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    html = tmp_path / "report.html"
    code, _, err = run(capsys, monkeypatch, "report", "-o", str(html))
    assert code == 0, err
    rng = np.random.default_rng(0)  # a multi-label page too: 30 labels, the worst 20 shown
    z = rng.normal(0, 2, (200, 30))
    np.savez(tmp_path / "ml.npz", logits=z, labels=(rng.uniform(size=z.shape) < 0.3))
    multi = tmp_path / "ml.html"
    code, _, err = run(capsys, monkeypatch, "report", str(tmp_path / "ml.npz"), "-o", str(multi))
    assert code == 0, err
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(html.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, "
                "i.naturalHeight])"
            )
            title = page.title()
            rows = page.locator("table").nth(2).locator("tbody tr").count()
            headings = page.locator("h2").all_inner_texts()
            intervals = page.locator("td.ci").count()
            page.goto(multi.as_uri(), wait_until="load")
            multi_images = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
            )
            label_rows = page.locator("table").nth(1).locator("tbody tr").count()
        finally:
            browser.close()
    assert [alt for alt, *_ in multi_images] == [
        "reliability diagram of the pooled pairs",
        "per-label ECE against prevalence",
    ]
    assert all(complete and width > 0 for _, complete, width in multi_images)
    assert label_rows == 20
    assert [alt for alt, *_ in images] == [
        "reliability diagram",
        "risk-coverage curve",
        "confidence histogram",
        "per-example log-loss distribution",
        "per-class cross-entropy",
    ]
    assert "Brier score decomposition" in headings and "Risk-coverage" in headings
    assert intervals == 14  # the 14 summary metrics of the predictions as given
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt
    assert title.startswith("crossent report") and not errors, errors
    assert rows == 10  # the per-class table
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


# ---------------------------------------------------------------- scale, options, polish


def test_large_files_are_read_a_block_at_a_time(tmp_path, capsys, monkeypatch, small) -> None:
    """.npy through a memory map and parquet by row group, in blocks that span row groups,
    give the report of the same predictions held in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crossent._calibration import _temperature
    from crossent.report import _load

    logits, _, labels = small
    monkeypatch.setattr(_load, "BLOCK_VALUES", 4 * 37)  # 37 rows a block: 9 blocks
    monkeypatch.setattr(_temperature, "BLOCK_VALUES", 4 * 50)  # the fits' blocks too
    np.savez(tmp_path / "a.npz", logits=logits, labels=labels)
    np.save(tmp_path / "logits.npy", logits.astype(np.float32))
    np.save(tmp_path / "y.npy", labels)
    np.savez(tmp_path / "f.npz", logits=logits.astype(np.float32), labels=labels)
    columns = {f"c{k}": logits[:, k] for k in range(4)}
    pq.write_table(
        pa.table({**columns, "label": labels}), tmp_path / "t.parquet", row_group_size=70
    )
    pq.write_table(
        pa.table({"logits": list(logits), "y": labels}), tmp_path / "l.parquet", row_group_size=64
    )
    cases = {
        "npz": [str(tmp_path / "a.npz")],
        "parquet": [str(tmp_path / "t.parquet")],
        "parquet-list": [str(tmp_path / "l.parquet")],
    }
    results = {}
    for name, args in cases.items():
        code, out, err = run(
            capsys, monkeypatch, "report", *args, "--kind", "logits", "--json", "--no-html"
        )
        assert code == 0, (name, err)
        results[name] = json.loads(out)
    reference = results.pop("npz")
    for name, summary in results.items():
        for key, value in reference["before"].items():
            assert summary["before"][key] == pytest.approx(value, rel=1e-9), (name, key)
        assert summary["temperatures"] == pytest.approx(reference["temperatures"], rel=1e-9)
    # float32 .npy read through a memory map: the same report as the same float32 in a .npz
    report, _ = write_report(tmp_path / "logits.npy", labels=tmp_path / "y.npy", html=False)
    assert isinstance(report.predictions.values, _load.MappedRows)  # never read whole
    whole, _ = write_report(tmp_path / "f.npz", html=False)
    assert report.before.metrics == pytest.approx(whole.before.metrics, rel=1e-12)
    assert report.temperatures == whole.temperatures
    # and the scores equal the one-shot functions on the whole array
    probs = np.exp(logits.astype(np.float32) - logits.astype(np.float32).max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    m = report.before.metrics
    assert m["ece"] == pytest.approx(float(cal.expected_calibration_error(probs, labels)), rel=1e-5)
    assert m["ece_classwise"] == pytest.approx(
        float(cal.expected_calibration_error(probs, labels, scope="classwise")), rel=1e-5
    )
    assert m["brier"] == pytest.approx(float(cal.brier_score(probs, labels)), rel=1e-5)
    t = cal.fit_temperature(logits.astype(np.float32), labels)
    assert report.decomposition.temperature == pytest.approx(t, rel=1e-9)


def test_bins_and_binning_on_the_command_line(tmp_path, capsys, monkeypatch, small) -> None:
    _, probs, labels = small
    np.savez(tmp_path / "p.npz", probs=probs, labels=labels)
    args = ["report", str(tmp_path / "p.npz"), "--json", "--no-html"]
    code, out, err = run(capsys, monkeypatch, *args, "--bins", "8", "--binning", "quantile")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["bins"], summary["binning"]) == (8, "quantile")
    before = summary["before"]
    for key, norm in (("ece", "l1"), ("mce", "max"), ("rmsce", "l2")):
        want = cal.expected_calibration_error(
            probs, labels, n_bins=8, binning="quantile", norm=norm
        )
        assert before[key] == pytest.approx(float(want), rel=1e-9), key
    # the class-wise ECE keeps equal-width bins (of the number asked for)
    classwise = cal.expected_calibration_error(probs, labels, n_bins=8, scope="classwise")
    assert before["ece_classwise"] == pytest.approx(float(classwise), rel=1e-9)
    code, out, err = run(capsys, monkeypatch, *args[:2], "--no-html", "--bins", "8")
    assert code == 0, err
    assert "ECE (top-label, 8 bins)" in out
    for bad, expected in (
        (["--bins", "0"], "from 1 to 1000"),
        (["--bins", "ten"], "--bins takes a whole number"),
        (["--bins", "2.5"], "--bins takes a whole number"),
        (["--binning", "adaptive"], "'uniform' or 'quantile'"),
    ):
        code, out, err = run(capsys, monkeypatch, *args, *bad)
        assert code == 2, bad
        assert err.count("\n") == 1 and err.startswith("crossent: error: ") and expected in err


def test_one_failing_half_is_named_and_the_full_fit_shown(tmp_path, capsys, monkeypatch) -> None:
    """Only one example is wrong: its half fits a temperature, the other half (all labels on
    top) has none; the note says which half, and the full set's temperature is still shown."""
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 1, (40, 3))
    labels = logits.argmax(axis=1)
    labels[5] = (labels[5] + 1) % 3
    np.savez(tmp_path / "one.npz", logits=logits, labels=labels)
    html = tmp_path / "one.html"
    code, out, err = run(
        capsys, monkeypatch, "report", str(tmp_path / "one.npz"), "-o", str(html), "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    t = cal.fit_temperature(logits, labels)
    assert summary["decomposition_nats"]["temperature"] == pytest.approx(t, rel=1e-12)
    assert summary["after_temperature"] is None
    (note,) = [n for n in summary["notes"] if "temperature" in n]
    assert note.startswith("cross-fitted temperature scaling skipped: on half ")
    assert "(20 examples)" in note and f"optimal temperature is {t:.4f}" in note
    assert f"T* = {t:.4f}" in html.read_text()


def test_page_explains_two_log_losses_and_has_no_negative_zero(tmp_path, capsys, monkeypatch):
    from crossent.report._render import _change

    html = tmp_path / "cifar.html"
    code, out, err = run(capsys, monkeypatch, "report", "--output", str(html), "--json")
    assert code == 0, err
    summary = json.loads(out)
    page = html.read_text()
    unclipped = summary["decomposition_nats"]["log_loss"]
    clipped = summary["before"]["log_loss_nats"]
    assert f"{unclipped:.4f}" != f"{clipped:.4f}"  # 0.3782 and 0.3763 on this example
    assert f"hence {unclipped:.4f} here and {clipped:.4f} in the summary" in page
    assert "-0.0000" not in page and "+0.0000" not in page
    assert (_change(0.25, 0.25000001), _change(0.3, 0.2), _change(0.2, 0.3)) == (
        "0.0000",
        "+0.1000",
        "-0.1000",
    )


def test_help_describes_the_files_it_reads(capsys, monkeypatch) -> None:
    code, out, _ = run(capsys, monkeypatch, "report", "--help")
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    for phrase in ("one numeric column per class", "list column", "label column", ".npy", "--bins"):
        assert phrase in text, phrase


@pytest.mark.parametrize(
    ("module", "args", "package"),
    [
        ("matplotlib", ["report", "-o", "{tmp}/r.html"], "matplotlib"),
        ("pyarrow", ["report", "{tmp}/t.csv", "--no-html"], "pyarrow"),
        ("sklearn", ["train", "--epochs", "1", "--out", "{tmp}/run"], "scikit-learn"),
    ],
)
def test_a_missing_extra_is_one_line_with_the_install_hint(tmp_path, module, args, package):
    import subprocess

    (tmp_path / "t.csv").write_text("a,b,label\n0.5,0.5,0\n0.2,0.8,1\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None  # as if it were not installed\n"
        f"sys.argv = ['crossent', *{argv!r}]\n"
        "from crossent._entry import main\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"crossent: error: this needs {package}")
    assert "pip install 'crossent[report]'" in proc.stderr


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_a_memory_map_keeps_one_block_resident(tmp_path, monkeypatch) -> None:
    """A pass over a .npy file leaves its pages in the page cache, not in the process."""
    from crossent.report import _load

    def file_pages_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no RssFile in /proc/self/status")

    monkeypatch.setattr(_load, "RELEASE_BYTES", 1 << 20)
    values = np.random.default_rng(0).random((4000, 2000), dtype=np.float32)  # 32 MB
    np.save(tmp_path / "v.npy", values)
    rows = _load.MappedRows(np.load(tmp_path / "v.npy", mmap_mode="r"))
    before = file_pages_mb()
    total = 0.0
    for start in range(0, 4000, 25):  # small blocks: the kernel maps pages around each fault
        block = rows[start : start + 25]
        total += float(block.sum(dtype=np.float64))
    assert total == pytest.approx(float(values.sum(dtype=np.float64)), rel=1e-12)
    assert file_pages_mb() - before < 8  # of 32 MB read (1 MB between releases)


# ---------------------------------------------------------------- statistics and the notebook API


def test_intervals_smooth_ece_brier_parts_and_aurc_match_the_one_shot_functions(
    tmp_path, capsys, monkeypatch, small
) -> None:
    _, probs, labels = small
    np.savez(tmp_path / "p.npz", probs=probs, labels=labels)
    code, out, err = run(
        capsys, monkeypatch, "report", str(tmp_path / "p.npz"), "--no-html", "--json",
        "--resamples", "50", "--seed", "3",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["resamples"] == 50 and summary["confidence_level"] == 0.95
    reference = cal.bootstrap_intervals(probs, labels, n_resamples=50, seed=3)
    for name, ci in reference.intervals.items():
        got = summary["intervals_before"][name]
        assert got["low"] == pytest.approx(ci.low) and got["high"] == pytest.approx(ci.high)
        assert got["estimate"] == pytest.approx(summary["before"][name], rel=1e-6)
    assert summary["before"]["smooth_ece"] == pytest.approx(cal.smooth_ece(probs, labels).value)
    rc = cal.risk_coverage_curve(probs, labels)
    assert summary["before"]["aurc"] == pytest.approx(rc.aurc)
    assert summary["risk_coverage_before"]["optimal_aurc"] == pytest.approx(rc.optimal_aurc)
    d = summary["brier_decomposition_before"]
    ref = cal.brier_decomposition(probs, labels, n_bins=15)
    assert d["reliability"] == pytest.approx(ref.reliability)
    assert d["resolution"] == pytest.approx(ref.resolution)
    identity = d["reliability"] - d["resolution"] + d["uncertainty"]
    identity += d["within_bin_variance"] - d["within_bin_covariance"]
    assert identity == pytest.approx(summary["before"]["brier"], rel=1e-6)
    code, out, _ = run(
        capsys, monkeypatch, "report", str(tmp_path / "p.npz"), "--no-html", "--json",
        "--resamples", "0",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["intervals_before"] is None
    assert summary["intervals"] == "given" and summary["intervals_after"] is None
    code, out, err = run(
        capsys, monkeypatch, "report", str(tmp_path / "p.npz"), "--no-html", "--json",
        "--resamples", "20", "--intervals", "both",
    )  # fmt: skip
    both = json.loads(out)
    for name, ci in both["intervals_after"].items():
        assert ci["estimate"] == pytest.approx(both["after_temperature"][name], rel=1e-6), name
    code, _, err = run(capsys, monkeypatch, "report", str(tmp_path / "p.npz"), "--resamples", "1")
    assert code == 2 and "resamples" in err and len(err.strip().splitlines()) == 1


def test_quantile_bins_keep_equal_width_classwise_intervals(small) -> None:
    from crossent.report import Report

    _, probs, labels = small
    report = Report.from_arrays(probs, labels, binning="quantile", resamples=20)
    ci = report.before.intervals
    assert ci is not None
    top = cal.bootstrap_intervals(
        probs, labels, metrics=["ece"], binning="quantile", n_resamples=20
    )
    classwise = cal.bootstrap_intervals(probs, labels, metrics=["ece_classwise"], n_resamples=20)
    assert ci["ece"].low == pytest.approx(top["ece"].low)
    assert ci["ece_classwise"].high == pytest.approx(classwise["ece_classwise"].high)


@pytest.fixture(scope="module")
def small_report(small):
    from crossent.report import Report

    _, probs, labels = small
    return Report.from_arrays(probs, labels, resamples=40)


def test_an_interval_missing_its_estimate_is_said(small_report) -> None:
    from crossent.report._compute import bias_notes

    report = small_report
    result = report.before.intervals
    assert result is not None
    missed = [m for m, ci in result.intervals.items() if not ci.low <= ci.estimate <= ci.high]
    notes = bias_notes("as given", report.before)
    assert len(notes) == len(missed)
    assert all("bootstrap bias" in n for n in notes)


def test_report_from_arrays_is_the_command(tmp_path, capsys, monkeypatch, small) -> None:
    from crossent.report import Report

    logits, _, labels = small
    np.savez(tmp_path / "p.npz", logits=logits, labels=labels)
    code, out, _ = run(
        capsys, monkeypatch, "report", str(tmp_path / "p.npz"), "--no-html", "--json",
        "--resamples", "30",
    )  # fmt: skip
    assert code == 0
    cli_json = json.loads(out)
    report = Report.from_arrays(
        logits, labels, kind="logits", resamples=30, class_names=["a", "b", "c", "d"]
    )
    api_json = json.loads(report.to_json())
    for key in ("before", "after_temperature", "intervals_before", "temperatures"):
        assert api_json[key] == cli_json[key], key
    assert api_json["class_names"] == ["a", "b", "c", "d"]
    page = report._repr_html_()
    assert page == report.to_html() and page.count("data:image/png;base64,") == 5
    with pytest.raises(UsageError, match="3 names for 4 classes"):
        Report.from_arrays(logits, labels, class_names=["a", "b", "c"])
    with pytest.raises(UsageError, match="labels must be in"):
        Report.from_arrays(logits, labels + 4)


def test_plots_draw_on_a_given_axes_and_figures_export(tmp_path, small_report) -> None:
    from matplotlib.figure import Figure

    report = small_report
    axes = Figure().subplots(1, 3)
    assert report.plot_reliability(axes[0]) is axes[0]
    assert len(axes[0].patches) == 2 * report.n_bins  # accuracy bars and gap bars
    texts = [int(t.get_text().replace(",", "")) for t in axes[0].texts]
    assert texts == [int(c) for c in report.before.curve.counts if c]
    assert report.plot_risk_coverage(axes[1], version="after") is axes[1]
    line = axes[1].lines[0]
    assert np.allclose(line.get_xdata(), report.after.risk.coverage)  # type: ignore[union-attr]
    assert report.plot_per_class(axes[2]) is axes[2]
    paths = report.save_figures(tmp_path, format="svg")
    assert {p.name for p in paths} >= {"reliability.svg", "risk_coverage.svg"}
    assert all(p.read_text().lstrip().startswith("<?xml") for p in paths)
    report.figure("reliability").savefig(tmp_path / "r.pdf")
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="no figure 'nope'"):
        report.figure("nope")


# ---------------------------------------------------------------- comparing models


def test_several_files_are_compared_against_the_first(tmp_path, capsys, monkeypatch, small) -> None:
    logits, probs, labels = small
    soft = np.exp(logits / 2 - (logits / 2).max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    np.savez(tmp_path / "sharp.npz", probs=probs, labels=labels)
    np.savez(tmp_path / "soft.npz", probs=soft, labels=labels)
    page = tmp_path / "both.html"
    code, out, err = run(
        capsys, monkeypatch, "report", str(tmp_path / "sharp.npz"), str(tmp_path / "soft.npz"),
        "--json", "--resamples", "40", "--seed", "2", "-o", str(page),
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert [m["name"] for m in summary["models"]] == ["sharp.npz", "soft.npz"]
    for model, p in zip(summary["models"], (probs, soft), strict=True):
        assert model["before"]["log_loss_nats"] == pytest.approx(float(cal.log_loss(p, labels)))
        assert model["before"]["ece"] == pytest.approx(
            float(cal.expected_calibration_error(p, labels))
        )
    assert summary["models"][0]["difference_from_first"] is None
    reference = cal.bootstrap_difference(probs, soft, labels, n_resamples=40, seed=2)
    got = summary["models"][1]["difference_from_first"]
    for name, ci in reference.intervals.items():
        assert got[name]["low"] == pytest.approx(ci.low), name
        assert got[name]["high"] == pytest.approx(ci.high), name
    text = page.read_text()
    assert "Comparing 2 models" in text and "soft.npz &minus; sharp.npz" in text
    assert text.count("data:image/png;base64,") == 2
    # Different examples, or different labels: one line, exit 2.
    np.savez(tmp_path / "short.npz", probs=probs[:-1], labels=labels[:-1])
    flipped = labels.copy()
    flipped[5] = (flipped[5] + 1) % 4
    np.savez(tmp_path / "other.npz", probs=probs, labels=flipped)
    for other, message in (("short.npz", "299 examples"), ("other.npz", "index 5")):
        code, _, err = run(
            capsys, monkeypatch, "report", str(tmp_path / "sharp.npz"), str(tmp_path / other),
            "--no-html",
        )  # fmt: skip
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_report_from_arrays_compares_a_dict_or_named_list(small) -> None:
    from crossent.report import Comparison, Report

    logits, _, labels = small
    by_dict = Report.from_arrays({"x": logits, "half": logits / 2}, labels, resamples=0)
    by_list = Report.from_arrays([logits, logits / 2], labels, names=["x", "half"], resamples=0)
    assert isinstance(by_dict, Comparison) and by_dict.names == ["x", "half"]
    one = Report.from_arrays(logits / 2, labels, resamples=0)
    for comparison in (by_dict, by_list):
        assert comparison.reports[1].before.metrics == one.before.metrics
        assert comparison.differences == {"half": None}
    entries = json.loads(by_dict.to_json())["models"]
    assert [e["name"] for e in entries] == ["x", "half"]
    assert "Comparing 2 models" in by_dict._repr_html_()
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    assert by_dict.plot_reliability(ax) is ax
    curve = one.before.curve
    filled = np.asarray(curve.counts) > 0
    assert len(ax.lines) == 3  # one curve a model, and the diagonal
    assert np.allclose(ax.lines[1].get_ydata(), np.asarray(curve.accuracy)[filled])
    with pytest.raises(UsageError, match="299 rows of predictions but 300 labels"):
        Report.from_arrays({"x": logits, "short": logits[:-1]}, labels, resamples=0)


def test_names_with_dollars_are_drawn_as_text_not_mathtext(small) -> None:
    """A class or model name is user text: ``$\\frac{$`` must not reach the mathtext parser
    (it fails to parse) and ``$x$`` must be drawn with its dollars."""
    from crossent.report import Report

    logits, _, labels = small
    names = ["$\\frac{$", "$x$", "c", "d"]
    report = Report.from_arrays(logits, labels, resamples=0, class_names=names)
    assert report.to_html().count("data:image/png;base64,") == 5  # every figure drew
    comparison = Report.from_arrays({"$\\frac{$": logits, "$y$": logits / 2}, labels, resamples=0)
    assert "Comparing 2 models" in comparison.to_html()
    ax = report.plot_per_class(None)
    ax.figure.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == ["\\$\\frac{\\$", "\\$x\\$"]


# ---------------------------------------------------------------- kinds of classifier output


def _binary_ece(p1: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Float64 brute force: bins (lo, hi] of P(y = 1) (the first one [0, hi]), |freq - mean p|."""
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = ((p1 > lo) | (b == 0)) & (p1 <= hi)
        if inside.any():
            total += inside.sum() * abs(float(np.mean(y[inside])) - float(np.mean(p1[inside])))
    return total / len(p1)


def test_one_column_of_p_y1_is_a_binary_problem(tmp_path, capsys, monkeypatch) -> None:
    from crossent.report import Report

    rng = np.random.default_rng(4)
    p1 = rng.uniform(size=400)
    y = (rng.uniform(size=400) < p1**1.5).astype(int)  # miscalibrated: over-predicts y = 1
    rows = "".join(f"{float(a)!r},{b}\n" for a, b in zip(p1, y, strict=True))
    (tmp_path / "binary.csv").write_text("p_positive,label\n" + rows)
    page = tmp_path / "b.html"
    code, out, err = run(
        capsys, monkeypatch, "report", str(tmp_path / "binary.csv"), "--json", "--resamples",
        "0", "-o", str(page),
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["binary"] and summary["classes"] == 2
    assert summary["before"]["ece_positive"] == pytest.approx(_binary_ece(p1, y))
    two = np.stack([1 - p1, p1], axis=1)
    assert summary["before"]["brier"] == pytest.approx(float(cal.brier_score(two, y)))
    assert "binary: one probability per example" in " ".join(summary["notes"])
    assert "binary (the reliability diagram is of P(y = 1))" in page.read_text()
    # The same numbers from the notebook entry, and a logit column read as log-odds.
    report = Report.from_arrays(p1, y, resamples=0)
    assert report.before.metrics["ece_positive"] == summary["before"]["ece_positive"]
    logit = Report.from_arrays(np.log(p1 / (1 - p1)), y, resamples=0)
    assert logit.predictions.kind == "logits"
    assert logit.before.metrics["log_loss_nats"] == pytest.approx(float(cal.log_loss(two, y)))


def test_string_labels_match_class_named_columns(tmp_path, capsys, monkeypatch, small) -> None:
    _, probs, labels = small
    names = np.array(["cat", "dog", "bird", "fish"])
    rows = "".join(
        ",".join(repr(float(v)) for v in row) + f",{names[y]}\n"
        for row, y in zip(probs, labels, strict=True)
    )
    (tmp_path / "named.csv").write_text("cat,dog,bird,fish,label\n" + rows)
    code, out, err = run(
        capsys, monkeypatch, "report", str(tmp_path / "named.csv"), "--json", "--no-html",
        "--resamples", "0",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["before"]["log_loss_nats"] == pytest.approx(float(cal.log_loss(probs, labels)))
    assert summary["class_names"] == list(names)
    # A .npz has no column names: --class-names gives the order, and a stranger is refused.
    np.savez(tmp_path / "named.npz", probs=probs, labels=names[labels])
    code, out, err = run(
        capsys, monkeypatch, "report", str(tmp_path / "named.npz"), "--json", "--no-html",
        "--resamples", "0", "--class-names", "cat,dog,bird,fish",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["before"] == summary["before"]
    for extra in ([], ["--class-names", "cat,dog,bird,cow"]):
        code, _, err = run(
            capsys, monkeypatch, "report", str(tmp_path / "named.npz"), "--no-html", *extra
        )
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "'fish'" in err


def test_many_classes_show_the_worst_first_and_summarize_the_rest() -> None:
    from crossent.report import Report
    from crossent.report._render import CLASS_ROWS

    rng = np.random.default_rng(5)
    logits = 2 * rng.normal(size=(900, 60))
    labels = rng.integers(0, 60, 900)
    report = Report.from_arrays(
        logits, labels, resamples=0, class_names=[f"c{i}" for i in range(60)]
    )
    page = report.to_html()
    ece = np.asarray(report.before.per_class["ece"])
    worst = np.argsort(-ece, kind="stable")[:CLASS_ROWS]
    table = page[page.index("Per-class table") :]
    assert table.count("<tr><td>c") == CLASS_ROWS
    assert table.index(f"<tr><td>c{worst[0]}<") < table.index(f"<tr><td>c{worst[1]}<")
    assert f"the other {60 - CLASS_ROWS} classes" in page
    assert len(json.loads(report.to_json())["per_class_before"]["ece"]) == 60


def test_weights_from_a_file_a_key_or_a_column_weigh_every_metric(
    tmp_path, capsys, monkeypatch, small
) -> None:
    """References: the weighted one-shot functions (tested against scikit-learn's
    sample_weight) and the report on the rows repeated by integer weights."""
    _, probs, labels = small
    w = np.random.default_rng(5).integers(0, 4, len(labels)).astype(np.float64)
    rows = np.repeat(np.arange(len(labels)), w.astype(np.intp))
    np.savez(tmp_path / "p.npz", probs=probs, labels=labels, w=w)
    np.save(tmp_path / "w.npy", w)
    header = ",".join(["a", "b", "c", "d", "label", "weight"])
    lines = [
        ",".join([*(repr(float(v)) for v in row), str(y), repr(float(x))])
        for row, y, x in zip(probs, labels, w, strict=True)
    ]
    (tmp_path / "p.csv").write_text(header + "\n" + "\n".join(lines) + "\n")
    outputs = []
    for args in (
        ["p.npz", "--weights", "w"],
        ["p.npz", "--weights", str(tmp_path / "w.npy")],
        ["p.csv", "--weights", "weight"],
    ):
        code, out, err = run(
            capsys, monkeypatch, "report", str(tmp_path / args[0]), *args[1:], "--no-html",
            "--json", "--resamples", "0",
        )  # fmt: skip
        assert code == 0, err
        outputs.append(json.loads(out))
    first = outputs[0]
    assert first["weighted"] and first["total_weight"] == w.sum()
    assert first["classes"] == 4  # the weight column is no class
    for other in outputs[1:]:
        for key, value in first["before"].items():
            assert other["before"][key] == pytest.approx(value, rel=1e-6), key
    before = first["before"]
    assert before["log_loss_nats"] == pytest.approx(float(cal.log_loss(probs, labels, weights=w)))
    assert before["brier"] == pytest.approx(float(cal.brier_score(probs, labels, weights=w)))
    assert before["accuracy"] == pytest.approx(float(cal.top_k_accuracy(probs, labels, weights=w)))
    assert "aurc" not in before and first["risk_coverage_before"] is None
    from crossent.report import Report

    repeated = Report.from_arrays(probs[rows], labels[rows], resamples=0)
    for key in ("ece", "ece_classwise", "mce", "rmsce", "entropy_nats", "smooth_ece"):
        assert before[key] == pytest.approx(repeated.before.metrics[key], rel=1e-9), key
    d = first["decomposition_nats"]
    assert d["temperature"] == pytest.approx(repeated.decomposition.temperature, rel=1e-6)
    per_class = first["per_class_before"]
    assert per_class["cross_entropy"] == pytest.approx(
        repeated.before.per_class["cross_entropy"], rel=1e-9
    )
    # a binary problem: the reliability of P(y = 1), weighted
    p1, y1 = probs[:, 0], (labels == 0).astype(np.int64)
    binary = Report.from_arrays(p1, y1, weights=w, resamples=0).before.metrics
    plain = Report.from_arrays(p1[rows], y1[rows], resamples=0).before.metrics
    assert binary["ece_positive"] == pytest.approx(plain["ece_positive"], rel=1e-9)
    # the page says the curve is left out; the bootstrap keeps the weights
    report = Report.from_arrays(probs, labels, weights=w, resamples=20)
    page = report.to_html()
    assert "Left out: the examples are weighted" in page
    assert page.count("data:image/png;base64,") == 4
    assert "aurc" not in report.before.intervals.intervals
    sharp = probs**2 / (probs**2).sum(axis=1, keepdims=True)
    both = Report.from_arrays({"a": probs, "b": sharp}, labels, weights=w, resamples=10)
    paired = cal.bootstrap_difference(
        probs, sharp, labels, weights=w, n_resamples=10,
        metrics=["log_loss_nats"],
    )  # fmt: skip
    assert both.differences["b"]["log_loss_nats"].low == pytest.approx(paired["log_loss_nats"].low)
    assert "Left out" in both.to_html()
    with pytest.raises(UsageError, match=r"found -2\.0 at index 0"):
        Report.from_arrays(probs, labels, weights=np.r_[-2.0, w[1:]])


# ---------------------------------------------------------------- multi-label


@pytest.fixture(scope="module")
def multilabel() -> tuple[np.ndarray, np.ndarray]:
    """600 examples, 5 labels of different prevalence: over-confident logits, 0/1 labels."""
    rng = np.random.default_rng(8)
    z = rng.normal(0, 2.5, (600, 5)) + np.linspace(-2, 1, 5)
    y = (rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z / 2))).astype(np.int64)
    return z, y


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torchmetrics' own imports
def test_multilabel_per_label_and_pooled_against_references(multilabel) -> None:
    """References: scikit-learn's log_loss and brier_score_loss per column, a float64
    brute-force ECE per column and over all pairs, torchmetrics' binary calibration error."""
    from sklearn.metrics import brier_score_loss, log_loss

    from crossent.report import MultilabelReport, Report

    z, y = multilabel
    p = 1 / (1 + np.exp(-z))
    for values, kind in ((z, "logits"), (p, "probs")):
        report = Report.from_arrays(values, y, resamples=0, multilabel=True)
        assert isinstance(report, MultilabelReport) and report.predictions.kind == kind
        per = report.per_label
        for j in range(5):
            assert per["bce_nats"][j] == pytest.approx(log_loss(y[:, j], p[:, j]), rel=1e-9)
            assert per["brier"][j] == pytest.approx(brier_score_loss(y[:, j], p[:, j]), rel=1e-9)
            assert per["ece"][j] == pytest.approx(_binary_ece(p[:, j], y[:, j]), rel=1e-9)
            assert per["prevalence"][j] == pytest.approx(y[:, j].mean())
        pooled = report.pooled
        assert pooled["ece"] == pytest.approx(_binary_ece(p.ravel(), y.ravel()), rel=1e-9)
        assert pooled["bce_nats"] == pytest.approx(log_loss(y.ravel(), p.ravel()), rel=1e-9)
        assert pooled["bce_bits"] == pytest.approx(pooled["bce_nats"] / np.log(2))
        assert pooled["brier"] == pytest.approx(brier_score_loss(y.ravel(), p.ravel()), rel=1e-9)
        assert report.macro["ece"] == pytest.approx(np.mean(per["ece"]))
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import binary_calibration_error

    tm = binary_calibration_error(torch.from_numpy(p.ravel()), torch.from_numpy(y.ravel()))
    assert report.pooled["ece"] == pytest.approx(float(tm), rel=1e-6)


def test_multilabel_weights_apply_to_every_label_of_a_row(multilabel) -> None:
    from crossent.report import Report

    z, y = multilabel
    w = np.random.default_rng(9).integers(0, 4, len(y)).astype(np.float64)
    rows = np.repeat(np.arange(len(y)), w.astype(np.intp))
    weighted = Report.from_arrays(z, y, weights=w, resamples=0)
    repeated = Report.from_arrays(z[rows], y[rows], resamples=0)
    for name, values in repeated.per_label.items():
        if name != "positives":
            assert weighted.per_label[name] == pytest.approx(values, rel=1e-9), name
    for name, value in repeated.pooled.items():
        assert weighted.pooled[name] == pytest.approx(value, rel=1e-9), name
    assert any("a row's weight applies to all its labels" in n for n in weighted.predictions.notes)


def test_multilabel_from_the_command_line(tmp_path, capsys, monkeypatch, multilabel) -> None:
    from crossent.report._render import CLASS_ROWS

    z, y = multilabel
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "ml.npz", logits=z, labels=y)
    code, out, err = run(capsys, monkeypatch, "report", "ml.npz", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["multilabel"] and summary["labels"] == 5
    assert any(n.startswith("multi-label: detected") for n in summary["notes"])
    assert len(summary["per_label"]["ece"]) == 5
    page = Path(summary["html"]).read_text()
    assert "Multi-label predictions report" in page and page.count("base64,") == 2
    code, out, _ = run(capsys, monkeypatch, "report", "ml.npz", "--no-html")
    assert code == 0 and "pooled pairs (micro)" in out and "labels of largest ECE" in out
    # many labels: the worst first, the rest summarized, every one in the JSON
    wide = np.tile(z, (1, 12))
    np.save(tmp_path / "wide.npy", wide)
    np.save(tmp_path / "wide_labels.npy", np.tile(y, (1, 12)))
    code, out, err = run(
        capsys, monkeypatch, "report", "wide.npy", "--labels", "wide_labels.npy", "--multilabel",
        "--json", "--force",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    page = Path(summary["html"]).read_text()
    ece = np.asarray(summary["per_label"]["ece"])
    table = page[page.index("Per-label table") :]
    assert table.count("<tr><td>") == CLASS_ROWS
    assert f"<tr><td>{int(np.argmax(ece))}</td>" in table
    assert f"the other {60 - CLASS_ROWS} labels" in page
    # hostile: one line, exit 2
    np.savez(tmp_path / "two.npz", probs=1 / (1 + np.exp(-z)), labels=2 * y)
    np.savez(tmp_path / "flat.npz", logits=z, labels=y[:, 0])
    bad = z.copy()
    bad[3, 2] = -np.inf
    np.savez(tmp_path / "neginf.npz", logits=bad, labels=y)
    for args, message in (
        (["two.npz"], "multi-label labels must be 0/1"),
        (["flat.npz", "--multilabel"], "multi-label needs labels of the predictions' shape"),
        (["neginf.npz"], "found -inf at row 3, label 2"),
        (["ml.npz", "--kind", "probs"], "outside [0, 1]"),
        (["ml.npz", "--binning", "quantile"], "multi-label uses equal-width bins"),
        (["ml.npz", "ml.npz"], "comparing multi-label models is not built"),
    ):
        code, out, err = run(capsys, monkeypatch, "report", *args, "--no-html")
        assert code == 2 and len(err.splitlines()) == 1 and message in err, (args, err)
        assert "Traceback" not in err
