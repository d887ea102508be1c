"""The CPU API that notebooks, the Host and outside checks rely on.

Each name in DESIGN.md's "Interfaces others rely on" is exercised as written
there; the extra names lguestsim/x86/README.md lists follow.
"""

from __future__ import annotations

import pytest
import x86env as xe

from lguestsim.x86 import CPU, PhysicalMemory

LOOP = b"\xeb\xfe"                   # jmp $


def flat(code: bytes = b"\x90", at: int = 0x1000, size: int = 1 << 20) -> tuple:
    mem = PhysicalMemory(size)
    cpu = CPU(mem)
    cpu.reset_flat32()
    mem.write(at, code)
    cpu.eip = at
    return mem, cpu


# --- DESIGN.md ------------------------------------------------------------------------
def test_memory_read_write():
    mem = PhysicalMemory(64 * 1024)
    mem.write(0x100, b"\x01\x02\x03")
    assert mem.read(0x100, 3) == b"\x01\x02\x03"
    assert isinstance(mem.read(0x100, 3), bytes)
    assert mem.read(0x103, 2) == b"\0\0"


def test_reset_flat32():
    mem = PhysicalMemory(1 << 20)
    cpu = CPU(mem)
    cpu.reset_flat32()
    assert cpu.cr0 & xe.CR0_PE and not cpu.cr0 & xe.CR0_PG
    assert cpu.cpl == 0
    assert cpu.eflags == 0x2
    assert cpu.cs == 0x08
    assert (cpu.ds, cpu.es, cpu.fs, cpu.gs, cpu.ss) == (0x10,) * 5
    # flat: a load at a high address and a store near 4 GiB-1 use base 0
    mem.write32(0x8000, 0xCAFEBABE)
    mem.write(0x1000, b"\xa1\x00\x80\x00\x00")          # mov eax, [0x8000]
    cpu.eip = 0x1000
    cpu.step()
    assert cpu.eax == 0xCAFEBABE


def test_registers_read_and_write():
    _, cpu = flat()
    names = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip")
    for i, name in enumerate(names):
        setattr(cpu, name, 0x11111111 * (i + 1) & 0xFFFFFFFF)
    for i, name in enumerate(names):
        assert getattr(cpu, name) == 0x11111111 * (i + 1) & 0xFFFFFFFF
    cpu.eflags = 0x2 | xe.CF | xe.ZF
    assert cpu.eflags == 0x2 | xe.CF | xe.ZF


def test_eflags_reflects_executed_arithmetic():
    _, cpu = flat(b"\x31\xc0")                           # xor eax, eax
    cpu.eax = 5
    cpu.step()
    assert cpu.eflags & (xe.ZF | xe.PF) == xe.ZF | xe.PF
    assert cpu.eflags & (xe.CF | xe.SF | xe.OF) == 0


def test_segment_selectors_and_control_registers():
    _, cpu = flat()
    for name in ("cs", "ds", "es", "fs", "gs", "ss"):
        assert isinstance(getattr(cpu, name), int)
    for name in ("cr0", "cr2", "cr3", "cr4", "cpl"):
        assert isinstance(getattr(cpu, name), int)
    cpu.cr3 = 0x5000
    assert cpu.cr3 == 0x5000
    cpu.cr2 = 0x1234
    assert cpu.cr2 == 0x1234


def test_counters_and_step():
    _, cpu = flat(b"\x90\x40")                           # nop; inc eax
    c0, i0 = cpu.cycles, cpu.instructions
    assert cpu.step() is None
    assert cpu.eip == 0x1001 and cpu.instructions == i0 + 1 and cpu.cycles > c0
    cpu.step()
    assert cpu.eax == 1 and cpu.instructions == i0 + 2


def test_run_stops_at_hlt():
    _, cpu = flat(b"\x40" * 5 + b"\xf4")
    assert cpu.run(100) == "hlt"
    assert cpu.eax == 5 and cpu.eip == 0x1006


def test_run_stops_at_limit_exactly():
    _, cpu = flat(LOOP)
    i0 = cpu.instructions
    assert cpu.run(1000) == "limit"
    assert cpu.instructions - i0 == 1000
    assert cpu.eip == 0x1000


def test_run_limit_inside_a_straight_line_block():
    _, cpu = flat(b"\x40" * 50 + b"\xf4")
    assert cpu.run(7) == "limit"
    assert cpu.eax == 7 and cpu.eip == 0x1007
    assert cpu.run(1000) == "hlt" and cpu.eax == 50


def test_run_stops_at_breakpoint_but_not_before_the_first_instruction():
    _, cpu = flat(b"\x40" * 10 + b"\xf4")
    cpu.breakpoints.add(0x1004)
    assert cpu.run(100) == "breakpoint"
    assert cpu.eip == 0x1004 and cpu.eax == 4
    assert cpu.run(100) == "hlt"                         # resumes past it
    assert cpu.eax == 10


def test_raise_interrupt():
    env = xe.Env()
    env.code(b"\x90\x90")
    env.cpu.eflags = 0x2 | xe.IF
    env.cpu.raise_interrupt(0x20)
    env.cpu.step()
    assert env.cpu.eip == env.handler(0x20)


