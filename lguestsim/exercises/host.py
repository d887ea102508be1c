"""The Host chapter's exercises: shadow pages, killing a Guest, faults it reflects.

The unknown hypercall numbers are drawn from those the Host has no entry for
(``HCALL_NAMES``), so that every student's Guest really is killed.
"""

from __future__ import annotations

from typing import Any

from ..host.lg import HCALL_NAMES
from ..session import Session
from . import Chapter, cached, nth

# Numbers no hypercall has: what a misbehaving Guest might put in %eax.
# Sixteen of them, spread out: each is a tiny Guest to assemble, and the
# live book ships one per number (it has no assembler in the browser).
UNKNOWN = tuple(n for n in range(17, 256) if n not in HCALL_NAMES)[::15]


@cached
def shadow_page(k: int) -> int:
    s = Session.boot()
    stop = nth(s, "pagefault", k)
    return s.translate(stop.event.vaddr)["host_phys"] & ~0xFFF


@cached
def reason(n: int) -> str:
    t = Session.tiny(f"HCALL 1, lguest_data-PO\nHCALL {n}\n")
    t.finish()
    return t.runs[0].ended


@cached
def handled_before_first_reflection() -> int:
    s = Session.boot()
    s.step_to("trap", match=lambda e: e.data.get("reflected"))
    return len(s.trace.of("pagefault"))


class HostExercises(Chapter):
    chapter = "host"
    assembles = True               # the chapter's bad Guest, and reason(n)
    hints = {1: "s.translate(vaddr) or PageWalkView, just after the fault",
             2: "the Launcher is told why its Guest ended: s.runs[0].ended",
             3: "count the 'pagefault' events before the first reflected 'trap'"}

    def draw(self) -> None:
        self.k = self.choice([2, 3, 4, 5])
        self.bad = self.choice(UNKNOWN)            # the chapter's own misbehaving Guest
        self.unknown = self.choice([n for n in UNKNOWN if n != self.bad])

    def questions(self) -> list[str]:
        return [f"The Host's page fault number {self.k} (count the 'pagefault' events from "
                "the boot): which host-physical page did the shadow entry get? (an address, "
                "like 0x1100000)",
                f"What reason does the Host give when a Guest makes hypercall {self.unknown}?",
                "How many page faults did the Host handle by itself (pagefault events) before "
                "it reflected the first one to the Guest?"]

    def expected(self, number: int, *inputs: Any) -> Any:
        return {1: lambda: shadow_page(self.k),
                2: lambda: reason(self.unknown),
                3: handled_before_first_reflection}[number]()
