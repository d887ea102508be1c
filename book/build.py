"""Build the lguestsim book: executed notebooks and the code's passages, as HTML.

The book is the journey in reading order.  Each chapter has two pages: its
notebook, executed and rendered with the live views' widget state embedded
(the reader sees the views as they stood when the notebook ran), and its
code, the ``#: X:NNN`` passages of ``lguestsim/`` gathered in number order
(``book/passages.py``).  A front page, a topics page mapping the original
journey's 145 passages to ours, and a rendered copy of every source file a
passage links to complete it.

Nothing is fetched while reading: the widget JavaScript (``@jupyter-widgets/
html-manager`` and ``requirejs``) is installed from the npm registry at
build time (``book/package.json``) and copied into the book's ``_static``.

Every name in the code pages and the source pages that lguestsim defines
links to its definition (``book/identifiers.py``), and every file that
defines one gets a source page. All the pages share one stylesheet,
``_static/book.css``. The notebook pages are a static snapshot: their buttons
are drawn disabled, and a note links to the same chapter in the live book
(``book/lite.py``, published beside this one) and names ``make lab``.

``make book`` runs ``python book/build.py``.  Executed notebooks are cached
in ``book/_build/cache`` under a hash of the notebook and of every file of
``lguestsim/``, so a rebuild with nothing changed skips execution.  While a
chapter runs, every program it assembles is recorded beside its copy, with
those of every student's variant of its exercises (SWEEP): the live book
(``book/lite.py``) ships them, having no assembler in the browser.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import mistune
import nbformat
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
sys.path.insert(0, str(BOOK))
sys.path.insert(0, str(ROOT / "notebooks"))
import identifiers  # noqa: E402
import make_notebooks  # noqa: E402
import passages  # noqa: E402
import topics  # noqa: E402

OUT = BOOK / "_build" / "html"
CACHE = BOOK / "_build" / "cache"
TEMPLATES = BOOK / "templates"
# The chapters in lguest's reading order: letter, notebook name, title.
CHAPTERS = [("P", "preparation"), ("G", "guest"), ("D", "drivers"), ("L", "launcher"),
            ("H", "host"), ("S", "switcher"), ("V", "virtio"), ("M", "mastery")]
# What the pages load, relative to the book's root, and where npm puts it.
STATIC_JS = {"_static/require.js": "requirejs/require.js",
             "_static/html-manager": "@jupyter-widgets/html-manager/dist"}
# The one stylesheet of every page, relative to the book's root.
STYLESHEET = "_static/book.css"


class BuildError(Exception):
    """The book cannot be built; the message says why."""


@dataclass
class Page:
    """One page of the book, in reading order."""

    file: str        # "switcher.html"
    title: str       # what the table of contents shows
    kind: str        # "front", "notebook", "code", "topics"
    letter: str = ""


def pages() -> list[Page]:
    out = [Page("index.html", "lguestsim: the book", "front")]
    for letter, name in CHAPTERS:
        title = passages.CHAPTERS[letter]
        out.append(Page(f"{name}.html", f"{title}", "notebook", letter))
        out.append(Page(f"{name}-code.html", f"{title}: the code", "code", letter))
    out.append(Page("topics.html", "The journey's topics", "topics"))
    return out


# --- executing the notebooks, with a cache ---------------------------------

@lru_cache(maxsize=1)
def package_hash() -> str:
    """Every file of the package, hashed once per build."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "lguestsim").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(ROOT).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def source_hash(notebook: Path) -> str:
    """What an executed notebook depends on: itself and the whole package."""
    return hashlib.sha256(notebook.read_bytes() + package_hash().encode()).hexdigest()


