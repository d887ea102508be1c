"""Virtual-8086 mode: IRET into it from ring 0, 8086 segments, the
IOPL-sensitive instructions, interrupts out of it to ring 0, and the I/O
permission bitmap (SDM vol. 3, chapter 15; the 386 manual's too).

The ring-0 program is ``x86env.Env``'s; the 8086 program is assembled with
``.code16`` at offset 0 of segment V86_CS.  Unicorn (QEMU implements
virtual-8086 mode) runs the same programs where no exception is delivered
and must agree on registers, selectors, EFLAGS and memory; for a fault it
gives the vector and the faulting IP.  What delivery out of virtual-8086
mode pushes, and the I/O bitmap, are the SDM's rules.
"""

from __future__ import annotations

import protdiff
import pytest
import x86env as xe
from asm import assemble_with_symbols
from x86env import CODE, CS0, CS1, DS1, ESP0, ESP1, Env

V86_CS, V86_SS, V86_DS = 0x5000, 0x6000, 0x7000
V86_SP = 0x1000
VM, IOPL3 = xe.VM, 0x3000


def v86_world(source16: str, iopl: int = 3, flags: int = 0, setup: str = ""):
    """Ring 0 IRETs into the 8086 program ``source16`` (at V86_CS:0)."""
    code16, syms16 = assemble_with_symbols(".code16\n" + source16 + "\ndone: nop\n", 0)
    eflags = 0x2 | VM | (iopl << 12) | flags
    code32, _ = assemble_with_symbols(f"""
        {setup}
        pushl $0x1111        # GS
        pushl $0x2222        # FS
        pushl ${V86_DS}      # DS
        pushl $0x3333        # ES
        pushl ${V86_SS}
        pushl ${V86_SP}
        pushl ${eflags}
        pushl ${V86_CS}
        pushl $0
        iret
    """, CODE)

    def build() -> Env:
        env = Env(paging=True)
        env.code(code32)
        env.mem.write(V86_CS << 4, code16)
        return env
    return build, {k: (V86_CS << 4) + v for k, v in syms16.items()}


def test_iret_into_v86_runs_8086_code():
    build, syms = v86_world("""
        mov $0x1234, %ax
        movw $0xBEEF, 0x10
        mov %ds, %bx
        mov %ss, %cx
        mov %es, %dx
        mov %ax, %es
        movw $0xCAFE, %es:0x20
        push %ax
        pop %si
    """)
    ours, _ = protdiff.compare(build, syms["done"],
                               regions=((0x70010, 2), (0x12360, 2), (0x60FF0, 0x10)))
    assert ours.mem[:2] == b"\xef\xbe" and ours.mem[2:4] == b"\xfe\xca"
    assert ours.regs["ebx"] & 0xFFFF == V86_DS and ours.regs["edx"] & 0xFFFF == 0x3333
    assert ours.sels == {"es": 0x1234, "cs": V86_CS, "ss": V86_SS, "ds": V86_DS,
                         "fs": 0x2222, "gs": 0x1111}
    env = build()
    protdiff.run_core(env, syms["done"])
    cpu = env.cpu
    assert cpu.v86 and cpu.cpl == 3 and not cpu.protected
    assert cpu.segs["es"].base == 0x12340 and cpu.segs["es"].limit == 0xFFFF
    assert cpu.segs["cs"].base == V86_CS << 4 and cpu.eip == syms["done"] - (V86_CS << 4)


