"""The release: an sdist and a wheel that pass ``twine check``, and the wheel working outside the
source tree.

Two installs of the built wheel, both in temporary folders away from the repository:

- core only, into a fresh virtual environment (pip brings numpy and array-api-compat and
  nothing else): the losses work, ``import crossent`` loads no framework, the command prints
  the install hint of the ``cli`` extra;
- with every extra: the wheel unpacked with ``pip install --no-deps --target`` and put first on
  ``PYTHONPATH`` of this environment's interpreter (which has every extra installed), so that
  the installed files, not ``src/``, answer: each public entry point and each command runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """sdist and wheel built from a copy of the repository's files (git's list: a stale
    ``build/`` folder in the checkout must not leak old modules into the wheel)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the release is built from git's list of files")
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    build = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)]
    proc = _run(build, cwd=source)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("crossent-*-py3-none-any.whl")
    return wheel


def test_sdist_and_wheel_pass_twine_check_and_hold_the_package_data(dist):
    import crossent

    files = sorted(dist.iterdir())
    assert sorted(f.suffix for f in files) == [".gz", ".whl"]
    assert f"crossent-{crossent.__version__}" in files[0].name  # one source of the version
    proc = _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, files)], cwd=dist)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = zipfile.ZipFile(_wheel(dist)).namelist()
    data = ["py.typed", "data/wideresnet-16-4-cifar-10.npz", "explore/static/index.html"]
    for name in [*data, "explore/static/explore.js", "data/LICENSE.txt"]:
        assert f"crossent/{name}" in names, name
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


CORE_SMOKE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import crossent as ce
    loss = ce.softmax_cross_entropy(np.array([[2.0, 0.5, -1.0]]), np.array([0]))
    heavy = ("torch", "jax", "scipy", "dask")
    frameworks = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
    print(ce.__file__, float(loss), frameworks)
    """
)


def test_core_only_install_in_a_fresh_environment(dist, tmp_path):
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path).returncode == 0
    python = venv / "bin" / "python"
    proc = _run([str(python), "-m", "pip", "install", "-q", str(_wheel(dist))], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _run([str(python), "-c", CORE_SMOKE], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    where, loss, frameworks = proc.stdout.split(" ", 2)
    assert where.startswith(str(venv)) and frameworks.strip() == "[]"
    assert float(loss) == pytest.approx(0.2413, abs=1e-4)  # -log softmax([2, .5, -1])[0]
    proc = _run([str(venv / "bin" / "crossent"), "report", "--help"], cwd=tmp_path)
    assert proc.returncode == 2 and "pip install 'crossent[cli]'" in proc.stderr
    assert "Traceback" not in proc.stderr


EXTRAS_SMOKE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    import crossent as ce, crossent.calibration as cal
    import crossent.torch as cet
    from crossent.report import Report, example_path
    from crossent.transformers import patch
    from transformers import LlamaConfig, LlamaForCausalLM
    h, w = torch.randn(6, 8, requires_grad=True), torch.randn(11, 8)
    loss = cet.linear_cross_entropy(h, w, torch.arange(6))
    loss.backward()
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
        num_hidden_layers=1, num_attention_heads=2))
    ids = torch.randint(0, 50, (1, 9))
    ours = patch(model)(ids, labels=ids).loss.detach()
    import jax, jax.numpy as jnp
    on_jax = jax.grad(lambda z: ce.softmax_cross_entropy(z, jnp.array([0, 1])))(jnp.zeros((2, 3)))
    data = np.load(example_path())
    report = Report.from_arrays(data["predictions"], data["ground_truth"], resamples=0)
    print(json.dumps({"file": ce.__file__, "linear": float(loss.detach()),
        "jax": float(on_jax.sum()),
        "ece": float(cal.expected_calibration_error(np.full((2, 2), 0.5), np.array([0, 1]))),
        "hf": float(ours), "accuracy": report.before.metrics["accuracy"]}))
    """
)


def test_every_entry_point_and_command_of_the_installed_wheel(dist, tmp_path):
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    assert _run([*pip, str(_wheel(dist))], cwd=tmp_path).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(target), "MPLBACKEND": "Agg"}
    proc = _run([sys.executable, "-c", EXTRAS_SMOKE], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(str(target))  # the installed files, not src/
    assert all(v == v for v in result.values())  # no NaN
    cli = [sys.executable, "-c", "from crossent._entry import main; main()"]
    commands = [
        ["--help"],
        ["tour"],
        ["report", "--output", str(tmp_path / "r.html"), "--resamples", "0"],
        ["train", "--loss", "ce", "--epochs", "1", "--out", str(tmp_path / "train")],
        ["explore", "--help"],
    ]
    for args in commands:
        proc = _run([*cli, *args], cwd=tmp_path, env=env)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
    assert (tmp_path / "r.html").stat().st_size > 10_000
    assert (tmp_path / "train" / "results.json").exists()
