"""Real mode, the switch to protected mode, and the x87 subset.

A 386 comes out of reset in real mode; the first thing any boot code does is
load a GDT, set CR0.PE and far-jump into a 32-bit code segment.  That path,
and the x87 instructions lguest's lazy FPU switching needs, are checked here.
"""

from __future__ import annotations

import struct

import pytest
from asm import assemble
from x86env import CODE, NM, Env

from lguestsim.x86 import CPU, CPUFault, PhysicalMemory


def test_reset_state_is_real_mode_at_fffffff0():
    cpu = CPU(PhysicalMemory(1 << 20))
    assert not cpu.cr0 & 1
    assert cpu.cs == 0xF000 and cpu.eip == 0xFFF0
    assert cpu.segs["cs"].base == 0xFFFF0000


def test_real_mode_boot_into_protected_mode():
    """Real mode code: IVT interrupt, lgdt, CR0.PE, far jump into 32-bit code."""
    mem = PhysicalMemory(1 << 20)
    cpu = CPU(mem)
    boot = assemble("""
        .code16
        cli
        xor %ax, %ax
        mov %ax, %ds
        mov %ax, %ss
        mov $0x7000, %sp
        int $0x40                      # through the IVT at 0
        lgdtl gdtr
        mov %cr0, %eax
        or $1, %eax
        mov %eax, %cr0
        ljmpl $0x08, $pm
        .code32
    pm:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %ss
        mov $0x9000, %esp
        push $0x12345678
        pop %ebx
        hlt
        .p2align 3
    gdt:
        .quad 0
        .quad 0x00cf9a000000ffff       # ring-0 code, flat, 32-bit
        .quad 0x00cf92000000ffff       # ring-0 data, flat
    gdtr:
        .word 23
        .long gdt
    """, 0x7C00)
    mem.write(0x7C00, boot)
    # vector 0x40: a handler at 0000:0600 that sets dx and returns
    mem.write32(0x40 * 4, 0x0000_0600)
    mem.write(0x600, assemble(".code16\nmov $0x4242, %dx\niret", 0x600))
    cpu.reset()
    cpu.load_cs(0)
    cpu.eip = 0x7C00
    assert cpu.run(1000) == "hlt"
    assert cpu.edx & 0xFFFF == 0x4242
    assert cpu.cr0 & 1 and cpu.cs == 0x08 and cpu.segs["cs"].big
    assert cpu.ebx == 0x12345678 and cpu.esp == 0x9000


def test_sixteen_bit_operand_and_address_size_in_real_mode():
    mem = PhysicalMemory(1 << 20)
    cpu = CPU(mem)
    code = assemble("""
        .code16
        mov $0x1000, %bx
        mov $0x0002, %si
        movw $0xbeef, (%bx,%si)
        mov (%bx,%si), %ax
        mov $0xffffffff, %ecx          # a 32-bit register from 16-bit code (0x66)
        addr32 movw $0x1234, 0x2000(%ecx)   # address wraps: ecx+0x2000 = 0x1fff
        hlt
    """, 0x500)
    mem.write(0x500, code)
    cpu.load_cs(0)
    for s in ("ds", "es", "ss"):
        cpu.load_segment(s, 0)
    cpu.eip = 0x500
    cpu.run(100)
    # 32-bit addressing in real mode beyond the 64 KiB limit is a #GP (no IVT handler
    # here, so the CPU ends in whatever vector 13's IVT entry points to) -- so
    # instead check the in-limit accesses that came before it.
    assert mem.read16(0x1002) == 0xBEEF
    assert cpu.eax & 0xFFFF == 0xBEEF


def fpu_env() -> Env:
    env = Env()
    return env


X87_PROGRAM = """
        fninit
        fld1
        fld1
        faddp %st, %st(1)
        fldl three
        fmulp %st, %st(1)
        fld1
        fdivrp %st, %st(1)
        flds quarter
        fsubrp %st, %st(1)
        fstpl result
        fnstsw %ax
        hlt
        .p2align 3
    three: .double 3.0
    quarter: .float 0.25
        .p2align 3
    result: .double 0.0
"""


def test_x87_arithmetic_agrees_with_unicorn():
    """The subset's arithmetic and stores, checked against a real x87 model."""
    import unicorn
    from unicorn import x86_const as u
    code = assemble(X87_PROGRAM, CODE)
    env = fpu_env()
    env.code(code)
    assert env.cpu.run(100) == "hlt"
    ours = env.mem.read(CODE + len(code) - 8, 8)
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_32)
    uc.mem_map(0, 0x100000)
    uc.mem_write(CODE, code)
    uc.emu_start(CODE, 0xFFFFFFFF, count=12)     # the twelve instructions before hlt
    theirs = bytes(uc.mem_read(CODE + len(code) - 8, 8))
    assert ours == theirs, (struct.unpack("<d", ours), struct.unpack("<d", theirs))
    assert struct.unpack("<d", ours)[0] not in (0.0, 1.0)
    assert (env.cpu.eax >> 11) & 7 == 0         # TOP back to 0: the stack is empty
    assert env.cpu.eax & 0xFFFF == uc.reg_read(u.UC_X86_REG_EAX) & 0xFFFF


def test_fpu_with_ts_raises_nm_and_clts_lets_it_run():
    env = fpu_env()
    cpu = env.cpu
    cpu.cr0 |= 0x8          # TS: the next FPU instruction traps (lazy switching)
    env.code(assemble("fld1\nhlt", CODE))
    cpu.step()
    assert cpu.last_exception == (NM, None)
    assert cpu.eip == env.handler(NM)
    cpu.cr0 &= ~0x8
    cpu.eip = CODE
    cpu.halted = False
    assert cpu.run(10) == "hlt"
    assert cpu.fpu.st(0) == 1.0


def test_simd_opcode_with_ts_is_nm_and_without_is_ud():
    env = fpu_env()
    cpu = env.cpu
    env.code(bytes.fromhex("0f 28 c1 f4"))    # movaps xmm0, xmm1
    cpu.cr0 |= 0x8
    cpu.step()
    assert cpu.last_exception == (NM, None)
    cpu.cr0 &= ~0x8
    cpu.eip = CODE
    cpu.step()
    assert cpu.last_exception == (6, None)


def test_fnsave_frstor_round_trip():
    env = fpu_env()
    cpu = env.cpu
    env.code(assemble("""
        fninit
        fld1
        fldz
        fld1
        faddp %st, %st(2)     # st2 = 2.0
        fnsave area
        fld1                  # after fnsave the FPU is reinitialised
        frstor area
        hlt
        .p2align 4
    area: .fill 108, 1, 0
    """, CODE))
    assert cpu.run(100) == "hlt"
    assert cpu.fpu.top == 6
    assert cpu.fpu.st(0) == 0.0 and cpu.fpu.st(1) == 2.0


def test_fwait_traps_only_with_mp_and_ts():
    env = fpu_env()
    cpu = env.cpu
    env.code(bytes.fromhex("9b f4"))
    cpu.cr0 |= 0x8
    assert cpu.run(10) == "hlt" and cpu.eip == CODE + 2      # TS alone: no trap
    cpu.cr0 |= 0xA
    cpu.eip = CODE
    cpu.halted = False
    cpu.step()
    assert cpu.last_exception == (NM, None)


def test_cpufault_is_the_only_fault_type():
    f = CPUFault(13, 0x10)
    assert (f.vector, f.error_code) == (13, 0x10)
    with pytest.raises(CPUFault):
        raise f