@pytest.mark.parametrize("insn", ["cli", "sti", "pushf", "popf", "int $0x21", "iret"])
def test_sensitive_instructions_fault_below_iopl3(insn):
    """IOPL 0: #GP(0), delivered to ring 0 with the 8086 segment registers
    pushed, then DS, ES, FS, GS nulled and VM cleared."""
    build, syms = v86_world(f"push %ax\n    push %ax\n    push %ax\nat: {insn}", iopl=0)
    protdiff.compare(build, syms["done"])
    env = build()
    out = protdiff.run_core(env, syms["done"])
    cpu = env.cpu
    assert out.fault == xe.GP and cpu.last_exception == (xe.GP, 0)
    assert cpu.cpl == 0 and not cpu.v86 and cpu.protected
    assert cpu.esp == ESP0 - 40
    frame = env.stack(10)
    assert frame[0] == 0 and frame[1] == syms["at"] - (V86_CS << 4)
    assert frame[2] & 0xFFFF == V86_CS and frame[3] & VM
    assert frame[4] == V86_SP - 6 and frame[5] & 0xFFFF == V86_SS
    assert [w & 0xFFFF for w in frame[6:]] == [0x3333, V86_DS, 0x2222, 0x1111]
    assert (cpu.es, cpu.ds, cpu.fs, cpu.gs) == (0, 0, 0, 0)
    assert not any(cpu.segs[s].valid for s in ("es", "ds", "fs", "gs"))


def test_int3_and_into_are_not_iopl_sensitive():
    """INT3 through a DPL 0 gate from CPL 3: #GP(3*8+2), not #GP(0)."""
    build, syms = v86_world("int3", iopl=0)
    env = build()
    protdiff.run_core(env, syms["done"])
    assert env.cpu.last_exception == (xe.GP, 3 * 8 + 2)


def test_iopl3_flag_instructions_run():
    build, syms = v86_world("""
        cli
        pushf
        pop %ax
        sti
        pushf
        pop %bx
        mov $0x3000, %cx
        push %cx
        popf
        pushf
        pop %dx
    """, flags=xe.IF)
    ours, _ = protdiff.compare(build, syms["done"])
    assert ours.regs["eax"] & xe.IF == 0 and ours.regs["ebx"] & xe.IF
    assert ours.eflags & VM and ours.eflags & 0x3000 == 0x3000    # POPF cannot drop IOPL


def test_popf_cannot_change_iopl_in_v86():
    """POPFD at IOPL 3 sets IF but cannot lower IOPL; PUSHFD's image has VM
    clear (SDM PUSHF; QEMU pushes VM set, so no unicorn comparison)."""
    build, syms = v86_world("""
        pushl $0x00000202
        popfl
        pushfl
        popl %eax
    """)
    env = build()
    out = protdiff.run_core(env, syms["done"])
    assert out.fault is None and out.regs["eax"] == 0x3202 and out.eflags & VM


def test_interrupt_from_v86_and_iret_back():
    """INT n at IOPL 3 through a DPL 3 gate: ring 0 sees the v86 frame and
    nulled data segments, and its IRET returns into virtual-8086 mode."""
    handler32, hsyms = assemble_with_symbols("""
        mov %ds, %eax
        mov %esp, %ebx
        mov 20(%esp), %ecx
        incl 24(%esp)
        iret
    """, 0x40000)
    build, syms = v86_world("""
        mov $0x5A, %di
        int $0x40
    after:
        mov %ds, %si
    """)

    def with_gate() -> Env:
        env = build()
        env.mem.write(0x40000, handler32)
        env.set_gate(0x40, 0x40000, CS0, "interrupt", dpl=3)
        return env
    env = with_gate()
    cpu = env.cpu
    cpu.breakpoints.add(syms["done"])
    assert cpu.run(100) == "breakpoint"
    assert cpu.v86 and cpu.cpl == 3 and cpu.eip == syms["done"] - (V86_CS << 4)
    assert cpu.eax & 0xFFFF == 0                    # DS was null in the handler
    assert cpu.ebx == ESP0 - 36
    assert cpu.ecx & 0xFFFF == 0x3333               # ES in the frame
    assert cpu.esi & 0xFFFF == V86_DS + 1           # DS came back, as the handler left it
    assert cpu.edi & 0xFFFF == 0x5A and not cpu.eflags & xe.IF