def execute(notebook: Path, log) -> nbformat.NotebookNode:
    """The notebook executed, from the cache when nothing it depends on changed.

    The kernel talks to the build over Unix sockets in a private directory
    (the IPC transport), not over TCP on localhost, where ipykernel warns
    that anyone on the machine could listen; it is shut down after its run.
    Two builds at once (the static and the live book's tests, on two
    workers) take turns per notebook: the second finds the first's copy.
    """
    import fcntl
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{notebook.stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _execute(notebook, log)


def _execute(notebook: Path, log) -> nbformat.NotebookNode:
    import tempfile

    import nbclient
    from jupyter_client.manager import KernelManager
    cached, key_file = CACHE / notebook.name, CACHE / (notebook.stem + ".key")
    key = source_hash(notebook)
    if cached.exists() and key_file.exists() and key_file.read_text() == key \
            and programs_of(notebook).is_dir():
        log(f"  {notebook.name}: unchanged, executed copy reused")
        return nbformat.read(cached, as_version=4)
    nb = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    # Every program the chapter assembles is kept beside its executed copy,
    # for the live book, which has no assembler (lguestsim.asm, book/lite.py).
    programs = programs_of(notebook)
    shutil.rmtree(programs, ignore_errors=True)
    programs.mkdir(parents=True)
    sweep = variant_sweep(nb)
    if sweep is not None:
        nb.cells.append(sweep)
    record = os.environ.get("LGUESTSIM_ASM_RECORD")
    os.environ["LGUESTSIM_ASM_RECORD"] = str(programs)
    with tempfile.TemporaryDirectory(prefix="lguestbook-kernel-") as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc",
                           ip=str(Path(sockets) / "kernel"))
        client = nbclient.NotebookClient(nb, km=km, timeout=600, kernel_name="python3",
                                         store_widget_state=True,
                                         resources={"metadata": {"path": str(notebook.parent)}})
        try:
            client.execute()
        except nbclient.exceptions.CellExecutionError as err:
            raise BuildError(f"{notebook.name} failed to execute:\n{err}") from None
        finally:
            if km.has_kernel:
                km.shutdown_kernel()
            if record is None:
                del os.environ["LGUESTSIM_ASM_RECORD"]
            else:
                os.environ["LGUESTSIM_ASM_RECORD"] = record
    if sweep is not None:
        nb.cells.pop()               # the book shows the chapter, not the sweep
    log(f"  {notebook.name}: executed in {time.perf_counter() - start:.1f} s")
    nbformat.write(nb, cached)
    key_file.write_text(key)
    return nb


# Run after a chapter, while the build records what it assembles: its cells
# that read the exercises' variant (``ex.``) once per variant, the answers
# computed (any answer but None makes check() compute the right one), so
# the live book ships the tiny Guests of every student's variant
# (lguestsim.exercises: Chapter.assembles, Chapter.variants).
SWEEP = """\
if type(ex).assembles:
    import contextlib as _contextlib, io as _io
    _display, display = display, (lambda *a, **k: None)
    with _contextlib.redirect_stdout(_io.StringIO()):
        for ex in type(ex).variants():
            {answers} = object()
            for _cell in {cells!r}:
                exec(_cell, globals())
    display = _display
"""


def variant_sweep(nb) -> nbformat.NotebookNode | None:
    """The sweep cell for a chapter (SWEEP), or None if no cell reads its variant."""
    cells = [re.sub(r"(?m)^(ANSWER_\d+)\s*=\s*None\b", r"\1 = object()", c.source)
             for c in nb.cells if c.cell_type == "code"
             and re.search(r"\bex\.", c.source) and not re.search(r"(?m)^ex\s*=", c.source)]
    if not cells:
        return None
    answers = sorted(set(re.findall(r"\bANSWER_\d+\b", "\n".join(cells))))
    return nbformat.v4.new_code_cell(SWEEP.format(answers=" = ".join(answers) or "_",
                                                  cells=cells))


def programs_of(notebook: Path) -> Path:
    """Where the programs a notebook assembled when it last ran are kept."""
    return CACHE / "programs" / notebook.stem


def front_notebook() -> Path:
    """The front page is a small notebook too (``book/front.py``): write it out."""
    nb = make_notebooks.notebook(BOOK / "front.py")
    target = BOOK / "_build" / "front" / "front.ipynb"     # not in CACHE: that holds its run
    target.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(nb) + "\n"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target


