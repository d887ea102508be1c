"""Build the live book: the chapters as a JupyterLite site that runs offline.

The static book (``book/build.py``) shows the views as they stood when the
notebooks ran.  The live book runs them: a JupyterLite site whose kernel is
Pyodide, CPython compiled to WebAssembly, so lguestsim (pure Python) runs in
the reader's own browser with no server behind it.  The folder it writes,
``book/_build/lite``, can be served by any static web server, or from a USB
stick by a local one (``make live``: a browser runs none of it from file://).

Nothing the site loads comes from outside the folder.  The Pyodide runtime is
the npm ``pyodide`` package (``book/package.json``), at the version the
kernel release names.  That package names the kernel's Python packages in its
lock file (``pyodide-lock.json``) but does not carry them, so this script
fetches those wheels from PyPI, adds the ones the chapters import
(ipywidgets, comm, pyelftools, and lguestsim itself, built with ``pip
wheel``), and writes a lock that lists only the files it ships, each with
its own sha256: the browser refuses a wheel whose hash differs from the lock.

The browser has no GNU as, so lguestsim's wheel here also carries every
program the chapters assemble (``lguestsim.asm``'s prebuilt programs, keyed
by their sources) and the teaching Guest's line table.  And the bundles'
own fallbacks to a CDN are pointed at the local runtime; a check over every
text file of the folder then fails the build on any CDN string left.

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
import os
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
REMOTE = re.compile(rb"https?://(?!127\.0\.0\.1|localhost)[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
                    rb"[^\s\"'`()<>\\]*")
# Hosts that serve code, fonts or packages: a string naming one is a fetch
# waiting for a missing setting, so none may remain anywhere in the site.
CDN = re.compile(rb"https?://(?:[A-Za-z0-9-]+\.)*(?:jsdelivr\.net|unpkg\.com|cloudflare\.com"
                 rb"|esm\.sh|skypack\.dev|jspm\.io|googleapis\.com|gstatic\.com|pypi\.org"
                 rb"|pythonhosted\.org|anaconda\.org|githubusercontent\.com)\b")
# CDN strings the build rewrites to the site's own copy.  The kernel's
# fallback when no pyodideUrl is set (and the default its settings schema
# shows) becomes the local runtime; Pyodide's cdnUrl, read only under Node
# to download packages the lock lacks, becomes the runtime's own folder.
PYODIDE_CDN = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/".encode()
REWRITES = [
    (re.compile(re.escape(PYODIDE_CDN + b"pyodide.mjs")), b"./static/pyodide/pyodide.mjs"),
    (re.compile(rb"(let (\w+)=e\.indexURL\|\|.{0,200}?e\.packageBaseUrl\?\?)"
                rb"`https://cdn\.jsdelivr\.net/pyodide/v\$\{\w+\}/full/`"), rb"\1\2"),
]
# The only CDN-host strings left, each with why it is never fetched.
ALLOWED = {
    # ajv (JupyterLab's settings validator) names its $data meta-schema by
    # this $id and $ref; the schema is compiled into the bundle, never fetched.
    "https://raw.githubusercontent.com/ajv-validator/ajv/master/lib/refs/data.json#":
        "ajv's $data meta-schema identifier",
    # A link in a doc comment of JupyterLab's kernel REST client, to the
    # server API it describes (the live book has no server).
    "https://raw.githubusercontent.com/jupyter-server/jupyter_server/main/jupyter_server/"
    "services/api/api.yaml": "a doc comment's link to the server's API spec",
    # Prose in the kernel's settings schema (the settings editor's help text)
    # describing the fallback that jupyter-lite.json turns off.
    "https://pypi.org/pypi/": "a setting's description (disablePyPIFallback)",
}
# Where a fetch is decided: these files may name no remote host at all.
FETCH_FILES = ("jupyter-lite.json", "pyodide-lock.json", "api/contents/all.json", "pypi/all.json",
               "*.webmanifest")
# What a page or stylesheet loads by itself: an element's src/href/data, a
# url() or an @import (a link a reader may follow is not a load).
LOADS = re.compile(rb"<(?:script|link|img|iframe|source|embed|object|image|use)\b[^>]*?"
                   rb"\b(?:src|href|data|xlink:href)\s*=\s*[\"']?(?=https?://)"
                   rb"|url\(\s*[\"']?(?=https?://)|@import\s+[\"']?(?=https?://)", re.I)
# Files that are not text (the check reads the rest).
BINARY = {".whl", ".wasm", ".zip", ".bz2", ".png", ".ico", ".woff", ".woff2", ".ttf", ".eot",
          ".gif", ".jpg", ".jpeg", ".data"}


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
    log("  pip wheel lguestsim, with its prebuilt programs")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(WHEELS),
          str(lguestsim_tree(log))], log)
    found = {}
    for whl in WHEELS.glob("*.whl"):
        name, ver = whl.name.split("-")[:2]
        spec = next((s for s in wanted if _norm(s.split("==")[0]) == _norm(name)
                     and s.split("==")[1] == ver), None)
        if spec is not None or _norm(name) == "lguestsim":
            found[_norm(name)] = whl
    return found


def programs(log) -> list[Path]:
    """Every program the chapters assemble, as ``lguestsim.asm`` ships them.

    The chapters' own tiny Guests are recorded while the static book's build
    executes them (book/_build/cache/programs, reused with the executed
    copies); the Switcher is assembled once more with its line table, as
    ``switcher_symbols()`` asks for it, and the teaching Guest's debug twin
    (its line table, ``guest_symbols()``) is compiled.
    """
    import build
    found = []
    for nb in chapters():
        build.execute(nb, log)
        found += sorted(build.programs_of(nb).glob("*.json"))
    switcher = WORK / "programs"
    shutil.rmtree(switcher, ignore_errors=True)
    env = {**os.environ, "LGUESTSIM_ASM_RECORD": str(switcher), "PYTHONPATH": str(ROOT)}
    # The teaching Guest's debug twin (symbols.guest_symbols) is made in a
    # cache of its own, so that one a checkout made earlier is not taken.
    env["LGUESTSIM_CACHE"] = str(switcher / "twin")
    done = subprocess.run([sys.executable, "-c", "from lguestsim import symbols as s; "
                           "assert s.switcher_symbols().rows, 'no Switcher lines'; "
                           "assert s.guest_symbols().rows, 'no Guest lines'"],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise LiteError(f"the Switcher or the Guest's debug twin did not build:\n"
                        f"{done.stderr[-2000:]}")
    return found + sorted(switcher.glob("*.json")) + sorted(switcher.glob("twin/*.elf"))


def lguestsim_tree(log) -> Path:
    """A copy of the package's source with its prebuilt programs, for ``pip wheel``.

    The programs go in ``lguestsim/prebuilt/`` (``lguestsim.asm.PREBUILT``),
    a package only in this copy: a checkout assembles its own.
    """
    tree = WORK / "lguestsim-src"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "lguestsim", tree / "lguestsim",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    prebuilt = tree / "lguestsim" / "prebuilt"
    prebuilt.mkdir()
    (prebuilt / "__init__.py").write_text(
        '"""Programs assembled by the live book\'s build (book/lite.py), for a '
        'Python with no GNU as."""\n')
    shipped = programs(log)
    for path in shipped:
        shutil.copy2(path, prebuilt / path.name)
    log(f"  {len(shipped)} prebuilt programs")
    return tree


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
    rewrite_cdn_urls(out)
    remote = remote_urls(out)
    if remote:
        raise LiteError("the live book loads remote resources:\n" + "\n".join(remote[:20]))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"size_mb": size / 1e6, "seconds": time.monotonic() - start,
            "chapters": len(chapters()), "hosts_named": len(remote_hosts(out))}


