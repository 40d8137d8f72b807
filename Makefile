# Every install step lives here: a fresh clone needs only `make demo` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo science science-trials test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# The science study (conf/study/science.yaml): at most 90 minutes on 2 cores; results/science/ gets its
# report, curves and provenance. `make science-trials` first compares the candidate recipes.
science: $(STAMP)
	$(BIN)/python scripts/demo.py --study science --root science --publish results/science

science-trials: $(STAMP)
	$(BIN)/python scripts/demo.py --study science --root science --trials --publish results/science

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check echojepa tests scripts
	$(BIN)/ruff format --check echojepa tests scripts

bench: $(STAMP)
	$(BIN)/python -m echojepa.cli.bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
