"""Build the live book: the chapters as a JupyterLite site that runs offline.

The static book (``book/build.py``) shows the views as they stood when the
notebooks ran.  The live book runs them: a JupyterLite site whose kernel is
Pyodide, CPython compiled to WebAssembly, so lguestsim (pure Python) runs in
the reader's own browser with no server behind it.  The folder it writes,
``book/_build/lite``, can be served by any static web server or opened from
a USB stick.

Nothing the site loads comes from outside the folder.  The Pyodide runtime is
the npm ``pyodide`` package (``book/package.json``), at the version the
kernel release names.  That package names the kernel's Python packages in its
lock file (``pyodide-lock.json``) but does not carry them, so this script
fetches those wheels from PyPI, adds the ones the chapters import
(ipywidgets, comm, pyelftools, and lguestsim itself, built with ``pip
wheel``), and writes a lock that lists only the files it ships, each with
its own sha256: the browser refuses a wheel whose hash differs from the lock.

``make lite`` (and ``make book``) runs ``python book/lite.py``.  Every build
starts from a clean output folder: jupyterlite's task database, reused, has
been seen to drop settings and send the kernel to a CDN.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
OUT = BOOK / "_build" / "lite"
WORK = BOOK / "_build" / "lite-work"
WHEELS = BOOK / "_build" / "lite-wheels"
sys.path.insert(0, str(BOOK))

# The Pyodide release jupyterlite-pyodide-kernel 0.8.6 is built against
# (its constants.PYODIDE_VERSION); book/package.json pins the same.
PYODIDE_VERSION = "314.0.6"
# What the kernel itself loads from the lock: micropip first, then IPython
# (pyodide_kernel's dependency) and everything IPython depends on, jedi among them
KERNEL_ROOTS = ("micropip", "packaging", "ipython", "jedi")
# Pure-Python packages the chapters import that the Pyodide lock lacks, at
# the versions the local install has (ipywidgets must match the
# jupyterlab_widgets extension the site's page is built with).
EXTRA = ("comm", "ipywidgets", "jupyterlab_widgets", "ipython_pygments_lexers", "pyelftools")
# Import names of the EXTRA distributions, for Pyodide's loading on import.
IMPORTS = {"comm": ["comm"], "ipywidgets": ["ipywidgets"],
           "jupyterlab-widgets": ["jupyterlab_widgets"],
           "ipython-pygments-lexers": ["ipython_pygments_lexers"],
           "pyelftools": ["elftools"], "lguestsim": ["lguestsim"]}
DEPENDS = {"ipywidgets": ["comm", "ipython", "traitlets", "jupyterlab-widgets"],
           "ipython": None,  # kept from the npm lock, plus the lexers below
           "lguestsim": ["pyelftools", "ipywidgets"]}
# The Pyodide files the site needs (source maps and the demo consoles stay out).
PYODIDE_FILES = ("pyodide.mjs", "pyodide.js", "pyodide.asm.mjs", "pyodide.asm.wasm",
                 "python_stdlib.zip", "package.json")
# Any absolute http(s) URL whose host is not this machine.
REMOTE = re.compile(rb"https?://(?!127\.0\.0\.1|localhost)[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Text that merely names a remote address without loading it: licences,
# schema identifiers, doc links in comments and messages.  The check is for
# what a page or worker would *fetch*, so it reads the places fetches come
# from: the site's configuration and the lock.
CONFIG_FILES = ("jupyter-lite.json", "config-utils.js")


class LiteError(Exception):
    """The live book cannot be built; the message says why."""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _run(cmd: list[str], log, cwd: Path = ROOT) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise LiteError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def pyodide_dist(log) -> Path:
    """The npm ``pyodide`` package, installed by ``npm ci`` in book/."""
    import build  # the static book's npm step installs book/package.json
    modules = BOOK / "node_modules" / "pyodide"
    if not (modules / "pyodide.asm.wasm").exists() or \
            json.loads((modules / "package.json").read_text())["version"] != PYODIDE_VERSION:
        stamp = BOOK / "node_modules" / ".lguestsim-installed"
        stamp.unlink(missing_ok=True)
        build.install_js(WORK / "js", log)
    version = json.loads((modules / "package.json").read_text())["version"]
    if version != PYODIDE_VERSION:
        raise LiteError(f"book/node_modules has pyodide {version}, the kernel needs "
                        f"{PYODIDE_VERSION}: pin it in book/package.json")
    return modules


def fetch_wheels(lock: dict, log) -> dict[str, Path]:
    """Every wheel the site ships, by normalised name: downloaded once into
    book/_build/lite-wheels, lguestsim rebuilt each time."""
    from importlib.metadata import version
    WHEELS.mkdir(parents=True, exist_ok=True)
    wanted = [f"{p['name']}=={p['version']}" for p in kernel_closure(lock).values()]
    wanted += [f"{name}=={version(name)}" for name in EXTRA]
    have = {w.name for w in WHEELS.glob("*.whl")}
    missing = [spec for spec in wanted
               if not any(_norm(h.split("-")[0]) == _norm(spec.split("==")[0])
                          and h.split("-")[1] == spec.split("==")[1] for h in have)]
    if missing:
        log(f"  pip download {len(missing)} wheels")
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--python-version", "3.14", "-d", str(WHEELS), *missing], log)
    for old in WHEELS.glob("lguestsim-*.whl"):
        old.unlink()
    log("  pip wheel lguestsim")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(WHEELS), str(ROOT)], log)
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    found = {}
    for whl in WHEELS.glob("*.whl"):
        name, ver = whl.name.split("-")[:2]
        spec = next((s for s in wanted if _norm(s.split("==")[0]) == _norm(name)
                     and s.split("==")[1] == ver), None)
        if spec is not None or _norm(name) == "lguestsim":
            found[_norm(name)] = whl
    return found


def kernel_closure(lock: dict) -> dict[str, dict]:
    """The npm lock's entries the kernel loads: KERNEL_ROOTS and their depends."""
    packages = {_norm(k): v for k, v in lock["packages"].items()}
    todo, seen = list(KERNEL_ROOTS), {}
    while todo:
        name = _norm(todo.pop())
        if name not in seen:
            seen[name] = packages[name]
            todo += packages[name]["depends"]
    return seen


