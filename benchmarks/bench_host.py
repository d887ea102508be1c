#!/usr/bin/env python3
"""The Host's own costs under a Guest that leans on them: FLUSH_TLB(1) and the frame pool.

Issue 10 found 3,000 LHCALL_FLUSH_TLB(1) calls taking seconds of Host time,
because each walked all 1023 entries of four shadow directories.  A flush
now visits only the entries a shadow holds.  This prints:

- **host**: the Host's part alone, 3,000 calls of the hypercall handler for a
  Guest that has mapped its code, stack and a few MiB (the target is under
  1 s), and the same for a Guest holding its whole quota of shadow tables,
  where a flush has that much to release and rebuild;
- **guest**: 3,000 FLUSH_TLB(1) made by a tiny Guest, synchronously (one
  world switch each, plus the refault of its code page that every flush
  causes) and batched 60 at a time through the asynchronous hypercall ring,
  which is how a Guest in lazy mode sends them: wall time for all of it,
  simulated CPU included.

Figures are printed, never asserted: run with `make bench` or directly.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CALLS = 3000

MAPPER = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 7, 0x69, stack_top, 1
        movl $0xC0200000, %edi             # touch 5 MiB, one page in sixteen
1:      movl %edi, (%edi)
        addl $0x10000, %edi
        cmpl $0xC0700000, %edi
        jne 1b
2:      HCALL 10                           # then sleep, shadows and all
        jmp 2b
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""

SYNC = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 7, 0x69, stack_top, 1
        movl $%d, %esi
1:      HCALL 5, 1
        decl %esi
        jnz 1b
        HCALL 2, msg-PO
msg:    .asciz "done"
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""


def async_source() -> str:
    """3,000 FLUSH_TLB(1) through the asynchronous ring (tests/hostile.py's loop)."""
    from hostile import ASYNC_FLUSHES
    return """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 7, 0x69, stack_top, 1
""" + ASYNC_FLUSHES + """        HCALL 2, msg-PO
msg:    .asciz "done"
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""


def host_part(source: str, what: str, calls: int) -> None:
    """Time the hypercall handler alone, for a Guest asleep with its shadows built."""
    from guestenv import boot
    from hostile import run_hostile

    host, dev, lg, _ = boot(source)
    assert run_hostile(dev) is None             # it sleeps, alive
    held = lg.shadow.pages
    start = time.perf_counter()
    for _ in range(calls):
        host.hypercalls.do_hcall(lg, 5, 1, 0, 0)
    took = time.perf_counter() - start
    print(f"host  {calls:5} FLUSH_TLB(1), {what} ({held} frames): {took:.3f} s, "
          f"{took / calls * 1e6:.0f} us each")


def guest_part(source: str, what: str) -> None:
    from guestenv import boot, run_to_death
    host, dev, lg, _ = boot(source.replace("%d", str(CALLS)))
    start = time.perf_counter()
    reason, _ = run_to_death(dev)
    took = time.perf_counter() - start
    assert reason == "CRASH: done", reason
    print(f"guest {CALLS:5} FLUSH_TLB(1), {what}: {took:.2f} s "
          f"({lg.world_switches} world switches)")


def main() -> None:
    from code_cache_env import isolate
    from hostile import HOARDER
    isolate()
    host_part(MAPPER, "a Guest with its code, stack and 5 MiB mapped", CALLS)
    host_part(HOARDER, "a Guest holding its whole quota", 30)
    guest_part(SYNC, "one hypercall each")
    guest_part(async_source(), "60 a trip through the async ring")


if __name__ == "__main__":
    main()
