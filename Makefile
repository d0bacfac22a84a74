# The two commands of the README:
#   make demo   set up everything (first run only) and auto-label the built-in example
#   make test   set up everything (first run only) and run the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTEST_ARGS ?=

.PHONY: help demo test setup setup-labelstudio bench-quality

help:
	@echo "make demo   - auto-label the built-in example (sets up the virtualenv on first run)"
	@echo "make test   - run the tests (sets up the virtualenvs on first run)"

setup:
	@bash scripts/setup_env.sh

setup-labelstudio:
	@bash scripts/setup_labelstudio.sh

demo: setup
	@bash scripts/in_venv.sh gfn-autolabel demo --overwrite

test: setup setup-labelstudio
	@bash scripts/in_venv.sh python -m pytest $(PYTEST_ARGS)

bench-quality: setup
	@bash scripts/in_venv.sh python bench/quality.py
