"""Descriptor tables: the GDT, the IDT and the TSS, as the Guest asked and as the CPU sees.

The Guest never loads a GDT or IDT itself: it hands its wishes to the Host by
hypercall (LOAD_GDT, LOAD_IDT_ENTRY), the Host checks them and keeps them in
struct lguest, and before each trip copies them into this CPU's read-only
Switcher page, where the Switcher's lgdt/lidt point the processor.  These
views show both sides.  In the real IDT most vectors lead to a Switcher stub
(a trip back to the Host); a few -- the system call, when the Guest made it
a trap gate -- lead straight to the Guest's handler: the direct traps.
"""

from __future__ import annotations

import struct

from ..host.core import (
    HOST_TSS,
    PERCPU_RO,
    RO_GUEST_GDT,
    RO_GUEST_IDT,
    RO_GUEST_TSS,
    SWITCHER_ADDR,
)
from ..host.segments import ignored_gdt
from ..x86.segments import Descriptor
from .base import View, esc, h4, h8, table
from .registers import segment_type

GATE_TYPES = {0xE: "interrupt gate", 0xF: "trap gate", 0x6: "int gate 16", 0x7: "trap gate 16",
              0x5: "task gate"}
VECTOR_NAMES = {0: "#DE divide", 1: "#DB debug", 2: "NMI", 3: "#BP breakpoint", 4: "#OF",
                5: "#BR", 6: "#UD invalid op", 7: "#NM no FPU", 8: "#DF double", 10: "#TS",
                11: "#NP", 12: "#SS", 13: "#GP protection", 14: "#PF page fault",
                16: "#MF", 17: "#AC", 0x1F: "hypercall", 0x20: "irq 0 (timer)",
                0x80: "system call"}


def describe_segment(lo: int, hi: int) -> str:
    if not lo and not hi:
        return '<span class="dim">empty</span>'
    d = Descriptor(lo, hi)
    if not d.present:
        return f'<span class="dim">not present ({h8(hi)}:{h8(lo)})</span>'
    return (f"base {h8(d.base)} limit {h8(d.limit)} {esc(segment_type(d.access))} "
            f"DPL {d.dpl}{' 32-bit' if d.big else ''}")


def gate_target(lo: int, hi: int) -> int:
    return (lo & 0xFFFF) | (hi & 0xFFFF0000)


class GDTView(View):
    """The Guest's GDT as the Host keeps it, beside the one the Switcher loads."""

    title = "GDT: the Guest's (kept by the Host) and the real one (the Switcher's page)"
    name = "gdt"

    def __init__(self, session, all_entries: bool = False) -> None:
        super().__init__(session)
        self.all_entries = all_entries

    def body(self) -> str:
        s = self.session
        lg = s.lg
        raw = s.mem.read(PERCPU_RO + RO_GUEST_GDT, 32 * 8)
        real = [struct.unpack_from("<II", raw, 8 * i) for i in range(32)]
        rows, classes = [], []
        for i in range(32):
            guest = lg.gdt[i] if lg is not None else (0, 0)
            if not self.all_entries and guest == (0, 0) and real[i] == (0, 0):
                continue
            who = "Host's own" if ignored_gdt(i) else ""
            differ = guest != real[i] and not ignored_gdt(i)
            rows.append([i, h4(i * 8), describe_segment(*guest) if not ignored_gdt(i) else
                         f'<span class="dim">{who}</span>', describe_segment(*real[i]),
                         '<span class="chg">not copied yet</span>' if differ else ""])
            classes.append("")
        note = ("<div>The Guest's entries 12 and 13 are its kernel code and data "
                "(__KERNEL_CS 0x60, __KERNEL_DS 0x68), at DPL 1: the Host raised any "
                "DPL 0 it was given. Entries 10, 11 and 16 are the Switcher's code, data "
                "and TSS.</div>")
        return table(rows, ["#", "selector", "Guest's (lg.gdt)",
                            "real (loaded by the Switcher)", ""],
                     classes) + note


