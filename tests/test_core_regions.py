"""Regions (regions.py, P:058) against plain blocks and single steps.

A region strings the blocks of a hot loop nest into one function.  Whatever
leaves it early (the instruction limit, the cycle deadline, a breakpoint, a
fault, a store over its code), everything a program can see must be what the
plain blocks, or stepping, give.  These tests make every block a region's
entry at once (`translate.HOT = 1`) and compare with regions turned off.
"""

from __future__ import annotations

import random

import pytest
from asm import assemble
from test_core_blocks import boot_workload, snapshot, workload  # noqa: F401 - a fixture
from x86env import CODE, PF_VEC, Env

from lguestsim.x86 import translate


def counts(cpu) -> tuple[int, int]:
    return cpu.tlb.hits, cpu.tlb.misses


def regions_in(cpu) -> int:
    return sum(b.fn.__code__.co_filename.startswith("<region") for b in cpu.bcache.values())


@pytest.fixture
def hot(monkeypatch):
    monkeypatch.setattr(translate, "HOT", 1)


def test_regions_run_as_plain_blocks_and_steps_do(workload, monkeypatch):  # noqa: F811
    image, entry = workload
    n = 50_000
    monkeypatch.setattr(translate, "HOT", 1)
    fast, fmem = boot_workload(image, entry)
    assert fast.run(n) == "limit"
    assert regions_in(fast) >= 5
    monkeypatch.setattr(translate, "HOT", 0)
    plain, pmem = boot_workload(image, entry)
    assert plain.run(n) == "limit"
    assert regions_in(plain) == 0
    assert snapshot(fast) == snapshot(plain)
    assert counts(fast) == counts(plain)
    assert bytes(fmem.ram) == bytes(pmem.ram)
    slow, smem = boot_workload(image, entry)
    for _ in range(30_000):
        assert slow.step() is None
    monkeypatch.setattr(translate, "HOT", 1)
    fast2, f2mem = boot_workload(image, entry)
    assert fast2.run(30_000) == "limit"
    assert snapshot(fast2) == snapshot(slow)
    assert bytes(f2mem.ram) == bytes(smem.ram)


def test_regions_stop_exactly_at_limits_and_deadlines(workload, hot):  # noqa: F811
    image, entry = workload
    whole, wmem = boot_workload(image, entry)
    assert whole.run() == "hlt"
    sliced, smem = boot_workload(image, entry)
    rng = random.Random(11)
    while True:
        why = sliced.run(rng.choice([1, 5, 50, 333, 4096, 1 << 30]),
                         deadline=sliced.cycles + rng.choice([1, 7, 100, 2000, 1 << 40]))
        if why == "hlt":
            break
        assert why in ("limit", "deadline")
    assert regions_in(sliced) >= 5
    assert snapshot(sliced) == snapshot(whole)
    assert bytes(smem.ram) == bytes(wmem.ram)


LOOP = """
        mov $0x1ff000, %esi
        xor %ebx, %ebx
        mov $5000, %ecx
    loop:
        add (%esi), %ebx
        test $1, %ecx
        jz 1f
        inc %edi
    1:
        add $4, %esi
        dec %ecx
        jnz loop
        hlt
"""


def walking_to_a_hole(program: str, word, hot_level: int, monkeypatch) -> Env:
    """``program`` with paging on, the page at 0x1ff000 filled with ``word(address)``
    and the one after it unmapped; blocks made regions' entries at once (HOT
    1) or never (HOT 0)."""
    monkeypatch.setattr(translate, "HOT", hot_level)
    env = Env(paging=True)
    env.pt.unmap(0x200000)
    env.code(assemble(program, CODE))
    for a in range(0x1FF000, 0x200000, 4):
        env.mem.write32(a, word(a))
    return env


@pytest.mark.parametrize("hot_level", [1, 0])
def test_fault_inside_a_region_is_precise(monkeypatch, hot_level):
    """A two-block loop walking into an unmapped page faults at the exact instruction."""
    env = walking_to_a_hole(LOOP, lambda a: 1, hot_level, monkeypatch)
    cpu = env.cpu
    cpu.run(100_000)
    assert (regions_in(cpu) > 0) == bool(hot_level)
    assert cpu.last_exception == (PF_VEC, 0)
    assert cpu.cr2 == 0x200000 and cpu.esi == 0x200000
    assert cpu.ebx == 1024 and cpu.ecx == 5000 - 1024 and cpu.edi == 512
    error_code, eip, cs, eflags = env.stack(4)
    assert eip == CODE + 12                      # the add that faulted
    assert not eflags & 0x40                     # jnz saw dec's result: ZF clear
    assert cpu.instructions == 3 + 1024 * 6 + 512 + 1       # and the handler's hlt


def test_breakpoint_in_a_region_stops_there(hot):
    env = Env()
    env.code(assemble(LOOP.replace("0x1ff000", "0x100000"), CODE))
    cpu = env.cpu
    assert cpu.run(200) == "limit"
    assert regions_in(cpu) > 0
    cpu.eip = CODE + 12                          # the region's entry
    cpu.breakpoints.add(CODE + 23)               # the add after the jz: inside the region
    assert cpu.run(10_000) == "breakpoint"
    assert cpu.eip == CODE + 23