def test_external_interrupt_in_v86_goes_to_ring0():
    """A hardware interrupt while an 8086 program runs (IF set): the same
    ring-0 frame, whatever the IOPL, and EIP of the next 8086 instruction."""
    build, syms = v86_world("nop\nat: nop\nnop", iopl=0, flags=xe.IF)
    env = build()
    cpu = env.cpu
    protdiff.run_core(env, syms["at"])
    cpu.raise_interrupt(0x30)
    cpu.step()
    assert cpu.eip == env.handler(0x30) and cpu.cpl == 0 and not cpu.v86
    assert cpu.last_exception == (0x30, None) and not cpu.eflags & xe.IF
    frame = env.stack(9)
    assert frame[0] == syms["at"] - (V86_CS << 4) and frame[2] & VM and frame[2] & xe.IF
    assert [w & 0xFFFF for w in frame[4:]] == [V86_SS, 0x3333, V86_DS, 0x2222, 0x1111]


def test_interrupt_from_v86_to_a_ring1_handler_is_gp():
    """From virtual-8086 mode a handler must be ring 0 and non-conforming."""
    build, syms = v86_world("int $0x40")
    env = build()
    env.set_gate(0x40, env.handler(0x40), CS1, "interrupt", dpl=3)
    protdiff.run_core(env, syms["done"])
    assert env.cpu.last_exception == (xe.GP, CS1 & 0xFFFC)


def test_exception_in_v86_goes_to_ring0_with_the_8086_frame():
    build, syms = v86_world("xor %cx, %cx\nat: div %cx")
    protdiff.compare(build, syms["done"])
    env = build()
    protdiff.run_core(env, syms["done"])
    cpu = env.cpu
    assert cpu.last_exception == (xe.DE, None) and cpu.cpl == 0
    frame = env.stack(9)
    assert frame[0] == syms["at"] - (V86_CS << 4) and frame[2] & VM


def test_iret_with_vm_from_ring1_does_not_enter_v86():
    """At CPL 1 the VM bit of the popped EFLAGS is ignored: an ordinary
    same-ring IRET, still protected mode (SDM IRET: only CPL 0 returns to
    virtual-8086 mode).  QEMU enters v86 from any CPL, so this is the
    manual's rule, not unicorn's."""
    code, syms = assemble_with_symbols(f"""
        pushl ${DS1}
        pushl ${ESP1 - 0x100}
        pushl $0x2
        pushl ${CS1}
        pushl $ring1
        iret
    ring1:
        pushl ${0x2 | VM | IOPL3}
        pushl ${CS1}
        pushl $back
        iret
    back:
        pushfl
        popl %eax
    done: nop
    """, CODE)

    def build() -> Env:
        env = Env()
        env.code(code)
        return env
    env = build()
    ours = protdiff.run_core(env, syms["done"])
    assert ours.fault is None
    assert ours.sels["cs"] == CS1 and not ours.eflags & VM
    assert ours.regs["eax"] & (VM | IOPL3) == 0
    assert env.cpu.protected and env.cpu.cpl == 1


def test_task_switch_into_v86():
    """A TSS whose EFLAGS has VM: the switch loads 8086 segments, CPL 3."""
    import test_task_switch as ts
    code16, syms16 = assemble_with_symbols(".code16\nmov %ds, %ax\ndone: nop\n", 0)
    build, syms = ts.world(f"ljmp ${ts.B_SEL}, $0\ndone: nop\ntask_b: nop")

    def v86_task() -> Env:
        env = build()
        env.mem.write(V86_CS << 4, code16)
        t = bytearray(ts.tss_image(0, esp=V86_SP, cs=V86_CS, ss=V86_SS, ds=V86_DS,
                                   eflags=0x2 | VM | IOPL3))
        env.mem.write(ts.TSS_B, bytes(t))
        return env
    stop = (V86_CS << 4) + syms16["done"]
    ours, _ = protdiff.compare(v86_task, stop)
    assert ours.regs["eax"] & 0xFFFF == V86_DS and ours.eflags & VM
    env = v86_task()
    protdiff.run_core(env, stop)
    assert env.cpu.cpl == 3 and env.cpu.segs["ss"].base == V86_SS << 4


