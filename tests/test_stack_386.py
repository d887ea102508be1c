"""POP SS and ENTER against the 386 (issue 10, part 4).

POP SS steps (E)SP by the size of the stack it popped from, not of the new
SS: unicorn (QEMU) agrees with the manual here and is the oracle.  ENTER with
32-bit operands takes the whole of ESP as its frame pointer even on a 16-bit
stack (SDM vol. 2, ENTER: FrameTemp <- ESP; Bochs does the same); QEMU keeps
EBP's high half there instead, so those cases assert the manual's rule and
compare with unicorn only where both agree.  ENTER's last act is a write
probe of the final SS:(E)SP, paging included (a 386 touches it), made even
when the allocation leaves (E)SP at 0.
"""

from __future__ import annotations

import protdiff
import pytest
import x86env as xe
from asm import assemble_with_symbols
from x86env import CODE, DS0, Env

SS16 = 0x50          # GDT entry 10: a 16-bit (B = 0) ring-0 stack, base 0, limit 64 KiB - 1


def world(source: str):
    code, syms = assemble_with_symbols(source, CODE)

    def build() -> Env:
        env = Env(paging=True)
        env.set_gdt(10, xe.data_segment(0, limit=0xFFFF, g=False, big=False))
        env.code(code)
        return env
    return build, syms["done"]


@pytest.mark.parametrize("op", ["popl", "popw"])
def test_pop_ss_from_a_16bit_stack_steps_sp_only(op):
    build, stop = world(f"""
        mov $0x{SS16:x}, %eax
        mov %eax, %ss
        mov $0x1234FFFC, %esp
        movl $0x{DS0:x}, 0xFFFC
        {op} %ss
    done: nop
    """)
    ours, _ = protdiff.compare(build, stop)
    size = 4 if op == "popl" else 2
    assert ours.regs["esp"] == 0x12340000 | ((0xFFFC + size) & 0xFFFF)
    assert ours.sels["ss"] == DS0


def test_pop_ss_from_a_32bit_stack_to_a_16bit_one_steps_esp():
    build, stop = world(f"""
        mov $0x0001FFFC, %esp
        movl $0x{SS16:x}, (%esp)
        popl %ss
    done: nop
    """)
    ours, _ = protdiff.compare(build, stop)
    assert ours.regs["esp"] == 0x00020000
    assert ours.sels["ss"] == SS16


@pytest.mark.parametrize("level", [0, 1, 3])
@pytest.mark.parametrize("op", ["enterl", "enterw"])
def test_enter_on_a_32bit_stack_matches_unicorn(op, level):
    build, stop = world(f"""
        mov $0x7000, %esp
        mov $0x7100, %ebp
        movl $0x11111111, 0x70FC
        movl $0x22222222, 0x70F8
        {op} $0x24, ${level}
    done: nop
    """)
    protdiff.compare(build, stop, regions=((0x6F00, 0x200),))


@pytest.mark.parametrize("level", [0, 2])
def test_enter32_on_a_16bit_stack_frame_pointer_is_whole_esp(level):
    """SDM ENTER: OperandSize 32 gives EBP <- FrameTemp = ESP, the high half of
    ESP included; only SP moves on a 16-bit stack."""
    build, _ = world(f"""
        mov $0x{SS16:x}, %eax
        mov %eax, %ss
        mov $0xABCD7000, %esp
        mov $0x55667100, %ebp
        movl $0x11111111, 0x70FC
        enterl $0x10, ${level}
    done: nop
    """)
    env = build()
    env.step(6)
    cpu = env.cpu
    frame = 0xABCD7000 - 4
    assert cpu.ebp == frame
    assert cpu.esp == 0xABCD0000 | ((frame - 4 * level - 0x10) & 0xFFFF)
    assert env.mem.read32(0x6FFC) == 0x55667100          # the old EBP, pushed whole
    if level == 2:
        assert env.mem.read32(0x6FF8) == 0x11111111      # [BP - 4] of the old frame
        assert env.mem.read32(0x6FF4) == frame


def test_enter16_on_a_32bit_stack_sets_bp_only():
    """SDM ENTER (and Bochs): OperandSize 16 gives BP <- FrameTemp = SP, EBP's
    high half untouched.  QEMU writes the whole of EBP with the 32-bit stack
    pointer here, so unicorn is not the oracle for this one."""
    build, _ = world("""
        mov $0x00017000, %esp
        mov $0x55667100, %ebp
        enterw $0x8, $0
    done: nop
    """)
    env = build()
    env.step(3)
    assert env.cpu.ebp == 0x55666FFE and env.cpu.esp == 0x00016FF6
    assert env.mem.read(0x16FFE, 2) == b"\x00\x71"


def test_enter_probe_respects_paging():
    """The frame fits, but the allocation reaches a read-only page: #PF (write,
    supervisor with CR0.WP) at the final ESP, and nothing changes.  QEMU makes
    no such probe, so this is the manual's rule (and Bochs's), not unicorn's."""
    build, _ = world("""
        mov $0x00105100, %esp
        mov $0x1234, %ebp
        enterl $0x110, $0
    done: nop
    """)
    env = build()
    env.pt.map(0x104000, 0x104000, xe.PG_P | xe.PG_U)
    env.cpu.cr0 = env.cpu.cr0 | xe.CR0_WP
    env.step(3)
    cpu = env.cpu
    assert cpu.last_exception == (xe.PF_VEC, xe.PG_P | xe.PG_W)
    assert cpu.cr2 == 0x104FEC
    assert cpu.ebp == 0x1234
    assert env.stack(2)[1] == CODE + 10          # the faulting ENTER, restartable


def test_enter_probe_when_sp_ends_at_zero():
    """ENTER $0x14 with SP = 0x16 on a 16-bit stack leaves SP = 0, and the probe of
    SS:0 still happens: an expand-down stack whose limit excludes offset 0
    faults (#SS) where a skipped probe would not."""
    code, _ = assemble_with_symbols("""
        mov $0x58, %eax
        mov %eax, %ss
        mov $0x16, %esp
        enterw $0x14, $0
    done: nop
    """, CODE)
    env = Env()
    # Expand-down, 16-bit: valid offsets are limit+1 .. 0xFFFF; limit 0 makes 0 invalid.
    env.set_gdt(11, xe.data_segment(0, limit=0, g=False, big=False, expand_down=True))
    env.code(code)
    env.step(4)
    assert env.cpu.last_exception == (xe.SS_VEC, 0)
    assert env.cpu.ebp == 0 and env.cpu.eip == env.handler(xe.SS_VEC)
