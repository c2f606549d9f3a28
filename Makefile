# One entry point for set-up, demo and tests. Every target installs what it needs, so a
# fresh clone needs nothing but Python 3.10+ and (for the demo data) apt.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist

.PHONY: venv data demo test bench clean

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

test: venv
	$(PY) -m pytest -q

bench: venv
	$(PY) benchmarks/step_speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache
