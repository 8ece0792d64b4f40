# The two commands a newcomer runs: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test chaos bench bench-contenders lint dev clean chromium prometheus deploy-tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Bytecode for the workflow sandbox, which re-imports workflow modules on every run.
	$(BIN)/python -m compileall -q baton
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/baton demo

dev: $(STAMP)
	$(BIN)/baton dev

test: $(STAMP) chromium prometheus deploy-tools
	$(BIN)/python -m pytest

# Every fault, several times, while hundreds of runs are in flight (tests/chaos; docs/RELIABILITY.md).
# `make test` runs its short version.
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos

# The UI test drives a real browser: Debian's chromium package, installed only when missing.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (echo "installing Debian's chromium for the UI test..." && apt-get update -qq && \
	   apt-get install -y -qq chromium >/dev/null) || \
	  (echo "error: the UI test needs Chromium and it could not be installed here." \
	        "Install it (Debian/Ubuntu: sudo apt-get install chromium) and run make test again." >&2; exit 1)

# The metrics tests scrape with a real Prometheus and check the rules with promtool: Debian's
# prometheus package (both), installed only when missing.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  (echo "installing Debian's prometheus for the metrics tests..." && apt-get update -qq && \
	   apt-get install -y -qq prometheus >/dev/null) || \
	  (echo "error: the metrics tests need Prometheus and it could not be installed here." \
	        "Install it (Debian/Ubuntu: sudo apt-get install prometheus) and run make test again." >&2; exit 1)

# The deployment checks (tests/test_deploy.py): helm, actionlint, checkov and hadolint in .tools/.
deploy-tools: .tools/.installed

.tools/.installed: scripts/install-deploy-tools.sh
	scripts/install-deploy-tools.sh
	touch $@

# Baton against hand-written Temporal, DBOS and LangGraph (PostgreSQL on 127.0.0.1:5432).
bench-contenders: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/process_contenders.py

bench: $(STAMP)
	$(BIN)/python bench/process_overhead.py
	$(BIN)/python bench/llm_overhead.py
	$(BIN)/python bench/large_contexts.py
	$(BIN)/python bench/orchestration_overhead.py
	$(BIN)/python bench/pii_masking.py
	$(BIN)/python bench/waiting_runs.py
	$(BIN)/python bench/codec_throughput.py
	$(BIN)/python bench/encryption_share.py
	$(BIN)/python bench/key_propagation.py
	$(BIN)/python bench/audit_chain.py
	$(BIN)/python bench/retention_scale.py
	$(BIN)/python bench/api_overhead.py
	$(BIN)/python bench/observability_overhead.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .tools .baton .pytest_cache
