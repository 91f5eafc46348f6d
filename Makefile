# Hito developer entry points. `make up` then `make test` on a fresh machine (see README.md).
PYTHON ?= python3.11
# The local stack, the demo, the benchmarks and the tests run with the public development
# secrets of infra/dev/ (streams/settings/): say so explicitly, for every target here.
export HITO_PROFILE ?= development
VENV ?= .venv
BIN := $(VENV)/bin
# Builds cached across clones (Kafka's jars, influxd, Prometheus, Alertmanager): its bin/ holds
# promtool and amtool under their plain names, first on PATH for every target here.
HITO_CACHE_DIR ?= $(HOME)/.cache/hito
export HITO_CACHE_DIR
export PATH := $(HITO_CACHE_DIR)/bin:$(PATH)
STAMP := $(VENV)/.installed-stamp

.PHONY: setup lock image-check up down status demo bench bench-setup lint types test test-unit test-integration clean

# Python environment: the locked dependency tree (lock/dev.txt); pip's cache makes reruns fast.
# The install is editable in setuptools' strict mode: `hito` is a tree of links under build/
# (streams/ -> hito, schemas/ -> hito.schemas, bench/ -> hito.bench, infra/ -> hito.infra,
# package data only) that mypy can read. A file added or removed under those folders needs new
# links: LINKED lists them, and a change of the list re-links (seconds, no downloads).
SOURCES := $(shell find streams schemas bench infra -type f -not -path '*/__pycache__/*' 2>/dev/null | sort)
LINKED := $(VENV)/.linked-files

# The whole dependency tree, build backend included, comes from lock/dev.txt (exact versions
# and hashes: pip refuses anything else); then hito itself, editable, with no dependency
# resolution of its own. `make lock` regenerates the lock files after a pyproject.toml change.
$(STAMP): pyproject.toml lock/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r lock/dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e . \
	  --config-settings editable_mode=strict
	$(BIN)/pip check
	touch $(STAMP)

$(LINKED): $(STAMP) FORCE
	@echo "$(SOURCES)" | cmp -s - $@ || { \
	  $(BIN)/pip install --quiet --no-deps --no-build-isolation -e . \
	    --config-settings editable_mode=strict \
	  && echo "$(SOURCES)" > $@; }

# Lock files (lock/*.txt): every package of the tree at one version, with its hashes, for
# every platform (uv's universal resolution). runtime.txt is what the image installs,
# build.txt the build backend, dev.txt both plus the dev tools (make setup). uv itself is
# pinned and lives in the cache, outside the project's venv.
UV_VERSION := 0.13.9
UV := $(HITO_CACHE_DIR)/venv-uv/bin/uv
LOCK := $(UV) pip compile --universal --python-version 3.11 --generate-hashes --quiet

$(UV):
	$(PYTHON) -m venv $(HITO_CACHE_DIR)/venv-uv
	$(HITO_CACHE_DIR)/venv-uv/bin/pip install --quiet uv==$(UV_VERSION)

lock: $(UV)
	$(LOCK) pyproject.toml -o lock/runtime.txt
	$(LOCK) lock/build.in -o lock/build.txt
	$(LOCK) pyproject.toml lock/build.in --extra dev -o lock/dev.txt

.PHONY: FORCE
FORCE:

# Everything a fresh machine lacks: Debian packages (skipped when present), the venv,
# Prometheus 3 and Alertmanager from the Go module proxy (promtool and amtool check the configs
# in the unit tests; seconds when cached), and Grafana's dashboard JSON Schema for the offline
# dashboard tests (npm, cached), and the Compose Specification's JSON Schema for the compose
# file's test (Go module proxy, cached). Kafka jars and the InfluxDB build come with `hito up`.
setup: $(STAMP) $(LINKED)
	bash infra/install-debian.sh
	bash infra/prometheus/build.sh
	bash infra/alertmanager/build.sh
	bash infra/image/compose-schema.sh >/dev/null
	bash infra/grafana/schema/build.sh >/dev/null

# The image's build without a Docker engine (Dockerfile; CI runs it too): its inputs exist,
# the wheel builds from a clean copy of the tree and installs from the runtime lock into a
# fresh venv, and `hito` answers from an empty directory.
image-check:
	bash infra/image/check.sh

up: setup
	$(BIN)/hito up

# The whole platform in a few minutes: stack, one worker, the simulated crossing with bad
# events, duplicates and a surge; then a summary and demo.png. DEMO_ARGS=--keep-running
# leaves the worker running for live watching (`hito demo --help` for the rest).
demo: setup
	$(BIN)/hito demo $(DEMO_ARGS)

# Benchmarks (bench/README.md): Hito against a consume-only ceiling, a naive pipeline and a
# Quix Streams peer on the same data, on the local stack (started if needed). bench-setup makes
# the peer's own venv (its pins conflict with ours) in the cache dir; BENCH_ARGS e.g.
# "--events 1000000 --profile".
bench-setup:
	bash bench/setup.sh $(PYTHON)

bench: setup bench-setup
	$(BIN)/hito bench $(BENCH_ARGS)

down:
	$(BIN)/hito down

status:
	$(BIN)/hito status

lint: $(STAMP) $(LINKED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP) $(LINKED)
	$(BIN)/mypy

test-unit: $(STAMP) $(LINKED)
	$(BIN)/pytest tests/unit

test-integration: $(STAMP) $(LINKED)
	$(BIN)/pytest tests/integration

# Every tier in one pytest run (unit, then integration on the real local stack, which the test
# session starts if it is not running and stops again afterwards).
test: setup lint types
	$(BIN)/pytest tests

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
