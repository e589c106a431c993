# Two entry points (see README): `make run` and `make test`. Both are idempotent.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOME_DIR ?= .grids
BUNDLE := $(HOME_DIR)/default
PORT ?= 8050

.PHONY: run test venv venv-test data chromium lint bench clean

run: data
	$(PY) app.py --bundle $(BUNDLE) --port $(PORT)

test: venv-test chromium
	$(PY) -m ruff check .
	$(PY) -m pytest -q $(PYTEST_ARGS)

venv: $(VENV)/.runtime-installed
venv-test: $(VENV)/.test-installed

$(VENV)/.runtime-installed: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.runtime-installed requirements-test.lock
	$(PY) -m pip install -q -r requirements-test.lock
	touch $@

# The default semi-synthetic bundle and its trained surrogate (generated offline from data/).
data: venv $(BUNDLE)/models/default.pt

$(BUNDLE)/manifest.json: | venv
	$(VENV)/bin/grids simulate --out $(BUNDLE)

$(BUNDLE)/models/default.pt: $(BUNDLE)/manifest.json
	$(VENV)/bin/grids train --bundle $(BUNDLE)

chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "Browser tests need Chromium at /usr/bin/chromium: run 'sudo apt-get install -y chromium' (Debian/Ubuntu) and re-run 'make test'." >&2; exit 1; \
	fi

lint: venv-test
	$(PY) -m ruff check .

clean:
	rm -rf $(HOME_DIR)
