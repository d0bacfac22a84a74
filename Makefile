# The two commands of the README:
#   make demo   set up everything (first run only) and auto-label the built-in example
#   make test   set up everything (first run only), run the maintainer checks and the whole test suite
# For development: make lint (ruff + mypy only), make test-unit (the fast unit tests only).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTEST_ARGS ?=

.PHONY: help demo test lint test-unit setup setup-labelstudio setup-browser test-browser screenshots bench-quality

help:
	@echo "make demo      - auto-label the built-in example (sets up the virtualenv on first run)"
	@echo "make test      - run the checks and all the tests (sets up the virtualenvs on first run)"
	@echo "make lint      - the checks only: ruff (lint + format) and mypy"
	@echo "make test-unit - the fast unit tests only (pytest -m unit, under a minute)"
	@echo "make test-browser - the FiftyOne App in Chromium (part of make test; installs chromium if missing)"
	@echo "make screenshots  - regenerate docs/img/fiftyone_*.png from a run on ../shared/data horses"

setup:
	@bash scripts/setup_env.sh

setup-labelstudio:
	@bash scripts/setup_labelstudio.sh

# Debian's chromium for the FiftyOne App browser test and the screenshots (quick when installed)
setup-browser:
	@bash scripts/setup_browser.sh

demo: setup
	@bash scripts/in_venv.sh gfn-autolabel demo --overwrite

test: lint setup-labelstudio setup-browser
	@bash scripts/in_venv.sh python -m pytest $(PYTEST_ARGS)

# ruff and mypy read their settings (and mypy its files) from pyproject.toml
lint: setup
	@bash scripts/in_venv.sh sh -c 'ruff check . && ruff format --check . && mypy'

test-unit: setup
	@bash scripts/in_venv.sh python -m pytest -m unit $(PYTEST_ARGS)

# the FiftyOne App in Chromium alone (also part of make test)
test-browser: setup setup-browser
	@bash scripts/in_venv.sh python -m pytest tests/test_fiftyone_browser.py $(PYTEST_ARGS)

# README screenshots from a real run on ../shared/data/weizmann_horse (writes docs/img/fiftyone_*.png)
screenshots: setup setup-browser
	@bash scripts/in_venv.sh python scripts/screenshots.py

bench-quality: setup
	@bash scripts/in_venv.sh python bench/quality.py