# --- the widget JavaScript, from npm ----------------------------------------

def install_js(out: Path, log) -> None:
    """npm installs the widget manager and requirejs; the book gets its own copy."""
    modules = BOOK / "node_modules"
    lock = BOOK / "package-lock.json"
    stamp = modules / ".lguestsim-installed"
    if not stamp.exists() or stamp.read_text() != lock.read_text():
        npm = shutil.which("npm")
        if npm is None:
            raise BuildError("npm is not installed: the book needs it to fetch the widget "
                             "JavaScript (Debian: apt-get install npm)")
        log("  npm ci (widget manager, requirejs)")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                              cwd=BOOK, capture_output=True, text=True)
        if done.returncode:
            raise BuildError(f"npm ci failed:\n{done.stdout}{done.stderr}")
        stamp.write_text(lock.read_text())
    for target, source in STATIC_JS.items():
        src, dst = modules / source, out / target
        if not src.exists():
            raise BuildError(f"{src} is missing after npm ci")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.map", "embed.js",
                                                                    "*.LICENSE.txt"))
        else:
            shutil.copy2(src, dst)


# --- the pieces every page shares --------------------------------------------

BOOK_CSS = """
body.lgbook { margin: 0; }
.lgbook-side { position: fixed; top: 0; left: 0; bottom: 0; width: 15rem; overflow-y: auto;
  background: #f4f4f0; border-right: 1px solid #ddd; padding: 1rem; font: 14px sans-serif;
  box-sizing: border-box; }
.lgbook-side a { color: #224; text-decoration: none; }
.lgbook-side li.here > a { font-weight: bold; }
.lgbook-side ol { padding-left: 1.2rem; }
.lgbook-main { margin-left: 15rem; padding: 0 2rem 2rem 2rem; max-width: 62rem; }
.lgbook-pager { display: flex; justify-content: space-between; margin: 1rem 0;
  font: 14px sans-serif; }
.passage { border-top: 1px solid #ddd; margin-top: 1.2rem; padding-top: .6rem; }
.passage .tag { font: bold 13px monospace; color: #fff; background: #446;
  padding: 1px 6px; border-radius: 3px; text-decoration: none; }
.passage .where { font: 12px monospace; color: #666; margin-left: .6rem; }
.passage pre, .source pre { font-size: 12.5px; line-height: 1.35; overflow-x: auto; }
h3.file { font: bold 15px monospace; background: #eef; padding: 4px 8px; margin-top: 2rem; }
table.topics { border-collapse: collapse; font-size: 13px; }
table.topics td, table.topics th { border: 1px solid #ddd; padding: 2px 6px; }
tr.untold td { color: #999; }
.coverage { font: bold 16px sans-serif; }
.bar { background: #ddd; width: 20rem; height: .8rem; display: inline-block; }
.bar span { background: #4a7; height: 100%; display: block; }
p.snapshot { font: 14px sans-serif; background: #fff8e0; border: 1px solid #e6d48a;
  padding: .5rem .8rem; border-radius: 3px; }
.highlight a.def { color: inherit; text-decoration: underline dotted #99a; }
.highlight a.def:hover { text-decoration: underline solid; }
"""


def nav(here: Page, all_pages: list[Page]) -> str:
    """The table of contents down the side, the current page marked."""
    items = []
    for p in all_pages:
        cls = ' class="here"' if p.file == here.file else ""
        indent = ' style="margin-left:1rem"' if p.kind == "code" else ""
        items.append(f'<li{cls}{indent}><a href="{p.file}">{html.escape(p.title)}</a></li>')
    return ('<nav class="lgbook-side"><b><a href="index.html">lguestsim</a></b>'
            f'<ol>{"".join(items)}</ol></nav>')


