"""The timeline: the Host's trace (and the Launcher's doings) with cycle stamps.

Every world switch, hypercall, page fault, reflected trap, interrupt, DMA
transfer, timer and death, in order, each stamped with the CPU cycle it
happened at; a strip above the table shows where they fall in time, so the
rhythm of a boot is visible at a glance (bursts of hypercalls while the Guest
sets itself up, long quiet stretches while it computes).
"""

from __future__ import annotations

from ..host.lg import HCALL_NAMES
from ..trace import Event
from .base import View, esc, h8, table

COLORS = {"switch": "#9aa5b1", "trap": "#e07b39", "hypercall": "#3c78d8", "interrupt": "#8e44ad",
          "pagefault": "#c0392b", "dma": "#16a085", "kill": "#000000", "timer": "#f1c40f",
          "launcher": "#2e7d32"}
TRAPS = {0x1F: "hypercall", 14: "page fault", 13: "#GP", 7: "#NM", 0x20: "Host timer",
         256: "entry fault"}


def describe_event(ev: Event) -> str:
    d = ev.data
    k = ev.kind
    if k == "switch":
        if d.get("to") == "guest":
            return f"into the Guest at {h8(d.get('eip'))}"
        t = d.get("trapnum")
        return (f"back to the Host: trap {t} ({TRAPS.get(t, 'irq' if t and t >= 32 else '')}) "
                f"errcode {d.get('errcode', 0):#x} at {h8(d.get('eip'))}")
    if k == "hypercall":
        args = ", ".join(f"{a:#x}" for a in d.get("args", ()))
        return f"{d.get('name', HCALL_NAMES.get(d.get('call'), '?'))}({args})"
    if k == "pagefault":
        return (f"{h8(d.get('vaddr'))} errcode {d.get('errcode', 0):#x}: shadow filled from "
                f"Guest pte {h8(d.get('gpte'))}")
    if k == "trap":
        how = ("reflected to the Guest" if d.get("reflected")
               else f"emulated {d.get('emulated', '')}")
        return f"vector {d.get('vector')} at {h8(d.get('eip'))}: {how}"
    if k == "interrupt":
        return f"irq {d.get('irq')} (vector {d.get('vector')}) delivered at {h8(d.get('eip'))}"
    if k == "dma":
        if d.get("to") == "launcher":
            return f"to the Launcher: key {d.get('key', 0):#x}, dma at {h8(d.get('dma'))}"
        return (f"to Guest {d.get('to')}: {d.get('bytes')} bytes from "
                f"{len(d.get('sections', ()))} section(s), irq {d.get('irq')}"
                f"{'' if d.get('received', True) else ' (no free buffer)'}")
    if k == "kill":
        return f"killed: {d.get('reason')}"
    if k == "timer":
        return "the Guest's clock event fired"
    return str(d)


class TimelineView(View):
    """The last events of the trace, newest last, with a strip of all of them in time."""

    title = "Timeline"
    name = "timeline"

    def __init__(self, session, last: int = 20, kinds: tuple[str, ...] | None = None,
                 launcher: bool = True) -> None:
        super().__init__(session)
        self.last = last
        self.kinds = kinds
        self.launcher = launcher

    def events(self) -> list[tuple[int, str, int | None, str]]:
        """(cycle, kind, guest, text) of every event shown, in time order."""
        s = self.session
        out = [(e.cycle, e.kind, e.data.get("guest"), describe_event(e))
               for e in s.trace.events if self.kinds is None or e.kind in self.kinds]
        if self.launcher and (self.kinds is None or "launcher" in self.kinds):
            ids = {r.index: (r.lg.guestid if r.lg is not None else r.index) for r in s.runs}
            out += [(c, "launcher", ids.get(i), what) for c, i, what in s.world.launcher_log]
        out.sort(key=lambda x: x[0])
        return out

    def strip(self, evs: list[tuple[int, str, int | None, str]]) -> str:
        now = self.session.cpu.cycles or 1
        width, height = 640, 26
        marks = []
        for cycle, kind, _, _ in evs[-2000:]:
            x = 4 + (width - 8) * cycle / now
            marks.append(f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height - 4}" '
                         f'stroke="{COLORS.get(kind, "#555")}" stroke-width="1"/>')
        axis = (f'<text x="4" y="{height + 8}" font-size="9">0</text>'
                f'<text x="{width - 4}" y="{height + 8}" font-size="9" text-anchor="end">'
                f'{now} cycles</text>')
        return (f'<svg width="{width}" height="{height + 12}" xmlns="http://www.w3.org/2000/svg">'
                f'<rect x="0" y="2" width="{width}" height="{height - 2}" fill="#fafbfc" '
                f'stroke="#dde"/>{"".join(marks)}{axis}</svg>')

    def body(self) -> str:
        evs = self.events()
        counts: dict[str, int] = {}
        for _, kind, _, _ in evs:
            counts[kind] = counts.get(kind, 0) + 1
        legend = " ".join(f'<span class="tag" style="border-left:6px solid '
                          f'{COLORS.get(k, "#555")}">{esc(k)} {n}</span>'
                          for k, n in sorted(counts.items()))
        rows = [[str(c), f'<span style="color:{COLORS.get(k, "#555")}">{esc(k)}</span>',
                 "" if g is None else str(g), esc(t)]
                for c, k, g, t in evs[-self.last:]]
        return (f"<div>{legend}</div>" + self.strip(evs)
                + table(rows, ["cycle", "event", "guest", "what"]))
