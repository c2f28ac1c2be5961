# PYTHON: the interpreter everything runs with. Default: the project virtualenv .venv, which
# `make install` (and so `make run` / `make test`) creates when missing. PYTHON=python3 (or any
# other) installs into that interpreter instead.
PYTHON ?= .venv/bin/python

.PHONY: install run test test-fast lint docker-smoke failover

install:
	PYTHON=$(PYTHON) bash scripts/install.sh

run:
	PYTHON=$(PYTHON) bash scripts/run.sh

test: install
	bash scripts/install-test-deps.sh
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest

# The edit loop: every test not marked slow (unit, in-process apps, servers on tiny GGUF files the
# tests write); no real model, no timeout waited out. Under a minute on 2 cores. Installs nothing:
# run `make test` once first. `make test` (everything) stays what CI runs.
test-fast:
	$(PYTHON) -m pytest -m "not slow" -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

# Build both images, run them with Compose, measure and check them (needs root for the Docker
# engine it starts when none runs); see scripts/docker_smoke.py and the README's Docker section.
docker-smoke: install
	bash scripts/install-test-deps.sh
	$(PYTHON) scripts/docker_smoke.py

# Two GGUF replicas behind HAProxy, 16 clients streaming, SIGTERM to one mid-load, then it starts
# again: requests, failures and p99 across the event (scripts/replica_failover.py; the tests run it too).
failover: install
	bash scripts/install-test-deps.sh
	$(PYTHON) scripts/replica_failover.py --json failover.json