def write_lock(lock: dict, wheels: dict[str, Path], dest: Path) -> None:
    """A lock naming only the shipped wheels, each with the hash of its own file."""
    entries = {}
    for name, entry in kernel_closure(lock).items():
        entries[name] = dict(entry)
    for name in [*map(_norm, EXTRA), "lguestsim"]:
        ver = wheels[name].name.split("-")[1]
        entries[name] = {"name": name, "version": ver, "file_name": "", "install_dir": "site",
                         "package_type": "package", "imports": IMPORTS[name],
                         "depends": [_norm(d) for d in DEPENDS.get(name) or []],
                         "unvendored_tests": False, "sha256": ""}
    entries["ipython"]["depends"] = [*entries["ipython"]["depends"], "ipython-pygments-lexers"]
    for name, entry in entries.items():
        whl = wheels[name]
        shutil.copy2(whl, dest / whl.name)
        entry["file_name"] = whl.name
        entry["version"] = whl.name.split("-")[1]
        entry["sha256"] = hashlib.sha256(whl.read_bytes()).hexdigest()
        entry["depends"] = [_norm(d) for d in entry["depends"]]
    (dest / "pyodide-lock.json").write_text(json.dumps({"info": lock["info"],
                                                        "packages": entries}, indent=1))


def pack_pyodide(log) -> Path:
    """The runtime and its wheels as pyodide.tar.bz2 (the form the kernel's
    build add-on unpacks), with a top folder ``pyodide/``."""
    dist = pyodide_dist(log)
    lock = json.loads((dist / "pyodide-lock.json").read_text())
    wheels = fetch_wheels(lock, log)
    stage = WORK / "pyodide"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for name in PYODIDE_FILES:
        shutil.copy2(dist / name, stage / name)
    write_lock(lock, wheels, stage)
    archive = WORK / "pyodide.tar.bz2"
    log("  pack pyodide.tar.bz2")
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(stage, arcname="pyodide")
    return archive


