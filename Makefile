# Two entry points: `make demo` (the main job on the sample world) and `make test`.
# Both create the virtual environment .venv/ inside the repo on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: venv
	$(BIN)/propensity demo

test: venv
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) warehouse.duckdb warehouse.duckdb.wal out
