# convlab: `make run` and `make test` bootstrap .venv themselves (idempotently).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# The sibling data folder when there is one; without it `make run` keeps datasets under .convlab/datasets and
# downloads each on first use.
DATA_DIR ?= $(wildcard $(abspath ../shared/datasets))
# The suite's real data: CONVLAB_DATA_DIR, else DATA_DIR (the sibling folder), else a cache that `make test-data`
# fills once (checksums verified, from CONVLAB_DATASET_MIRROR when set). The test run itself never downloads.
TEST_DATA_CACHE := $(abspath .convlab/test-data)
TEST_DATA_DIR := $(or $(CONVLAB_DATA_DIR),$(DATA_DIR),$(TEST_DATA_CACHE))
HOST ?= 127.0.0.1
PORT ?= 8000
# Two pytest processes (pytest-xdist), one test file at a time each: much of the suite waits on subprocesses,
# servers and containers, so two overlap well on 2 cores. PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: run test test-data lint install test-deps image bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is installed first, pinned to the build this machine carries; GPU hosts override TORCH_SPEC.
$(VENV)/.torch-installed: | $(BIN)/python
	$(BIN)/pip install $(TORCH_SPEC)
	touch $@

$(VENV)/.convlab-installed: pyproject.toml $(VENV)/.torch-installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.convlab-installed

# Headless Chromium renders /docs in the test suite; the deployment test (tests/deploy/test_stack.py) needs a
# Docker engine (Debian's docker.io: dockerd 20.10 with a BuildKit client), docker-compose and debootstrap (a base
# image where Docker Hub is out of reach). Install what is missing where apt is usable (root), else say so.
TEST_COMMANDS := chromium=chromium dockerd=docker.io docker-compose=docker-compose debootstrap=debootstrap
test-deps:
	@missing=""; for pair in $(TEST_COMMANDS); do \
		command -v $${pair%%=*} >/dev/null 2>&1 || missing="$$missing $${pair#*=}"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
		|| echo "warning: could not install$$missing; the tests that need them will be skipped"; \
	else echo "note:$$missing not installed; the tests that need them will be skipped"; fi

# The image (service/Dockerfile) as this kind of machine must build it: a Debian base from debootstrap (no Docker
# Hub) and packages from the local indexes pip is configured with (docs/deployment.md). Elsewhere:
# `docker build -f service/Dockerfile -t convlab .`
IMAGE ?= convlab:latest
IMAGE_BASE ?= debootstrap
image:
	BASE_IMAGE=$(IMAGE_BASE) LOCAL_INDEXES=from-pip CA_BUNDLE=from-pip service/container/build-image.sh $(IMAGE)

run: install
	$(if $(DATA_DIR),CONVLAB_DATA_DIR=$${CONVLAB_DATA_DIR:-$(DATA_DIR)}) CONVLAB_ALLOW_DOWNLOAD=$${CONVLAB_ALLOW_DOWNLOAD:-true} \
		$(BIN)/convlab serve --host $(HOST) --port $(PORT) --workers 1

test-data: install
ifeq ($(TEST_DATA_DIR),$(TEST_DATA_CACHE))
	$(BIN)/python -m service.training.prefetch $(TEST_DATA_CACHE)
else
	@echo "test data: $(TEST_DATA_DIR) (nothing to fetch)"
endif

test: install test-deps test-data
	CONVLAB_DATA_DIR=$(TEST_DATA_DIR) CONVLAB_ALLOW_DOWNLOAD=false $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy service models

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
