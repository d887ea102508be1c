#!/usr/bin/env python3
"""lguest's own published figures, each measured again on lguestsim with its switch.

lguest's authors measured a handful of shortcuts as they added them
(../shared/ABI.md, section H).  Each experiment here runs the same Guest
twice, with the shortcut and with the switch that turns it off, and prints
the simulated ratio (1 cycle = 1 ns at the simulated 1000 MHz) beside
lguest's own:

- direct traps: a system call straight into the Guest, or through the Host
  (`Host(direct_traps=False)`; lguest: 1750 ns -> 270 ns);
- the CHANGED_* flags: a Guest context switch (LOAD_TLS and NEW_PGTABLE
  between two address spaces), the GDT and IDT copied into the Switcher's
  pages only when they changed, or on every entry (`Host(changed_flags=False)`;
  lguest: 7800 ns -> 9000 ns);
- SET_PTE installing a young, dirty entry at once: a copy-on-write-like
  Guest that points page table entries at fresh pages and copies a page
  into each (`Host(set_pte_at_once=False)`: every first write takes a shadow
  fault; lguest: 10%);
- the Guest reserving all I/O ports: the shipped Guest's boot, its legacy
  drivers finding their ports taken, or probing them with every access
  trapping to the Host (Guest command line "noioreserve"; lguest: boot
  4.1 s -> 0.45 s);
- ending a whole block request at once: the shell's blkbench on a disk, or
  with the driver ending one piece at a time and sending the rest again
  (Guest command line "endfirstpiece"; lguest: disk speed +130%);
- page faults as the main cost: where the cycles and the exits of the shipped
  Guest's boot go, by the reason the Guest left.

Counts (exits, reloads, faults) are exact; the cycles the Host spends are
its cost model's estimates (lguestsim/host/cost.py), so the ratios say what
the model makes of each shortcut, not what a 2007 machine did.  Figures go
to stdout and benchmarks/out/bench_figures.json; they are reported, never
asserted (tests/test_figures.py checks that each switch changes what it
names).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from bench_lguest import MARK, TAIL  # noqa: E402
from code_cache_env import isolate  # noqa: E402

PGDIR = 0x7FF000        # guestenv's page directory: the top page of the Guest's 8 MiB
LINEAR = 0x7FD000       # ... and its page tables, all RAM mapped at PAGE_OFFSET


@dataclass
class Figure:
    """One experiment: the shortcut on ("with") and off ("without")."""

    name: str
    switch: str
    unit: str
    with_: float
    without: float
    lguest: str
    lguest_ratio: float
    counts: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.without / self.with_

    @property
    def measured(self) -> str:
        return (f"{self.ratio:.2f}x ({self.with_:,.0f} -> {self.without:,.0f} {self.unit} "
                f"without)")

    def as_json(self) -> dict:
        d = asdict(self)
        d["with"] = d.pop("with_")
        return d | {"ratio": round(self.ratio, 3), "measured": self.measured}


def between_marks(source: str, **host_options) -> tuple[int, object, object]:
    """Boot a tiny Guest that sends a DMA to key 0 before and after its measured
    part: (cycles between the two, its struct lguest, the Host)."""
    import guestenv
    host, dev, lg, _ = guestenv.boot(source, **host_options)
    dev.read(8)
    c0 = host.cpu.cycles
    dev.read(8)
    return host.cpu.cycles - c0, lg, host


# -- direct traps (the experiment is bench_lguest.py's, folded in here)

def direct_traps(calls: int = 1000) -> Figure:
    import bench_lguest
    on, switches_on = bench_lguest.measure(True, calls)
    off, switches_off = bench_lguest.measure(False, calls)
    return Figure("direct traps (a system call)", "Host(direct_traps=False)", "cycles/call",
                  on, off, "1750 ns -> 270 ns, 6.5x", 1750 / 270,
                  {"world switches with": switches_on, "world switches without": switches_off})


# -- the CHANGED_* flags

def context_switch_guest(switches: int) -> str:
    """Two address spaces, and a context switch between them as Linux's makes it:
    the next task's TLS entries (LOAD_TLS), then its page tables (NEW_PGTABLE)."""
    return f"""
        HCALL 1, lguest_data-PO
        movl $PO+{PGDIR:#x}, %esi          # a second page directory: a copy of the first
        movl $PO+0x300000, %edi
        movl $1024, %ecx
        cld
        rep movsl
        {MARK}
        movl ${switches // 2}, %esi
1:      HCALL 16, tls-PO
        HCALL 4, 0x300000
        HCALL 16, tls-PO
        HCALL 4, {PGDIR:#x}
        decl %esi
        jnz 1b
        {MARK}
{TAIL}
        .p2align 3
tls:    .fill 3, 8, 0
"""