def test_segment_limit_in_v86_is_64k():
    """A word at offset 0xFFFF runs past the 64 KiB limit: #GP(0) on a 386
    (QEMU checks no limit there, so this is the manual's rule)."""
    build, syms = v86_world("at: mov 0xFFFF, %ax")
    env = build()
    protdiff.run_core(env, syms["done"])
    assert env.cpu.last_exception == (xe.GP, 0)


# --- the I/O permission bitmap ----------------------------------------------------------
def _io_world(source16: str, iopl: int, allowed: tuple[int, ...]):
    build, syms = v86_world(source16, iopl=iopl)

    def with_bitmap() -> Env:
        env = build()
        bitmap = bytearray(b"\xff" * 0x2001)
        for port in allowed:
            bitmap[port // 8] &= ~(1 << (port % 8)) & 0xFF
        env.mem.write(xe.TSS_BASE + 104, bytes(bitmap))
        env.set_gdt(7, xe.tss_descriptor(xe.TSS_BASE, limit=104 + 0x2000))
        env.cpu.load_tr(xe.TSS_SEL)
        seen = []
        env.cpu.port_in = lambda port, size: seen.append(port) or 0x42
        env.seen = seen
        return env
    return with_bitmap, syms


@pytest.mark.parametrize("iopl", [0, 3])
def test_io_bitmap_decides_in_v86_whatever_the_iopl(iopl):
    build, syms = _io_world("in $0x80, %al\nat: in $0x81, %al", iopl, allowed=(0x80,))
    env = build()
    protdiff.run_core(env, syms["done"])
    assert env.seen == [0x80] and env.cpu.last_exception == (xe.GP, 0)
    assert env.stack(2)[1] == syms["at"] - (V86_CS << 4)


def test_io_bitmap_word_access_needs_both_ports():
    build, syms = _io_world("mov $0x80, %dx\nin %dx, %ax", 3, allowed=(0x80,))
    env = build()
    protdiff.run_core(env, syms["done"])
    assert env.seen == [] and env.cpu.last_exception == (xe.GP, 0)
    build, syms = _io_world("mov $0x80, %dx\nin %dx, %ax", 3, allowed=(0x80, 0x81))
    env = build()
    out = protdiff.run_core(env, syms["done"])
    assert out.fault is None and env.seen == [0x80]


def test_io_bitmap_covers_outs_in_v86():
    build, syms = _io_world("mov $0x81, %dx\nxor %si, %si\nat: outsb", 3, allowed=(0x80,))
    env = build()
    sent = []
    env.cpu.port_out = lambda port, size, value: sent.append(port)
    protdiff.run_core(env, syms["done"])
    assert sent == [] and env.cpu.last_exception == (xe.GP, 0)
    assert env.stack(2)[1] == syms["at"] - (V86_CS << 4)


def test_io_bitmap_in_protected_mode_above_iopl():
    """CPL 3 > IOPL 0 in protected mode: the same bitmap is consulted."""
    env = Env()
    env.mem.write(xe.TSS_BASE + 104, b"\xfe" + b"\xff" * 0x10)   # port 0 only
    env.set_gdt(7, xe.tss_descriptor(xe.TSS_BASE, limit=104 + 0x10))
    env.cpu.load_tr(xe.TSS_SEL)
    env.enter_ring(3)
    env.code(b"\xe4\x00" + b"\xe4\x01")                           # in al,0 ; in al,1
    env.step(2)
    assert env.cpu.last_exception == (xe.GP, 0)
    assert env.stack(2)[1] == CODE + 2


def test_v86_delivery_costs_cycles():
    from lguestsim.x86 import timing
    build, syms = v86_world("int $0x21", iopl=0)
    env = build()
    protdiff.run_core(env, syms["done"] - 2)
    before = env.cpu.cycles
    env.step()
    assert env.cpu.cpl == 0
    assert env.cpu.cycles - before >= (timing.EXCEPTION_DELIVERY + timing.PRIVILEGE_CHANGE
                                       + timing.V86_INTERRUPT)



