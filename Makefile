# Two entry points for a fresh clone: `make demo` (the main job) and `make test` (the suite).
# Each builds .venv on first use. torch is pinned to 2.13.0 first so pip takes the CPU wheel
# that lies on these machines instead of a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q
TORCH := torch==2.13.0

.PHONY: demo test lint bench lm clean

$(VENV)/.demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH)
	$(PIP) -e '.[report,explore,torch]'
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.demo
	$(PIP) $(TORCH)
	$(PIP) -e '.[test]'
	touch $@

# The main job: train on scikit-learn's digits with crossent's gradients (measuring the seeds'
# claims), then write the HTML report on the cross-entropy model's held-out predictions. The
# last line printed is the report's path. `crossent tour` runs the seeds' worked examples.
demo: $(VENV)/.demo
	$(VENV)/bin/crossent train --out out/demo --force
	$(VENV)/bin/crossent report out/demo/predictions-ce.npz --output out/demo/report.html --force

$(VENV)/.lm: pyproject.toml $(VENV)/.demo
	$(PIP) $(TORCH)
	$(PIP) -e '.[transformers,report]'
	touch $@

# A small GPT-2 learns the standard library's pydoc topics twice, with its own loss and under
# crossent.transformers.patch: the two loss curves, each run's peak memory, held-out perplexity
# and token calibration (the two runs at once, ~6 CPU-minutes). The last line printed is the
# picture.
lm: $(VENV)/.lm
	$(VENV)/bin/crossent lm --out out/lm --force

test: $(VENV)/.test
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m mypy
	$(PY) -m pytest -q

bench: $(VENV)/.test
	$(PY) benchmarks/core.py
	$(PY) benchmarks/families.py
	$(PY) benchmarks/report.py --mapped  # 20,000 and 200,000 rows; add --mapped 1000000 (4 GB file)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
