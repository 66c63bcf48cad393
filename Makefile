# Two entry points for a fresh clone: `make demo` (the main job) and `make test` (the suite);
# `make docs` builds the documentation site.
# Each builds .venv on first use. torch is pinned to 2.13.0 first so pip takes the CPU wheel
# that lies on these machines instead of a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q
TORCH := torch==2.13.0
# set before the rules that name it: make expands a prerequisite when it reads the rule
MATHJAX := docs/_mathjax/mathjax

.PHONY: demo test docs lint bench lm dist clean

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

$(VENV)/.docs: pyproject.toml $(VENV)/.demo
	$(PIP) $(TORCH)
	$(PIP) -e '.[docs]'
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
# and token calibration (the two runs at once, about 3 minutes on 2 cores). The last line printed is the
# picture.
lm: $(VENV)/.lm
	$(VENV)/bin/crossent lm --out out/lm --force

test: $(VENV)/.test $(MATHJAX)/tex-chtml.js
	$(PY) -m ruff check src tests benchmarks docs
	$(PY) -m ruff format --check src tests benchmarks docs
	$(PY) -m mypy
	$(PY) -m pytest -q

# MathJax, served by the site itself so that its formulas render offline (Sphinx's default is a
# CDN script). The official build from the npm registry (`npm pack`, which checks the tarball
# against the registry's integrity hash), fetched once into the git-ignored docs/_mathjax rather
# than committed (24 MB). 3.2.2, the last MathJax 3, because it is whole: MathJax 4 loads its
# fonts from a separate package (a CDN by default). tests/test_docs.py builds the site with it.
$(MATHJAX)/tex-chtml.js:
	rm -rf docs/_mathjax && mkdir -p docs/_mathjax/npm
	cd docs/_mathjax/npm && npm pack --silent mathjax@3.2.2 >/dev/null && tar -xzf mathjax-3.2.2.tgz
	mv docs/_mathjax/npm/package/es5 $(MATHJAX) && rm -rf docs/_mathjax/npm

# The documentation site, into docs/_build/html: warnings are errors, the guides' examples run
# (the doctest builder, first; the HTML build then reuses its parsed pages), and the figures are
# drawn from the package. Built from scratch each time, so no stale page or figure survives.
SPHINX := $(PY) -m sphinx -W --keep-going -q -d docs/_build/doctrees
docs: $(VENV)/.docs $(MATHJAX)/tex-chtml.js
	rm -rf docs/_build docs/_generated docs/api/generated
	$(SPHINX) -b doctest docs docs/_build/doctest
	$(SPHINX) -b html docs docs/_build/html
	@echo "open docs/_build/html/index.html"

bench: $(VENV)/.test
	$(PY) benchmarks/core.py
	$(PY) benchmarks/families.py
	$(PY) benchmarks/report.py --mapped  # 20,000 and 200,000 rows; add --mapped 1000000 (4 GB file)

# The release: sdist and wheel into dist/, checked by twine (tests/test_release.py installs them).
dist: $(VENV)/.test
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) build dist docs/_build docs/_mathjax docs/_generated docs/api/generated *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
