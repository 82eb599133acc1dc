# One way to run everything: the same targets locally, in CI and in the docs.
# A fresh clone needs only Python 3.11: the first target run creates .venv and installs into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Touched after a complete install; a changed requirements file (or a failed install) redoes it.
STAMP := $(VENV)/.installed

.PHONY: help run dev test chaos lint deploy-check services services-stop clean bench bench-quick

help:
	@grep -E '^## ' Makefile | sed 's/^## /  make /'

$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required: no python3.11 or python3 on PATH" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, $(PYTHON) is " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  echo "Could not create $(VENV); on Debian/Ubuntu install python3.11-venv first" >&2; rm -rf $(VENV); exit 1; }
	@echo "Installing dependencies into $(VENV)..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

## run: the whole service (web + worker + beat, production settings) on 127.0.0.1:8006, with embedded Postgres/Redis if needed
run: $(STAMP)
	@$(PY) -m orchestrator_project.runstack

## dev: like run, but with DEBUG on and a web server that reloads on code changes
dev: $(STAMP)
	@$(PY) -m orchestrator_project.runstack --dev

## test: the whole test suite against real Postgres and Redis (embedded unless the URLs are set); installs Chromium if it may
test: $(STAMP)
	@bash scripts/ensure-chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

## chaos: the fault-injection suite (kills, restarts, stalls) on its own throwaway PostgreSQL and Redis
chaos: $(STAMP)
	$(PY) -m pytest -p tests.chaos.plugin tests/chaos $(PYTEST_ARGS)

## lint: ruff check and ruff format --check over the repository
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## deploy-check: validate Dockerfile, Compose file and Kubernetes manifests offline (deploy/validate.sh)
deploy-check: $(STAMP)
	bash deploy/validate.sh

## bench: the benchmark of issue 6 against the real stack (~15 min); writes docs/benchmarks.md and .json
bench: $(STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

## bench-quick: the same at a small size in under a minute (CI smoke test); writes var/bench/benchmarks-quick.md
bench-quick: $(STAMP)
	$(PY) -m bench.run --quick $(BENCH_ARGS)

## services: start the embedded PostgreSQL and Redis (and print their URLs)
services: $(STAMP)
	@$(PY) -m orchestrator_project.embedded start

## services-stop: stop the embedded PostgreSQL and Redis
services-stop: $(STAMP)
	@$(PY) -m orchestrator_project.embedded stop

## clean: stop the embedded services and delete their data and collected static files
clean: services-stop
	rm -rf var staticfiles
