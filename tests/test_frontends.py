"""The Jupyter front ends, driven in headless Chromium: ``make lab`` and ``make demo``.

Each test starts the Makefile's own target on a free localhost port (with
``INSTALL=`` and this interpreter's environment as ``VENV``, so nothing is
reinstalled), opens the switcher chapter, lets it run, presses the
dashboard's "step" button and checks that the registers view's EIP moved.
Every request the page makes to anywhere but localhost is aborted and
recorded, and there must be none: an instructor's projector may have no
Internet. The servers are killed, with their kernels, at the end.

Needs Debian's ``chromium`` and the Python package ``playwright`` (the test
extra); Playwright's own browser download is not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "notebooks" / "06_switcher.ipynb"
LOCAL = {"127.0.0.1", "localhost"}
TIMEOUT = 90.0          # seconds for a server to start or a page to get ready
EIP = re.compile(r"\beip\s+([0-9a-f]{8})")


def processes_marked(marker: str) -> list[int]:
    """Our processes whose environment holds ``marker``: a server and its kernels."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass                       # gone, or not ours
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def make_server(target: str, tmp_path: Path, ready: re.Pattern, *args: str,
                env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``make TARGET`` until its log matches ``ready``; yield the match, then kill it."""
    log = tmp_path / f"{target}.log"
    # Every process of this server, kernels included, inherits the marker.
    marker = f"LGUESTSIM_FRONTEND_TEST={os.getpid()}-{target}-{free_port()}"
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {}),
               marker.split("=")[0]: marker.split("=")[1]}
    with open(log, "wb") as out:
        proc = subprocess.Popen(["make", "-s", target, "INSTALL=", f"VENV={sys.prefix}", *args],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=environ,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (found := ready.search(log.read_text(errors="replace"))):
            assert proc.poll() is None, f"make {target} ended:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"make {target} not ready:\n{log.read_text()}"
            time.sleep(0.2)
        yield found.group(0)
    finally:
        # The whole process group: make, the server and its kernels.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # The server shuts its kernels down as it stops; none may linger.
        deadline = time.monotonic() + 20
        while (left := processes_marked(marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"make {target} left processes running: {left}"


@contextmanager
def browser_page(outside: list[str]) -> Iterator:
    """A Chromium page that aborts, and records in ``outside``, every non-local request."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed (.ci/run installs Debian's chromium)"

    def route(r) -> None:
        if urlsplit(r.request.url).hostname in LOCAL or r.request.url.startswith("data:"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.route("**/*", route)
            page.set_default_timeout(TIMEOUT * 1000)
            yield page
        finally:
            browser.close()


def step_moves_the_registers(page, shot: Path) -> None:
    """Press the dashboard's step button; the live registers view's EIP must move."""
    step = page.get_by_role("button", name="step", exact=True)
    try:
        step.wait_for()
    except Exception:
        page.screenshot(path=str(shot))
        raise
    dashboard = page.locator(".widget-vbox", has=step).last
    registers = dashboard.locator(".lgs-view [data-view='registers']")
    registers.wait_for()
    before = EIP.search(registers.inner_text())
    assert before, registers.inner_text()
    step.click()
    deadline = time.monotonic() + TIMEOUT
    while (after := EIP.search(registers.inner_text())) and after.group(1) == before.group(1):
        assert time.monotonic() < deadline, "the registers view did not change"
        time.sleep(0.2)
    assert after, registers.inner_text()
    page.screenshot(path=str(shot))


def artifact(name: str) -> Path:
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    return out / name


def test_make_demo_serves_a_chapter_as_a_voila_app_offline(tmp_path):
    port = free_port()
    outside: list[str] = []
    ready = re.compile(rf"http://127\.0\.0\.1:{port}/")
    with make_server("demo", tmp_path, ready, "CHAPTER=switcher", f"PORT={port}") as url:
        with browser_page(outside) as page:
            page.goto(url)
            step_moves_the_registers(page, artifact("voila-switcher.png"))
            # Voila shows outputs, not code.
            assert page.locator(".jp-InputArea-editor").count() == 0
    assert outside == [], "the Voila page fetched from the network"


def test_make_demo_names_the_chapters_when_one_is_unknown():
    proc = subprocess.run(["make", "-s", "demo", "CHAPTER=nosuch", "INSTALL=",
                           f"VENV={sys.prefix}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert ("make demo: no chapter 'nosuch'; CHAPTER= one of: preparation guest drivers "
            "launcher host switcher virtio mastery") in proc.stderr


def lab_settings(tmp_path: Path) -> dict[str, str]:
    """JupyterLab's per-user state in ``tmp_path``, autosave off: running the
    chapter must not write its outputs into the repository's notebook."""
    settings = tmp_path / "lab-settings"
    plugin = settings / "@jupyterlab" / "docmanager-extension"
    plugin.mkdir(parents=True)
    (plugin / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    return {"JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime")}


def test_make_lab_opens_the_chapters_in_jupyterlab(tmp_path):
    port = free_port()
    outside: list[str] = []
    saved = hashlib.sha256(CHAPTER.read_bytes()).hexdigest()
    # make lab prints the URL to open, with its token.
    ready = re.compile(rf"http://127\.0\.0\.1:{port}/lab\?token=[0-9a-f]{{32,}}")
    with make_server("lab", tmp_path, ready, f"PORT={port}", env=lab_settings(tmp_path)) as url:
        token = url.split("token=")[1]
        with browser_page(outside) as page:
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{CHAPTER.name}?token={token}")
            page.locator(".jp-Notebook").first.wait_for()
            # The kernel has started and connected (the status bar says so).
            page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            page.locator(".jp-InputPrompt", has_text="[1]:").first.wait_for()
            step_moves_the_registers(page, artifact("lab-switcher.png"))
    assert outside == [], "JupyterLab fetched from the network"
    assert hashlib.sha256(CHAPTER.read_bytes()).hexdigest() == saved
