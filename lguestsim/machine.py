"""The simulated PC: RAM, one CPU, and a clock.

Everything lguest touches lives in this machine's RAM: the Host's own tables,
the Switcher, the shadow page tables and every Launcher's (and so every
Guest's) memory.  Time is the CPU's cycle count; the clock turns it into
nanoseconds at a fixed rate.  Timers are plain (deadline, callback) pairs that
the Host checks between runs of the CPU: that is how the Guest's clockevent
fires and how the Host's own timer interrupt preempts a running Guest.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from .x86 import CPU, PhysicalMemory

CPU_MHZ = 1000          # one cycle is one nanosecond: easy to read in the views


class Machine:
    """RAM of ``ram_bytes`` and one CPU."""

    def __init__(self, ram_bytes: int) -> None:
        ram_bytes = (ram_bytes + 0xFFF) & ~0xFFF
        self.mem = PhysicalMemory(ram_bytes)
        self.cpu = CPU(self.mem)
        self._timers: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    # -- time
    @property
    def cycles(self) -> int:
        return self.cpu.cycles

    def ns(self, cycles: int | None = None) -> int:
        """Nanoseconds since power-on (or of ``cycles``)."""
        c = self.cpu.cycles if cycles is None else cycles
        return c * 1000 // CPU_MHZ

    def cycles_for_ns(self, ns: int) -> int:
        return ns * CPU_MHZ // 1000

    # -- timers
    def add_timer(self, deadline_cycles: int, callback: Callable[[], None]) -> int:
        """Call ``callback`` once the clock reaches ``deadline_cycles``; returns a handle."""
        handle = next(self._seq)
        heapq.heappush(self._timers, (deadline_cycles, handle, callback))
        return handle

    def cancel_timer(self, handle: int) -> None:
        self._timers = [t for t in self._timers if t[1] != handle]
        heapq.heapify(self._timers)

    def next_deadline(self) -> int:
        return self._timers[0][0] if self._timers else 1 << 62

    def fire_timers(self) -> bool:
        """Run every timer whose deadline has passed; True if any did."""
        fired = False
        now = self.cpu.cycles
        while self._timers and self._timers[0][0] <= now:
            _, _, callback = heapq.heappop(self._timers)
            callback()
            fired = True
        return fired

    def idle_until_next_timer(self) -> bool:
        """Nothing to run: let time pass to the next timer (a halted CPU). False if none."""
        if not self._timers:
            return False
        deadline = self._timers[0][0]
        if deadline > self.cpu.cycles:
            self.cpu.cycles = deadline
        return self.fire_timers()
