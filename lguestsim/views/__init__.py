"""Views of a running session: registers, page tables, descriptor tables, code,
the timeline, DMA and devices.

Each view is a class over a ``lguestsim.session.Session``:

=====================  ==========================================================
``RegistersView``      GPRs, EIP, EFLAGS, segments with their caches, CRs, CPL,
                       the Guest's saved registers; changes highlighted
``PageWalkView``       one virtual address through the Guest's tables and the
                       shadow tables side by side
``PageDirectoryView``  a map of a whole page directory (Guest's or shadow)
``TLBView``            the TLB's entries
``GDTView``            the Guest's GDT (kept by the Host) and the real one
``IDTView``            the Guest's IDT and the real one, direct traps marked
``TSSView``            the TSSs: where each trap finds its stack
``CodeView``           disassembly around EIP with symbols and source lines
``TimelineView``       the trace with cycle stamps
``DMAView``            bound buffers, transfers, the bytes that arrived
``DevicePageView``     the device descriptor page
``LguestDataView``     struct lguest_data: the page the Guest shares with the Host
``ConsoleView``        what the Guest printed
=====================  ==========================================================

``view.html()`` renders it now (plain HTML, no kernel needed); ``view.widget()``
is an ipywidgets HTML that redraws itself after every step; evaluating a view
in a notebook cell shows it as it is at that moment.  ``dashboard(session)``
puts the main views under a row of buttons (step, into the Guest, back to the
Host, ..., back), sized for one screen (dashboard.py).
"""

from __future__ import annotations

from .base import View, box, esc
from .code import CodeView
from .dashboard import dashboard, dashboard_html
from .devices import DevicePageView, DMAView
from .guestdata import LguestDataView
from .pagetables import PageDirectoryView, PageWalkView, TLBView, walk_both
from .plot import Chart, bar_chart
from .registers import RegistersView
from .tables import GDTView, IDTView, TSSView
from .timeline import TimelineView


class ConsoleView(View):
    """What the Guests wrote to their consoles."""

    title = "Console"
    name = "console"

    def __init__(self, session, lines: int = 12) -> None:
        super().__init__(session)
        self.lines = lines

    def body(self) -> str:
        out = []
        for run in self.session.runs:
            text = run.console.text.splitlines()[-self.lines:]
            state = f" &middot; ended: {esc(run.ended)}" if run.ended else ""
            shown = esc("\n".join(text)) or "(nothing yet)"
            out.append(f"<div><b>{esc(run.name)}</b>{state}</div>"
                       f"<pre style='margin:2px 0 6px 0'>{shown}</pre>")
        return "".join(out)


ALL_VIEWS = (RegistersView, PageWalkView, PageDirectoryView, TLBView, GDTView, IDTView,
             TSSView, CodeView, TimelineView, DMAView, DevicePageView, LguestDataView,
             ConsoleView)


__all__ = ["View", "box", "RegistersView", "PageWalkView", "PageDirectoryView", "TLBView",
           "GDTView", "IDTView", "TSSView", "CodeView", "TimelineView", "DMAView",
           "DevicePageView", "LguestDataView", "ConsoleView", "ALL_VIEWS", "dashboard",
           "dashboard_html", "walk_both", "bar_chart", "Chart"]
