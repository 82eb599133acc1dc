# One way to run everything: the same targets locally, in CI and in the docs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run dev test lint services services-stop bench bench-quick chaos clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## run: the whole service (web + worker + beat) on SERVICE_PORT (8006), with embedded Postgres/Redis if needed
run: $(STAMP)
	$(PY) -m orchestrator_project.runstack

## dev: like run, but the web server reloads on code changes
dev: $(STAMP)
	$(PY) -m orchestrator_project.runstack --reload

## test: the whole test suite against real Postgres and Redis (embedded unless the URLs are set)
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

services: $(STAMP)
	$(PY) -m orchestrator_project.embedded start

services-stop: $(STAMP)
	$(PY) -m orchestrator_project.embedded stop

clean: services-stop
	rm -rf var staticfiles
