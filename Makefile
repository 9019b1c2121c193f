# Every target does its own set-up: `make up` and `make test` work on a fresh machine with Docker.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
DATA ?= .data
PYTEST_ARGS ?=

.PHONY: install up test test-fast lint typecheck images bench engine test-engine chromium clean compose-prep compose-up

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# swagger-ui-bundle (Swagger UI 4) shares its import name with swagger-ui-bundle-v2,
	@# which replaces it: an older venv drops it first
	$(BIN)/pip uninstall -q -y swagger-ui-bundle 2>/dev/null || true
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# the engine, plus jq and docker-compose where missing (best effort for `make up`)
engine:
	bash scripts/ensure-docker.sh

# the same, but jq and docker-compose are required: the tests of the README and the compose
# deployment must run, never be skipped
test-engine:
	bash scripts/ensure-docker.sh --for-tests

.env:
	@bash scripts/make-env.sh .env

images: install engine
	$(BIN)/ava images build

up: install engine images .env
	@mkdir -p $(DATA)
	@set -a; . ./.env; set +a; exec $(BIN)/ava serve --host $(HOST) --port $(PORT) --db $(DATA)/ava.db

# Debian's Chromium for the browser tests (tests/browser); Playwright downloads no browser
chromium:
	bash scripts/ensure-chromium.sh

test: install test-engine chromium
	TESTCONTAINERS_RYUK_DISABLED=true $(BIN)/pytest $(PYTEST_ARGS)

test-fast: install chromium
	$(BIN)/pytest -m "not docker" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check ava_platform tests bench
	$(BIN)/ruff format --check ava_platform tests bench

typecheck: install
	$(BIN)/mypy

# docker-compose.yml needs the offline base image (its FROM), a .env, and where TLS is
# intercepted the host CA bundle inside the build context.
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
compose-prep: images .env
	@if [ -f $(CA_BUNDLE) ]; then cp $(CA_BUNDLE) images/platform/extra-ca/host-ca.crt; fi

compose-up: compose-prep
	@if docker compose version >/dev/null 2>&1; then docker compose up -d --build; else docker-compose up -d --build; fi

bench: install engine images
	bash scripts/ensure-bench-tools.sh
	$(BIN)/python bench/api.py
	$(BIN)/python bench/api_search.py
	$(BIN)/python bench/runtimes.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/swarm.py
	$(BIN)/python bench/isolation.py
	$(BIN)/python bench/queue_throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