class IDTView(View):
    """The Guest's IDT as the Host keeps it, beside the real one; direct traps marked."""

    title = "IDT: the Guest's (kept by the Host) and the real one (direct traps marked)"
    name = "idt"

    def __init__(self, session, vectors: list[int] | None = None) -> None:
        super().__init__(session)
        self.vectors = vectors

    def body(self) -> str:
        s = self.session
        lg = s.lg
        raw = s.mem.read(PERCPU_RO + RO_GUEST_IDT, 256 * 8)
        real = [struct.unpack_from("<II", raw, 8 * i) for i in range(256)]
        stubs = s.host.switcher.trap_stubs
        vectors = self.vectors
        if vectors is None:
            wanted = {13, 14, 0x1F, 0x20, 0x80}
            if lg is not None:
                wanted |= {v for v, (_, hi) in enumerate(lg.idt[:20]) if hi & 0x8000}
                if lg.syscall_idt[1] & 0x8000:
                    wanted.add(0x80)
            wanted |= {v for v in range(256) if real[v][1] & 0x8000
                       and gate_target(*real[v]) < SWITCHER_ADDR}
            vectors = sorted(wanted)
        rows, classes = [], []
        directs = 0
        for v in vectors:
            if lg is None:
                guest = (0, 0)
            elif v < len(lg.idt):
                guest = lg.idt[v]
            elif v == 0x80:
                guest = lg.syscall_idt
            else:
                guest = (0, 0)
            g = self._gate(guest)
            lo, hi = real[v]
            target = gate_target(lo, hi)
            if not hi & 0x8000:
                r = '<span class="dim">not present</span>'
                cls = ""
            elif target >= SWITCHER_ADDR:
                n = (target - stubs) // 16
                r = f"Switcher stub {n} &rarr; Host <span class=\"dim\">DPL {hi >> 13 & 3}</span>"
                cls = ""
            else:
                directs += 1
                r = (f"<b>direct</b> to {esc(s.describe(target))} "
                     f'<span class="dim">{GATE_TYPES.get(hi >> 8 & 0xF, "?")} '
                     f"DPL {hi >> 13 & 3}</span>")
                cls = "direct"
            rows.append([f"{v} ({v:#x})", esc(VECTOR_NAMES.get(v, "")), g, r])
            classes.append(cls)
        note = (f"<div>{directs} direct trap(s): the CPU delivers those to the Guest at ring 1 "
                "with no world switch. Everything else goes through the Switcher to the Host, "
                "which reflects it to the Guest's handler if it wants it.</div>")
        return table(rows, ["vector", "", "Guest's gate (lg.idt)", "real gate (Switcher's IDT)"],
                     classes) + note

    def _gate(self, gate: tuple[int, int]) -> str:
        lo, hi = gate
        if not hi & 0x8000:
            return '<span class="dim">none</span>'
        t = hi >> 8 & 0xF
        return (f"{esc(self.session.describe(gate_target(lo, hi)))} "
                f"<span class=\"dim\">{GATE_TYPES.get(t, '?')} DPL {hi >> 13 & 3}</span>")


class TSSView(View):
    """The Guest's TSS (in the Switcher's read-only page) and the Host's."""

    title = "TSS: where a trap finds its stack"
    name = "tss"

    def body(self) -> str:
        s = self.session
        mem = s.mem
        rows = []
        for label, base in (("Guest's TSS (Switcher page)", PERCPU_RO + RO_GUEST_TSS),
                            ("Host's TSS", HOST_TSS)):
            esp0, ss0, esp1, ss1 = struct.unpack("<IIII", mem.read(base + 4, 16))
            iomap = struct.unpack("<H", mem.read(base + 0x66, 2))[0]
            rows.append([esc(label), f"host-phys {h8(base)}", f"{h4(ss0)}:{h8(esp0)}",
                         f"{h4(ss1)}:{h8(esp1)}", f"{iomap:#x}"])
        lg = s.lg
        note = ""
        if lg is not None:
            note = (f"<div>ss0:esp0 is the end of the regs page (the Switcher's stack: a trap "
                    f"from the Guest pushes its frame straight into struct lguest_regs); ss1:esp1 "
                    f"is the Guest kernel's stack, from its SET_STACK hypercall "
                    f"({h4(lg.ss1)}:{h8(lg.esp1)}, {lg.stack_pages} page(s) pinned).</div>")
        return table(rows, ["", "at", "ss0:esp0", "ss1:esp1", "I/O map"]) + note
