# ticket_urgency — every target creates .venv itself when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
PORT ?= 8765

.PHONY: install demo test test-fast lint typecheck bench clean screenshots

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip >/dev/null
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.4,<1"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock -e ".[all]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install everything (pinned by requirements.lock)

demo: $(STAMP) ## Run the whole loop on local defaults (./$(DEMO_DIR): data, mlflow.db)
	PORT=$(PORT) DEMO_DIR=$(DEMO_DIR) bash scripts/demo.sh

test: $(STAMP) ## Run the whole test suite
	NML_DISABLE_USAGE_LOGGING=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check ticket_urgency serving dagster_project tests bench
	$(BIN)/mypy

bench: $(STAMP) ## Run the benchmarks (not part of CI)
	$(BIN)/python -m bench.run_all

screenshots: $(STAMP) ## Dagster asset graph + MLflow run page -> docs/images/*.png (needs chromium)
	bash scripts/screenshots.sh

lock: ## Re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra all --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