def chapters() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def build(out: Path = OUT, log=print) -> dict:
    """Write the site into ``out``; return its figures."""
    start = time.monotonic()
    archive = pack_pyodide(log)
    lite_dir = WORK / "site"
    shutil.rmtree(lite_dir, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    lite_dir.mkdir(parents=True)
    # The settings every page reads: no PyPI behind the kernel's micropip.
    (lite_dir / "jupyter-lite.json").write_text(json.dumps({
        "jupyter-lite-schema-version": 0,
        "jupyter-config-data": {
            "appName": "lguestsim, live",
            "litePluginSettings": {
                "@jupyterlite/pyodide-kernel-extension:kernel": {"disablePyPIFallback": True},
            },
        },
    }, indent=1))
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [str(jupyter), "lite", "build", "--lite-dir", str(lite_dir), "--output-dir", str(out),
           f"--PyodideAddon.pyodide_url={archive}", "--no-sourcemaps"]
    for nb in chapters():
        cmd += ["--contents", str(nb)]
    log("  jupyter lite build")
    _run(cmd, log, cwd=lite_dir)
    if not (out / "static" / "pyodide" / "pyodide-lock.json").exists():
        raise LiteError(f"{out}/static/pyodide is missing: the Pyodide add-on did not run")
    remote = remote_urls(out)
    if remote:
        raise LiteError("the live book loads remote resources:\n" + "\n".join(remote[:20]))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"size_mb": size / 1e6, "seconds": time.monotonic() - start,
            "chapters": len(chapters())}


def remote_urls(out: Path) -> list[str]:
    """Every place the site's configuration or lock points outside this machine.

    A JupyterLite bundle carries many URLs in text no one fetches (licences,
    source comments, error messages); what decides where the browser goes is
    each ``jupyter-lite.json`` (the kernel's Pyodide URL, index URLs), the
    Pyodide lock (the wheels' file names), the piplite indexes and the
    notebooks.  Those must name only local files.
    """
    found = []
    for path in [*out.rglob("jupyter-lite.json"), *out.rglob("pyodide-lock.json"),
                 *out.rglob("all.json"), *out.rglob("*.ipynb")]:
        if "schemas" in path.parts:
            continue  # JSON Schema's "$schema" identifiers name a standard, not a fetch
        for m in REMOTE.finditer(path.read_bytes()):
            if path.suffix == ".ipynb":
                continue  # a chapter's prose may cite a page; the test counts real requests
            found.append(f"{path.relative_to(out)}: {m.group().decode()}")
    return found


class Handler(http.server.SimpleHTTPRequestHandler):
    """A static file server for the site: Pyodide streams its WebAssembly
    only when it is served as application/wasm, and loads ES modules."""
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".mjs": "text/javascript",
                      ".js": "text/javascript", ".json": "application/json"}

    def log_message(self, *args) -> None:
        pass


def server(site: Path, host: str = "127.0.0.1", port: int = 0) -> http.server.HTTPServer:
    """An HTTP server for ``site`` on ``host`` (port 0: any free port)."""
    return http.server.ThreadingHTTPServer(
        (host, port), functools.partial(Handler, directory=str(site)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--serve", metavar="HOST:PORT",
                        help="serve the built site instead of building it (make live)")
    args = parser.parse_args(argv)
    if args.serve:
        host, _, port = args.serve.rpartition(":")
        if not (args.out / "index.html").exists():
            print(f"lite: {args.out} has no site: run make lite first", file=sys.stderr)
            return 1
        httpd = server(args.out, host, int(port))
        print(f"the live book: http://{host}:{httpd.server_address[1]}/lab/index.html "
              "(Ctrl-C stops)", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        return 0
    try:
        figures = build(args.out)
    except LiteError as err:
        print(f"lite: {err}", file=sys.stderr)
        return 1
    print(f"live book: {args.out} ({figures['chapters']} chapters, "
          f"{figures['size_mb']:.1f} MB, built in {figures['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