def changed_flags(switches: int = 1000) -> Figure:
    src = context_switch_guest(switches)
    results = {}
    for flags in (True, False):
        cycles, lg, host = between_marks(src, changed_flags=flags)
        results[flags] = (cycles / switches, host.charges["copy_idt"], host.charges["copy_gdt"],
                          lg.world_switches)
    (on, idt_on, gdt_on, switches_on), (off, idt_off, gdt_off, switches_off) = \
        results[True], results[False]
    return Figure("CHANGED_* flags (a Guest context switch)", "Host(changed_flags=False)",
                  "cycles/switch", on, off, "7800 ns -> 9000 ns without them, 1.15x", 9000 / 7800,
                  {"IDT copies with": idt_on, "IDT copies without": idt_off,
                   "GDT copies with": gdt_on, "GDT copies without": gdt_off,
                   "world switches": switches_on, "world switches without": switches_off})


# -- SET_PTE installing DIRTY/ACCESSED entries at once

def cow_guest(pages: int) -> str:
    """For each page: a new entry (young and dirty, as Linux's copy-on-write
    makes it) pointing the next page of a region at a fresh frame, SET_PTE, and
    a copy of a page into it."""
    return f"""
        HCALL 1, lguest_data-PO
        {MARK}
        xorl %ebp, %ebp                    # which page
1:      movl %ebp, %eax
        shll $12, %eax
        leal 0x400000+0x67(%eax), %ecx     # the fresh frame, DIRTY|ACCESSED|USER|RW|PRESENT
        movl %ecx, PO+{LINEAR:#x}+0x800(,%ebp,4)   # the Guest's own entry for PO+2MiB+page
        leal PO+0x200000(%eax), %ebx
        movl %ebx, %edi
        movl $14, %eax                     # LHCALL_SET_PTE(pgdir, vaddr, pte)
        movl ${PGDIR:#x}, %edx
        int $0x1f
        movl $PO+0x100000, %esi            # copy a page (the code's) into the new one
        movl $1024, %ecx
        rep movsl
        incl %ebp
        cmpl ${pages}, %ebp
        jne 1b
        {MARK}
{TAIL}
"""


def region_faults(host) -> int:
    lo, hi = 0xC0200000, 0xC0600000
    return sum(1 for e in host.trace.events
               if e.kind == "pagefault" and lo <= e.data.get("vaddr", 0) < hi)


def set_pte_at_once(pages: int = 256) -> Figure:
    src = cow_guest(pages)
    results = {}
    for at_once in (True, False):
        cycles, lg, host = between_marks(src, set_pte_at_once=at_once)
        results[at_once] = (cycles / pages, region_faults(host), lg.world_switches)
    (on, f_on, ws_on), (off, f_off, ws_off) = results[True], results[False]
    return Figure("SET_PTE installs DIRTY/ACCESSED entries at once (copy-on-write)",
                  "Host(set_pte_at_once=False)", "cycles/page", on, off,
                  "10% on a copy-on-write benchmark, 1.10x", 1.10,
                  {"shadow faults with": f_on, "shadow faults without": f_off,
                   "world switches with": ws_on, "world switches without": ws_off})


# -- the Guest ending a whole block request at once

