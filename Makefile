# make run    run the Launcher: make run ARGS='16 vmlinux' (ARGS=--demo: the CPU demo)
# make test   the whole test suite, then the linter
# make bench  the benchmarks: the core's speed, and lguest's figures (stdout, benchmarks/out/)
# make lint   the linter alone
# make book   the HTML book into book/_build/html (needs npm for the widget JavaScript)
# make x87-corpus  the full x87 differential corpus against unicorn (5,000 random
#             sequences, a few minutes; make test runs a seeded sample of it) and its figures
#
# Each target creates .venv on first use and reinstalls the package there
# whenever pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test bench lint book clean x87-corpus

run: $(STAMP)
	$(PY) -m lguestsim $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench_core.py $(ARGS)
	$(PY) benchmarks/bench_lguest.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

book: $(STAMP)
	$(PY) book/build.py

x87-corpus: $(STAMP)
	cd tests && PYTHONPATH=.. ../$(PY) x87env_unicorn.py 5000

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test]'
	touch $@

clean:
	rm -rf benchmarks/out .pytest_cache .ruff_cache .hypothesis
