"""What every view shares: HTML helpers, a style sheet, and the live widget.

A view is a small class over a ``Session``.  ``html()`` renders the machine as
it is now to a self-contained HTML string (no kernel, no JavaScript: the
fallback for static pages and for tests).  ``widget()`` wraps the same HTML in
an ipywidgets ``HTML`` that observes the session, so it redraws itself after
every step, motion or replay without being asked; the notebooks store widget
state, so a rendered book shows each live view as it was.
"""

from __future__ import annotations

import html as _html
from abc import ABC, abstractmethod
from typing import Any

# One look wherever a view is drawn: alone in a notebook's output (where
# JupyterLab's rules for rendered HTML centre tables, right-align and pad their
# cells and stripe their rows, with selectors stronger than ours), inside the
# dashboard's widget, or in the book.  The properties those rules set are
# marked !important; ipywidgets' HTML widget sets a 28px line height, which
# .lgs resets.  Cells wrap at spaces, so a view fits the width it has.
STYLE = """<style>
.lgs { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
       color: #1b1f24; margin: 4px 0; text-align: left; max-width: 100%;
       line-height: 1.35; }
.lgs h4 { font-family: system-ui, sans-serif; font-size: 13px; margin: 6px 0 3px 0; }
.lgs table { border-collapse: collapse; margin: 2px 8px 6px 0 !important;
             table-layout: auto !important; font-size: 12px !important; }
.lgs td, .lgs th { padding: 1px 6px !important; border: none !important;
                   border-bottom: 1px solid #e3e6ea !important; text-align: left !important;
                   vertical-align: top !important; white-space: normal !important;
                   line-height: 1.35 !important; max-width: none; }
.lgs tr, .lgs tbody tr:nth-child(odd), .lgs tbody tr:hover { background: none !important; }
.lgs th { background: #f2f4f7 !important; font-weight: 600; }
.lgs .chg { background: #ffe08a !important; }
.lgs tr.cur { background: #d5ecff !important; font-weight: 600; }
.lgs .dim { color: #8a939d; }
.lgs .bad { color: #b3261e; font-weight: 600; }
.lgs .ok { color: #1e7d32; }
.lgs .tag { display: inline-block; padding: 0 3px; margin: 0 1px; border-radius: 3px;
            background: #eef0f3; }
.lgs .on { background: #cfe8d0; }
.lgs tr.direct { background: #ffd8b0 !important; }
.lgs .flex { display: flex; flex-wrap: wrap; gap: 0 12px; align-items: flex-start; }
.lgs .src { color: #4a5a6a; font-style: italic; }
.lgs .nw { white-space: nowrap; }
.lgs pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.lgs table.grid td { width: 9px; height: 9px; padding: 0 !important;
                     border: 1px solid #fff !important; background: #eceff2; }
.lgs svg { max-width: 100%; height: auto; }
</style>"""


def esc(text: Any) -> str:
    return _html.escape(str(text), quote=True)


def h8(v: int | None) -> str:
    return "-" if v is None else f"{v & 0xFFFFFFFF:08x}"


def h4(v: int | None) -> str:
    return "-" if v is None else f"{v & 0xFFFF:04x}"


def table(rows: list[list[Any]], header: list[str] | None = None,
          row_classes: list[str] | None = None, raw: bool = True) -> str:
    """An HTML table; cells are HTML already (``raw``) or escaped."""
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f"<td>{c if raw else esc(c)}</td>" for c in row)
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "".join(out)


def box(title: str, body: str, view: str = "") -> str:
    """One view's HTML: the style sheet, a title, the body."""
    attr = f' data-view="{esc(view)}"' if view else ""
    return f'{STYLE}<div class="lgs"{attr}><h4>{esc(title)}</h4>{body}</div>'


class View(ABC):
    """Base of every view: ``html()`` now, ``widget()`` live."""

    title = "view"
    name = "view"

    def __init__(self, session) -> None:
        self.session = session

    @abstractmethod
    def body(self) -> str:
        """The view's contents as HTML (each view says what it shows)."""

    def html(self) -> str:
        """The view as it is now, as one self-contained HTML string."""
        try:
            body = self.body()
        except Exception as err:        # a view must never break a notebook
            body = f'<span class="bad">cannot show this now: {esc(err)}</span>'
        return box(self.title, body, self.name)

    def _repr_html_(self) -> str:
        return self.html()

    def widget(self) -> Any:
        """An ipywidgets HTML that redraws itself whenever the session moves."""
        import ipywidgets
        w = ipywidgets.HTML(value=self.html())

        def refresh(_session, w=w) -> None:
            w.value = self.html()

        self.session.observe(refresh)
        w.add_class("lgs-view")
        w._lgs_refresh = refresh
        return w

    def freeze(self) -> Any:
        """The view as it is now, for display; it will not change later."""
        from IPython.display import HTML
        return HTML(self.html())
