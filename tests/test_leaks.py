"""Nothing grows without bound: CPUs, machines and sessions can be made and dropped forever.

A notebook boots many sessions and a long test run makes thousands of CPUs,
so whatever one of them leaves behind adds up.  These tests count the
structures (the memory's watchers, the block lists of a code page) and
measure the heap with tracemalloc; none of them times anything.
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref

from asm import need_binutils
from x86env import CODE, Env

from lguestsim.machine import Machine
from lguestsim.session import Session
from lguestsim.x86 import CPU, PhysicalMemory

MIB = 1 << 20


def test_dropped_cpus_stop_watching_memory() -> None:
    """The memory holds its watchers weakly: 500 CPUs made and dropped leave none behind."""
    mem = PhysicalMemory(1 << 16)
    keep = CPU(mem)
    for _ in range(500):
        CPU(mem)
    assert mem.watchers == [keep._memory_written]
    assert len(mem._watchers) <= 2     # the live one, and at most the last dropped
    # The CPU that is left still hears of writes: code written over is retranslated.
    mem.write(0x1000, b"\xb8\x01\x00\x00\x00\xf4")     # mov eax, 1; hlt
    keep.reset_flat32()
    keep.eip = 0x1000
    assert keep.run(10) == "hlt" and keep.eax == 1
    mem.write(0x1001, b"\x02")                          # now mov eax, 2
    keep.halted = False
    keep.eip = 0x1000
    assert keep.run(10) == "hlt" and keep.eax == 2


def test_watch_and_unwatch() -> None:
    """A plain function is held until unwatched; unwatching a stranger is an error."""
    mem = PhysicalMemory(4096)
    seen = []

    def note(addr: int, n: int) -> None:
        seen.append((addr, n))

    mem.watch(note)
    mem.write(16, b"abc")
    mem.unwatch(note)
    mem.write(16, b"d")
    assert seen == [(16, 3)]
    try:
        mem.unwatch(note)
    except ValueError as e:
        assert "not watching" in str(e)
    else:
        raise AssertionError("unwatch of a callback not watching must fail")


def test_a_dropped_machine_is_freed_at_once() -> None:
    """No reference cycle ties a CPU to its memory: dropping a Machine frees its RAM
    by reference counting alone, without waiting for the cycle collector."""
    gc.disable()
    try:
        m = Machine(4 * MIB)
        mem, cpu = weakref.ref(m.mem), weakref.ref(m.cpu)
        m.cpu.reset_flat32()
        m.mem.write(0, b"\x90\xf4")
        m.cpu.run(4)
        del m
        assert mem() is None and cpu() is None
    finally:
        gc.enable()


def test_machines_made_and_dropped_do_not_grow_the_heap() -> None:
    """40 machines of 4 MiB one after the other: the heap ends where it began."""
    gc.collect()
    tracemalloc.start()
    gc.disable()     # the cycle collector must not be needed
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(40):
            m = Machine(4 * MIB)
            m.cpu.reset_flat32()
            m.mem.write(0x1000, b"\x40" * 16 + b"\xf4")   # inc eax x16; hlt
            m.cpu.eip = 0x1000
            assert m.cpu.run(100) == "hlt"
            del m
            grown = tracemalloc.get_traced_memory()[0] - base
            assert grown < 2 * MIB, f"after {i + 1} machines the heap grew by {grown} bytes"
    finally:
        gc.enable()
        tracemalloc.stop()


def test_code_reached_through_two_aliases_keeps_one_entry() -> None:
    """A page of code mapped at two addresses and run from each in turn is retranslated
    each time; its list of blocks keeps one entry per block, not one per translation."""
    env = Env(paging=True)
    alias = 0x200000
    env.pt.map(alias, CODE)
    env.cpu.cr3 = env.cpu.cr3                       # flush the TLB
    env.mem.write(CODE, b"\x40\xf4")                # inc eax; hlt
    cpu = env.cpu
    for i in range(200):
        cpu.halted = False
        cpu.eip = CODE if i % 2 else alias
        assert cpu.run(10) == "hlt"
    assert cpu.eax == 200
    entries = cpu._page_blocks[CODE]
    assert len(entries) <= 2, f"{len(entries)} entries for one block"


def test_sessions_made_and_dropped_do_not_grow_the_heap() -> None:
    """Sessions (each a Host, a Launcher and 8 MiB of RAM), stepped, replayed and
    dropped: after the collector, the heap is back where it was."""
    need_binutils()
    src = """
        movl $1, %eax
1:      incl %eax
        jmp 1b
"""

    def one() -> None:
        s = Session.tiny(src)
        s.step(200)
        old = weakref.ref(s.world)
        s.back(50)                  # a replay builds a new world; the old one must go
        gc.collect()
        assert old() is None
        s.step(10)

    one()                           # warm the caches (the assembler's, the imports)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(6):
            one()
            gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 4 * MIB, f"six sessions left {grown} bytes behind"
