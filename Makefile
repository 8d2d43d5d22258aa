# alphawatch — the two commands a newcomer needs:
#   make run    set everything up, run the daemon on config/alphawatch.yaml (watches ./checkpoints)
#   make test   set everything up, run the whole test suite (what CI runs)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch; installed first so nothing pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-fast lint demo bench bench-scale system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test,dev]"
	touch $@

# Debian's packages give the real Prometheus server, promtool, Alertmanager and amtool the tests use.
system-deps:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v amtool >/dev/null || \
	  ( $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager )

run: $(VENV)/.installed
	mkdir -p checkpoints
	$(BIN)/alphawatch run --config config/alphawatch.yaml

test: system-deps $(VENV)/.installed lint
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not e2e"

lint: $(VENV)/.installed
	$(BIN)/ruff check daemon tests bench examples
	$(BIN)/mypy

# The daemon and a training job that overfits on purpose, side by side; ends when training halts itself.
demo: $(VENV)/.installed
	PYTHON_BIN_DIR=$(BIN) bash examples/demo.sh

# alphawatch vs plain WeightWatcher, same weights, same run: one table (bench/run.py).
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[bench]"
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python bench/run.py

# bench plus the multi-GB cases (2 GB checkpoints, a 7B-shaped sharded one): ~40 GB disk, long.
bench-scale: $(VENV)/.bench-installed
	$(BIN)/python bench/run.py --scale

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
