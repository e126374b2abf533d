# pixsearch: two commands do all the set-up on a fresh machine.
#   make demo   create .venv from the lock if missing, then run the main job on the embedded defaults
#   make test   create .venv from the lock if missing, then run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock-cpu.txt
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-cluster docs-check venv lock clean

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

test: $(STAMP)
	$(PY) -m pytest -q

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
