# make run   : the main job - Iteration 1 notebooks on the embedded models (CPU), then report
# make test  : the test suite on the embedded models
# make lab   : JupyterLab on the repository
# Each target sets up .venv on first use. PARAMS=gpu runs the big candidates on a CUDA box.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TORCH ?= torch==2.13.0
PARAMS ?= cpu
ITERATION ?= iterations/01_biggest_model
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lab sync report bench
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -e .
	touch $@

run: setup
	$(PY) -m shared.runbook $(ITERATION) --params $(PARAMS)

test: setup
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

lab: setup
	$(VENV)/bin/jupyter lab

sync: setup
	$(VENV)/bin/jupytext --sync $$(grep -l "^#   jupytext:" $(ITERATION)/*.py)

report: setup
	$(PY) -m shared.report $(ITERATION)

bench: setup
	$(PY) benchmarks/load_and_overhead.py
	$(PY) benchmarks/llama_decode.py
