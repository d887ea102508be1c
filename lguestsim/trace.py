"""One stream of events, each stamped with the CPU cycle it happened at.

The Host records what a reader wants to see on a timeline: world switches,
traps, hypercalls, interrupts, page faults, DMA transfers, Guest deaths.
Views and tests read ``events``; nothing is recorded per instruction.

It sits low in the story, beside the machine: the Host owns the stream
(``host.trace``), the Launcher's virtqueues add their ring events to it, and
the session's ``step_to`` and the timeline view read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

KINDS = ("switch", "trap", "hypercall", "interrupt", "pagefault", "dma", "kill", "timer",
         "notify", "vring", "restart")
# The kinds only the 2.6.25 (virtio) generation emits: NOTIFY hypercalls, the
# Launcher taking and returning ring entries, and reboots.
KINDS_2625 = ("notify", "vring", "restart")

# The fields that hold an address or a register's value: a reader sees them in hex.
HEX_FIELDS = frozenset({"eip", "vaddr", "gpte", "errcode", "trapnum", "dma", "cr2", "key"})


class Hex(int):
    """An address or a register value: an int in every way, shown in hex.

    Event data prints the way the views do (``print(event.data)`` gives
    ``{'eip': 0xc0100000, ...}``); arithmetic on it gives plain ints."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{int(self):#x}"

    __str__ = __repr__


def hexed(name: str, value):
    """``value`` with its addresses made ``Hex``: a field named in HEX_FIELDS, each
    argument of a hypercall, each part of a DMA key that names shared memory, the
    address of each section of a DMA."""
    if type(value) is int and name in HEX_FIELDS:
        return Hex(value)
    if name in ("args", "key") and isinstance(value, tuple):
        return tuple(Hex(a) if type(a) is int else a for a in value)
    if name == "sections" and isinstance(value, list):
        return [(Hex(s[0]), s[1]) if isinstance(s, tuple) and len(s) == 2 and type(s[0]) is int
                else s for s in value]
    return value


@dataclass(slots=True)
class Event:
    kind: str
    cycle: int
    data: dict = field(default_factory=dict)

    def __getattr__(self, name: str):
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None


#: P:042 The trace is the simulation's logbook.  The Host writes it, not
# the CPU: one event for each world switch, trap, hypercall, interrupt
# delivered, page fault handled, DMA transfer, Guest timer and Guest death,
# each stamped by `clock` with the cycle count of the moment, which (P:012)
# is simulated nanoseconds.  Nothing is recorded per instruction: that would
# slow the core down and bury the story.  The views draw their timelines
# from `events`, tests ask for `of("trap")`, and listeners hear of each event
# as it happens; only the newest events are kept, so a long run cannot fill
# the memory.  Reading it back after a run is the cheapest way to watch what
# lguest did, and when.
class Trace:
    def __init__(self, clock: Callable[[], int], limit: int = 200_000) -> None:
        self.clock = clock
        self.events: list[Event] = []
        self.limit = limit          # keep the newest events only: a long run must not grow forever
        self.listeners: list[Callable[[Event], None]] = []
        self.enabled = True

    def emit(self, kind: str, **data) -> None:
        if not self.enabled:
            return
        ev = Event(kind, self.clock(), {k: hexed(k, v) for k, v in data.items()})
        self.events.append(ev)
        if len(self.events) > self.limit:
            del self.events[: len(self.events) // 2]
        for listener in self.listeners:
            listener(ev)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def clear(self) -> None:
        self.events.clear()
