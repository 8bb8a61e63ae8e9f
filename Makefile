# Two commands do all the set-up on a fresh machine (Python 3.11, no GPU):
#   make demo   install, then run the whole pipeline on the generated demo corpus
#   make test   install, then run the test suite (what .ci/run calls)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
PYTEST_ARGS ?=

.PHONY: setup demo test test-all browser clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e ".[dev]"
	touch $@

demo: setup
	$(VENV)/bin/melodex demo

test: setup
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n 2 $(PYTEST_ARGS)

test-all: setup
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n 2 -m "" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo_data training_outputs melodex_outputs .pytest_cache