def text_files(out: Path) -> list[Path]:
    return [p for p in sorted(out.rglob("*")) if p.is_file() and p.suffix not in BINARY]


def rewrite_cdn_urls(out: Path) -> int:
    """Point the CDN strings the bundles carry (REWRITES) at the site; returns how many."""
    count = 0
    for path in text_files(out):
        data = path.read_bytes()
        if b"cdn.jsdelivr.net" not in data:
            continue
        for pattern, replacement in REWRITES:
            data, n = pattern.subn(replacement, data)
            count += n
        path.write_bytes(data)
    return count


def remote_urls(out: Path) -> list[str]:
    """Every string in the site that could send the browser to another host.

    Two rules, over every text file of the folder.  No URL on a host that
    serves code or packages (CDN) may appear anywhere, bundles included,
    except the few in ALLOWED.  The files where fetches are decided
    (FETCH_FILES: the settings, the Pyodide lock, the contents index) may
    name no remote host at all, and no page, stylesheet or image may load
    one by itself (LOADS).  The URLs left elsewhere are links for people and identifiers
    (licence texts, documentation links in comments and messages, XML
    namespaces): ``remote_hosts()`` counts them, and the
    Chromium test counts the requests really made.
    """
    found = []
    for path in text_files(out):
        data = path.read_bytes()
        starts = [m.start() for m in CDN.finditer(data)]
        if any(path.match(g) for g in FETCH_FILES):
            starts += [m.start() for m in REMOTE.finditer(data)]
        if path.suffix in (".html", ".css", ".svg"):
            starts += [m.end() for m in LOADS.finditer(data)]
        for start in sorted(set(starts)):
            url = REMOTE.match(data, start).group().decode(errors="replace")
            if not any(url.startswith(a) for a in ALLOWED):
                found.append(f"{path.relative_to(out)}: {url}")
    return found


def remote_hosts(out: Path) -> dict[str, int]:
    """The remote hosts still named in the site's text, with how many times."""
    hosts: dict[str, int] = {}
    for path in text_files(out):
        for m in REMOTE.finditer(path.read_bytes()):
            host = m.group().split(b"/")[2].decode()
            hosts[host] = hosts.get(host, 0) + 1
    return dict(sorted(hosts.items(), key=lambda kv: -kv[1]))


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
        # The folder above, so that the static book beside it (html/) is
        # served too and its relative "run this chapter live" links work.
        top = args.out.resolve().parent
        httpd = server(top, host, int(port))
        url = f"http://{host}:{httpd.server_address[1]}"
        print(f"the live book: {url}/{args.out.resolve().name}/lab/index.html"
              + (f"\nthe static book beside it: {url}/html/index.html"
                 if (top / "html" / "index.html").exists() else "")
              + "\n(Ctrl-C stops)", flush=True)
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
