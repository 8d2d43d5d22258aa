# alphawatch — the two commands a newcomer needs:
#   make run    set everything up, run the daemon on config/alphawatch.yaml (watches ./checkpoints)
#   make test   set everything up, run the whole test suite (what CI runs)
# and, for the container:
#   make image  build alphawatch:<version> and alphawatch-trainer:<version> (also tagged latest)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch, installed first so nothing pulls a multi-GB CUDA build: from the CPU
# index; where that index can't be reached, from the configured index (here: a local +cpu wheel).
# The image build uses the same pin (deploy/image/build.sh).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
# Prometheus, promtool, Alertmanager, amtool (and docker-compose if missing): project-local.
TOOLS ?= .tools

.PHONY: run test test-fast lint demo bench bench-scale signal-study faults tools image clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --index-url "$(TORCH_INDEX_URL)" --timeout 20 --retries 1 "$(TORCH_SPEC)" 2>/dev/null \
	  || { echo "$(TORCH_INDEX_URL) unreachable: $(TORCH_SPEC) from the configured index"; \
	       $(BIN)/pip install --quiet "$(TORCH_SPEC)"; }
	@$(BIN)/python -c "import torch; torch.version.cuda and print('WARNING: torch', torch.__version__, \
	  'is a CUDA build (GBs); the CPU build is enough for alphawatch')" || true
	$(BIN)/pip install --quiet -e ".[test,dev]"
	touch $@

# The real Prometheus, promtool, Alertmanager and amtool the tests use, from Debian's packages
# unpacked into $(TOOLS) (no root, no service installed); the tests find them on PATH.
tools:
	@deploy/tools/install.sh $(TOOLS)

# The images, with no manual step also where Docker Hub and the CPU index can't be reached.
image:
	TORCH_SPEC="$(TORCH_SPEC)" TORCH_INDEX_URL="$(TORCH_INDEX_URL)" deploy/image/build.sh

run: $(VENV)/.installed
	mkdir -p checkpoints
	$(BIN)/alphawatch run --config config/alphawatch.yaml

# Also runs the container suite (tests/container) when a Docker engine answers or can be started.
test: tools $(VENV)/.installed lint
	PATH="$(abspath $(TOOLS))/bin:$$PATH" ALPHAWATCH_TOOLS="$(abspath $(TOOLS))" \
	  TORCH_SPEC="$(TORCH_SPEC)" TORCH_INDEX_URL="$(TORCH_INDEX_URL)" $(BIN)/python -m pytest -q

test-fast: tools $(VENV)/.installed
	PATH="$(abspath $(TOOLS))/bin:$$PATH" $(BIN)/python -m pytest -q -m "not e2e"

lint: $(VENV)/.installed
	$(BIN)/ruff check daemon tests bench examples
	$(BIN)/mypy

# The daemon and a training job that overfits on purpose, side by side; ends when training halts itself.
demo: $(VENV)/.installed
	PYTHON_BIN_DIR=$(BIN) bash examples/demo.sh

# alphawatch vs plain WeightWatcher, same weights, same run: one table (bench/run.py); then the
# daemon's latency, idle, scrape, neighbour and long-history figures (bench/daemon/run.py).
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[bench]"
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python bench/run.py
	PATH="$(abspath $(TOOLS))/bin:$$PATH" $(BIN)/python bench/daemon/run.py

# bench plus the multi-GB cases (2 GB checkpoints, a 7B-shaped sharded one): ~40 GB disk, long.
bench-scale: $(VENV)/.bench-installed
	$(BIN)/python bench/run.py --scale

# The stop-signal study (bench/stop_signal): trains real runs (cached in .signal-cache/), analyzes every
# checkpoint with alphawatch, scores the candidate stop rules; report in bench/stop_signal/results/.
signal-study: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[study]"
	$(BIN)/python -m bench.stop_signal

# The fault suite at full size (2,000-checkpoint burst, 2 h soak at one checkpoint a minute,
# 100-cycle kill -9 crash loop, ...) then 60 s of idle; prints the Reliability table (README)
# and writes it to faults-report.json. About 2.5 hours; CI runs the compressed variants.
faults: $(VENV)/.installed
	ALPHAWATCH_FAULTS=full ALPHAWATCH_FAULTS_REPORT=faults-report.json \
	  $(BIN)/python -m pytest -q -m faults tests/faults --timeout 10800
	$(BIN)/python bench/daemon/run.py --cases idle

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
