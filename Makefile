# Double Edge: two commands do everything on a fresh machine with python3 and make.
#   make start   build the course site and start it with JupyterLab on the labs
#   make test    run every test (real garak, nbgrader, Jupyter kernels, MkDocs)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT_SITE ?= 8000
PORT_LAB ?= 8888
PYTEST_ARGS ?=

.PHONY: help start test lint bench lock clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

start: $(STAMP) ## build the site, make your lab copies in workspace/, serve both
	$(BIN)/doubleedge start --site-port $(PORT_SITE) --lab-port $(PORT_LAB)

test: $(STAMP) ## run all tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff on code and notebooks
	$(BIN)/ruff check src tests bench labs

bench: $(STAMP) ## benchmarks (ratios against a baseline measured in the same run)
	$(BIN)/python bench/run.py

# The virtual environment, rebuilt when the dependency pins change. torch comes
# first so pip takes the CPU build (garak needs torch; a CUDA build is ~3 GB).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

lock: ## re-pin constraints.txt from a fresh venv (after changing pyproject.toml)
	rm -rf /tmp/doubleedge-lock && $(PYTHON) -m venv /tmp/doubleedge-lock
	/tmp/doubleedge-lock/bin/python -m pip install --quiet "pip==26.3" "torch==2.13.0"
	/tmp/doubleedge-lock/bin/python -m pip install --quiet -e ".[test]"
	{ head -2 constraints.txt; /tmp/doubleedge-lock/bin/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.new
	mv constraints.new constraints.txt

clean: ## remove the virtual environment and build outputs (keeps workspace/)
	rm -rf $(VENV) site .pytest_cache
