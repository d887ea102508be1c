"""The code cache's two states a benchmark measures: cold, and warm.

lguestsim keeps blocks' compiled code on disk across processes
(lguestsim/x86/code_cache.py), in ``$LGUESTSIM_CODE_CACHE``.  A benchmark
that starts Python processes would otherwise find whatever the last run, or
the user's own work, left there, and its "cold start" would not be one.  So
each child is given a folder of its own: a fresh, empty one for a cold run
(what a first run, or a new version of lguestsim, costs), or one an earlier
child filled for a warm run (a restarted kernel, the next `make demo`).
A benchmark running Guests in its own process gives itself an empty one too.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cache_folder() -> Iterator[dict[str, str]]:
    """The environment of a child whose code cache starts empty; removed after.
    Children run one after another in it share it: the first fills it."""
    where = tempfile.mkdtemp(prefix="lguestsim-bench-code-")
    try:
        yield dict(os.environ, LGUESTSIM_CODE_CACHE=where)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def isolate() -> None:
    """Give this process an empty code cache of its own, removed at exit: a
    benchmark that runs Guests in its own process neither reads nor fills the
    user's cache.  Called before its first block is compiled."""
    where = tempfile.mkdtemp(prefix="lguestsim-bench-code-")
    os.environ["LGUESTSIM_CODE_CACHE"] = where
    atexit.register(shutil.rmtree, where, True)


def cache_size(env: dict[str, str]) -> int:
    """Bytes of code kept in the folder of ``env``."""
    total = 0
    for folder, _, files in os.walk(env["LGUESTSIM_CODE_CACHE"]):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total