def block_workload(cmdline: tuple[str, ...], kib: int) -> dict:
    """The shipped 2.6.23 Guest's `blkbench KIB` on a disk, with ``cmdline``
    added to its command line: the command's world switches, hypercalls and
    cycles (bench_virtio's run of it)."""
    from bench_virtio import blkbench

    return blkbench(False, kib, cmdline)


def whole_requests(kib: int = 256) -> Figure:
    whole = block_workload((), kib)
    pieces = block_workload(("endfirstpiece",), kib)
    per_kib = 2 * kib       # written, then read back
    return Figure("ending a whole block request at once (blkbench)",
                  'Guest command line "endfirstpiece"', "cycles/KiB",
                  whole["cycles"] / per_kib, pieces["cycles"] / per_kib,
                  "disk speed +130%, 2.3x", 2.3,
                  {"hypercalls with": whole["hypercalls"],
                   "hypercalls without": pieces["hypercalls"],
                   "world switches with": whole["world switches"],
                   "world switches without": pieces["world switches"]})


# -- page faults as the main cost: a boot's exits by reason

IDLE = "HALT"
ASLEEP = "hypercall HALT: asleep until a timer"      # idle time, not a cost
REASONS = {14: "page fault", 13: "general protection", 7: "device not available (FPU)",
           0x1F: "hypercall", 0x20: "Host timer interrupt", 0x80: "system call"}


def exit_reason(trapnum: int, events) -> str:
    if trapnum == 14:
        handled = any(e.kind == "pagefault" and e.data.get("handled") for e in events)
        return "page fault: shadow filled" if handled else "page fault: the Guest's own"
    if trapnum == 13 and any(e.kind == "trap" and e.data.get("emulated") for e in events):
        return "in/out emulated"
    if trapnum == 0x1F:
        names = [e.data.get("name") for e in events if e.kind == "hypercall"]
        if IDLE in names:
            return ASLEEP
        return f"hypercall {names[-1]}" if names else "hypercall"
    return REASONS.get(trapnum, f"trap {trapnum}")


def boot_breakdown(cmdline: tuple[str, ...] = (), virtio: bool = False) -> dict:
    """Step the shipped Guest's boot and charge every cycle to where it went: the
    Guest's own instructions, or the exit that took it out (the Switcher's way
    out, the Host's work, the Switcher's way back in)."""
    from lguestsim.session import Session
    from lguestsim.world import FINISHED, HOST_STEP
    s = Session.boot(cmdline=cmdline, virtio=virtio)
    w = s.world
    cpu, trace = w.cpu, s.trace
    start = cpu.cycles
    cycles: Counter[str] = Counter()
    exits: Counter[str] = Counter()
    guest = 0
    switcher_pending = 0          # the Switcher's cycles not yet put to a reason
    last = "the first entry"
    while True:
        before = cpu.cycles
        if w.gen is not None and not w.in_trip:
            # The trip is over: its reason is in the registers the Switcher saved.
            trapnum = w.run.lg.regs.trapnum
            mark = len(trace.events)
            if w.step() == FINISHED:
                break
            last = exit_reason(trapnum, trace.events[mark:])
            exits[last] += 1
            cycles[last] += cpu.cycles - before + switcher_pending
            switcher_pending = 0
            continue
        ring0 = w.in_trip and cpu.cpl == 0
        kind = w.step()
        if kind == FINISHED:
            break
        took = cpu.cycles - before
        if kind == HOST_STEP:
            cycles["the Host, between reads"] += took
        elif ring0:
            switcher_pending += took
        else:
            if switcher_pending:         # the way back in belongs to the last exit
                cycles[last] += switcher_pending
                switcher_pending = 0
            guest += took
    cycles[last] += switcher_pending
    total = guest + sum(cycles.values())
    busy = total - cycles[ASLEEP]
    rows = sorted(((k, exits[k], cycles[k]) for k in cycles), key=lambda r: -r[2])
    return {"cmdline": list(cmdline), "virtio": virtio, "total_cycles": total,
            "busy_cycles": busy, "guest_cycles": guest, "exits": sum(exits.values()),
            "by_reason": [{"reason": k, "exits": n, "cycles": c,
                           "share": None if k == ASLEEP else round(c / busy, 4)}
                          for k, n, c in rows],
            "instructions": cpu.instructions, "cycles_from": start, "cycles_to": cpu.cycles,
            "world_switches": sum(run.lg.world_switches for run in w.runs if run.lg)}


