"""The live book in headless Chromium, as a reader's browser opens it.

Used by tests/test_lite.py and, run as a script, by ``make lite-chapters``
(every chapter opened in the live book, Run All, each chapter's time and
errors printed) and ``make lite-timing`` (``timing``: the site's size, the
Switcher chapter's time to the Guest's first prompt, a step's round trip).

The site (book/_build/lite) is built once and reused while its inputs are
unchanged, served from its folder on 127.0.0.1, and opened in Debian's
Chromium through Playwright.  Every other host is unreachable (Chromium's
resolver maps them to nothing) and every request the page, its workers and
its service worker make is recorded, so a test can say none left
127.0.0.1: that is the network cut.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))
import build  # noqa: E402
import lite  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"
# What the site is built from: a change to any of these rebuilds it.
INPUTS = [ROOT / "book" / "lite.py", ROOT / "book" / "build.py",
          ROOT / "book" / "package-lock.json", ROOT / "pyproject.toml",
          *sorted(p for p in (ROOT / "lguestsim").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts),
          *lite.chapters()]
# Chromium's own traffic (updates, sync, field trials, safe browsing) is off,
# and every host but this machine resolves to nothing.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--disable-default-apps",
                 "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                 "--no-first-run", "--metrics-recording-only",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
# Run All has finished when no code cell is waiting or running ([*]) and the
# first has run.
CELLS_DONE = """() => {
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
        .map(e => e.textContent.trim());
    return prompts.length > 0 && /\\[\\d+\\]/.test(prompts[0])
        && !prompts.some(p => p.includes('*'));
}"""
# Each code cell's prompt and its error output (tracebacks and stderr), if any.
CELL_STATE = """cells => cells.map(c => [
    c.querySelector('.jp-InputPrompt').textContent.trim(),
    [...c.querySelectorAll(".jp-OutputArea-output[data-mime-type="
                           + "'application/vnd.jupyter.stderr']")]
        .map(e => e.textContent).join('\\n')])"""


def site_key() -> str:
    h = hashlib.sha256()
    for path in INPUTS:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def ensure_site(log=lambda *a: None) -> Path:
    """book/_build/lite, built again when any of its inputs changed."""
    stamp = lite.OUT / ".lguestsim-inputs"
    key = site_key()
    if not (stamp.exists() and stamp.read_text() == key):
        lite.build(lite.OUT, log=log)
        stamp.write_text(key)
    return lite.OUT


@contextmanager
def served(site: Path) -> Iterator[str]:
    """The site on a free port of 127.0.0.1; yields its base URL."""
    server = lite.server(site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(requests: list[str]) -> Iterator:
    """A browser context with the network cut; each request's URL goes in ``requests``."""
    from playwright.sync_api import sync_playwright
    exe = shutil.which("chromium")
    if not exe:
        raise AssertionError("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.on("request", lambda r: requests.append(r.url))
        try:
            yield context
        finally:
            browser.close()


def outside(requests: list[str]) -> list[str]:
    """The requests that left 127.0.0.1."""
    return [u for u in requests if urlparse(u).scheme not in ("data", "blob")
            and urlparse(u).hostname != "127.0.0.1"]


def live_url(base: str, notebook: str) -> str:
    """The chapter in the live book, as the static book links it (book/build.py)."""
    return f"{base}/" + build.LIVE_CHAPTER.format(notebook=notebook).removeprefix("../lite/")


def wait_for_kernel(page, timeout: float = 120) -> None:
    """The notebook is drawn and its kernel idle (the status icon's success mark)."""
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-KernelStatus-success", timeout=timeout * 1000)


def run_all(page, timeout: float) -> float:
    """Run All from the menu, as a reader would; seconds until every cell ran."""
    start = time.monotonic()
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.get_by_text("Run", exact=True).first.click()
    page.get_by_text("Run All Cells").first.click()
    page.wait_for_timeout(500)
    page.wait_for_function(CELLS_DONE, timeout=timeout * 1000, polling=500)
    return time.monotonic() - start


def cell_states(page) -> list[tuple[str, str]]:
    """(prompt, error output) of each code cell."""
    return [tuple(c) for c in page.eval_on_selector_all(".jp-Notebook .jp-CodeCell",
                                                        CELL_STATE)]


def failures(states: list[tuple[str, str]], upto: int | None = None) -> list[str]:
    """The code cells (of the first ``upto``) that did not run, or wrote an error."""
    bad = []
    for i, (prompt, error) in enumerate(states[:upto]):
        if prompt in ("[ ]:", "[*]:", ""):
            bad.append(f"code cell {i} did not run ({prompt})")
        elif error:
            bad.append(f"code cell {i} failed:\n{error[-1500:]}")
    return bad


def run_new_cell(page, code: str, timeout: float) -> str:
    """Type ``code`` into a new cell above the first and run it; its first output's text."""
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    out = page.locator(".jp-Notebook .jp-CodeCell").first.locator(".jp-OutputArea-output")
    out.first.wait_for(timeout=timeout * 1000)
    page.wait_for_function(
        "() => !document.querySelector('.jp-Notebook .jp-CodeCell .jp-InputPrompt')"
        ".textContent.includes('*')", timeout=timeout * 1000, polling=200)
    return "\n".join(out.all_inner_texts())


def literal_tiny(notebook: Path) -> str:
    """The first tiny Guest a chapter's notebook writes out literally."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        m = re.search(r'Session\.tiny\("""(.*?)"""\)', "".join(cell["source"]), re.S)
        if m:
            return m.group(1)
    raise AssertionError(f"{notebook.name} writes no tiny Guest literally")


# A cell that builds a chapter's tiny Guest ({source}): from the prebuilt
# programs, in the browser.
CACHED_CELL = """\
from lguestsim.session import Session
t = Session.tiny({source!r})
print("TINY-OK", t.step_to("hypercall").event.data)
"""


def run_chapter(context, base: str, notebook: str, timeout: float = 900) -> dict:
    """Open a chapter, Run All, and say how long each part took and what failed."""
    page = context.new_page()
    start = time.monotonic()
    page.goto(live_url(base, notebook))
    wait_for_kernel(page)
    ready = time.monotonic() - start
    ran = run_all(page, timeout)
    states = cell_states(page)
    page.close()
    return {"notebook": notebook, "kernel_s": ready, "run_all_s": ran, "cells": len(states),
            "failures": failures(states)}


# A cell typed into the Switcher chapter: the teaching Guest boots to its
# shell's first prompt.
PROMPT_CELL = """\
from lguestsim.session import Session
shell = Session.boot(cmdline=["shell"])
for _ in range(2000):
    if "guest> " in shell.console:
        break
    shell.step_to("hypercall")
print("PROMPT", repr(shell.console.splitlines()[-1]))
"""
# The dashboard's panes (book: lguestsim/views/dashboard.py).
PANES = ".lgs-view .lgs-dash > .lgs-pane"


def switcher_figures(context, base: str, screenshot: Path | None = None) -> dict:
    """The Switcher chapter as the acceptance figures measure it.

    Opened as the static book links it; the time to a kernel ready and to the
    booted Guest's first ``guest>`` prompt (a typed cell, first); then Run All
    over the whole chapter, and the dashboard's step button clicked: the
    registers pane before and after, and the click's round trip.
    """
    page = context.new_page()
    start = time.monotonic()
    page.goto(live_url(base, "06_switcher.ipynb"))
    wait_for_kernel(page)
    figures = {"kernel_s": time.monotonic() - start}
    figures["prompt_output"] = run_new_cell(page, PROMPT_CELL, timeout=180)
    figures["prompt_s"] = time.monotonic() - start
    figures["run_all_s"] = run_all(page, timeout=600)
    figures["states"] = cell_states(page)
    step = page.get_by_role("button", name="step", exact=True)
    step.scroll_into_view_if_needed()
    panes = page.locator(PANES)
    figures["panes"] = panes.all_inner_texts()
    before = panes.nth(1).inner_text()
    clicked = time.monotonic()
    step.click()
    page.wait_for_function(f"""before => document.querySelectorAll({PANES!r})[1]
                                .innerText !== before""", arg=before, timeout=60_000)
    figures["step_s"] = time.monotonic() - clicked
    figures["registers"] = (before, panes.nth(1).inner_text())
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    page.close()
    return figures


def size_mb(site: Path) -> float:
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6


def timing() -> int:
    """make lite-timing: the acceptance figures of the live book."""
    site = ensure_site(log=print)
    requests: list[str] = []
    with served(site) as base, chromium(requests) as context:
        f = switcher_figures(context, base)
    print(f"live book: {size_mb(site):.1f} MB in {site}")
    print(f"Switcher chapter: kernel ready {f['kernel_s']:.1f} s, the Guest's first guest> "
          f"prompt {f['prompt_s']:.1f} s after opening; Run All {f['run_all_s']:.1f} s; "
          f"a step's round trip {f['step_s']:.2f} s")
    errors = failures(f["states"])
    print("\n".join(errors) if errors else "every cell ran without error output")
    print(f"{len(requests)} requests, {len(outside(requests))} outside 127.0.0.1")
    return 1 if errors or outside(requests) else 0


def main(argv: list[str]) -> int:
    """make lite-chapters: every chapter in Chromium, to its end; each one's time."""
    if argv[1:] == ["timing"]:
        return timing()
    site = ensure_site(log=print)
    requests: list[str] = []
    bad = 0
    with served(site) as base, chromium(requests) as context:
        for nb in lite.chapters():
            r = run_chapter(context, base, nb.name)
            bad += bool(r["failures"])
            print(f"{nb.name:22} kernel {r['kernel_s']:5.1f} s, Run All {r['run_all_s']:6.1f} s, "
                  f"{r['cells']} code cells, "
                  f"{'no errors' if not r['failures'] else 'FAILED'}", flush=True)
            for f in r["failures"]:
                print("   ", f.replace("\n", "\n    "))
    left = outside(requests)
    print(f"{len(requests)} requests, {len(left)} outside 127.0.0.1 {left[:5]}")
    return 1 if bad or left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
