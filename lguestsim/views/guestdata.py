"""The lguest_data view: the page the Guest and the Host share.

With LGUEST_INIT the Guest tells the Host where its ``struct lguest_data``
is, and from then on both read and write it: the Guest's virtual interrupt
flag (``irq_enabled``) and its mask of blocked interrupts, the fault address
the Host copies in for the Guest's page-fault handler (its "cr2"), the time,
the ring of asynchronous hypercalls the Guest queues in lazy mode, and the
few numbers the Host hands back (how much memory to leave for the Switcher,
the Guest's id, the TSC speed, the no-interrupt window around its iret).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..host.lg import (
    HCALL_NAMES,
    LD25_KERNEL_ADDRESS,
    LD25_NOIRQ_END,
    LD25_NOIRQ_START,
    LD25_PGDIR,
    LD25_SYSCALL_VEC,
    LD25_TSC_KHZ,
    LD_BLOCKED,
    LD_CR2,
    LD_GUESTID,
    LD_HCALL_STATUS,
    LD_HCALLS,
    LD_IRQ_ENABLED,
    LD_NOIRQ_END,
    LD_NOIRQ_START,
    LD_RESERVE_MEM,
    LD_TIME,
    LD_TSC_KHZ,
    LHCALL_RING_SIZE,
)
from .base import View, esc, h8, table

if TYPE_CHECKING:
    from ..session import Run


def read_lguest_data(run: Run) -> dict | None:
    """The fields of a Guest's lguest_data, read from its memory (None before LGUEST_INIT)."""
    lg = run.lg
    if lg is None or lg.lguest_data is None:
        return None
    base = lg.lguest_data
    proc = run.process

    def u32(off: int) -> int:
        return proc.read32(base + off)

    status = proc.read(base + LD_HCALL_STATUS, LHCALL_RING_SIZE)
    ring = []
    for i in range(LHCALL_RING_SIZE):
        if status[i] != 0xFF:
            call = struct.unpack("<4I", proc.read(base + LD_HCALLS + 16 * i, 16))
            ring.append((i, call))
    sec, nsec = struct.unpack("<II", proc.read(base + LD_TIME, 8))
    if lg.virtio:
        # What 2.6.25 changed: no guestid; pgdir, kernel_address, syscall_vec.
        return {"address": base, "irq_enabled": u32(LD_IRQ_ENABLED),
                "blocked": u32(LD_BLOCKED), "cr2": u32(LD_CR2), "time": (sec, nsec),
                "ring": ring, "next_hcall": lg.next_hcall, "reserve_mem": u32(LD_RESERVE_MEM),
                "tsc_khz": u32(LD25_TSC_KHZ), "pgdir": u32(LD25_PGDIR),
                "noirq": (u32(LD25_NOIRQ_START), u32(LD25_NOIRQ_END)),
                "kernel_address": u32(LD25_KERNEL_ADDRESS), "syscall_vec": u32(LD25_SYSCALL_VEC)}
    return {"address": base, "irq_enabled": u32(LD_IRQ_ENABLED), "blocked": u32(LD_BLOCKED),
            "cr2": u32(LD_CR2), "time": (sec, nsec), "ring": ring, "next_hcall": lg.next_hcall,
            "reserve_mem": u32(LD_RESERVE_MEM), "guestid": proc.read16(base + LD_GUESTID),
            "tsc_khz": u32(LD_TSC_KHZ), "noirq": (u32(LD_NOIRQ_START), u32(LD_NOIRQ_END))}


class LguestDataView(View):
    """struct lguest_data of the current Guest."""

    title = "lguest_data: the page the Guest shares with the Host"
    name = "lguest_data"

    def __init__(self, session, guest: int | None = None) -> None:
        super().__init__(session)
        self.guest = guest

    def body(self) -> str:
        s = self.session
        run = s.runs[self.guest if self.guest is not None else s.world.current]
        d = read_lguest_data(run)
        if d is None:
            return ('<span class="dim">not yet: the Guest has not made its LGUEST_INIT '
                    "hypercall</span>")
        irq = d["irq_enabled"]
        rows = [
            ["irq_enabled", h8(irq), "interrupts " + ("enabled (X86_EFLAGS_IF)" if irq & 0x200
                                                      else "disabled")],
            ["blocked_interrupts", h8(d["blocked"]), "bit n: irq n may not be delivered"],
            ["cr2", h8(d["cr2"]), "the last page-fault address, copied in by the Host"],
            ["time", f"{d['time'][0]}.{d['time'][1]:09d} s", "written by the Host"],
            ["hcall_status / hcalls", f"{len(d['ring'])} waiting",
             f"the asynchronous ring; the Host resumes at slot {d['next_hcall']}"],
            ["reserve_mem", h8(d["reserve_mem"]), "bytes the Guest leaves at the top (Switcher)"],
            ["guestid", str(d.get("guestid", "-")), "2.6.23 only"],
            ["tsc_khz", str(d["tsc_khz"]), ""],
            ["noirq_start / end", f"{h8(d['noirq'][0])} - {h8(d['noirq'][1])}",
             "no interrupts here: the Guest's own iret sequence"],
        ]
        if "kernel_address" in d:
            rows += [["pgdir", h8(d["pgdir"]), "2.6.25: the Launcher's page directory"],
                     ["kernel_address", h8(d["kernel_address"]), "2.6.25: told by the Guest"],
                     ["syscall_vec", f"{d['syscall_vec']:#x}", "2.6.25: told by the Guest"]]
        out = (f"<div>at guest-physical {h8(d['address'])}</div>"
               + table(rows, ["field", "value", ""]))
        if d["ring"]:
            ring = [[str(i), esc(HCALL_NAMES.get(c[0], c[0])),
                     ", ".join(f"{a:#x}" for a in c[1:])] for i, c in d["ring"]]
            out += "<div>Waiting in the ring:</div>" + table(ring, ["slot", "call", "arguments"])
        return out