def pager(here: Page, all_pages: list[Page]) -> str:
    """Previous and next, in reading order."""
    i = [p.file for p in all_pages].index(here.file)
    prev = (f'<a rel="prev" href="{all_pages[i - 1].file}">&larr; '
            f'{html.escape(all_pages[i - 1].title)}</a>') if i else "<span></span>"
    nxt = (f'<a rel="next" href="{all_pages[i + 1].file}">'
           f'{html.escape(all_pages[i + 1].title)} &rarr;</a>') if i + 1 < len(all_pages) \
        else "<span></span>"
    return f'<div class="lgbook-pager">{prev}{nxt}</div>'


def write_stylesheet(out: Path) -> None:
    """The stylesheet every page links: the book's look and pygments' colours."""
    css = out / STYLESHEET
    css.parent.mkdir(parents=True, exist_ok=True)
    css.write_text(BOOK_CSS + HtmlFormatter().get_style_defs(".highlight") + "\n",
                   encoding="utf-8")


def plain_page(title: str, body: str, here: Page, all_pages: list[Page],
               prefix: str = "") -> str:
    """A page of the book that is not a notebook."""
    side = nav(here, all_pages).replace('href="', f'href="{prefix}')
    top = pager(here, all_pages).replace('href="', f'href="{prefix}') \
        if here in all_pages else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title>'
            f'<link rel="stylesheet" href="{prefix}{STYLESHEET}"></head>'
            f'<body class="lgbook">{side}<div class="lgbook-main">{top}{body}{top}</div>'
            f'</body></html>')


# --- notebook pages -----------------------------------------------------------

SNAPSHOT_NOTE = ("This page is a static snapshot: the views show the machine as it stood "
                 "when the notebook ran, and the buttons are disabled. To step it yourself, "
                 "{live}, or run <code>make lab</code> and open this chapter there{demo}.")
# The live book (book/lite.py) is published beside this one, its folder
# ``lite/`` next to this book's ``html/``: the links are relative, so the
# two folders work side by side on any host (and under make live's server
# when it serves their parent).
LIVE_CHAPTER = "../lite/notebooks/index.html?path={notebook}"
LIVE_BOOK = "../lite/tree/index.html"
LIVE_LINK = '<a class="live" href="{href}">{text}</a> in your browser (the live book)'
DEMO_NOTE = " (or <code>make demo CHAPTER={chapter}</code> for its live version alone)"
SNAPSHOT_TOOLTIP = "static snapshot: run `make lab` to use the buttons"


def freeze_buttons(nb) -> int:
    """Draw every button of the stored widget state disabled, saying why; returns how many.

    The book has no kernel behind it, so a button would do nothing and not
    say so.
    """
    state = nb.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    count = 0
    for model in state.values():
        if model.get("model_name") == "ButtonModel":
            model["state"]["disabled"] = True
            model["state"]["tooltip"] = SNAPSHOT_TOOLTIP
            count += 1
    return count


def chapter_notebook(name: str) -> Path:
    """The notebook of chapter ``name`` ("switcher": notebooks/06_switcher.ipynb)."""
    found = sorted((ROOT / "notebooks").glob(f"[0-9][0-9]_{name}.ipynb"))
    if len(found) != 1:
        raise BuildError(f"chapter {name}: {len(found)} notebooks in notebooks/, not one")
    return found[0]


def live_link(here: Page) -> str:
    """The link from a notebook page to the same chapter in the live book."""
    if here.kind == "notebook":
        notebook = chapter_notebook(here.file.removesuffix(".html")).name
        href = LIVE_CHAPTER.format(notebook=notebook)
        return LIVE_LINK.format(href=html.escape(href), text="run this chapter live")
    return LIVE_LINK.format(href=LIVE_BOOK, text="open the chapters live")


