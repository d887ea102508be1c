"""Shared pytest set-up: the hypothesis profiles, and the differential
case count gathered from every worker.

``default`` is quick, for a developer's edit-test loop; ``ci`` searches much
harder. ``HYPOTHESIS_PROFILE`` picks one; without it, ``ci`` is used when
``CI=true`` and ``default`` otherwise.

`make test` runs the suite on both cores with pytest-xdist (``-n 2 --dist
loadfile``: a file's tests stay on one worker, so a module fixture such as the
built book is made once). Each worker counts the unicorn cases it ran and
hands the counts to the controller, which prints the one summary line.

The code cache (lguestsim/x86/code_cache.py) is pointed at a fresh folder for
the session, made by the controller before the workers start, so they and
every ``python -m lguestsim`` a test starts share it: the suite never writes
into the user's own cache, one run's results never depend on an earlier run's
code, and the many boots of the suite read the blocks the first one compiled.
It is removed at the end.
"""

import os
import shutil
import tempfile

import figures
import pytest
import x86env_unicorn as xu
from hypothesis import HealthCheck, settings

from lguestsim.x86 import code_cache

settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=1000,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

_fallback = "ci" if os.environ.get("CI", "").lower() == "true" else "default"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _fallback))


def pytest_configure(config: pytest.Config) -> None:
    xu.register_summary(config)
    # The controller makes it; workers inherit its environment.
    if not hasattr(config, "workerinput") or "LGUESTSIM_CODE_CACHE" not in os.environ:
        config.code_cache = tempfile.mkdtemp(prefix="lguestsim-code-cache-")
        os.environ["LGUESTSIM_CODE_CACHE"] = config.code_cache
    code_cache.use(os.environ["LGUESTSIM_CODE_CACHE"])


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, "code_cache"):
        shutil.rmtree(config.code_cache, ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):   # the controller, or a run without xdist
        figures.FILE.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter) -> None:
    if figures.FILE.exists():
        terminalreporter.section("figures measured by the tests")
        for line in figures.FILE.read_text().splitlines():
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    code_cache.flush()      # now, while the session's folder is still there
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: report to the controller
        workeroutput["unicorn_counts"] = dict(xu.COUNTS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    for family, n in getattr(node, "workeroutput", {}).get("unicorn_counts", {}).items():
        xu.COUNTS[family] += n
