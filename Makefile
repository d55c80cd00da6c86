# `make run` and `make test` set everything up on a fresh machine; the other targets are their parts.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= $(CURDIR)/data
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test lint typecheck pytest browser bench clean

setup: $(STAMP) node_modules/.package-lock.json

# torch is pinned and installed first: it comes as a CPU build from local disk; an unpinned torch
# would pull a multi-GB CUDA build from the registry.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# DATA_DIR defaults to ./data, the folder this checkout's CLI and `tunelab ops` use too: they reach this server.
run: setup
	$(BIN)/tunelab serve --data-dir "$(DATA_DIR)" --host "$(HOST)" --port "$(PORT)"

# Browser tests drive Debian's chromium; install it when missing and we can (root + apt), else stop clearly.
browser:
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian chromium for the browser tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "The browser tests need Debian's chromium at /usr/bin/chromium: run 'sudo apt-get install chromium'"; \
		exit 1; \
	fi

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup
	$(BIN)/mypy

pytest: setup browser
	$(BIN)/pytest

test: lint typecheck pytest

bench: setup
	$(BIN)/python bench/tracking.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
