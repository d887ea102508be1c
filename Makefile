# make run    run the Launcher: with no ARGS it boots the shipped Guest (32 MiB);
#             make run ARGS='32 lguestsim/guest/images/guest.elf shell' gives its shell;
#             ARGS='--guests=2 --sharenet=/tmp/net 32' two Guests; ARGS=--demo the CPU demo
# make test   the whole test suite, then the linters: ruff, and lint-imports (the design's
#             arrows as import-linter contracts, pyproject.toml's [tool.importlinter])
# make ss386  every test of the SingleStepTests 80386 files in ../shared/ext/ss80386
#             (make test runs a seeded sample of 500 per file; the whole suite is 1.7M)
# make bench  the benchmarks: the core's speed, rep strings, stores near code, the Host under
#             a flushing Guest, lguest's figures, DMA vs virtio, the peak RSS of a Guest's
#             boot from 32 MiB to 2 GiB of Guest RAM, the native door's boot (launcher-c
#             through the door) beside the Python Launcher's, scaling (1-8 Guests, 32 MiB-2
#             GiB), back(10000); then every figure of issue 14 beside its goal (stdout, and
#             benchmarks/out/: each script's json, summary.md and summary.json)
# make lint   the linter alone
# make hostile  the whole hostile-Guest corpus (tests/hostile.py, 1,500+ Guests, each beside
#             a neighbour) and its report; `make test` runs a seeded sample of each category
# make book   the HTML book into book/_build/html (needs npm for the widget JavaScript),
#             then the live book (make lite)
# make lite   the live book: the chapters as a JupyterLite site with the Pyodide kernel in
#             book/_build/lite, everything it loads inside the folder (npm's pyodide, wheels
#             from PyPI and lguestsim's own); tests/test_lite.py opens it in Chromium
# make live   serve book/_build/lite (and the static book beside it) on IP:PORT
#             (127.0.0.1:8000) and print their URLs
# make lite-chapters  every chapter of the live book in headless Chromium with the network
#             cut: Run All to its end, each chapter's time (make test runs them all
#             too, and a reader's way in through the index for one drawn by LITE_SEED)
# make lite-timing  the live book's figures: its size, the time from opening the Switcher
#             chapter to the Guest's first guest> prompt, a step's round trip
# make lab    the chapters in JupyterLab: prints the URL to open (with its token); no
#             browser is started, so it works on a server (PORT=8888, IP=127.0.0.1)
# make demo CHAPTER=switcher
#             one chapter as a Voila app, for an instructor at a projector: executed,
#             code hidden, buttons live, nothing fetched from the network (PORT=8866)
# make x87-corpus  the full x87 differential corpus against unicorn (5,000 random
#             sequences, a few minutes; make test runs a seeded sample of it) and its figures
#
# Each target creates .venv on first use and reinstalls the package there
# whenever pyproject.toml changes (INSTALL= skips that, VENV= names another venv:
# the front-end tests run `make lab` and `make demo` that way, in the test's venv).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
INSTALL ?= $(STAMP)
ARGS   ?=
IP     ?= 127.0.0.1
CHAPTER ?= switcher
# The chapters are notebooks/NN_<chapter>.ipynb.
CHAPTERS := $(patsubst notebooks/%.ipynb,%,$(wildcard notebooks/[0-9][0-9]_*.ipynb))
NOTEBOOK := $(wildcard notebooks/[0-9][0-9]_$(CHAPTER).ipynb)
# Jupyter's network look-ups (news, update checks, the extension manager's
# PyPI searches) are off: the front ends must work without the Internet.
OFFLINE := --LabApp.news_url=None --LabApp.extension_manager=readonly \
           --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate
# Jupyter refuses to run as root unless told; CI's container is root.
ROOT_OK := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: run test ss386 bench lint book lite live lite-chapters lite-timing hostile lab \
	demo clean x87-corpus

run: $(INSTALL)
	$(PY) -m lguestsim $(ARGS)

test: $(INSTALL)
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

ss386: $(INSTALL)
	SS386_ALL=1 $(PY) -m pytest -q tests/test_singlestep_386.py

# Every benchmark runs even if one before it fails (its figures are then missing
# from the summary, which says so); the status is that of the worst.
BENCHES := bench_strings bench_smc bench_lguest bench_host bench_virtio bench_memory \
           bench_native bench_scaling bench_back bench_figures
bench: $(INSTALL)
	@status=0; \
	$(PY) benchmarks/bench_core.py $(ARGS) || status=1; \
	for b in $(BENCHES); do echo; echo "== $$b"; $(PY) benchmarks/$$b.py || status=1; done; \
	echo; $(PY) benchmarks/summary.py || status=1; \
	exit $$status

hostile: $(INSTALL)
	PYTHONPATH=tests $(PY) tests/hostile.py

lint: $(INSTALL)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

book: $(INSTALL)
	$(PY) book/build.py
	$(PY) book/lite.py

lite: $(INSTALL)
	$(PY) book/lite.py

live: $(INSTALL)
	$(PY) book/lite.py --serve $(IP):$(or $(PORT),8000)

# The live book in Chromium (tests/lite_browser.py; builds the site first if
# anything it is made from changed).
lite-chapters: $(INSTALL)
	$(PY) tests/lite_browser.py

lite-timing: $(INSTALL)
	$(PY) tests/lite_browser.py timing

# JupyterLab listens on IP only (localhost by default) and keeps Jupyter's
# random token, printed in the URL: a notebook server runs any code it is
# sent, and on a shared machine every local user can reach localhost.
lab: $(INSTALL)
	$(VENV)/bin/jupyter lab --no-browser --ip=$(IP) --port=$(or $(PORT),8888) \
	    --ServerApp.root_dir=notebooks $(OFFLINE) $(ROOT_OK)

# Voila runs the chapter's notebook when the page is opened and shows its
# output and widgets, not its code. It listens on localhost with no token, so
# the projector's browser needs nothing but the printed URL. The template
# (book/jupyter/voila/templates/lguestsim) is voila's own without the
# Font Awesome it fetches from a CDN.
demo: $(INSTALL)
	@test -n "$(NOTEBOOK)" || { echo "make demo: no chapter '$(CHAPTER)';" \
	    "CHAPTER= one of: $(foreach c,$(CHAPTERS),$(word 2,$(subst _, ,$(c))))" >&2; exit 2; }
	JUPYTER_PATH=$(CURDIR)/book/jupyter$(if $(JUPYTER_PATH),:$(JUPYTER_PATH)) \
	    $(VENV)/bin/voila $(NOTEBOOK) --no-browser --Voila.ip=$(IP) \
	    --port=$(or $(PORT),8866) --template=lguestsim --theme=light

x87-corpus: $(INSTALL)
	cd tests && PYTHONPATH=$(CURDIR) $(abspath $(PY)) x87env_unicorn.py 5000

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test]'
	touch $@

clean:
	rm -rf benchmarks/out .pytest_cache .ruff_cache .hypothesis
