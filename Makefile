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

# The suite on TEST_WORKERS processes (pytest-xdist), one torch thread each (tests/conftest.py): the
# tests are mostly small ops where two processes use two cores better than two threads in one. loadfile
# keeps a file's tests on one worker, so a module-scoped fixture (the end-to-end study) is built once.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check echojepa tests scripts
	$(BIN)/ruff format --check echojepa tests scripts

bench: $(STAMP)
	$(BIN)/python -m echojepa.cli.bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
