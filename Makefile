# Everything a newcomer needs: `make run` serves the demo, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
# make serve's daphne processes: one per core with Redis, which carries live updates between them;
# without it (the in-memory channel layer) a watcher only hears its own process, so one.
WEB_CONCURRENCY ?= $(if $(REDIS_URL),$(shell nproc 2>/dev/null || echo 2),1)
RUN_DIR ?= $(or $(SUPERAI_FLOW_VAR_DIR),var)/run

.PHONY: run serve migrate test lint format bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "SuperAI Flow needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(BIN)/python || { echo "Creating the virtualenv in $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "Installing SuperAI Flow and its test tools into $(VENV)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	@$(BIN)/python -c "import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('$(HOST)', $(PORT)))" 2>/dev/null || \
		{ echo "Port $(PORT) on $(HOST) is taken (another server still running?): stop it, or: make run PORT=8001" >&2; exit 1; }
	$(BIN)/python manage.py migrate --noinput $(if $(DATABASE_MIGRATION_URL),--database owner)
	$(BIN)/python manage.py seed_demo --base-url http://$(HOST):$(PORT)
	@echo "Serving on http://$(HOST):$(PORT)/ (Ctrl-C stops)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) superai_flow.asgi:application

# The production server (docs/operations.md): WEB_CONCURRENCY daphne processes on HOST:PORT under
# supervisord, which restarts any that dies; no migrations (`make migrate` does them). $(RUN_DIR)/metrics
# is their PROMETHEUS_MULTIPROC_DIR (supervisord.conf), emptied here so that /metrics starts from 0.
serve: $(STAMP)
	@$(BIN)/python manage.py migrate --check >/dev/null 2>&1 || \
		{ echo "The database is not reachable or not migrated: run 'make migrate' first (docs/configuration.md)" >&2; exit 1; }
	@if [ -z "$(REDIS_URL)" ] && [ "$(WEB_CONCURRENCY)" != 1 ]; then \
		echo "WEB_CONCURRENCY=$(WEB_CONCURRENCY) needs REDIS_URL: without Redis, live updates do not cross processes" >&2; exit 1; fi
	@mkdir -p $(RUN_DIR)/metrics
	@rm -f $(RUN_DIR)/metrics/*.db
	@echo "Serving on http://$(HOST):$(PORT)/ with $(WEB_CONCURRENCY) daphne process(es) (Ctrl-C stops)"
	HOST=$(HOST) PORT=$(PORT) WEB_CONCURRENCY=$(WEB_CONCURRENCY) SUPERAI_FLOW_BIN=$(abspath $(BIN)) \
		SUPERAI_FLOW_RUN_DIR=$(abspath $(RUN_DIR)) exec $(BIN)/supervisord -c superai_flow/supervisord.conf

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput $(if $(DATABASE_MIGRATION_URL),--database owner)

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/create_latency.py
	$(BIN)/python bench/live_latency.py
	$(BIN)/python bench/create_throughput.py
	$(BIN)/python bench/gc_pauses.py
	$(BIN)/python bench/reads.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
