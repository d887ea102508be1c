# make run    run the Launcher: make run ARGS='16 vmlinux' (ARGS=--demo: the CPU demo)
# make test   the whole test suite, then the linter
# make bench  the benchmarks: the core's speed, and lguest's figures (stdout, benchmarks/out/)
# make lint   the linter alone
# make hostile  the whole hostile-Guest corpus (tests/hostile.py, 1,500+ Guests, each beside
#             a neighbour) and its report; `make test` runs a seeded sample of each category
# make book   the HTML book into book/_build/html (needs npm for the widget JavaScript)
#
# Each target creates .venv on first use and reinstalls the package there
# whenever pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test bench lint book hostile clean

run: $(STAMP)
	$(PY) -m lguestsim $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench_core.py $(ARGS)
	$(PY) benchmarks/bench_lguest.py
	$(PY) benchmarks/bench_host.py

hostile: $(STAMP)
	PYTHONPATH=tests $(PY) tests/hostile.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

book: $(STAMP)
	$(PY) book/build.py

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test]'
	touch $@

clean:
	rm -rf benchmarks/out .pytest_cache .ruff_cache .hypothesis
