# Two commands do all the set-up on a fresh machine (Python 3.11, no GPU):
#   make demo   install, then run the whole pipeline on the generated demo corpus
#   make test   install, then run the test suite (what .ci/run calls)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
PYTEST_ARGS ?=

.PHONY: setup demo test test-all fuzz browser system clean

# The map's browser test drives Debian's chromium (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: the browser test will be skipped (sudo apt-get install chromium)"; fi; }

# Debian's libchromaprint1 computes the audio fingerprints that 'melodex duplicates' compares (no
# PyPI wheel ships the library; pyacoustid binds it), libmpg123-0 mixes mp3 to mono while decoding
# (~10% less CPU a file; without it mp3 goes through libsndfile, and its parity tests are skipped),
# and mpv loads a written M3U8 in a test. About 30 s as root; otherwise the tests that need them
# are skipped and say why.
system:
	@missing=""; \
	  ldconfig -p 2>/dev/null | grep -q 'libchromaprint\.so\.1' || missing="$$missing libchromaprint1"; \
	  ldconfig -p 2>/dev/null | grep -q 'libmpg123\.so\.0' || missing="$$missing libmpg123-0"; \
	  command -v mpv >/dev/null 2>&1 || missing="$$missing mpv"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } \
	      || echo "could not install$$missing: fingerprint/mpg123/mpv tests will be skipped"; \
	    else echo "missing:$$missing: fingerprint/mpg123/mpv tests will be skipped (sudo apt-get install$$missing)"; fi; fi

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e ".[dev]"
	touch $@

demo: setup
	$(VENV)/bin/melodex demo

# lint-imports checks the layer contracts in pyproject.toml before any test runs.
test: setup browser system
	$(VENV)/bin/lint-imports
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-all: setup browser system
	$(VENV)/bin/lint-imports
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile -m "" $(PYTEST_ARGS)

MELODEX_FUZZ_EXAMPLES ?= 5000
fuzz: setup
	MELODEX_FUZZ_EXAMPLES=$(MELODEX_FUZZ_EXAMPLES) $(PY) -m pytest tests/test_hardening_fuzz.py -p no:cacheprovider

clean:
	rm -rf $(VENV) demo_data demo_outputs training_outputs melodex_outputs test-artifacts .pytest_cache
