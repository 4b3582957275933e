# One entry point for a fresh machine. `make test` and `make book` create .venv if missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
LOCK   := requirements/lock.txt
# pinned wheels whose declared requirements clash with the lock (old numpy, tensorflow): --no-deps
NODEPS := requirements/nodeps.txt
STAMP  := $(VENV)/.rmqm-installed
PROFILE ?= default
# `make test-latest`: a separate venv with the newest versions pyproject.toml's ranges allow
LATEST_VENV ?= build/venv-latest
# `make lock`: pip-tools in a venv of its own (it is not part of the project's environment)
LOCK_TOOLS ?= build/venv-lock
LOCK_ARGS ?=

.PHONY: help install system-deps lint test test-latest lock run synbench zoo book bench clean

help:
	@echo "make test        - create .venv, install the locked versions (requirements/lock.txt), lint, run pytest"
	@echo "make lint        - ruff check rmqm tests; mypy rmqm"
	@echo "make test-latest - pytest in $(LATEST_VENV) with the newest versions pyproject.toml allows"
	@echo "make lock        - recompile requirements/lock.txt with pip-tools (LOCK_ARGS=--upgrade: newest)"
	@echo "make run         - train the tiny default encoder and print its RMQM (noise and PGD)"
	@echo "make synbench    - SynBench score table of the default encoder"
	@echo "make zoo         - train the tiny model zoo and print its downstream table"
	@echo "make book        - run the study notebooks (PROFILE=$(PROFILE)) and build the Jupyter Book"
	@echo "make bench       - run the speed benchmarks in benchmarks/ (time budget: build/bench/budget.csv, .png)"

# Exact versions from the lock, then rmqm itself without resolving anything again.
# The stamp makes a rerun skip this until pyproject.toml, the lock or $(NODEPS) changes.
$(STAMP): pyproject.toml $(LOCK) $(NODEPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -r $(NODEPS)
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

lint: install
	$(PY) -m ruff check rmqm tests
	$(PY) -m mypy rmqm

test: install system-deps lint
	$(PY) -m pytest

test-latest: system-deps
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[test,book,distributed]"
	$(LATEST_VENV)/bin/python -m pip install -q --no-deps -r $(NODEPS)
	$(LATEST_VENV)/bin/python -m pip freeze --exclude-editable > $(LATEST_VENV)/versions.txt
	@echo "newest versions in the ranges: $(LATEST_VENV)/versions.txt (diff against $(LOCK))"
	$(LATEST_VENV)/bin/python -m pytest

lock:
	test -x $(LOCK_TOOLS)/bin/pip-compile || \
	  ($(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/python -m pip install -q pip-tools==7.6.2)
	$(LOCK_TOOLS)/bin/pip-compile --quiet $(LOCK_ARGS) --extra test --extra book --extra distributed \
	  --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  --constraint requirements/constraints.txt --output-file $(LOCK) pyproject.toml

run: install system-deps
	$(PY) -m rmqm rmqm

synbench: install system-deps
	$(PY) -m rmqm synbench

zoo: install system-deps
	$(PY) -m rmqm zoo

book: install system-deps
	$(PY) -m rmqm study run --profile $(PROFILE)

bench: install
	$(PY) -m pip install -q -e ".[bench]"
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_budget.py --threads 1 --out build/bench --train-batch-256
	$(PY) benchmarks/bench_pgd_trajectory.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_synbench.py
	$(PY) benchmarks/bench_training_step.py --threads 1

clean:
	rm -rf build _build results .pytest_cache
