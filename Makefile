# Entra Sync for Teams. `make run` and `make test` are the two commands; everything else is optional.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check bench e2e clean venv test-tools

QUIETLY := $(PY) tools/run_quietly.py --what installing --

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "Creating the virtual environment in $(VENV)..."; \
		$(PY) -m venv $(VENV); }
	@echo "Installing dependencies (first run takes ~2-3 min; pip's output is kept quiet)..."
	@$(QUIETLY) $(BIN)/python -m pip install -q --upgrade pip
	@$(QUIETLY) $(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)
	@echo "Dependencies installed."

venv: $(STAMP)

run: $(STAMP)
	@echo "Starting the demo (bot, simulated tenant and Agents Playground)..."
	$(BIN)/python -m bot.demo

# tests start their own redis-server processes (TLS, Sentinel, a store they flush)
REDIS_SERVER := /usr/bin/redis-server
$(REDIS_SERVER):
	apt-get install -y -q redis-server || (apt-get update -q && apt-get install -y -q redis-server)

test: $(STAMP) test-tools $(REDIS_SERVER)
	./tests/cards-render/install.sh
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
	rm -rf $(VENV) node_modules tests/cards-render/node_modules .pytest_cache .mypy_cache .ruff_cache
