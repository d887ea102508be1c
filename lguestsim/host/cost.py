"""The Host's cost model: cycles charged for work the Host does in Python.

The Switcher and the Guest are simulated instruction by instruction, so their
cycles are counted by the CPU.  The Host is Python, so what it costs is
stated here, in one table, as the figures a 2007-era Host kernel would need
(a few hundred cycles for a hypercall's dispatch, more for a page walk and a
shadow fill).  Every trap or hypercall figure the views show includes them.
"""

from __future__ import annotations

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
