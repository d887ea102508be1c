"""The Guest chapter's exercises: lguest_data, system calls, the hypercall ring.

The answers are read where the Guest and the Host share state: the
``irq_enabled`` word of ``struct lguest_data`` at a given hypercall, %eax at
the Guest's system-call entry, and the asynchronous hypercall ring at the
moment the Guest flushes it.
"""

from __future__ import annotations

from typing import Any

from ..host.lg import LD_IRQ_ENABLED
from ..session import Session
from . import Chapter, cached, nth


@cached
def irq_enabled_after(k: int) -> int:
    s = Session.boot()
    nth(s, "hypercall", k)
    return s.run.process.read32(s.lg.lguest_data + LD_IRQ_ENABLED)


@cached
def syscall_number(n: int) -> int:
    s = Session.boot()
    for _ in range(n):
        s.run_to("system_call")
    return s.cpu.eax


@cached
def ring_at_first_flush() -> int:
    """The calls the Host ran from the ring in the step that ran FLUSH_ASYNC: it
    runs every waiting call before the one that brought it."""
    s = Session.boot()
    stop = s.step_to("hypercall", match=lambda e: e.name == "FLUSH_ASYNC")
    events = s.trace.events
    last = events.index(stop.event)
    first = max(i for i in range(last) if events[i].kind == "switch") + 1
    return sum(1 for e in events[first:last] if e.kind == "hypercall")


class GuestExercises(Chapter):
    chapter = "guest"
    hints = {1: "0x200 is X86_EFLAGS_IF",
             2: "run_to('system_call') N times; the number is in %eax",
             3: "step_to the FLUSH_ASYNC hypercall, back(1), and look at LguestDataView"}

    def draw(self) -> None:
        self.k = self.choice([2, 3, 4, 5, 6])
        self.n = self.choice([1, 2, 3])

    def questions(self) -> list[str]:
        return ["What is lguest_data.irq_enabled (a number) just after the step that records "
                f"the Guest's hypercall number {self.k} (counting LGUEST_INIT as 1)?",
                f"What is the system call number (eax) of system call number {self.n} the "
                "user program makes?",
                "How many hypercalls were waiting in the asynchronous ring when the Guest made "
                "its first FLUSH_ASYNC? (s.step_to(..., match=...), s.back(1), LguestDataView)"]

    def expected(self, number: int, *inputs: Any) -> Any:
        return {1: lambda: irq_enabled_after(self.k),
                2: lambda: syscall_number(self.n),
                3: ring_at_first_flush}[number]()
