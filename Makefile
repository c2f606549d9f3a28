# One entry point for set-up, demo and tests. Every target installs what it needs, so a
# fresh clone needs nothing but Python 3.10+ and (for the demo data) apt.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist

.PHONY: venv data demo test test-fast lint bench clean

# The stamp file makes `venv` re-run when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the local CPU wheel; an unpinned torch pulls GBs of CUDA.
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

data:
	@bash scripts/ensure_fashion_mnist.sh $(FMNIST_DIR)

demo: venv data
	$(VENV)/bin/steadygan train --config configs/demo-fashion-mnist.yaml --set data.root=$(FMNIST_DIR)

# Everything CI runs: the linters (ruff; import-linter's layer and cycle contracts) and every test.
test: lint
	$(PY) -m pytest -q

# The inner loop: no test that trains for seconds or starts processes (under a minute on 2 cores).
test-fast: venv
	$(PY) -m pytest -q -m "not slow and not distributed"

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

bench: venv
	$(PY) benchmarks/step_speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache
