"""The live book (book/lite.py): a JupyterLite site that runs lguestsim in the browser.

The site is built once per session (reused while its inputs are unchanged),
served from its folder on 127.0.0.1, and opened in Debian's headless
Chromium through Playwright.  Every other host is unreachable (Chromium's
resolver maps them to nothing) and every request the page, its workers and
its service worker make is recorded: none may leave 127.0.0.1.  In that
browser the Switcher chapter's kernel starts, lguestsim is imported from its
wheel, the shipped Guest boots and the CPU steps.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))
import lite  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"
# What the site is built from: a change to any of these rebuilds it.
INPUTS = [ROOT / "book" / "lite.py", ROOT / "book" / "package-lock.json",
          ROOT / "pyproject.toml",
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
# The cell the test runs in the chapter: the shipped Guest boots and the
# Switcher's first instructions run on the simulated CPU.
CELL = """\
import time
t0 = time.monotonic()
from lguestsim.session import Session
s = Session.boot()
stop = s.step_to("switch")
before = s.cpu.eip
s.step()
print("LITE-OK", stop.event.data, hex(before), hex(s.cpu.eip), round(time.monotonic() - t0, 1))
"""


# Run All has finished when no code cell is waiting or running ([*]) and the
# first has run.
CELLS_DONE = """() => {
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
        .map(e => e.textContent.trim());
    return prompts.length > 0 && /\\[\\d+\\]/.test(prompts[0])
        && !prompts.some(p => p.includes('*'));
}"""
# Each code cell's prompt and its error output, if any.
CELL_STATE = """cells => cells.map(c => [
    c.querySelector('.jp-InputPrompt').textContent,
    [...c.querySelectorAll(".jp-OutputArea-output[data-mime-type="
                           + "'application/vnd.jupyter.stderr']")]
        .map(e => e.textContent).join('\\n')])"""


def native_free_cells(chapter: str) -> int:
    """How many code cells open the chapter before the first that assembles a
    tiny Guest with GNU as, which the browser does not have."""
    nb = json.loads((ROOT / "notebooks" / chapter).read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    return next(i for i, src in enumerate(code) if "Session.tiny(" in src)


def _key() -> str:
    h = hashlib.sha256()
    for path in INPUTS:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def site() -> Path:
    stamp = lite.OUT / ".lguestsim-inputs"
    key = _key()
    if not (stamp.exists() and stamp.read_text() == key):
        lite.build(lite.OUT, log=lambda *a: None)
        stamp.write_text(key)
    return lite.OUT


@pytest.fixture(scope="module")
def served(site: Path):
    server = lite.server(site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_site_holds_every_chapter_and_no_remote_url(site: Path) -> None:
    shipped = sorted(p.name for p in (site / "files").glob("*.ipynb"))
    assert shipped == [p.name for p in lite.chapters()]
    lock = json.loads((site / "static" / "pyodide" / "pyodide-lock.json").read_text())
    for entry in lock["packages"].values():
        wheel = site / "static" / "pyodide" / entry["file_name"]
        assert wheel.exists(), f"the lock names {entry['file_name']}, which the site lacks"
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == entry["sha256"]
    assert {"lguestsim", "ipywidgets", "micropip", "ipython"} <= set(lock["packages"])
    assert lite.remote_urls(site) == []
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6
    print(f"live book size: {size:.1f} MB")
    assert size <= 60


def test_remote_url_check_catches_a_cdn(tmp_path: Path) -> None:
    (tmp_path / "jupyter-lite.json").write_text(json.dumps(
        {"jupyter-config-data": {"pyodideUrl": "https://cdn.jsdelivr.net/pyodide/pyodide.mjs"}}))
    (tmp_path / "build").mkdir()
    # In a bundle: a CDN string is caught, a documentation link and the
    # allowed identifiers are not.
    (tmp_path / "build" / "1.js").write_text(
        'a="https://unpkg.com/x@1/x.js";/* see https://jupyterlab.readthedocs.io/x */'
        'b={$id:"https://raw.githubusercontent.com/ajv-validator/ajv/master/lib/refs/data.json#"}')
    # In a page: what it loads by itself is caught, a link to follow is not.
    (tmp_path / "index.html").write_text(
        '<a href="https://github.com/jupyterlite">x</a><script src="https://example.org/a.js">')
    (tmp_path / "style.css").write_text('@font-face { src: url("https://fonts.example/f.woff") }')
    assert lite.remote_urls(tmp_path) == [
        "build/1.js: https://unpkg.com/x@1/x.js",
        "index.html: https://example.org/a.js",
        "jupyter-lite.json: https://cdn.jsdelivr.net/pyodide/pyodide.mjs",
        "style.css: https://fonts.example/f.woff"]
    # The build rewrites the kernel's own fallback to the local runtime.
    (tmp_path / "build" / "2.js").write_text(
        'c=a.pyodideUrl||"' + lite.PYODIDE_CDN.decode() + 'pyodide.mjs"')
    assert lite.rewrite_cdn_urls(tmp_path) == 1
    assert "./static/pyodide/pyodide.mjs" in (tmp_path / "build" / "2.js").read_text()


def test_switcher_chapter_boots_the_guest_in_chromium(served: str) -> None:
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (apt-get install chromium)"
    requests: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        start = time.monotonic()
        page.goto(f"{served}/notebooks/index.html?path=06_switcher.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        # The kernel is ready when the status icon turns to its success mark.
        page.wait_for_selector(".jp-KernelStatus-success", timeout=120_000)
        ready = time.monotonic() - start
        # Run All, as a reader would: every cell up to the first that needs
        # GNU as (a tiny Guest assembled from text) must run without an error.
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.get_by_text("Run", exact=True).first.click()
        page.get_by_text("Run All Cells").first.click()
        page.wait_for_function(CELLS_DONE, timeout=240_000)
        cells = page.eval_on_selector_all(".jp-Notebook .jp-CodeCell", CELL_STATE)
        views = page.eval_on_selector_all(
            ".jp-Notebook .jp-OutputArea-output[data-mime-type='text/html']",
            "els => els.map(e => e.textContent)")
        ran_all = time.monotonic() - start
        # Then a new cell above the chapter's first, typed and run.
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.keyboard.press("Escape")
        page.keyboard.press("a")
        page.keyboard.press("Enter")
        page.keyboard.insert_text(CELL)
        page.keyboard.press("Shift+Enter")
        out = page.locator(".jp-Notebook .jp-CodeCell").first.locator(".jp-OutputArea-output")
        out.first.wait_for(timeout=180_000)
        text = out.first.inner_text()
        booted = time.monotonic() - start
        page.screenshot(path=str(ARTIFACTS / "lite-switcher.png"))
        browser.close()
    print(f"kernel idle after {ready:.1f} s; Run All through the booted chapter after "
          f"{ran_all:.1f} s; a fresh boot and step after {booted:.1f} s; {len(views)} views")
    clean = native_free_cells("06_switcher.ipynb")
    assert clean >= 10
    for i, (prompt, error) in enumerate(cells[:clean]):
        assert prompt.strip() not in ("[ ]:", "[*]:", ""), f"code cell {i} did not run: {prompt}"
        assert not error, f"code cell {i} failed in the browser:\n{error}"
    # The code, register, GDT, TSS and page-directory views drew themselves.
    # (Their disassembly is not yet right in the browser: capstone has no
    # Pyodide wheel, and the core's fallback gives no AT&T text; README.)
    assert len(views) >= 8, f"{len(views)} views rendered"
    assert any("eip" in v.lower() for v in views), "no registers view in the page"
    assert "LITE-OK" in text, text
    # The first stop is the Host's switch into Guest 0, at the Switcher's
    # first byte; one step later the CPU has run its first instruction.
    assert "'to': 'guest'" in text and "0xffc00000" in text, text
    outside = [u for u in requests
               if urlparse(u).scheme not in ("data", "blob")
               and urlparse(u).hostname != "127.0.0.1"]
    assert outside == [], outside
    # The recorder saw the kernel's worker too: the runtime and the wheels.
    assert any(u.endswith("pyodide.asm.wasm") for u in requests), requests
    assert any("/lguestsim-" in u and u.endswith(".whl") for u in requests), requests
