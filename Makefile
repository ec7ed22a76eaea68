# pdeflow: `make run` runs the main job on a built-in image, `make test` runs the test suite.
# Both create .venv in the repo root on first use (CPU torch pin, then the package).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN ?= torch==2.13.0
OUT ?= out/demo

.PHONY: install run test test-all bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The pin first: an unpinned torch requirement would pull several GB of CUDA packages.
	$(PY) -m pip install "$(TORCH_PIN)"
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/pdeflow demo --out $(OUT) --overwrite

test: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -n 2 -q

bench: $(STAMP)
	$(PY) benchmarks/reference.py

clean:
	rm -rf $(VENV) out
