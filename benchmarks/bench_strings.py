#!/usr/bin/env python3
"""The string benchmark: how fast rep stos and rep movs run on lguestsim's core.

Each case is one instruction over 16 MiB (``--mib``) with PAGING ON: a page
directory and 4 KiB page tables identity-map the RAM, cr3 points at them and
cr0.PG is set, so the core's bulk path goes a page at a time, walking the
tables for every new page and setting the accessed and dirty bits.  The CPU
runs with a cycle deadline every ``--slice`` cycles, as the Host's timer gives
it, so the rep is stopped and resumed at each deadline on the way (the
interruptible path is the one measured).  MB/s is bytes moved per second of
wall-clock time while the simulator runs the instruction (10^6 bytes); the
goals are issue 10's 50 MB/s and issue 14's 100 MB/s.  Each case checks its
result (ECX = 0, EDI at the end, the bytes written) and the exact cycle
count, which the stops must not change.  Figures are printed and written to
benchmarks/out/bench_strings.json; they are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(ROOT))

from code_cache_env import isolate  # noqa: E402

from lguestsim.x86 import CPU, PhysicalMemory, timing  # noqa: E402

MIB = 1 << 20
PGDIR = 0x1000
PGTABLES = 0x2000
CODE = 0x100000
SRC = 0x200000          # movs source; the destination follows it
GOAL_ISSUE10 = 50.0
GOAL_ISSUE14 = 100.0

CASES = {   # name: (code, element size)
    "rep stosb": (b"\xf3\xaa", 1),
    "rep stosd": (b"\xf3\xab", 4),
    "rep movsb": (b"\xf3\xa4", 1),
    "rep movsd": (b"\xf3\xa5", 4),
}


def machine(nbytes: int) -> tuple[CPU, PhysicalMemory, int]:
    """RAM for source and destination, identity-mapped in 4 KiB pages, paging on."""
    dst = SRC + nbytes
    size = (dst + nbytes + 4 * MIB - 1) & ~(4 * MIB - 1)
    mem = PhysicalMemory(size)
    tables = size // (4 * MIB)
    for t in range(tables):
        mem.write32(PGDIR + 4 * t, (PGTABLES + 0x1000 * t) | 3)
        mem.write(PGTABLES + 0x1000 * t,
                  b"".join(struct.pack("<I", ((t * 1024 + i) << 12) | 3) for i in range(1024)))
    cpu = CPU(mem)
    cpu.reset_flat32()
    cpu.cr3 = PGDIR
    cpu.cr0 = cpu.cr0 | 0x80000000
    return cpu, mem, dst


def run_case(name: str, nbytes: int, slice_cycles: int) -> dict:
    code, size = CASES[name]
    cpu, mem, dst = machine(nbytes)
    mem.write(CODE, code + b"\xf4")
    if "movs" in name:
        pattern = bytes(range(251)) * (nbytes // 251 + 1)
        mem.write(SRC, pattern[:nbytes])
    cpu.eax = 0x5A5A5A5A
    cpu.ecx = nbytes // size
    cpu.esi = SRC
    cpu.edi = dst
    cpu.eip = CODE
    deadlines = 0
    start = time.perf_counter()
    while True:
        why = cpu.run(deadline=cpu.cycles + slice_cycles)
        if why != "deadline":
            break
        deadlines += 1
    seconds = time.perf_counter() - start
    want = (mem.read(SRC, nbytes) if "movs" in name else b"\x5a" * nbytes)
    ok = (why == "hlt" and cpu.ecx == 0 and cpu.edi == dst + nbytes
          and mem.read(dst, nbytes) == want)
    op = name.split()[1][:-1]
    # The exact count: every element, the set-up and the instruction once (however
    # often the deadline stopped it), the hlt, and a page walk for each page
    # touched (the code page, and each source and destination page).
    walks = 1 + (2 if op == "movs" else 1) * (nbytes // 4096)
    cycles = (timing.BASE[op] * (nbytes // size) + timing.REP_SETUP + timing.BASE[op]
              + timing.BASE["hlt"] + timing.PAGE_WALK * walks)
    ok = ok and cpu.cycles == cycles
    return {"case": name, "bytes": nbytes, "seconds": round(seconds, 4),
            "MB/s": round(nbytes / seconds / 1e6, 1), "stops": deadlines,
            "cycles": cpu.cycles, "cycles_expected": cycles, "ok": ok}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=16, help="bytes per case, in MiB (16)")
    ap.add_argument("--slice", type=int, default=1_000_000,
                    help="cycles between two deadlines (1000000)")
    ap.add_argument("--only", choices=sorted(CASES), action="append")
    args = ap.parse_args()
    isolate()
    print(f"lguestsim rep strings, {args.mib} MiB each, paging on, a deadline every "
          f"{args.slice} cycles; Python {platform.python_version()}")
    print(f"goals: >= {GOAL_ISSUE10:.0f} MB/s (issue 10), >= {GOAL_ISSUE14:.0f} MB/s (issue 14)")
    results = []
    for name in args.only or CASES:
        res = run_case(name, args.mib * MIB, args.slice)
        results.append(res)
        goal = ("meets 100" if res["MB/s"] >= GOAL_ISSUE14 else
                "meets 50" if res["MB/s"] >= GOAL_ISSUE10 else "below 50")
        print(f"  {name:10}  {res['MB/s']:7.1f} MB/s  {res['seconds']:7.3f} s  "
              f"{res['stops']:5} stops  {goal:9}  {'ok' if res['ok'] else 'WRONG RESULT'}")
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_strings.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
