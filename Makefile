# The two commands of the README: `make train` and `make test`. Both create the virtual
# environment on first use. torch is pinned here (constraints.txt), not in the package.
# TORCH_INDEX is where pip finds torch; empty (the default) means pip's own configuration, which on
# Linux gives PyPI's CUDA build. For the much smaller CPU-only build:
#   make train TORCH_INDEX=https://download.pytorch.org/whl/cpu
VENV ?= .venv
TORCH_INDEX ?=
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: train test test-fast lint format

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

train: $(VENV)/.installed
	$(VENV)/bin/tinymnist train $(ARGS)

test: $(VENV)/.installed
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m ruff format --check src tests benchmarks scripts
	$(PY) -m mypy
	$(PY) -m pytest -q

# The inner loop: no training, servers, processes, PostgreSQL or browser (the tests marked slow).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

format: $(VENV)/.installed
	$(PY) -m ruff format src tests benchmarks scripts
	$(PY) -m ruff check --fix src tests benchmarks scripts