def test_step_and_run_return_values():
    _, cpu = flat(b"\xf4")
    assert cpu.step() in (None, "hlt")
    assert cpu.halted
    assert cpu.step() == "hlt"
    assert cpu.run(10) == "hlt"


# --- README.md --------------------------------------------------------------------------
def test_cpufault_class():
    from lguestsim.x86 import CPUFault

    f = CPUFault(13, 0x10)
    assert (f.vector, f.error_code) == (13, 0x10)
    assert CPUFault(6).error_code is None
    assert isinstance(f, Exception)


def test_memory_sized_accessors():
    mem = PhysicalMemory(8192)
    mem.write32(0x10, 0x11223344)
    assert mem.read8(0x10) == 0x44 and mem.read16(0x10) == 0x3344
    assert mem.read32(0x10) == 0x11223344
    mem.write8(0x20, 0x1FF)
    mem.write16(0x22, 0xABCD)
    assert mem.read(0x20, 4) == b"\xff\x00\xcd\xab"
    assert len(mem.ram) == 8192 and memoryview(mem.ram).nbytes == 8192   # an anonymous mmap


def test_cpu_starts_in_real_mode():
    cpu = CPU(PhysicalMemory(1 << 20))
    assert not cpu.cr0 & xe.CR0_PE


def test_load_segment_and_load_cs():
    env = xe.Env()
    cpu = env.cpu
    cpu.load_segment("es", xe.DS3)
    assert cpu.es == xe.DS3
    cpu.load_cs(xe.CS1)
    assert cpu.cs == xe.CS1 and cpu.cpl == 1


def test_segs_hidden_part():
    env = xe.Env()
    env.set_gdt(10, xe.data_segment(0, base=0x12000, limit=0xFFF, g=False))
    env.cpu.load_segment("ds", 10 << 3)
    cache = env.cpu.segs["ds"]
    assert cache.selector == 10 << 3
    assert cache.base == 0x12000 and cache.limit == 0xFFF


def test_descriptor_table_registers():
    env = xe.Env()
    cpu = env.cpu
    assert cpu.gdtr == (xe.GDT_BASE, xe.GDT_ENTRIES * 8 - 1)
    assert cpu.idtr == (xe.IDT_BASE, 256 * 8 - 1)
    assert cpu.tr == xe.TSS_SEL
    assert cpu.ldtr == 0
    env.set_gdt(23, xe.ldt_descriptor(0x7000, 0x7))
    cpu.load_ldtr(23 << 3)
    assert cpu.ldtr == 23 << 3


def test_tsc_msr_halted_last_exception():
    env = xe.Env()
    cpu = env.cpu
    assert cpu.tsc == cpu.cycles
    for m in (0x174, 0x175, 0x176):
        assert m in cpu.msr
    assert cpu.last_exception is None
    env.code(b"\x0f\x0b")
    cpu.step()
    assert cpu.last_exception == (xe.UD, None)
    assert cpu.tsc == cpu.cycles
    env.code(b"\xf4")
    cpu.step()
    assert cpu.halted


def test_sysenter_msrs_are_used():
    env = xe.Env()
    cpu = env.cpu
    cpu.msr[0x174] = xe.CS0
    cpu.msr[0x175] = 0x7000
    cpu.msr[0x176] = 0x1234
    env.code(b"\x0f\x34")                                 # sysenter
    cpu.step()
    assert (cpu.cs, cpu.eip, cpu.esp, cpu.ss) == (xe.CS0, 0x1234, 0x7000, xe.CS0 + 8)


def test_port_hooks():
    _, cpu = flat(b"\xe4\x60\xe6\x61\x66\xed")            # in al,0x60; out 0x61,al; in ax,dx
    seen = []
    cpu.port_in = lambda port, size: seen.append(("in", port, size)) or 0x5A
    cpu.port_out = lambda port, size, value: seen.append(("out", port, size, value))
    cpu.edx = 0x3F8
    cpu.step()
    cpu.step()
    cpu.step()
    assert seen == [("in", 0x60, 1), ("out", 0x61, 1, 0x5A), ("in", 0x3F8, 2)]
    assert cpu.eax & 0xFFFF == 0x5A


def test_default_port_in_is_all_ones():
    _, cpu = flat(b"\xed")                                # in eax, dx
    cpu.step()
    assert cpu.eax == 0xFFFFFFFF


def test_tlb_api():
    env = xe.Env(paging=True)
    cpu = env.cpu
    env.code(b"\xa1\x00\x00\x02\x00")                     # mov eax, [0x20000]
    cpu.step()
    entries = cpu.tlb.entries()
    assert isinstance(entries, list) and entries
    assert isinstance(cpu.tlb.hits, int) and isinstance(cpu.tlb.misses, int)
    assert cpu.tlb.misses > 0


@pytest.mark.parametrize("name", ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp"])
def test_register_writes_are_32_bit(name):
    _, cpu = flat()
    setattr(cpu, name, 0x1_0000_0005)
    assert getattr(cpu, name) == 5
