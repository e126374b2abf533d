# pixsearch: two commands do all the set-up on a fresh machine.
#   make demo   create .venv from the lock if missing, then run the main job on the embedded defaults
#   make test   create .venv from the lock if missing, then run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock-cpu.txt
STAMP := $(VENV)/.installed

.PHONY: lint fmt demo test test-slow test-cluster docs-check venv lock clean browser

$(STAMP): $(LOCK) requirements/nodeps.txt requirements/constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(LOCK) -c requirements/constraints.txt
	$(PY) -m pip install -q --no-deps -r requirements/nodeps.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pixsearch demo

# The trace-viewer test drives Debian's chromium through playwright (no browser download). Installed here when
# missing and we are root with apt-get; otherwise that one test is skipped with its reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "make: no chromium (needs root + apt-get): the trace-viewer browser test will be skipped"

test: $(STAMP) browser lint
	$(PY) -m pytest -q

# Lint and format check (ruff, configured in pyproject.toml): part of `make test`; `make fmt` rewrites.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

fmt: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test-slow: $(STAMP)
	$(PY) -m pytest -q -m "slow"

# README's shell blocks, run after `pixsearch demo --steps world,index` (DOCS_CHECK_DIR=out-dir reuses one).
docs-check: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -q -m "docs" tests/test_readme.py

# Real engines as README's "Cluster deployment" starts them (ports 18300-18399; 4-6 min on 2 cores).
test-cluster: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -q -m "cluster" tests/test_cluster.py

# Re-resolve the lock from requirements/requirements.in (needs the package registries).
lock:
	rm -rf /tmp/pixsearch-lock && $(PYTHON) -m venv /tmp/pixsearch-lock
	/tmp/pixsearch-lock/bin/pip install -q -r requirements/requirements.in -c requirements/constraints.txt
	/tmp/pixsearch-lock/bin/pip freeze --exclude-editable > $(LOCK)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
