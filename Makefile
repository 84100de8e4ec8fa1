# Entra Sync for Teams. `make run` and `make test` are the two commands; everything else is optional.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check bench e2e clean venv test-tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot.demo

test: $(STAMP) test-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-tools:  # Debian packages the integration tests run (caddy), apt-get when missing
	./tests/integration/install-tools.sh

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/entra-sync bench --users 100000

e2e: $(STAMP)
	./tests/e2e/run.sh

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
