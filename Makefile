PYTHON ?= python3

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
