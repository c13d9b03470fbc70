# metallb-py: `make demo` runs it, `make test` tests it. Both set up first (idempotent).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Lab tests wait on real daemons and timers far more than they compute, so more workers than cores pays.
PYTEST_WORKERS ?= 4

.PHONY: setup demo test lint typecheck unit bench fuzz clean

setup:
	@./scripts/setup.sh

demo: setup
	$(VENV)/bin/metallb-py demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

test: setup lint typecheck
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

# Full-size benchmarks; `make test` runs each at smoke size.
bench: setup
	METALLB_BENCH=full $(PY) -m pytest -n 0 -s tests/perf

# Long fuzz runs; `make test` runs each briefly.
fuzz: setup
	METALLB_FUZZ=long $(PY) -m pytest -n 0 tests -k fuzz

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
