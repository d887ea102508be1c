"""The Host's cost model: cycles charged for work the Host does in Python.

The Switcher and the Guest are simulated instruction by instruction, so their
cycles are counted by the CPU.  The Host is Python, so what it costs is
stated here, in one table, as the figures a 2007-era Host kernel would need
(a few hundred cycles for a hypercall's dispatch, more for a page walk and a
shadow fill).  Every trap or hypercall figure the views show includes them.
"""

from __future__ import annotations

#: H:790 What the Host's work costs.  Every instruction of the Guest and the
# Switcher is counted as the CPU executes it, but the Host runs as Python,
# outside simulated time.  So each kind of Host work has a price here, in
# cycles, roughly what a Linux Host of 2007 would spend on it, and
# `Host.charge()` adds it to the clock.  They are estimates, not measurements:
# change one and watch how the costs in the views move, say of a page fault
# against a hypercall.
COSTS = {
    "run_guest_loop": 60,      # one trip round run_guest: checks, interrupts, timers
    "copy_in_guest_info": 40,  # mapping the Switcher, esp1/ss1 into the TSS
    "copy_idt": 300,           # rebuilding the real IDT's first 64 entries
    "copy_gdt": 120,
    "hypercall": 150,          # dispatching one hypercall
    "demand_page": 400,        # reading two Guest entries, filling a shadow entry
    "deliver_trap": 250,       # pushing a frame on the Guest stack by hand
    "emulate_insn": 200,       # decoding an in/out and faking its result
    "dma": 500,                # handing a DMA to the Launcher or another Guest
}


def cost(kind: str) -> int:
    return COSTS[kind]