def reserved_ports() -> tuple[Figure, dict, dict]:
    """The shipped Guest's boot with its I/O ports reserved, and with "noioreserve":
    the awake cycles, and the in/out instructions the Host emulated."""
    reserved = boot_breakdown()
    probed = boot_breakdown(("noioreserve",))

    def emulated(b: dict) -> int:
        return sum(r["exits"] for r in b["by_reason"] if r["reason"] == "in/out emulated")

    return (Figure("the Guest reserving all I/O ports (the boot)",
                   'Guest command line "noioreserve"', "cycles awake",
                   reserved["busy_cycles"], probed["busy_cycles"],
                   "boot 4.1 s -> 0.45 s, 9.1x", 4.1 / 0.45,
                   {"in/out traps with": emulated(reserved), "in/out traps without":
                    emulated(probed), "exits with": reserved["exits"],
                    "exits without": probed["exits"]}), reserved, probed)


def print_figure(f: Figure) -> None:
    print(f"{f.name}:  switch {f.switch}")
    print(f"  with {f.with_:10,.1f} {f.unit}   without {f.without:10,.1f}   ratio "
          f"{f.ratio:5.2f}x   (lguest: {f.lguest})")
    print("  " + ", ".join(f"{k} {v}" for k, v in f.counts.items()))


def print_breakdown(b: dict, title: str) -> None:
    busy = b["busy_cycles"]
    print(f"{title}: {b['total_cycles']:,} cycles, {busy:,} of them awake, {b['exits']:,} "
          f"exits; the Guest's own instructions {b['guest_cycles']:,} cycles "
          f"({b['guest_cycles'] / busy:.0%} of the awake cycles)")
    for r in b["by_reason"]:
        per = f"{r['cycles'] / r['exits']:8,.0f} each" if r["exits"] else " " * 13
        share = "      " if r["share"] is None else f"{r['share']:6.1%}"
        print(f"  {r['reason']:38} {r['exits']:6,} exits {r['cycles']:11,} cycles "
              f"{share}  {per}")


def page_fault_summary(b: dict) -> tuple[float, str]:
    """Page faults' share of the awake cycles, and the costliest reason to leave."""
    faults = sum(r["cycles"] for r in b["by_reason"] if r["reason"].startswith("page fault"))
    exits = [r for r in b["by_reason"] if r["exits"] and r["reason"] != ASLEEP]
    return faults / b["busy_cycles"], max(exits, key=lambda r: r["cycles"])["reason"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000, help="system calls (1000)")
    ap.add_argument("--switches", type=int, default=1000, help="context switches (1000)")
    ap.add_argument("--pages", type=int, default=256, help="copy-on-write pages (256)")
    ap.add_argument("--kib", type=int, default=256, help="KiB blkbench writes and reads (256)")
    args = ap.parse_args(argv)
    isolate()
    ports, boot, _ = reserved_ports()
    figures = [direct_traps(args.calls), changed_flags(args.switches),
               set_pte_at_once(args.pages), ports, whole_requests(args.kib)]
    for f in figures:
        print_figure(f)
    print_breakdown(boot, "the shipped Guest's boot (2.6.23), by why it left the Guest")
    share, top = page_fault_summary(boot)
    print(f"  page faults: {share:.0%} of the awake cycles; the costliest reason to leave "
          f"the Guest: {top}  (lguest: page faults are the main cost)")
    out = {"figures": [f.as_json() for f in figures], "boot_breakdown": boot}
    out["figures"].append({"name": "page faults as the main cost (the boot's exits by reason)",
                           "switch": "none: a breakdown", "lguest": "page faults are the main cost",
                           "measured": f"page faults {share:.0%} of the boot's awake cycles; "
                                       f"costliest reason: {top}"})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_figures.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
