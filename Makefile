# pdeflow: `make run` runs the main job on a built-in image, `make test` runs the test suite.
# Both create .venv in the repo root on first use (CPU torch pin, then the package).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN ?= torch==2.13.0
OUT ?= out/demo

.PHONY: install run test test-all lint bench clean data

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The pin first: an unpinned torch requirement would pull several GB of CUDA packages.
	$(PY) -m pip install "$(TORCH_PIN)"
	$(PY) -m pip install -e ".[test]"
	# Data files only (the DSB2018 nuclei image + mask of the IEL experiment); its deps are not needed.
	$(PY) -m pip install --no-deps stardist
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/pdeflow demo --out $(OUT) --overwrite

test: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -n 2 -q

# ruff (installed by the test extra): lint and import order, settings in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/reference.py

# Optional second IEL data set (Colin27 MR + brain mask), offline afterwards: the Debian package is
# downloaded and unpacked into .data/ (nothing is installed system-wide). Debian/Ubuntu only.
data: .data/mricron-data/usr/share/mricron/templates/ch2bet.nii.gz

.data/mricron-data/usr/share/mricron/templates/ch2bet.nii.gz:
	mkdir -p .data/deb
	cd .data/deb && apt-get download mricron-data
	dpkg -x .data/deb/mricron-data_*.deb .data/mricron-data
	touch $@

clean:
	rm -rf $(VENV) out