def render_notebook(nb, here: Page, all_pages: list[Page]) -> str:
    from nbconvert import HTMLExporter
    nb = copy.deepcopy(nb)
    freeze_buttons(nb)
    demo = DEMO_NOTE.format(chapter=here.file.removesuffix(".html")) \
        if here.kind == "notebook" else ""
    exporter = HTMLExporter(template_name="lguestbook", extra_template_basedirs=[str(TEMPLATES)],
                            require_js_url="_static/require.js",
                            widget_renderer_url="_static/html-manager/embed-amd.js")
    resources = {
        "book_stylesheet": STYLESHEET,
        "book_note": SNAPSHOT_NOTE.format(live=live_link(here), demo=demo),
        "book_nav": nav(here, all_pages),
        "book_pager": pager(here, all_pages),
        "metadata": {"name": here.title},
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


# --- code pages ---------------------------------------------------------------

def source_link(path: str, line: int) -> str:
    return f"src/{path}.html#L-{line}"


@lru_cache(maxsize=1)
def definitions() -> identifiers.Index:
    """Where every name of the package is defined, found once per build."""
    return identifiers.build_index(ROOT)


def render_passage(p: passages.Passage) -> str:
    prose = mistune.html(p.prose)
    code = ""
    if p.code:
        lexer = get_lexer_by_name(p.language)
        fmt = HtmlFormatter(linenos="inline", linenostart=p.code_line)
        code = identifiers.link_names(highlight("\n".join(p.code) + "\n", lexer, fmt), p.path,
                                      definitions(), source_link)
    return (f'<section class="passage" id="{p.chapter}-{p.number:03d}" data-tag="{p.tag}">'
            f'<a class="tag" href="{source_link(p.path, p.line)}">{p.tag}</a>'
            f'<span class="where">{html.escape(p.path)}:{p.line}</span>'
            f'{prose}{code}</section>')


def render_code_page(letter: str, found: list[passages.Passage], here: Page,
                     all_pages: list[Page]) -> str:
    title = passages.CHAPTERS[letter]
    out = [f"<h1>{title}: the code</h1>",
           f"<p>The {len(found)} passages the code of lguestsim tags <code>{letter}:</code>, "
           "in number order, each with the code it introduces. A tag links to its line in "
           "the source; a heading names the file when the story moves to another.</p>"]
    last = None
    for p in found:
        if p.path != last:
            out.append(f'<h3 class="file"><a href="src/{p.path}.html">{p.path}</a></h3>')
            last = p.path
        out.append(render_passage(p))
    return plain_page(f"{title}: the code", "".join(out), here, all_pages)


def render_source(path: str, here: Page, all_pages: list[Page]) -> str:
    """One source file, every line anchored (#L-12) for the passages' links."""
    text = (ROOT / path).read_text(encoding="utf-8")
    lexer = get_lexer_by_name({".py": "python", ".S": "gas"}.get(Path(path).suffix, "c"))
    fmt = HtmlFormatter(linenos="table", lineanchors="L", anchorlinenos=True)
    depth = "../" * (path.count("/") + 1)
    code = identifiers.link_names(highlight(text, lexer, fmt), path, definitions(),
                                  lambda p, line: depth + source_link(p, line))
    body = f'<h1><code>{html.escape(path)}</code></h1><div class="source">{code}</div>'
    return plain_page(path, body, here, all_pages, prefix=depth)


# --- cross-references ------------------------------------------------------------

TAG_MENTION = re.compile(r"\b([PGDLHSM]):(\d{3})\b")
# What is not text: whole scripts, styles, links and text areas, then any tag.
_NOT_TEXT = re.compile(r"(<(script|style|a|textarea)\b.*?</\2\s*>|<[^>]*>)",
                       re.DOTALL | re.IGNORECASE)


def link_tags(page: str, tag_pages: dict[str, str]) -> str:
    """Every mention of a passage's tag in a page's text ("see H:330") becomes a
    link to that passage, so a notebook's narrative leads to the code it tells.
    Text inside links, scripts and styles is left alone."""
    def link(m: re.Match) -> str:
        tag = m.group(0)
        return f'<a class="tagref" href="{tag_pages[tag]}">{tag}</a>' if tag in tag_pages \
            else tag

    out, last = [], 0
    for m in _NOT_TEXT.finditer(page):
        out.append(TAG_MENTION.sub(link, page[last:m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(TAG_MENTION.sub(link, page[last:]))
    return "".join(out)


# --- the build ------------------------------------------------------------------

def build(out: Path = OUT, log=print) -> dict:
    """Build the whole book into ``out``; returns figures for the report."""
    start = time.perf_counter()
    chapters = passages.gather()                 # first: a reused tag stops the build
    table = topics.read()
    tags_2625 = topics.read_2625()
    all_pages = pages()
    out.mkdir(parents=True, exist_ok=True)
    install_js(out, log)
    write_stylesheet(out)

    notebooks = {name: path for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
                 for name in [path.stem.split("_", 1)[1]]}
    missing = [name for _, name in CHAPTERS if name not in notebooks]
    if missing:
        raise BuildError(f"no notebook for chapter(s) {', '.join(missing)} in notebooks/")
    log("executing notebooks")
    executed = {"index.html": execute(front_notebook(), log)}
    for _, name in CHAPTERS:
        executed[f"{name}.html"] = execute(notebooks[name], log)

    log("rendering pages")
    code_page_of = {p.letter: p.file for p in all_pages if p.kind == "code"}
    tag_pages = {p.tag: f"{code_page_of[p.chapter]}#{p.chapter}-{p.number:03d}"
                 for found in chapters.values() for p in found}
    for page in all_pages:
        if page.kind in ("front", "notebook"):
            text = render_notebook(executed[page.file], page, all_pages)
        elif page.kind == "code":
            text = render_code_page(page.letter, chapters[page.letter], page, all_pages)
        else:
            text = plain_page(page.title, topics.render(table, chapters, code_page_of, tags_2625),
                              page, all_pages)
        if page.kind != "topics":         # the topics page links its tags itself
            text = link_tags(text, tag_pages)
        (out / page.file).write_text(text, encoding="utf-8")
    # Every file a passage is in, or a name links to.
    sources = sorted({p.path for found in chapters.values() for p in found}
                     | definitions().files())
    for path in sources:
        target = out / "src" / f"{path}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_source(path, Page("", path, "source"), all_pages),
                          encoding="utf-8")
    _no_remote_urls(out)

    told, total = topics.coverage(table, chapters)
    told_2625, total_2625 = topics.coverage_2625(tags_2625, chapters)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    figures = {"seconds": round(time.perf_counter() - start, 1), "bytes": size,
               "pages": len(all_pages), "source_pages": len(sources),
               "passages": sum(len(v) for v in chapters.values()),
               "topics_told": told, "topics": total,
               "topics_2625_told": told_2625, "topics_2625": total_2625}
    (out.parent / "figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    return figures


# Anything a page loads by itself (scripts, styles, images, frames); links a
# reader may follow are fine.
REMOTE = re.compile(r"""<(?:script|link|img|iframe|source|embed|object)\b[^>]*?"""
                    r"""\b(?:src|href|data)\s*=\s*["']?(?:https?:)?//""", re.I)


def _no_remote_urls(out: Path) -> None:
    """The book must read offline: no page may load anything from elsewhere."""
    for page in out.rglob("*.html"):
        m = REMOTE.search(page.read_text(encoding="utf-8"))
        if m:
            raise BuildError(f"{page.relative_to(out)} loads a remote resource: "
                             f"{m.group(0)!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="where to write the HTML")
    args = ap.parse_args(argv)
    try:
        figures = build(args.out)
    except (BuildError, passages.PassageError, topics.TopicsError) as err:
        print(f"book: error: {err}", file=sys.stderr)
        return 1
    print(f"book: {figures['pages']} pages and {figures['source_pages']} source pages in "
          f"{args.out}, {figures['bytes'] / 1e6:.1f} MB, built in {figures['seconds']} s; "
          f"{figures['passages']} passages; topics told: 2.6.23 {figures['topics_told']}/"
          f"{figures['topics']}, 2.6.25 {figures['topics_2625_told']}/{figures['topics_2625']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
