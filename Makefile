# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FASHION_DIR ?= /usr/share/datasets/fashion-mnist
DEMO_ARGS ?=

STUDY_ARGS ?=
# The test extra's torch, the CPU build: PyPI's torch==2.13.0 is the CUDA one (several GB),
# the PyTorch CPU index serves 2.13.0+cpu. TORCH_PIN is the pin of tftransfer/extras.py
# (tests/test_packaging.py checks they agree); TORCH_INDEX= (empty) skips this step.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN := torch==2.13.0

.PHONY: demo test study venv wheel docs fashion-mnist clean

# The installs skip bytecode (--no-compile: most of TF, torch and jax is never imported), so
# Python must be free to cache what it does compile on first import: with
# PYTHONDONTWRITEBYTECODE set (some images set it), every process of `make test` (two
# workers, dozens of driver subprocesses) recompiled TF and Keras from source, about 13 s of
# CPU each on 2 cores.
unexport PYTHONDONTWRITEBYTECODE

# One install at a time: two `make` runs in a fresh clone share .venv, so each install step
# holds $(LOCK) (flock) and re-checks its stamp once it has the lock. $(3): a command run
# (then `&&`) before the install.
LOCK := $(VENV).lock
comma := ,
SETUP := setup.py tftransfer/extras.py
INSTALL = flock $(LOCK) sh -c '[ "$@" -nt setup.py ] && [ "$@" -nt tftransfer/extras.py ] || { \
	  [ -x $(PY) ] || $(PYTHON) -m venv $(VENV); \
	  [ -f $(VENV)/.pip-upgraded ] || { $(PY) -m pip install --quiet --upgrade pip && touch $(VENV)/.pip-upgraded; }; \
	  $(3) $(PY) -m pip install --quiet --no-compile -e "$(1)" && touch $@ $(2); }'
# torch alone (--no-deps; the test extra's install then keeps it and adds its dependencies):
# a wheel pip finds offline (its find-links) first, else the CPU index.
TORCH_FIRST = $(if $(TORCH_INDEX),{ $(PY) -m pip install --quiet --no-compile --no-deps --no-index "$(TORCH_PIN)" 2>/dev/null || $(PY) -m pip install --quiet --no-compile --no-deps --extra-index-url $(TORCH_INDEX) "$(TORCH_PIN)"; } &&)

# Stamps re-run the install only when setup.py or the extras change. The demo needs the
# driver and the datasets extras, the study every extra, the tests every extra and the test
# tools.
$(VENV)/.installed: $(SETUP)
	$(call INSTALL,.[driver$(comma)datasets])

$(VENV)/.installed-all: $(SETUP)
	$(call INSTALL,.[all],$(VENV)/.installed)

$(VENV)/.installed-test: $(SETUP)
	$(call INSTALL,.[test],$(VENV)/.installed $(VENV)/.installed-all,$(TORCH_FIRST))

# The wheel (and no warning) into dist/: pip install dist/tftransfer-*.whl[driver] gives the
# `tftransfer` command anywhere. setuptools' build/lib is removed first: it would ship stale
# files (a module since moved or deleted).
wheel:
	rm -rf build/lib build/bdist.* dist/tftransfer-*.whl
	$(PYTHON) -m pip wheel --no-deps -w dist .

venv: $(VENV)/.installed

# Debian ships Fashion-MNIST as IDX files; install it when missing and we are root.
fashion-mnist:
	@if [ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian package dataset-fashion-mnist ..."; \
	  (apt-get install -y -qq dataset-fashion-mnist || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)); \
	else \
	  echo "Fashion-MNIST not found in $(FASHION_DIR). Install it with:"; \
	  echo "  sudo apt-get install dataset-fashion-mnist"; \
	  echo "or pass DEMO_ARGS=--data_dir=/path/to/idx/files"; \
	fi

demo: $(VENV)/.installed fashion-mnist
	$(PY) -m experiments.demo $(DEMO_ARGS)

# The CPU-scale study (under 2 hours on 2 cores; STUDY_ARGS=--quick for about 4 minutes).
study: $(VENV)/.installed-all fashion-mnist
	$(PY) -m experiments.cpu_study $(STUDY_ARGS)

# The backend-neutral core again under JAX (two workers: its compiles are single-threaded)
# and PyTorch (one: two were slower) (docs/backends.md), about 70 s and 20 s;
# a backend whose package is missing is skipped with a line saying so.
BACKEND_TESTS := tests/test_regularizers.py tests/test_penalize.py tests/test_kerashub.py \
	tests/test_segmentation_metrics.py tests/test_models_segmentation_backends.py \
	tests/test_optimizer_wrappers_backends.py

test: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 --dist loadscope --durations=25 tests  # two workers, a test class each (pytest-xdist)
	@for b in jax torch; do \
	  if $(PY) -c "import $$b" 2>/dev/null; then \
	    echo "KERAS_BACKEND=$$b: $(BACKEND_TESTS)"; \
	    KERAS_BACKEND=$$b $(PY) -m pytest -q $$([ $$b = jax ] && echo --numprocesses=2 --dist=loadfile) $(BACKEND_TESTS) || exit 1; \
	  else echo "skipping KERAS_BACKEND=$$b: $$b is not installed (pip install -e '.[test]')"; fi; \
	done

# The HTML API reference from the docstrings (pdoc, any warning fails); tests/test_api_docs.py
# builds it in `make test` too.
DOCS_DIR ?= build/api
docs: $(VENV)/.installed-test
	$(PY) -m tools.api_docs --output_dir $(DOCS_DIR)

clean:
	rm -rf $(VENV) $(LOCK) *.egg-info .pytest_cache build dist
