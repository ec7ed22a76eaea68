# pdeflow: `make run` runs the main job on a built-in image, `make test` runs the test suite.
# Both create .venv in the repo root on first use (CPU torch pin, then the package).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN ?= torch==2.13.0
OUT ?= out/demo

.PHONY: install run test test-slow test-all lint bench clean data photos

install: $(STAMP)

# setup.py and the C source: an edit rebuilds the compiled extension (pip install -e . compiles it in place)
$(STAMP): pyproject.toml Makefile setup.py src/pdeflow/tv/_fgp_kernel.c src/pdeflow/tv/_fgp_volume.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The pin first: an unpinned torch requirement would pull several GB of CUDA packages.
	$(PY) -m pip install "$(TORCH_PIN)"
	# baselines: the benchmarks' comparisons (OpenCV, imagecodecs), run at a smoke size by the tests; dask:
	# pdeflow.dask (dask, distributed, zarr), tested on local clusters
	$(PY) -m pip install -e ".[test,volumes,baselines,dask]"
	# Data files only (the DSB2018 nuclei image + mask of the IEL experiment); its deps are not needed.
	$(PY) -m pip install --no-deps stardist
	# Data files only (the ICBM152 2009a T1 and GM/WM maps of the IEL "icbm152" set); nilearn is never imported.
	$(PY) -m pip install --no-deps nilearn
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/pdeflow demo --out $(OUT) --overwrite

# Two tiers (docs/DESIGN.md, "Tests"): `make test` is the fast tier, minutes, for every change; `make test-slow`
# the long validation runs (tests marked slow); CI (.ci/run) runs both. --durations prints the slowest tests, so
# a test that grows slow shows up where it runs.
# One torch thread per worker: two workers on two cores (more threads would oversubscribe them). Bytecode is
# cached between runs (in .venv/pycache, out of the tree) even where PYTHONDONTWRITEBYTECODE is set: otherwise each
# worker and each fresh interpreter a test starts compiles pdeflow and rewrites the tests' asserts again (half of
# the collection's CPU time).
TEST_ENV := OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(abspath $(VENV))/pycache

test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -n 2 -q -m "not slow" --durations=15

test-slow: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -n 2 -q -m slow --durations=15

test-all: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -n 2 -q --durations=15

# ruff (installed by the test extra): lint and import order, settings in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks experiments

# The documentation site (Sphinx, executed gallery, API reference from __all__), built offline into
# docs/_build/html; warnings are errors, and a page that would load anything from the network fails.
.PHONY: docs
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html
	$(PY) docs/_scripts/check_offline.py docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/flow_accuracy.py --quick

# Optional data, offline afterwards: Debian packages are downloaded and unpacked into .data/ (nothing
# is installed system-wide). Debian/Ubuntu only.
#  - mricron-data: IEL data sets (Colin27 MR + brain mask; AAL atlas, grouped into lobes: "aal");
#  - opencv-doc: natural photos for training the mask network (.data/photos/opencv);
#  - mate-backgrounds: 12 nature photos (.data/photos/mate-nature), a held-out evaluation set that
#    is never used in training or checkpoint selection.
data: .data/mricron-data/usr/share/mricron/templates/ch2bet.nii.gz photos

photos: .data/photos/opencv/.done .data/photos/mate-nature/.done .data/photos/lomiri/.done

# The photos of opencv-doc's examples (logos, charts, chessboards, text and stereo pairs' second
# views left out; also aero1/aero3, which may be the aerial photo of the evaluation's TEST split).
OPENCV_PHOTOS := aloeL.jpg apple.jpg baboon.jpg basketball1.png board.jpg box_in_scene.png building.jpg \
	butterfly.jpg chicky_512.png ela_original.jpg fruits.jpg graf1.png home.jpg leuvenA.jpg messi5.jpg \
	orange.jpg pca_test1.jpg rubberwhale1.png smarties.png squirrel_cls.jpg
OPENCV_DATA := ./usr/share/doc/opencv-doc/examples/data

.data/photos/opencv/.done:
	mkdir -p .data/deb .data/photos/opencv
	cd .data/deb && { ls opencv-doc_*.deb >/dev/null 2>&1 || apt-get download opencv-doc; }
	dpkg-deb --fsys-tarfile .data/deb/opencv-doc_*.deb | tar -x -C .data/photos/opencv --strip-components=7 \
		$(addprefix $(OPENCV_DATA)/,$(OPENCV_PHOTOS))
	touch $@

.data/photos/mate-nature/.done:
	mkdir -p .data/deb .data/photos/mate-nature
	cd .data/deb && { ls mate-backgrounds_*.deb >/dev/null 2>&1 || apt-get download mate-backgrounds; }
	dpkg-deb --fsys-tarfile .data/deb/mate-backgrounds_*.deb | tar -x -C .data/photos/mate-nature \
		--strip-components=6 --wildcards './usr/share/backgrounds/mate/nature/*.jpg'
	touch $@

# Ubuntu 16.04's community wallpapers (lomiri-wallpapers-16.04): 15 landscape, plant and still-life photos, a
# training pool for the inpainters (the mate-nature photos stay held out).
.data/photos/lomiri/.done:
	mkdir -p .data/deb .data/photos/lomiri
	cd .data/deb && { ls lomiri-wallpapers-16.04_*.deb >/dev/null 2>&1 || apt-get download lomiri-wallpapers-16.04; }
	dpkg-deb --fsys-tarfile .data/deb/lomiri-wallpapers-16.04_*.deb | tar -x -C .data/photos/lomiri \
		--strip-components=4 --wildcards './usr/share/backgrounds/*.jpg'
	touch $@

.data/mricron-data/usr/share/mricron/templates/ch2bet.nii.gz:
	mkdir -p .data/deb
	cd .data/deb && apt-get download mricron-data
	dpkg -x .data/deb/mricron-data_*.deb .data/mricron-data
	touch $@

clean:
	rm -rf $(VENV) out
