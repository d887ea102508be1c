"""The simulated PC: RAM, one CPU, and a clock.

Everything lguest touches lives in this machine's RAM: the Host's own tables,
the Switcher, the shadow page tables and every Launcher's (and so every
Guest's) memory.  Time is the CPU's cycle count; the clock turns it into
nanoseconds at a fixed rate.  Timers are plain (deadline, callback) pairs that
the Host checks between runs of the CPU: that is how the Guest's clockevent
fires and how the Host's own timer interrupt preempts a running Guest.
"""

#: P:011 Before the pieces of lguest, the machine they run on.  lguest
# 2.6.23 ran on a real i386 PC; lguestsim runs on a simulated one, written in
# Python, and every trick of the chapters to come (a kernel running in ring 1,
# shadow page tables, the Switcher changing address space under its own feet,
# lazy FPU switching) is something this processor is made to do, one
# instruction after another.  The passages from here to the lguest bus visit
# the machine in the order a reader needs it: the machine and its clock, the
# CPU's state and its run loop, how bytes become instructions and
# instructions become Python, and then the three corners of the architecture
# lguest leans on hardest: segments and rings, paging and the TLB, interrupts
# and the stack switch.
#
# The processor (`lguestsim/x86`, whose README lists its API) knows nothing
# about lguest.  It is an i386 as Intel's manual, the SDM, describes it, with
# the few i486 and i686 additions gcc uses, and the tests run it side by
# side with QEMU's CPU (through unicorn) to keep it honest.

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from .x86 import CPU, PhysicalMemory

#: P:012 Time in the machine is the CPU's cycle counter and nothing else:
# there is no wall clock behind it, and the Python that simulates the Host
# takes no time at all unless it says so.  The rate is fixed at 1000 MHz, so
# a cycle is exactly a nanosecond and every number in a trace or a view reads
# as a time: an interrupt 1500 cycles after a hypercall came 1.5 microseconds
# later.  What each instruction costs is decided in timing.py (P:022).  The
# Guest reads the same counter with `rdtsc`, and asks for its timer
# interrupts in nanoseconds, which `cycles_for_ns()` turns back into cycles.
CPU_MHZ = 1000          # one cycle is one nanosecond: easy to read in the views


#: P:013 `Machine` is the whole PC: one stretch of RAM, one CPU wired to it,
# and a list of timers.  Everything lives in that RAM: the Host's own GDT,
# IDT, TSS and page tables at fixed low addresses, the Switcher's pages, the
# shadow page tables, and above them each Launcher's memory, which is also
# its Guest's.  Timers are (deadline, callback) pairs in a heap, and nothing
# interrupts the CPU to fire them.  Instead the Host runs the CPU with
# `run(deadline=next_deadline())`, which stops between two blocks of
# instructions once the deadline has passed; the Host then raises its own
# timer interrupt and `fire_timers()` calls whatever came due: the Guest's
# clock, the scheduler tick, the Waker (S:014).  When no Guest has anything to
# run, `idle_until_next_timer()` moves the clock straight to the next
# deadline, as a halted processor would sit until its next interrupt.
class Machine:
    """RAM of ``ram_bytes`` (over the file ``ram_fd`` if given) and one CPU."""

    def __init__(self, ram_bytes: int, ram_fd: int | None = None) -> None:
        ram_bytes = (ram_bytes + 0xFFF) & ~0xFFF
        self.mem = PhysicalMemory(ram_bytes, ram_fd)
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
