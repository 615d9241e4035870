# The two set-up commands: `make demo` and `make test`. Both create .venv when it is missing
# or older than pyproject.toml, then install the package with what they need (and Debian's
# dataset-fashion-mnist, which the demo and three tests read, where apt-get can install it).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench clean fashion-mnist

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

fashion-mnist:
	@test -d /usr/share/datasets/fashion-mnist || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) ; } || \
	  echo "note: could not install Debian's dataset-fashion-mnist; the demo will say what it needs"

demo: $(STAMP) fashion-mnist
	$(VENV)/bin/mvmr demo

# every Python file we ship: the library, the benchmarks and the tests
LINTED := mvmr benchmarks tests hubconf.py

test: $(STAMP) fashion-mnist
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	@echo "see benchmarks/*.py"

clean:
	rm -rf $(VENV) build *.egg-info runs
