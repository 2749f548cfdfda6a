# Two commands for a new machine with Python >= 3.11 and make:
#   make demo   install, generate one synthetic day, materialize every asset for it
#   make test   install with the dev extras, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: demo test test-all dev install bench clean dagster-home

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

dagster-home:
	@mkdir -p "$(DAGSTER_HOME)"
	@[ -f "$(DAGSTER_HOME)/dagster.yaml" ] || cp deploy/dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

demo: $(VENV)/.installed dagster-home
	$(BIN)/failmap demo

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto --dist loadfile -m "not deploy_bench" $(PYTEST_ARGS)

test-all: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto --dist loadfile $(PYTEST_ARGS)

dev: $(VENV)/.installed dagster-home
	$(BIN)/dagster dev -w workspace.yaml

bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/failmap_day.py
	$(BIN)/python benchmarks/stdf_parse.py
	$(BIN)/python benchmarks/sensor_tick.py
	$(BIN)/python benchmarks/s3_clients.py
	$(BIN)/python benchmarks/failmap_text_parse.py
	$(BIN)/python benchmarks/postgres_sink.py

clean:
	rm -rf .failmap .dagster
