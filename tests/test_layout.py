"""The views and the dashboard, measured in headless Chromium.

A teacher projects the dashboard at 1280 x 800: the buttons, the code and
the registers must be in sight together, and the whole dashboard no taller
than the screen.  On a 1024-pixel screen nothing may need horizontal
scrolling, neither the page nor a view inside its cell.  And a view looks the
same alone in a notebook's output (JupyterLab's rules for rendered HTML apply
there) as inside the dashboard's widget.

The pages are the views' own HTML in a page that carries JupyterLab's style
sheets (nbconvert's "lab" template, as the book uses), driven by Playwright
on Debian's chromium (no browser is downloaded).  The machine is shown at a
few moments: in the middle of a world switch, in a Guest with its own IDT
and a user program, and after the end.  Screenshots are saved in the test's
temporary directory and copied to test-artifacts/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lguestsim import views
from lguestsim.session import Session

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def lab_css() -> list[Path]:
    from jupyter_core.paths import jupyter_path
    for d in jupyter_path("nbconvert", "templates", "lab", "static"):
        found = [Path(d) / n for n in ("index.css", "theme-light.css")]
        if all(p.exists() for p in found):
            return found
    raise AssertionError("nbconvert's lab template is missing: pip install nbconvert")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise AssertionError("Playwright is missing: pip install playwright "
                             "(the test extras); no browser download is needed") from None
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed (.ci/run installs Debian's chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def moments():
    """The machine at three moments a reader stops at."""
    out = {}
    s = Session.boot()
    s.to_guest()
    s.step(14)                                   # inside switch_to_guest
    out["switch"] = s
    g = Session.boot()
    g.run_to("system_call")                      # a user program, the Guest's own IDT
    out["syscall"] = g
    e = Session.boot()
    e.finish()
    out["end"] = e
    v = Session.boot(virtio=True)                # the Virtio chapter's: a chain just returned
    v.step_to("vring", match=lambda ev: ev.data["op"] == "used")
    out["virtio"] = v
    return out


def page_of(tmp_path: Path, name: str, body: str) -> str:
    links = "".join(f'<link rel="stylesheet" href="{p.as_uri()}">' for p in lab_css())
    path = tmp_path / f"{name}.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'>{links}</head>"
                    f'<body class="jp-Notebook" style="margin:8px">{body}</body></html>')
    return path.as_uri()


def output_cell(html: str) -> str:
    """How a notebook shows a view evaluated in a cell: rendered HTML in an output."""
    return ('<div class="jp-OutputArea-output jp-RenderedHTMLCommon jp-RenderedHTML" '
            f'data-mime-type="text/html">{html}</div>')


def widget(html: str) -> str:
    """How the dashboard shows it: inside an ipywidgets HTML (with the rules of
    @jupyter-widgets/controls for it: 13px type, a 28px line height)."""
    return ('<div class="widget-html jupyter-widget-html" style="font-size:13px;display:flex">'
            '<div class="widget-html-content" style="line-height:28px;flex-grow:1;'
            f'align-self:stretch;position:relative">{html}</div></div>')


def shoot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return shot


OVERFLOW = """() => {
  const wide = [];
  for (const e of document.querySelectorAll('.lgs, .lgs-pane')) {
    if (e.scrollWidth > e.clientWidth + 1)
      wide.push([e.dataset.view || e.className, e.scrollWidth, e.clientWidth]);
  }
  return {page: document.documentElement.scrollWidth, wide: wide};
}"""


@pytest.mark.parametrize("when", ["switch", "syscall", "end"])
def test_no_view_is_wider_than_1024(browser, moments, tmp_path, when):
    s = moments[when]
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    for cls in views.ALL_VIEWS:
        kw = {"vaddr": s.cpu.eip if s.in_trip else s.lg.regs.eip} \
            if cls is views.PageWalkView else {}
        name = f"layout-{when}-{cls.name}"
        page.goto(page_of(tmp_path, name, output_cell(cls(s, **kw).html())))
        got = page.evaluate(OVERFLOW)
        assert got["page"] <= 1024 and not got["wide"], f"{cls.__name__} at {when}: {got}"
        if when == "syscall" and cls in (views.PageWalkView, views.IDTView, views.GDTView):
            shoot(page, tmp_path, name)
    page.close()


RECTS = """() => {
  const r = e => { const b = e.getBoundingClientRect();
                   return {top: b.top, bottom: b.bottom, left: b.left, right: b.right}; };
  const panes = [...document.querySelectorAll('.lgs-pane')];
  return {dash: r(document.querySelector('.lgs-dashboard')),
          buttons: r(document.querySelector('.lgs-buttons')),
          nbuttons: document.querySelectorAll('.lgs-buttons button').length,
          code: r(panes.find(p => p.querySelector('[data-view=code]'))),
          registers: r(panes.find(p => p.querySelector('[data-view=registers]'))),
          gpr: r(document.querySelector('[data-reg=eip]')),
          page: document.documentElement.scrollWidth};
}"""


@pytest.mark.parametrize("when", ["switch", "syscall", "end"])
def test_dashboard_fits_a_1280_by_800_screen(browser, moments, tmp_path, when):
    s = moments[when]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(page_of(tmp_path, f"dashboard-{when}", widget(views.dashboard_html(s))))
    got = page.evaluate(RECTS)
    shoot(page, tmp_path, f"dashboard-{when}-1280")
    assert got["dash"]["bottom"] - got["dash"]["top"] <= 800, got
    assert got["nbuttons"] == 8
    for part in ("buttons", "code", "registers", "gpr"):
        assert 0 <= got[part]["top"] and got[part]["bottom"] <= 800, (part, got)
        assert got[part]["right"] <= 1280, (part, got)
    # side by side: the code and the registers share the first row
    assert got["code"]["top"] == got["registers"]["top"]
    page.set_viewport_size({"width": 1024, "height": 768})
    got = page.evaluate(OVERFLOW)
    shoot(page, tmp_path, f"dashboard-{when}-1024")
    assert got["page"] <= 1024 and not got["wide"], got
    page.close()


ALIGN = """() => [...document.querySelectorAll('.lgs')].map(v => {
  const t = v.querySelector('table'), td = v.querySelector('td'), s = getComputedStyle(td);
  return {offset: t.getBoundingClientRect().left - v.getBoundingClientRect().left,
          align: s.textAlign, padding: s.padding, font: getComputedStyle(t).fontSize,
          line: getComputedStyle(v.querySelector('div')).lineHeight,
          background: getComputedStyle(v.querySelector('tr:nth-child(3)')).backgroundColor};
})"""


def test_a_view_looks_the_same_alone_and_in_the_dashboard(browser, moments, tmp_path):
    s = moments["syscall"]
    html = views.RegistersView(s).html()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(page_of(tmp_path, "align", output_cell(html) + widget(html)))
    alone, inside = page.evaluate(ALIGN)
    shoot(page, tmp_path, "align")
    assert alone == inside, (alone, inside)
    assert alone["align"] == "left" and alone["offset"] == 0, alone
    page.close()


CHAPTER_DASHBOARDS = {      # the views each chapter's dashboard shows
    "guest": (views.CodeView, views.RegistersView, views.LguestDataView),
    "drivers": (views.DMAView, views.CodeView, views.TimelineView),
    "launcher": (views.CodeView, views.ConsoleView, views.TimelineView),
    "host": (views.CodeView, views.PageWalkView, views.RegistersView),
    "switcher": (views.CodeView, views.RegistersView, views.PageDirectoryView),
    "virtio": (views.VirtqueueView, views.TimelineView),
    "mastery": (views.CodeView, views.TimelineView),
}


@pytest.mark.parametrize("chapter", sorted(CHAPTER_DASHBOARDS))
def test_every_chapters_dashboard_fits_1024_and_800(browser, moments, tmp_path, chapter):
    s = moments["virtio" if chapter == "virtio" else "syscall"]
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    page.goto(page_of(tmp_path, f"dashboard-{chapter}",
                      widget(views.dashboard_html(s, CHAPTER_DASHBOARDS[chapter]))))
    got = page.evaluate(OVERFLOW)
    assert got["page"] <= 1024 and not got["wide"], got
    page.set_viewport_size({"width": 1280, "height": 800})
    height = page.evaluate("document.querySelector('.lgs-dashboard')"
                           ".getBoundingClientRect().height")
    assert height <= 800
    page.close()