def test_store_over_a_region_drops_it(hot):
    """A region whose second block is rewritten runs the new code next time."""
    env = Env()
    code = assemble("""
        mov $40, %ecx
    again:
        call work
        cmp $20, %ecx
        jne 1f
        movb $0x47, patch              # inc %esi -> inc %edi
    1:
        dec %ecx
        jnz again
        hlt
    work:
        test $1, %ecx
        jz 2f
    patch:
        inc %esi
    2:
        ret
    """, CODE)
    env.code(code)
    cpu = env.cpu
    assert cpu.run(100_000) == "hlt"
    assert (cpu.esi, cpu.edi) == (10, 10)


NEST = """
        mov $0x1ff000, %esi
        xor %ebx, %ebx
        mov $3, %edx
    outer:
        mov $700, %ecx
        stc
    inner:
        add (%esi), %ebx
        adc $0, %ebx
        inc %edi
        add $4, %esi
        dec %ecx
        jnz inner
        sub $0x800, %esi
        dec %edx
        jnz outer
        hlt
"""


# The same without adc and inc: the inner loop reads no flags it was entered
# with, so it keeps its flags in its temporaries until it is left.
NEST_PLAIN = NEST.replace("        adc $0, %ebx\n        inc %edi\n", "")


# Blocks that keep the carry they were entered with (inc) and hand it on
# (adc): a region finds it in the lazy flags it holds in locals.  The carry
# alternates with the words read; the read after the inc faults at the end
# of the page.
CARRIED = """
        mov $0x1ff000, %esi
        xor %ebx, %ebx
        mov $3000, %ecx
    top:
        mov (%esi), %eax
        cmp $0x80000000, %eax
        jmp 1f
    1:
        inc %edi
        mov 4(%esi), %edx
        jmp 2f
    2:
        adc $0, %ebx
        add $4, %esi
        dec %ecx
        jnz top
        hlt
"""


def _nest(hot_level: int, monkeypatch, program: str = NEST) -> Env:
    return walking_to_a_hole(program, lambda a: 0xFFFFFFFF if a & 4 else 1, hot_level, monkeypatch)


@pytest.mark.parametrize("program", [NEST, NEST_PLAIN, CARRIED],
                         ids=["entry-flags", "own-flags", "carried"])
def test_a_block_looping_inside_a_region_faults_and_stops_exactly(monkeypatch, program):
    """The inner loop runs as a loop of its own inside the outer loop's region
    (its passes counted once it leaves); a fault on a late pass, and every
    limit and deadline along the way, leave what plain blocks and steps leave."""
    plain = _nest(0, monkeypatch, program)
    assert plain.cpu.run(100_000) == "hlt"
    assert plain.cpu.last_exception == (PF_VEC, 0)
    assert regions_in(plain.cpu) == 0
    hot = _nest(1, monkeypatch, program)
    assert hot.cpu.run(100_000) == "hlt"
    sources = "".join(b.source for b in hot.cpu.bcache.values() if b.parts)
    assert ("CARRY[" if program is CARRIED else "while True:") in sources
    assert snapshot(hot.cpu) == snapshot(plain.cpu)
    assert counts(hot.cpu) == counts(plain.cpu)
    assert hot.stack(4) == plain.stack(4)
    stepped = _nest(0, monkeypatch, program)
    while stepped.cpu.step() is None and not stepped.cpu.halted:
        pass
    assert snapshot(stepped.cpu) == snapshot(plain.cpu)
    # Sliced by limits and deadlines, a region stops where plain blocks stop.
    stops = {}
    for level in (0, 1):
        cpu = _nest(level, monkeypatch, program).cpu
        rng = random.Random(5)
        stops[level] = []
        while True:
            why = cpu.run(rng.choice([1, 3, 50, 700, 5000]),
                          deadline=cpu.cycles + rng.choice([1, 9, 400, 1 << 40]))
            stops[level].append((why, snapshot(cpu)))
            if why == "hlt":
                break
        assert snapshot(cpu) == snapshot(plain.cpu)
    assert stops[1] == stops[0]
    assert len(stops[1]) > 50


def test_one_call_of_a_region_runs_a_bounded_number_of_cycles(monkeypatch):
    """A region counts instructions in 32 bits of a wider counter, so one call
    runs at most MAX_CYCLES cycles however large its budget; run() then calls
    it again.  With the bound made small, one call stops near it, and a whole
    run still counts every instruction and cycle."""
    from lguestsim.x86 import regions

    whole = _nest(1, monkeypatch, NEST_PLAIN)
    assert whole.cpu.run(100_000) == "hlt"
    monkeypatch.setattr(regions, "MAX_CYCLES", 500)
    bounded = _nest(1, monkeypatch, NEST_PLAIN)
    assert bounded.cpu.run(100_000) == "hlt"
    assert snapshot(bounded.cpu) == snapshot(whole.cpu)
    cpu = _nest(1, monkeypatch, NEST_PLAIN).cpu
    assert cpu.run(1) == "limit"             # the first block is made a region's entry
    region = cpu.bcache[CODE]
    assert region.parts and "cb = 0x1f4" in region.source
    cpu.eip = CODE
    region.fn(cpu, 1 << 62, 1 << 62)         # (its first page walk ends this call)
    cpu.eip = CODE
    before = cpu.cycles
    region.fn(cpu, 1 << 62, 1 << 62)
    assert 500 <= cpu.cycles - before < 600
