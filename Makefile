# Two commands do everything on a fresh machine with only Python 3.11:
#   make demo   creates .venv, installs, generates the demo data and runs the pipeline on it
#   make test   creates .venv, installs and runs the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: demo test setup dev clean-demo

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/.installed
	mkdir -p "$(DAGSTER_HOME)"
	cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

demo: setup
	$(BIN)/unitcost demo-data
	$(BIN)/dg launch -m unitcost_platform.definitions --assets '*' \
		--partition-range "$$($(BIN)/unitcost demo-range)" \
		--config-json '{"loggers": {"console": {"config": {"log_level": "INFO"}}}}'
	$(BIN)/unitcost summary

# One worker per core, a test file per worker (a file's fixtures are shared by its tests).
test: setup
	$(BIN)/pytest -n auto --dist loadfile

dev: setup
	$(BIN)/dg dev -w workspace.yaml

clean-demo:
	rm -rf data/demo data/warehouse.duckdb data/dashboards "$(DAGSTER_HOME)"
