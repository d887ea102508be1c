"""The book: passages gathered by the rules of book/README.md, and the built book.

The first tests run the passage extractor on small made-up source trees.  The
rest build the whole book once (``book/build.py``, notebooks executed or taken
from the build's cache), check that every tag in the code appears exactly
once, in order, and that the topics page counts right, then open the front
page and the Switcher chapter in headless Chromium with networking off and
check from the rendered DOM that the live register and page-table views were
drawn by the widget manager with real values, and that their buttons are
drawn disabled under a note pointing to ``make lab``.  Names in the code
link to their definitions; every page shares one stylesheet; executing a
notebook prints no kernel warning.  Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))
import build  # noqa: E402
import identifiers  # noqa: E402
import passages  # noqa: E402
import topics  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "lguestsim" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


# --- the extractor -------------------------------------------------------------

def test_python_passage_shows_the_whole_definition(tmp_path):
    root = tree(tmp_path, {"host/a.py": (
        "import os\n\n"
        "#: H:200 Deliver an interrupt\n"
        "# when the Guest can take one.\n"
        "#\n"
        "# Second paragraph.\n"
        "@decorated\n"
        "def maybe_do_interrupt(lg):\n"
        "    x = 1\n\n"
        "    return x\n\n\n"
        "def other():\n"
        "    pass\n")})
    (p,) = passages.gather(root)["H"]
    assert p.tag == "H:200" and p.line == 3 and p.path == "lguestsim/host/a.py"
    assert p.prose == "Deliver an interrupt\nwhen the Guest can take one.\n\nSecond paragraph."
    assert p.code == ["@decorated", "def maybe_do_interrupt(lg):", "    x = 1", "",
                      "    return x"]
    assert p.code_line == 7


def test_python_statement_runs_to_a_blank_line_and_prose_can_stand_alone(tmp_path):
    root = tree(tmp_path, {"a.py": (
        "class K:\n"
        "    def f(self):\n"
        "        #: L:010 Inside a method.\n"
        "        a = 1\n"
        "        b = 2\n\n"
        "        c = 3\n"
        "    def g(self):\n"
        "        pass\n\n"
        "#: M:002 An exercise, prose only.\n\n"
        "X = 1\n"
        "#: L:020 Ends at a marker.\n"
        "Y = 2\n"
        "#:\n"
        "Z = 3\n")})
    got = passages.gather(root)
    inner, marker = got["L"]
    assert inner.code == ["        a = 1", "        b = 2"]
    assert marker.code == ["Y = 2"]
    (exercise,) = got["M"]
    assert exercise.code == [] and exercise.code_line == 0


def test_c_passages_follow_braces(tmp_path):
    root = tree(tmp_path, {"guest/d.c": (
        "/*: D:310 Send characters\n"
        " * to the Launcher.\n"
        " */\n"
        "static int put_chars(const char *s)\n"
        "{\n"
        "\tif (s[0] == '{')\n"
        "\t\treturn 1; /* } */\n"
        "\treturn 0;\n"
        "}\n"
        "int after;\n\n"
        "/*: D:010 One line. */\n"
        "struct desc {\n"
        "\tint type;\n"
        "};\n"
        "void f(void)\n"
        "{\n"
        "\t/*: D:020 Inside a body. */\n"
        "\tcall();\n"
        "}\n"
        "/*: D:030 A define. */\n"
        "#define A 1\n"
        "#define B 2\n\n"
        "int c;\n")})
    d010, d020, d030, d310 = passages.gather(root)["D"]
    assert d310.prose == "Send characters\nto the Launcher."
    assert d310.code[0] == "static int put_chars(const char *s)" and d310.code[-1] == "}"
    assert len(d310.code) == 6
    assert d010.prose == "One line." and d010.code == ["struct desc {", "\tint type;", "};"]
    assert d020.code == ["\tcall();"]
    assert d030.code == ["#define A 1", "#define B 2"]


def test_asm_passages_run_to_the_next_tag_or_an_end_marker(tmp_path):
    root = tree(tmp_path, {"switcher/s.S": (
        "/*: S:100 Into the Guest. */\n"
        "ENTRY(switch_to_guest)\n"
        "\tpushl %ss\n\n"
        "\tpushl %es\n"
        "/*: S:200 Back. */\n"
        "return_to_host:\n"
        "\tiret\n"
        "/*:*/\n"
        "\tnop\n")})
    s100, s200 = passages.gather(root)["S"]
    assert s100.code == ["ENTRY(switch_to_guest)", "\tpushl %ss", "", "\tpushl %es"]
    assert s200.code == ["return_to_host:", "\tiret"]


@pytest.mark.parametrize("files, message", [
    ({"a.py": "#: H:200 one\nx = 1\n", "b/c.c": "/*: H:200 two */\nint y;\n"},
     "tag H:200 is used twice: lguestsim/a.py:1 and lguestsim/b/c.c:1"),
    ({"s.S": "/*S:100 lguest's spelling */\n"}, "write the tag as '/*: S:100'"),
    ({"a.py": "#: X:100 no such chapter\n"}, "chapter letter 'X'"),
    ({"a.py": "#: H:20 two digits\n"}, "three-digit number"),
    ({"a.c": "/*: D:100 never closed\nint x;\n"}, "never ends"),
])
def test_bad_tags_stop_the_build(tmp_path, files, message):
    root = tree(tmp_path, files)
    with pytest.raises(passages.PassageError, match=re.escape(message)):
        passages.gather(root)


# --- names linked to their definitions ---------------------------------------------

def test_the_index_finds_python_and_c_definitions(tmp_path):
    tree(tmp_path, {
        "a.py": "X = 1\n\ndef run(lg):\n    return helper(lg) + X\n\n"
                          "class Box:\n    def read(self):\n        pass\n",
        "b.py": "def helper(lg):\n    return 0\n\ndef read():\n    pass\n\n"
                          "def run():\n    pass\n",
        "g.c": "#define LIMIT 4\nstruct box {\n\tint n;\n};\n"
                         "static int count(int a,\n\t\t int b)\n{\n\treturn a;\n}\n"
                         "int proto(int);\nstruct box data __attribute__((aligned(8))) = {\n};\n",
        "s.S": "ENTRY(entry)\nswitch_to:\n\tcall count\n",
    })
    index = identifiers.build_index(tmp_path)
    assert index.target("lguestsim/a.py", "helper") == ("lguestsim/b.py", 1)
    assert index.target("lguestsim/a.py", "X") == ("lguestsim/a.py", 1)
    assert index.target("lguestsim/a.py", "Box") == ("lguestsim/a.py", 6)
    # "run" twice: each file's own; elsewhere, none. "read" twice: none.
    assert index.target("lguestsim/a.py", "run") == ("lguestsim/a.py", 3)
    assert index.target("lguestsim/b.py", "run") == ("lguestsim/b.py", 7)
    assert index.target("lguestsim/x.py", "run") is None
    assert index.target("lguestsim/a.py", "read") is None
    # C and assembler share a namespace of their own.
    assert index.target("lguestsim/s.S", "count") == ("lguestsim/g.c", 5)
    assert index.target("lguestsim/s.S", "switch_to") == ("lguestsim/s.S", 2)
    assert index.target("lguestsim/g.c", "LIMIT") == ("lguestsim/g.c", 1)
    assert index.target("lguestsim/g.c", "box") == ("lguestsim/g.c", 2)
    assert index.target("lguestsim/g.c", "proto") is None           # a prototype
    assert index.target("lguestsim/g.c", "__attribute__") is None
    assert index.target("lguestsim/a.py", "count") is None          # not Python's
    dot = '<span class="o">.</span>'
    html_in = (f'<span class="n">helper</span>{dot}<span class="n">read</span> '
               f'<span class="n">x</span>{dot}<span class="n">helper</span>')
    assert identifiers.link_names(html_in, "lguestsim/a.py", index,
                                  lambda p, n: f"{p}#{n}") == (
        f'<span class="n"><a class="def" href="lguestsim/b.py#1">helper</a></span>'
        f'{dot}<span class="n"><a class="def" href="lguestsim/a.py#7">read</a></span> '
        f'<span class="n">x</span>{dot}<span class="n">helper</span>')   # not a.py's
    html_in = '<span class="no">$switch_to</span>'
    assert identifiers.link_names(html_in, "lguestsim/s.S", index, lambda p, n: f"{p}#{n}") \
        == '<span class="no">$<a class="def" href="lguestsim/s.S#2">switch_to</a></span>'


def test_topics_table_has_the_145_topics():
    table = topics.read()
    assert len(table) == 145
    assert table[0].tag == "P:010" and table[-1].tag == "M:999"
    assert {t.tag[0] for t in table} == set("PGDLHSM")


def test_missing_topics_file_is_a_clear_error(tmp_path):
    with pytest.raises(topics.TopicsError, match="not found"):
        topics.read(tmp_path / "TOPICS.md")


# --- the built book ---------------------------------------------------------------

def code_tags() -> dict[str, str]:
    """Every tag in the code, by a scan independent of the extractor: tag -> place."""
    found = {}
    pattern = re.compile(r"^\s*(?:#|/\*): ([PGDLHSVM]):(\d{3})\b")
    for path in sorted((ROOT / "lguestsim").rglob("*")):
        if path.suffix not in (".py", ".c", ".h", ".S"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = pattern.match(line)
            if m:
                tag = f"{m.group(1)}:{m.group(2)}"
                assert tag not in found, f"{tag} twice: {found[tag]} and {path}:{n}"
                found[tag] = f"{path.relative_to(ROOT)}:{n}"
    return found


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    assert shutil.which("npm"), "npm is not installed (.ci/run installs it in CI)"
    out = tmp_path_factory.mktemp("book") / "html"
    figures = build.build(out, log=lambda *a: None)
    print(f"book built: {figures}")
    return out


def test_every_tag_appears_once_in_the_book_in_order(book):
    tags = code_tags()
    assert len(tags) > 100
    seen: dict[str, list[str]] = {}
    for page in sorted(book.glob("*.html")):
        soup = BeautifulSoup(page.read_text(), "html.parser")
        order = [s["data-tag"] for s in soup.select("section.passage[data-tag]")]
        for tag in order:
            seen.setdefault(tag, []).append(page.name)
        if order:
            assert page.name.endswith("-code.html")
            assert {t[0] for t in order} == {order[0][0]}, f"{page.name} mixes chapters"
            numbers = [int(t[2:]) for t in order]
            assert numbers == sorted(numbers), f"{page.name}: not in number order"
    assert set(seen) == set(tags)
    assert all(len(pages) == 1 for pages in seen.values()), \
        {t: p for t, p in seen.items() if len(p) > 1}


def seed_2625_tags() -> list[str]:
    """The 2.6.25 journey's tags, by a scan independent of topics.py: every
    "/*" in the seed followed by a tag (the patch's lines carry the old and the
    new telling of a passage; a tag is counted once)."""
    text = topics.SEED_2625.read_text(encoding="utf-8")
    found = []
    for line in text.splitlines():
        for m in re.finditer(r"/\*:?\s*([A-Z]):(\d{3})", line):
            tag = f"{m.group(1)}:{m.group(2)}"
            if tag not in found:
                found.append(tag)
    return found


def test_topics_page_reports_coverage(book):
    soup = BeautifulSoup((book / "topics.html").read_text(), "html.parser")
    cov = soup.select_one('.coverage[data-generation="2.6.23"]')
    table = {t.tag for t in topics.read()}
    ours = code_tags()
    expected = len(table & set(ours))
    assert int(cov["data-total"]) == 145 and int(cov["data-told"]) == expected
    rows = soup.select("tr[data-topic]")
    old = [r for r in rows if r["data-generation"] in ("2.6.23", "both")]
    assert len(old) == 145
    assert sum(1 for r in old if "told" in r["class"]) == expected
    print(f"2.6.23 topics told: {expected}/145")
    # 2.6.25: counted from the seed itself; a tag naming another topic there is
    # told by the passage topics.TOLD_2625_BY names, which must say "2.6.25".
    new = seed_2625_tags()
    told_2625 = [t for t in new if topics.TOLD_2625_BY.get(t, t) in ours]
    cov = soup.select_one('.coverage[data-generation="2.6.25"]')
    assert (int(cov["data-told"]), int(cov["data-total"])) == (len(told_2625), len(new))
    assert {r["data-topic"] for r in rows if r["data-generation"] in ("2.6.25", "both")} \
        == set(new)
    assert {r["data-topic"] for r in rows if r["data-generation"] == "both"} == set(new) & table
    assert len(rows) == len(table | set(new))
    for tag, by in topics.TOLD_2625_BY.items():
        place = ours[by].split(":")
        line = (ROOT / place[0]).read_text().splitlines()[int(place[1]) - 1]
        assert "2.6.25" in line, f"{by} tells {tag}'s 2.6.25 topic but does not say so: {line}"
        assert f"#{by[0]}-{by[2:]}" in str(soup.select_one(f'tr[data-topic="{tag}"]'))
    print(f"2.6.25 topics told: {len(told_2625)}/{len(new)}")


def test_the_generation_column_and_counts_on_a_made_up_journey(tmp_path):
    table = [topics.Topic("P:010", "a.c", "-"), topics.Topic("H:100", "b.c", "f()")]
    gathered = passages.gather(tree(tmp_path, {
        "a.py": "#: P:010 old and new\nx = 1\n\n#: H:041 2.6.25's own\ny = 2\n"}))
    page = topics.render(table, gathered, {"P": "p.html", "H": "h.html"}, ["P:010", "H:041"])
    soup = BeautifulSoup(page, "html.parser")
    gens = {r["data-topic"]: r["data-generation"] for r in soup.select("tr[data-topic]")}
    assert gens == {"P:010": "both", "H:100": "2.6.23", "H:041": "2.6.25"}
    counts = {c["data-generation"]: (c["data-told"], c["data-total"])
              for c in soup.select(".coverage")}
    assert counts == {"2.6.23": ("1", "2"), "2.6.25": ("2", "2")}
    with pytest.raises(topics.TopicsError, match="not found"):
        topics.read_2625(Path("/nonexistent/seed.txt"))


def definition_lines(book: Path, page: str) -> list[tuple[str, str, str]]:
    """(name, file, line text) for every definition link of a page of the book."""
    soup = BeautifulSoup((book / page).read_text(), "html.parser")
    out = []
    for a in soup.select(".highlight a.def"):
        target, line = a["href"].rsplit("#L-", 1)
        path = target.split("src/", 1)[1].removesuffix(".html")
        assert (book / (page.rsplit("/", 1)[0] + "/" if "/" in page else "") / target).exists()
        text = (ROOT / path).read_text().splitlines()[int(line) - 1]
        out.append((a.get_text(), path, text))
    return out


def test_names_in_the_code_link_to_their_definitions(book):
    links = definition_lines(book, "host-code.html")
    assert len(links) > 100
    for name, _path, text in links:
        assert name in text, f"{name} links to a line without it: {text!r}"
    by_name = {name: (path, text) for name, path, text in links}
    assert by_name["kill_guest"] == ("lguestsim/host/lg.py", by_name["kill_guest"][1])
    assert by_name["kill_guest"][1].lstrip().startswith("def kill_guest(")
    # C: the Guest's console calls the bus's lguest_send_dma, defined in lguest_bus.c.
    links = definition_lines(book, "src/lguestsim/guest/console.c.html")
    by_name = {name: (path, text) for name, path, text in links}
    assert by_name["lguest_send_dma"][0] == "lguestsim/guest/lguest_bus.c"
    assert "lguest_send_dma(" in by_name["lguest_send_dma"][1]


def test_every_page_shares_one_stylesheet(book):
    sheet = book / build.STYLESHEET
    assert ".lgbook-side" in sheet.read_text() and ".highlight" in sheet.read_text()
    pages = [*book.glob("*.html"), *(book / "src").rglob("*.html")]
    assert len(pages) > 50
    for page in pages:
        soup = BeautifulSoup(page.read_text(), "html.parser")
        links = [link["href"] for link in soup.select('link[rel="stylesheet"]')]
        depth = "../" * len(page.relative_to(book).parts[:-1])
        assert depth + build.STYLESHEET in links, page
        assert not any(".lgbook-side" in (st.string or "") for st in soup.select("style")), page


def test_notebook_pages_say_they_are_a_snapshot_and_disable_their_buttons(book):
    import json
    for name in ("index.html", "switcher.html"):
        soup = BeautifulSoup((book / name).read_text(), "html.parser")
        note = soup.select_one("p.snapshot")
        assert note is not None and "make lab" in note.get_text()
        state = json.loads(soup.select_one(
            'script[type="application/vnd.jupyter.widget-state+json"]').string)["state"]
        buttons = [m["state"] for m in state.values() if m["model_name"] == "ButtonModel"]
        assert buttons and all(b["disabled"] for b in buttons)
        assert all("make lab" in b["tooltip"] for b in buttons)
    note = BeautifulSoup((book / "switcher.html").read_text(), "html.parser").select_one(
        "p.snapshot")
    assert "make demo CHAPTER=switcher" in note.get_text()


def test_every_chapter_page_links_to_its_chapter_in_the_live_book(book):
    from urllib.parse import parse_qs, urlparse
    for _, name in build.CHAPTERS:
        soup = BeautifulSoup((book / f"{name}.html").read_text(), "html.parser")
        link = soup.select_one("p.snapshot a.live")
        assert link is not None and "live" in link.get_text(), name
        url = urlparse(link["href"])
        assert not url.scheme and url.path == "../lite/notebooks/index.html", link["href"]
        (notebook,) = parse_qs(url.query)["path"]
        assert notebook == build.chapter_notebook(name).name
    front = BeautifulSoup((book / "index.html").read_text(), "html.parser")
    assert front.select_one("p.snapshot a.live")["href"] == build.LIVE_BOOK


def test_executing_a_notebook_prints_no_kernel_warning(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(build, "CACHE", tmp_path / "cache")
    nb = build.execute(build.front_notebook(), log=lambda *a: None)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    err = capfd.readouterr().err
    assert "WARNING" not in err and "Traceback" not in err, err


def test_pages_link_prev_next_and_load_nothing_remote(book):
    names = [p.file for p in build.pages()]
    for i, name in enumerate(names):
        soup = BeautifulSoup((book / name).read_text(), "html.parser")
        nxt = soup.select_one('a[rel="next"]')
        assert (nxt["href"] if nxt else None) == (names[i + 1] if i + 1 < len(names) else None)
        for el in soup.select("script[src], link[href], img[src]"):
            ref = el.get("src") or el.get("href")
            assert not re.match(r"(https?:)?//", ref), f"{name} loads {ref}"
            if not ref.startswith(("data:", "#")):
                assert (book / ref).exists(), f"{name}: {ref} is not in the book"


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  # networking off: nothing resolves and every proxy connection fails
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=socks5://127.0.0.1:9",
                  "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=20000"]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed (.ci/run installs Debian's chromium)"
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


HEX = re.compile(r"\b[0-9a-f]{8}\b")


@pytest.mark.parametrize("page, views", [("index.html", ("registers", "pagewalk")),
                                         ("switcher.html", ("registers", "pagedir")),
                                         ("virtio.html", ("virtqueues", "timeline"))])
def test_live_views_render_in_headless_chromium(book, tmp_path, page, views):
    url = (book / page).as_uri()
    done = chromium(tmp_path, "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    soup = BeautifulSoup(done.stdout, "html.parser")
    assert soup.select_one("nav.lgbook-side"), "the page did not load"
    # Rendered by the widget manager from the stored state: inside an HTML
    # widget, not the static copy of a view in an output cell.
    for name in views:
        drawn = soup.select(f".widget-html div.lgs[data-view={name}]")
        assert drawn, f"{page}: the live {name} view was not drawn (widget JS failed?)"
        text = drawn[-1].get_text(" ")
        assert "cannot show this now" not in text
        assert len(HEX.findall(text)) >= 3, f"{page}: {name} view shows no values: {text[:300]}"
    # The buttons are drawn, disabled: the book has no kernel behind them.
    buttons = soup.select("button.widget-button")
    assert buttons and all(b.has_attr("disabled") for b in buttons), f"{page}: live buttons"
    remote = [s.get("src") for s in soup.select("script[src]")
              if re.match(r"(https?:)?//", s.get("src", ""))]
    assert not remote, f"{page} tried to load {remote}"

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"book-{Path(page).stem}.png"
    shot.unlink(missing_ok=True)
    # The front page's views are on its first screen; the Switcher's and the
    # Virtio chapter's are further down a long page, so those are taken whole.
    height = 1600 if page == "index.html" else 16000
    done = chromium(tmp_path, f"--screenshot={shot}", f"--window-size=1400,{height}",
                    "--hide-scrollbars", url)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def test_tag_mentions_become_links_outside_links_and_scripts():
    pages = {"H:330": "host-code.html#H-330"}
    page = ('<p>see H:330 and <a href="x">H:330</a></p><script>var a = "<style>H:330";'
            "</script><p>H:330, X:330, H:999</p>")
    out = build.link_tags(page, pages)
    link = '<a class="tagref" href="host-code.html#H-330">H:330</a>'
    assert out == (f'<p>see {link} and <a href="x">H:330</a></p><script>var a = "<style>H:330";'
                   f"</script><p>{link}, X:330, H:999</p>")


def test_notebook_pages_link_to_the_passages_they_mention(book):
    soup = BeautifulSoup((book / "switcher.html").read_text(), "html.parser")
    refs = {a.get_text(): a["href"] for a in soup.select("a.tagref")}
    assert refs.get("S:100") == "switcher-code.html#S-100"
    assert (book / "switcher-code.html").read_text().count('id="S-100"') == 1
