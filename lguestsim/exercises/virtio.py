"""The Virtio chapter's exercises: the 2.6.25 Guest's virtqueues, on its trace.

Every question is about the shipped virtio Guest booted in a session
(``Session.boot(virtio=True)``) and the events its Host and Launcher put in
the trace: the NOTIFY hypercalls (a kick), the Launcher taking a buffer from
a ring and giving it back (``vring`` events), the interrupts.  The answers
come from one whole boot, read from its trace; a reader finds them by
stepping a session of their own to the event the question names.
"""

from __future__ import annotations

from typing import Any

from ..session import Session
from ..trace import Trace
from . import Chapter, cached

COUNTED = ("notify", "vring", "interrupt", "hypercall")


@cached
def whole_boot() -> Trace:
    """The virtio Guest's trace from its first instruction to its power-off."""
    s = Session.boot(virtio=True)
    s.finish()
    return s.trace


def nth_of(kind: str, n: int) -> Any:
    found = whole_boot().of(kind)
    if not 1 <= n <= len(found):
        raise ValueError(f"the virtio boot has {len(found)} {kind} events, not {n}")
    return found[n - 1]


class VirtioExercises(Chapter):
    chapter = "virtio"
    hints = {1: "step on until s.trace.of('notify') holds that many; that one's addr",
             2: "step on until s.trace.of('vring') holds that many (one step of the Launcher "
                "can bring two: taking a chain, giving it back); that one's idx",
             3: "finish a session and count s.trace.of(kind)"}

    def draw(self) -> None:
        self.notify = self.randint(8, 16)
        self.vring = self.randint(1, 16)
        self.kind = self.choice(COUNTED)

    def questions(self) -> list[str]:
        return [f"Boot the 2.6.25 Guest (Session.boot(virtio=True)) and step to its NOTIFY "
                f"number {self.notify}. Which address (Guest-physical) does the Guest hand "
                "the Host?",
                f"In the same boot, at the Launcher's ring event (kind 'vring') number "
                f"{self.vring}, which index has that ring reached (the event's idx: the "
                "available index read, or the used index written)?",
                f"How many '{self.kind}' events does the 2.6.25 Guest's whole life put in "
                "the trace?"]

    def expected(self, number: int, *inputs: Any) -> Any:
        if number == 1:
            return int(nth_of("notify", self.notify).data["addr"])
        if number == 2:
            return int(nth_of("vring", self.vring).data["idx"])
        return len(whole_boot().of(self.kind))
