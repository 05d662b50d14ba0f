# resonance: two commands do everything on a fresh machine.
#   make run   - set up (first time), then the retrain flow: dvc repro, MLflow registry + promotion, deploy
#                (PROFILE=quick: the whole chain on a small catalog in runs/quick/; ALL=1: the baselines too)
#   make test  - set up (first time), then run the default (fast) test suite
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin

# Quiet, offline, and all tool state inside the project (never the home folder).
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export PREFECT_HOME := $(CURDIR)/.prefect
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/site-cache
export MLFLOW_TRACKING_URI := sqlite:///$(CURDIR)/mlruns/mlflow.db
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup run test test-slow lint bench screenshots clean-venv

setup:
	@bash scripts/setup.sh

# make run [PROFILE=quick] [ALL=1]: the retrain flow (dvc repro, register, promotion gate, deploy), then where to look
run: setup
	$(BIN)/python flows/retrain.py $(if $(PROFILE),--profile $(PROFILE),) $(if $(ALL),--all,)

test: setup
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

lint: setup
	$(BIN)/ruff check src tests flows benchmarks

bench: setup
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/simulate_speed.py

# PNGs of the MLflow model version, the Prefect flow run and the drift report of a real run (headless Chromium)
screenshots:
	SETUP_BROWSER=1 bash scripts/setup.sh
	$(BIN)/python scripts/screenshots.py $(if $(PROJECT),--project $(PROJECT),)

clean-venv:
	rm -rf $(VENV)
