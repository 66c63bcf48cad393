"""Hostile files through ``crossent report``: random and mutated .npz, .npy, .csv and .parquet.

Whatever the file holds, the command ends with exit code 0 (a report) or 2 (one line naming
the problem): never a traceback, and never a file written anywhere but the named output.
Each example runs the real entry point in-process (``crossent.apps.cli:main``); the number of
examples is bounded so that the suite stays well inside CI's time.
"""

from __future__ import annotations

import io
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

pytest.importorskip("typer")
pytest.importorskip("pyarrow")

import pyarrow as pa
import pyarrow.parquet as pq

from crossent.apps import cli

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KEYS = ["predictions", "probs", "logits", "labels", "y", "ground_truth", "x", ""]
DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_]
SPECIAL = [0.0, 1.0, -1.0, 0.5, np.nan, np.inf, -np.inf, 1e308, -1e308, 1e-320, 3.0, 255.0]


def _report(monkeypatch, capsys, folder, name: str) -> tuple[int, str]:
    """Run ``crossent report folder/name``; (exit code, stderr). Checks what was written."""
    before = {p.name for p in folder.iterdir()}
    output = folder / "out.html"
    argv = ["crossent", "report", str(folder / name), "--output", str(output), "--force"]
    monkeypatch.setattr(sys, "argv", [*argv, "--resamples", "0"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy warning would be a silent NaN in the making
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
    code = exit_info.value.code or 0
    _, err = capsys.readouterr()
    assert code in (0, 2), err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    written = {p.name for p in folder.iterdir()} - before
    assert written <= ({"out.html"} if code == 0 else set()), written
    if output.exists():
        output.unlink()
    return code, err


def _cast(dtype, shape, fill) -> np.ndarray:
    with np.errstate(all="ignore"):  # nan/inf to integers: whatever NumPy makes of them
        return np.asarray(fill(shape)).astype(dtype, copy=False)


arrays = st.builds(
    _cast,
    st.sampled_from(DTYPES),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
    st.sampled_from(
        [
            lambda s: np.random.default_rng(0).random(s),
            lambda s: np.random.default_rng(1).integers(-2, 5, s),
            lambda s: np.random.default_rng(2).choice(SPECIAL, s),
            lambda s: np.random.default_rng(3).normal(0, 30, s),
        ]
    ),
)


@SETTINGS
@given(contents=st.dictionaries(st.sampled_from(KEYS), arrays, max_size=3))
@example(  # found by this test: multi-label with no label columns (an IndexError)
    contents={"predictions": np.zeros((2, 0), np.float16), "labels": np.zeros((2, 0), np.float16)}
)
def test_random_npz_files(tmp_path, monkeypatch, capsys, contents):
    with open(tmp_path / "p.npz", "wb") as f:
        np.savez(f, **{k or "arr": v for k, v in contents.items()})
    _report(monkeypatch, capsys, tmp_path, "p.npz")


def _valid_files() -> dict[str, bytes]:
    """One valid file of each format, the seeds of the mutations."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), 40)
    y = rng.integers(0, 3, 40)
    files = {}
    buffer = io.BytesIO()
    np.savez(buffer, probs=p, labels=y)
    files["p.npz"] = buffer.getvalue()
    buffer = io.BytesIO()
    np.save(buffer, p)
    files["p.npy"] = buffer.getvalue()
    lines = [
        "a,b,c,label",
        *(f"{r[0]:.6f},{r[1]:.6f},{r[2]:.6f},{t}" for r, t in zip(p, y, strict=True)),
    ]
    files["p.csv"] = ("\n".join(lines) + "\n").encode()
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": p[:, 0], "b": p[:, 1], "c": p[:, 2], "label": y}), buffer)
    files["p.parquet"] = buffer.getvalue()
    return files


VALID = _valid_files()


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif data:
            data[at : at + 8] = bytes(len(data[at : at + 8]))
    return name, bytes(data)


@SETTINGS
@given(file=mutated())
def test_mutated_files(tmp_path, monkeypatch, capsys, file):
    name, data = file
    (tmp_path / name).write_bytes(data)
    _report(monkeypatch, capsys, tmp_path, name)


cells = st.one_of(
    st.sampled_from(["0.5", "0.25", "1", "0", "-1", "nan", "inf", "", "x", "1e400", '"a,b"', "2"]),
    st.text(alphabet="0123456789.-e,\"' ab", max_size=6),
)


@SETTINGS
@given(
    header=st.lists(st.sampled_from(["a", "b", "a", "label", "y", "p0", "p1", ""]), max_size=5),
    rows=st.lists(st.lists(cells, min_size=0, max_size=5), max_size=8),
)
def test_random_csv_files(tmp_path, monkeypatch, capsys, header, rows):
    text = "\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n"
    (tmp_path / "p.csv").write_text(text)
    _report(monkeypatch, capsys, tmp_path, "p.csv")


columns = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "label", "labels", "a"]),
        st.sampled_from(["float", "int", "str", "list", "null"]),
    ),
    min_size=0,
    max_size=4,
)


@SETTINGS
@given(spec=columns, n=st.integers(0, 6))
def test_random_parquet_files(tmp_path, monkeypatch, capsys, spec, n):
    rng = np.random.default_rng(n)
    make = {
        "float": lambda: pa.array(rng.choice(SPECIAL[:8], n)),
        "int": lambda: pa.array(rng.integers(-1, 4, n)),
        "str": lambda: pa.array([f"c{i % 3}" for i in range(n)]),
        "list": lambda: pa.array([list(rng.random(2 + i % 2)) for i in range(n)]),
        "null": lambda: pa.nulls(n, pa.float64()),
    }
    table = pa.Table.from_arrays([make[kind]() for _, kind in spec], names=[c for c, _ in spec])
    pq.write_table(table, tmp_path / "p.parquet")
    _report(monkeypatch, capsys, tmp_path, "p.parquet")


# ---------------------------------------------------------------- sizes, special files, memory


def _zip_bomb(path, rows: int, cols: int) -> None:
    """A .npz whose predictions inflate to rows x cols float64 zeros from a few kB on disk,
    written in pieces (never in memory whole here either)."""
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (rows, cols)}
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("predictions.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            zeros = bytes(1 << 20)
            for _ in range(rows * cols * 8 >> 20):
                member.write(zeros)
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(rows, dtype=np.int64))
        z.writestr("labels.npy", buffer.getvalue())


def test_a_file_that_inflates_past_the_limit_is_refused_before_reading(
    tmp_path, monkeypatch, capsys
):
    _zip_bomb(tmp_path / "bomb.npz", 1 << 15, 64)  # 16 MB inflated, 20 kB on disk
    assert (tmp_path / "bomb.npz").stat().st_size < 100_000
    monkeypatch.setattr(sys, "argv", ["crossent", "report", str(tmp_path / "bomb.npz"),
                                      "--no-html", "--max-bytes", "4M"])  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert "would take 17.0 MB of memory, over the limit of 4.0 MB" in err, err


def test_max_bytes_holds_for_every_format(tmp_path):
    from crossent.errors import UsageError
    from crossent.report import write_report

    for name, data in VALID.items():
        (tmp_path / name).write_bytes(data)
        np.save(tmp_path / "labels.npy", np.zeros(40, dtype=np.int64))
        labels = tmp_path / "labels.npy" if name.endswith(".npy") else None
        write_report(tmp_path / name, labels=labels, html=False, resamples=0)  # fits
        with pytest.raises(UsageError, match="over the limit of 100 bytes"):
            write_report(tmp_path / name, labels=labels, html=False, max_bytes=100)
    with pytest.raises(UsageError, match="max_bytes is a positive whole number"):
        write_report(tmp_path / "p.npz", html=False, max_bytes=0)


@pytest.mark.parametrize("size", ["0", "-5", "lots", "1e30", ""])
def test_a_bad_max_bytes_is_one_line(tmp_path, monkeypatch, capsys, size):
    (tmp_path / "p.npz").write_bytes(VALID["p.npz"])
    monkeypatch.setattr(sys, "argv", ["crossent", "report", str(tmp_path / "p.npz"),
                                      "--no-html", "--max-bytes", size])  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2 and "--max-bytes takes a size" in capsys.readouterr().err


def test_a_fifo_is_refused_instead_of_read_forever(tmp_path, monkeypatch, capsys):
    import os

    for name in ("p.npz", "p.csv"):
        os.mkfifo(tmp_path / name)  # nobody writes: opening it for reading would block
        code, err = _report(monkeypatch, capsys, tmp_path, name)
        assert code == 2 and "is not a regular file" in err
    (tmp_path / "q.npy").write_bytes(VALID["p.npy"])
    os.mkfifo(tmp_path / "labels.npy")
    monkeypatch.setattr(sys, "argv", ["crossent", "report", str(tmp_path / "q.npy"), "--labels",
                                      str(tmp_path / "labels.npy"), "--no-html"])  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2 and "is not a regular file" in capsys.readouterr().err


def test_running_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    from crossent.report import _load

    def exhausted(*args, **kwargs):  # NumPy's message, as np.empty(1 << 40) gives it
        raise MemoryError(
            "Unable to allocate 8.00 TiB for an array with shape (1099511627776,) and data "
            "type float64"
        )

    (tmp_path / "p.npz").write_bytes(VALID["p.npz"])
    monkeypatch.setattr(_load, "from_arrays", exhausted)
    code, err = _report(monkeypatch, capsys, tmp_path, "p.npz")
    assert code == 2 and err.startswith("crossent: error: out of memory (Unable to allocate")
