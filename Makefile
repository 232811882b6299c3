# The two commands of the README: `make demo` and `make test`. Both build .venv from nothing but Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint bench clean

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

clean:
	rm -rf $(VENV) build *.egg-info
