# PYTHON: the interpreter everything runs with. Default: the project virtualenv .venv, which
# `make install` (and so `make run` / `make test`) creates when missing. PYTHON=python3 (or any
# other) installs into that interpreter instead.
PYTHON ?= .venv/bin/python

.PHONY: install run test lint

install:
	PYTHON=$(PYTHON) bash scripts/install.sh

run:
	PYTHON=$(PYTHON) bash scripts/run.sh

test: install
	bash scripts/install-test-deps.sh
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy
