# One entry point for a fresh machine. `make test` and `make book` create .venv if missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rmqm-installed
PROFILE ?= default

.PHONY: help install system-deps test run synbench zoo book bench clean

help:
	@echo "make test      - create .venv, install rmqm with test extras, run pytest"
	@echo "make run       - train the tiny default encoder and print its RMQM (noise and PGD)"
	@echo "make synbench  - SynBench score table of the default encoder"
	@echo "make zoo       - train the tiny model zoo and print its downstream table"
	@echo "make book      - run the study notebooks (PROFILE=$(PROFILE)) and build the Jupyter Book"
	@echo "make bench     - run the speed benchmarks in benchmarks/"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,book,distributed]"
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

test: install system-deps
	$(PY) -m pytest

run: install system-deps
	$(PY) -m rmqm rmqm

synbench: install system-deps
	$(PY) -m rmqm synbench

zoo: install system-deps
	$(PY) -m rmqm zoo

book: install system-deps
	$(PY) -m rmqm.study run --profile $(PROFILE)

bench: install
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/bench_pgd_trajectory.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_synbench.py

clean:
	rm -rf build _build results .pytest_cache
