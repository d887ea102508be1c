"""The dashboard: a row of buttons that move the session, and the views it changes.

It is made to sit on one screen (1280 x 800, a projector's size): the buttons
on top, then the views in a grid of columns at least ``PANE_MIN`` pixels wide
(two side by side on such a screen, one under the other on a narrow one).  The
first two views get the tall first row, the others a shorter one, and a view
longer than its cell scrolls inside it, so the code and the registers are in
sight together with the buttons that move them.

The buttons name the direction of a world switch they stop at: into the Guest
stops before ``switch_to_guest`` runs, back to the Host before the trap stub
the processor entered, so ``return_to_host`` can be stepped through too.

``dashboard(session)`` is the live ipywidgets version (what a notebook cell,
or Voila, shows); ``dashboard_html(session)`` draws the same grid as plain
HTML, with the buttons inert: for static pages and for the layout tests.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from .base import esc
from .code import CodeView
from .registers import RegistersView
from .timeline import TimelineView

if TYPE_CHECKING:
    from ..session import Session

PANE_MIN = 460           # px: two columns from about 940 px wide
FIRST_ROW = 470          # px: the tall row, for the first two views
OTHER_ROWS = 250         # px: each later row; 40 + 470 + 250 + gaps < 800
# The timeline's cell is short: its newest events, not a scroll away.
DEFAULT_VIEWS = (CodeView, RegistersView, partial(TimelineView, last=6))

GRID_STYLE = f"""<style>
.lgs-dash {{ display: grid; grid-template-columns: repeat(auto-fit, minmax({PANE_MIN}px, 1fr));
            gap: 6px 10px; max-width: 100%; text-align: left; }}
.lgs-dash > .lgs-pane {{ min-width: 0; max-height: {OTHER_ROWS}px; overflow: auto;
                        border: 1px solid #e3e6ea; border-radius: 4px; padding: 0 6px; }}
.lgs-dash > .lgs-pane:nth-child(-n+2) {{ max-height: {FIRST_ROW}px; }}
.lgs-buttons {{ display: flex; flex-wrap: wrap; gap: 4px; margin: 2px 0 6px 0; }}
.lgs-buttons button {{ font: 13px system-ui, sans-serif; height: 28px; padding: 0 10px; }}
</style>"""


def buttons(session: Session) -> list[tuple[str, str, Callable[[], Any]]]:
    """(label, what it does, action) of each button, in order."""
    return [
        ("step", "one instruction, or one step of Host work", session.step),
        ("step 10", "ten steps", lambda: session.step(10)),
        ("\u25b6 into the Guest (switch_to_guest)",
         "run to the next world switch into the Guest: stop before switch_to_guest",
         session.to_guest),
        ("\u25c0 back to the Host (trap stub)",
         "run to the next world switch back to the Host: stop before the trap stub, "
         "with return_to_host ahead", session.to_host),
        ("next hypercall", "run until the Host has done the next hypercall",
         lambda: session.step_to("hypercall")),
        ("next trap", "run until the next trap, page fault or interrupt the Host sees",
         lambda: session.step_to(("trap", "pagefault", "interrupt"))),
        ("back", "one step back (by replay)", session.back),
        ("back 10", "ten steps back", lambda: session.back(10)),
    ]


def panes_html(session: Session, views: tuple = DEFAULT_VIEWS) -> str:
    """The views, each in a cell of the grid, as they are now.  ``views`` are view
    classes, or functions of the session that make a view (``partial(View, ...)``)."""
    cells = "".join(f'<div class="lgs-pane">{v(session).html()}</div>' for v in views)
    return f'{GRID_STYLE}<div class="lgs-dash">{cells}</div>'


def dashboard_html(session: Session, views: tuple = DEFAULT_VIEWS) -> str:
    """The whole dashboard as plain HTML (its buttons do nothing here)."""
    row = "".join(f'<button type="button" title="{esc(tip)}" disabled>{esc(label)}</button>'
                  for label, tip, _ in buttons(session))
    return (f'<div class="lgs-dashboard">{GRID_STYLE}<div class="lgs-buttons">{row}</div>'
            f"{panes_html(session, views)}</div>")


def dashboard(session: Session, views: tuple = DEFAULT_VIEWS) -> Any:
    """Live views under a row of buttons that move the session."""
    import ipywidgets as w

    def act(fn: Callable[[], Any]) -> Callable[[Any], None]:
        def handler(_button) -> None:
            fn()
        return handler

    row = []
    for label, tip, fn in buttons(session):
        b = w.Button(description=label, tooltip=tip, layout=w.Layout(width="auto"))
        b.on_click(act(fn))
        row.append(b)
    panes = w.HTML(value=panes_html(session, views), layout=w.Layout(width="100%"))

    def refresh(_session) -> None:
        panes.value = panes_html(session, views)

    session.observe(refresh)
    panes.add_class("lgs-view")
    panes._lgs_refresh = refresh
    return w.VBox([w.HBox(row, layout=w.Layout(flex_flow="row wrap")), panes])
