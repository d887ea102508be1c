"""Interrupt and exception delivery, checked against the Intel SDM.

Unicorn cannot check these (it has no IDT delivery of its own to compare
with), so every expectation here is written from the manual:
  * SDM vol. 3, 6.12.1 "Exception- or Interrupt-Handler Procedures": the
    stack frame, lowest address first, is [error code,] EIP, CS, EFLAGS and,
    on a privilege change, ESP, SS of the interrupted procedure; the new stack
    comes from the TSS (ss0:esp0, ss1:esp1 for a ring-1 handler).
  * SDM vol. 2, INT n pseudo-code: gate DPL checked only for INT n/INT3/INTO
    (#GP(vector*8+2)); a not-present gate gives #NP(vector*8+2+EXT); after
    the pushes TF, NT, RF, VM are cleared, and IF for an interrupt gate (AC is
    kept in protected mode).
  * SDM vol. 3, table 6-5: contributory+contributory and #PF+(#PF or
    contributory) make #DF (error code 0); a fault while delivering #DF shuts
    the processor down (triple fault); other pairs are handled serially.
  * SDM vol. 3, 6.8.3 and STI: interrupts are inhibited for one instruction
    after STI (and MOV SS); HLT resumes on an interrupt and the handler
    returns to the instruction after HLT.
  * SDM vol. 3, 17.3.1.1: RF is pushed as 1 for fault-class exceptions.
"""

from __future__ import annotations

import pytest
import x86env as xe
from x86env import (
    CODE,
    CS0,
    CS1,
    CS3,
    DS0,
    DS1,
    DS3,
    ESP0,
    ESP1,
    IF,
    NT,
    RF,
    RING0_ESP,
    RING3_ESP,
    TF,
    VM,
    Env,
    assert_frame,
)

NOP, HLT, CLI, STI, IRET, INT3, INTO = b"\x90", b"\xf4", b"\xfa", b"\xfb", b"\xcf", b"\xcc", b"\xce"
UD2 = b"\x0f\x0b"
DIV_ECX = b"\xf7\xf1"
MOV_CR3_EAX = b"\x0f\x22\xd8"
MOV_DS_EAX = b"\x8e\xd8"
MOV_SS_EAX = b"\x8e\xd0"


def INT(n: int) -> bytes:  # noqa: N802 - reads like the mnemonic
    return bytes((0xCD, n))


# Flags that survive a delivery untouched, plus NT (which delivery clears).
PRE = 0x2 | xe.CF | xe.ZF | xe.DF | xe.OF | xe.AC | NT
CLEARED = TF | NT | RF | VM


def at_handler(env: Env, vector: int) -> None:
    cpu = env.cpu
    assert cpu.eip == env.handler(vector), (
        f"eip {cpu.eip:#x}, want handler of vector {vector} at {env.handler(vector):#x}; "
        f"last exception {cpu.last_exception}")


# --- stack frames: same ring -------------------------------------------------------
def test_ring0_to_ring0_int_n_interrupt_gate():
    env = Env()
    cpu = env.cpu
    env.code(INT(0x40))
    cpu.eflags = PRE | IF
    env.step()
    at_handler(env, 0x40)
    assert cpu.cs == CS0 and cpu.cpl == 0 and cpu.ss == DS0
    assert cpu.esp == RING0_ESP - 12
    assert_frame(env.stack(3), [("eip", CODE + 2), ("cs", CS0), ("eflags", PRE | IF)])
    assert cpu.eflags == (PRE | IF) & ~(CLEARED | IF)


def test_ring0_to_ring0_trap_gate_keeps_if():
    env = Env()
    cpu = env.cpu
    env.set_gate(0x41, kind="trap")
    env.code(INT(0x41))
    cpu.eflags = PRE | IF
    env.step()
    at_handler(env, 0x41)
    assert cpu.eflags == (PRE | IF) & ~CLEARED
    assert_frame(env.stack(3), [("eip", CODE + 2), ("cs", CS0), ("eflags", PRE | IF)])


def test_ring0_to_ring0_fault_with_error_code():
    env = Env()
    cpu = env.cpu
    env.code(MOV_DS_EAX)
    cpu.eax = 0x0100           # GDT index 32: beyond the 32-entry GDT's limit
    cpu.eflags = PRE | IF
    env.step()
    at_handler(env, xe.GP)
    assert cpu.last_exception == (xe.GP, 0x100)
    assert cpu.esp == RING0_ESP - 16
    words = env.stack(4)
    words[3] &= ~RF            # RF in a fault image: see test_rf_pushed_for_faults
    assert_frame(words, [("error", 0x100), ("eip", CODE), ("cs", CS0), ("eflags", PRE | IF)])
    assert cpu.ds == DS0       # the failed load changed nothing


def test_divide_error_no_error_code_eip_at_fault():
    env = Env()
    cpu = env.cpu
    env.code(DIV_ECX)
    cpu.eax, cpu.edx, cpu.ecx = 5, 0, 0
    env.step()
    at_handler(env, xe.DE)
    assert cpu.last_exception == (xe.DE, None)
    assert cpu.esp == RING0_ESP - 12
    assert env.stack(1) == [CODE]


def test_divide_overflow_is_de():
    env = Env()
    cpu = env.cpu
    env.code(b"\xf7\xf9")      # idiv ecx: 0x80000000 / -1 does not fit
    cpu.eax, cpu.edx, cpu.ecx = 0x80000000, 0xFFFFFFFF, 0xFFFFFFFF
    env.step()
    at_handler(env, xe.DE)
    assert env.stack(1) == [CODE]


def test_int3_and_into_are_traps():
    env = Env()
    cpu = env.cpu
    env.code(INT3)
    env.step()
    at_handler(env, xe.BP)
    assert env.stack(1) == [CODE + 1]
    env = Env()
    cpu = env.cpu
    env.code(INTO + NOP)
    cpu.eflags = 0x2 | xe.OF
    env.step()
    at_handler(env, xe.OF_VEC)
    assert env.stack(1) == [CODE + 1]
    env = Env()
    env.code(INTO + NOP)        # OF clear: no trap
    env.step()
    assert env.cpu.eip == CODE + 1


def test_ud2_is_a_fault():
    env = Env()
    env.code(UD2)
    env.step()
    at_handler(env, xe.UD)
    assert env.cpu.last_exception == (xe.UD, None)
    assert env.stack(1) == [CODE]


def test_bound_out_of_range_is_br():
    env = Env()
    cpu = env.cpu
    env.mem.write32(xe.DATA, 10)
    env.mem.write32(xe.DATA + 4, 20)
    env.code(b"\x62\x03")       # bound eax, [ebx]
    cpu.ebx, cpu.eax = xe.DATA, 21
    env.step()
    at_handler(env, xe.BR)
    assert env.stack(1) == [CODE]


# --- stack frames: privilege changes --------------------------------------------------
def test_ring3_to_ring0_int_n():
    env = Env()
    cpu = env.cpu
    env.set_gate(0x80, kind="trap", dpl=3)
    env.enter_ring(3)
    env.code(INT(0x80))
    cpu.eflags = PRE | IF
    env.step()
    at_handler(env, 0x80)
    assert (cpu.cs, cpu.ss, cpu.cpl) == (CS0, DS0, 0)
    assert cpu.esp == ESP0 - 20
    assert_frame(env.stack(5), [("eip", CODE + 2), ("cs", CS3), ("eflags", PRE | IF),
                                ("esp", RING3_ESP), ("ss", DS3)])
    assert cpu.eflags == (PRE | IF) & ~CLEARED     # a trap gate keeps IF
    assert cpu.ds == DS3                          # data segments are left alone
    assert env.read32(RING3_ESP - 4) == xe.STACK_FILL   # nothing on the user stack


def test_ring3_to_ring0_fault_with_error_code():
    env = Env()
    cpu = env.cpu
    env.enter_ring(3)
    env.code(CLI)               # IOPL 0 < CPL 3: #GP(0)
    cpu.eflags = PRE | IF
    env.step()
    at_handler(env, xe.GP)
    assert cpu.last_exception == (xe.GP, 0)
    assert (cpu.cs, cpu.ss, cpu.cpl, cpu.esp) == (CS0, DS0, 0, ESP0 - 24)
    words = env.stack(6)
    words[3] &= ~RF
    assert_frame(words, [("error", 0), ("eip", CODE), ("cs", CS3), ("eflags", PRE | IF),
                         ("esp", RING3_ESP), ("ss", DS3)])
    assert cpu.eflags == (PRE | IF) & ~(CLEARED | IF)
    assert cpu.eflags & IF == 0                   # interrupt gate


def test_ring3_to_ring1_int_n_uses_ss1_esp1():
    env = Env()
    cpu = env.cpu
    env.set_gate(0x81, sel=CS1, dpl=3)
    env.enter_ring(3)
    env.code(INT(0x81))
    cpu.eflags = PRE | IF
    env.step()
    at_handler(env, 0x81)
    assert (cpu.cs, cpu.ss, cpu.cpl) == (CS1, DS1, 1)
    assert cpu.esp == ESP1 - 20
    assert_frame(env.stack(5), [("eip", CODE + 2), ("cs", CS3), ("eflags", PRE | IF),
                                ("esp", RING3_ESP), ("ss", DS3)])
    assert env.read32(ESP0 - 4) == xe.STACK_FILL    # the ring-0 stack is untouched


def test_ring3_to_ring1_fault_with_error_code():
    env = Env()
    cpu = env.cpu
    env.set_gate(xe.GP, sel=CS1)        # lguest's Guest takes its #GP in ring 1
    env.enter_ring(3)
    env.code(HLT)
    cpu.eflags = PRE | IF
    env.step()
    at_handler(env, xe.GP)
    assert (cpu.cs, cpu.ss, cpu.cpl, cpu.esp) == (CS1, DS1, 1, ESP1 - 24)
    words = env.stack(6)
    words[3] &= ~RF
    assert_frame(words, [("error", 0), ("eip", CODE), ("cs", CS3), ("eflags", PRE | IF),
                         ("esp", RING3_ESP), ("ss", DS3)])


def test_ring1_to_ring0_int_n():
    env = Env()
    cpu = env.cpu
    env.set_gate(0x82, dpl=1)
    env.enter_ring(1)
    esp = cpu.esp
    env.code(INT(0x82))
    cpu.eflags = PRE | IF
    env.step()
    at_handler(env, 0x82)
    assert (cpu.cs, cpu.ss, cpu.cpl, cpu.esp) == (CS0, DS0, 0, ESP0 - 20)
    assert_frame(env.stack(5), [("eip", CODE + 2), ("cs", CS1), ("eflags", PRE | IF),
                                ("esp", esp), ("ss", DS1)])


def test_ring1_to_ring0_fault_with_error_code():
    env = Env()
    cpu = env.cpu
    env.enter_ring(1)
    esp = cpu.esp
    env.code(MOV_CR3_EAX)       # privileged at CPL 1
    cpu.eflags = PRE | IF
    env.step()
    at_handler(env, xe.GP)
    assert cpu.last_exception == (xe.GP, 0)
    assert (cpu.cs, cpu.ss, cpu.cpl, cpu.esp) == (CS0, DS0, 0, ESP0 - 24)
    words = env.stack(6)
    words[3] &= ~RF
    assert_frame(words, [("error", 0), ("eip", CODE), ("cs", CS1), ("eflags", PRE | IF),
                         ("esp", esp), ("ss", DS1)])


def test_ring1_to_ring1_stays_on_the_same_stack():
    env = Env()
    cpu = env.cpu
    env.set_gate(0x83, sel=CS1, dpl=1)
    env.enter_ring(1)
    esp = cpu.esp
    env.code(INT(0x83))
    cpu.eflags = PRE | IF
    env.step()
    at_handler(env, 0x83)
    assert (cpu.cs, cpu.ss, cpu.cpl, cpu.esp) == (CS1, DS1, 1, esp - 12)
    assert_frame(env.stack(3), [("eip", CODE + 2), ("cs", CS1), ("eflags", PRE | IF)])


def test_exception_at_ring3_ignores_gate_dpl():
    """Only INT n, INT3 and INTO check the gate's DPL: #DE at ring 3 goes through
    a DPL-0 gate."""
    env = Env()
    cpu = env.cpu
    env.enter_ring(3)
    env.code(DIV_ECX)
    cpu.ecx = 0
    env.step()
    at_handler(env, xe.DE)
    assert cpu.cpl == 0 and cpu.esp == ESP0 - 20


# --- gate checks -------------------------------------------------------------------------
@pytest.mark.parametrize("code,vector", [(INT(0x40), 0x40), (INT(0x80), 0x80), (INT3, 3),
                                         (INT(3), 3)])
def test_int_from_ring3_to_dpl0_gate_is_gp(code, vector):
    env = Env()
    cpu = env.cpu
    env.enter_ring(3)
    env.code(code)
    env.step()
    at_handler(env, xe.GP)
    assert cpu.last_exception == (xe.GP, vector * 8 + 2)
    assert env.stack(2) == [vector * 8 + 2, CODE]      # a fault: EIP of the int


def test_into_from_ring3_to_dpl0_gate_is_gp():
    env = Env()
    cpu = env.cpu
    env.enter_ring(3)
    env.code(INTO)
    cpu.eflags = 0x2 | xe.OF
    env.step()
    at_handler(env, xe.GP)
    assert cpu.last_exception == (xe.GP, 4 * 8 + 2)


def test_int_from_ring1_gate_dpl():
    env = Env()
    cpu = env.cpu
    env.set_gate(0x50, dpl=1)
    env.enter_ring(1)
    env.code(INT(0x51) + INT(0x50))
    env.step()
    at_handler(env, xe.GP)                 # gate 0x51 has DPL 0
    assert cpu.last_exception == (xe.GP, 0x51 * 8 + 2)
    env = Env()
    env.set_gate(0x50, dpl=1)
    env.enter_ring(1)
    env.code(INT(0x50))
    env.step()
    at_handler(env, 0x50)


def test_int_n_to_not_present_gate_is_np_without_ext():
    env = Env()
    env.set_gate(0x40, present=False)
    env.code(INT(0x40))
    env.step()
    at_handler(env, xe.NP)
    assert env.cpu.last_exception == (xe.NP, 0x40 * 8 + 2)
    assert env.stack(2) == [0x40 * 8 + 2, CODE]


def test_exception_to_not_present_gate_is_np_with_ext():
    """#UD is benign, #NP contributory: handled serially; EXT = 1 because the
    #NP arose delivering an event external to the program (an exception)."""
    env = Env()
    env.set_gate(xe.UD, present=False)
    env.code(UD2)
    env.step()
    at_handler(env, xe.NP)
    assert env.cpu.last_exception == (xe.NP, xe.UD * 8 + 3)


def test_external_interrupt_to_not_present_gate_is_np_with_ext():
    env = Env()
    env.set_gate(0x41, present=False)
    env.code(NOP)
    env.cpu.eflags = 0x2 | IF
    env.cpu.raise_interrupt(0x41)
    env.step()
    at_handler(env, xe.NP)
    assert env.cpu.last_exception == (xe.NP, 0x41 * 8 + 3)
    assert env.stack(2) == [0x41 * 8 + 3, CODE]


def test_vector_beyond_idt_limit_is_gp():
    env = Env()
    env.cpu.idtr = (xe.IDT_BASE, 0x40 * 8 - 1)
    env.code(INT(0x50))
    env.step()
    at_handler(env, xe.GP)
    assert env.cpu.last_exception == (xe.GP, 0x50 * 8 + 2)


@pytest.mark.parametrize("kind", ["call", "data"])
def test_gate_of_wrong_type_is_gp(kind):
    env = Env()
    if kind == "call":
        env.set_gate(0x44, kind="call")
    else:
        env.mem.write(xe.IDT_BASE + 0x44 * 8, xe.data_segment(0))
    env.code(INT(0x44))
    env.step()
    at_handler(env, xe.GP)
    assert env.cpu.last_exception == (xe.GP, 0x44 * 8 + 2)


def test_gate_to_non_code_segment_is_gp_selector():
    env = Env()
    env.set_gate(0x45, sel=DS0)
    env.code(INT(0x45))
    env.step()
    at_handler(env, xe.GP)
    assert env.cpu.last_exception == (xe.GP, DS0)


def test_gate_to_outer_ring_code_is_gp_selector():
    """A handler's code segment may not be less privileged than CPL."""
    env = Env()
    env.set_gate(0x46, sel=CS3)
    env.code(INT(0x46))
    env.step()
    at_handler(env, xe.GP)
    assert env.cpu.last_exception == (xe.GP, CS3 & 0xFFFC)


def test_bad_ss1_in_tss_is_ts():
    """Ring 3 -> ring 1 with an ss1 whose DPL is not 1: #TS(ss1), delivered to
    a ring-0 handler on the (good) ss0:esp0 stack."""
    env = Env()
    cpu = env.cpu
    env.set_tss(ss1=DS0)
    env.set_gate(0x81, sel=CS1, dpl=3)
    env.enter_ring(3)
    env.code(INT(0x81))
    env.step()
    at_handler(env, xe.TS)
    assert cpu.last_exception == (xe.TS, DS0)
    assert cpu.cpl == 0 and cpu.esp == ESP0 - 24
    assert env.stack(2) == [DS0, CODE]


# --- external interrupts ---------------------------------------------------------------
def test_external_interrupt_at_ring3_with_if():
    env = Env()
    cpu = env.cpu
    env.enter_ring(3)
    env.code(NOP + NOP)
    cpu.eflags = 0x2 | IF | xe.CF
    cpu.raise_interrupt(0x30)        # through a DPL-0 gate: no DPL check
    env.step()
    at_handler(env, 0x30)
    assert cpu.cpl == 0 and cpu.esp == ESP0 - 20
    assert_frame(env.stack(5), [("eip", CODE), ("cs", CS3), ("eflags", 0x2 | IF | xe.CF),
                                ("esp", RING3_ESP), ("ss", DS3)])
    assert cpu.eflags & IF == 0
    assert cpu.last_exception is None or cpu.last_exception[1] is None


def test_external_interrupt_waits_for_if():
    env = Env()
    cpu = env.cpu
    env.code(NOP + NOP + STI + NOP + NOP)
    cpu.eflags = 0x2
    cpu.raise_interrupt(0x30)
    env.step(2)
    assert cpu.eip == CODE + 2            # two nops ran, nothing delivered
    env.step()                            # sti
    assert cpu.eip == CODE + 3
    env.step()                            # the instruction after sti runs first
    assert cpu.eip == CODE + 4
    env.step()
    at_handler(env, 0x30)
    assert env.stack(1) == [CODE + 4]


def test_sti_shadow_delivers_after_the_next_instruction():
    env = Env()
    cpu = env.cpu
    env.code(STI + NOP + NOP)
    cpu.eflags = 0x2
    cpu.raise_interrupt(0x31)
    env.step()
    assert cpu.eip == CODE + 1
    env.step()
    assert cpu.eip == CODE + 2, "delivered inside the STI shadow"
    env.step()
    at_handler(env, 0x31)
    assert env.stack(1) == [CODE + 2]


def test_sti_shadow_in_run():
    env = Env()
    cpu = env.cpu
    env.code(STI + NOP + HLT)
    cpu.eflags = 0x2
    cpu.raise_interrupt(0x31)
    assert cpu.run(10) == "hlt"
    assert cpu.eip == env.handler(0x31) + 1    # the handler's hlt
    assert env.stack(1) == [CODE + 2]


def test_mov_ss_shadow():
    env = Env()
    cpu = env.cpu
    env.code(MOV_SS_EAX + NOP + NOP)
    cpu.eax = DS0
    cpu.eflags = 0x2 | IF
    env.step()
    cpu.raise_interrupt(0x32)
    env.step()
    assert cpu.eip == CODE + 3, "delivered inside the MOV SS shadow"
    env.step()
    at_handler(env, 0x32)
    assert env.stack(1) == [CODE + 3]


def test_popf_setting_if_has_no_shadow():
    env = Env()
    cpu = env.cpu
    env.code(b"\x9d" + NOP)               # popf
    cpu.esp -= 4
    env.mem.write32(cpu.esp, 0x2 | IF)
    cpu.eflags = 0x2
    cpu.raise_interrupt(0x33)
    env.step()
    assert cpu.eip == CODE + 1 and cpu.eflags & IF
    env.step()
    at_handler(env, 0x33)
    assert env.stack(1) == [CODE + 1]


# --- hlt --------------------------------------------------------------------------------
def test_hlt_wakes_on_interrupt_and_iret_returns_after_hlt():
    env = Env()
    cpu = env.cpu
    env.set_handler_code(0x30, IRET)
    env.code(HLT + NOP + HLT)
    cpu.eflags = 0x2 | IF
    assert cpu.run(100) == "hlt"
    assert cpu.eip == CODE + 1 and cpu.halted
    n = cpu.instructions
    assert cpu.run(100) == "hlt"          # still halted: nothing to do
    assert cpu.instructions == n and cpu.eip == CODE + 1
    cpu.raise_interrupt(0x30)
    env.step()
    at_handler(env, 0x30)
    assert not cpu.halted
    assert env.stack(1) == [CODE + 1]
    env.step()                            # iret
    assert cpu.eip == CODE + 1 and cpu.esp == RING0_ESP and cpu.eflags & IF
    assert cpu.run(100) == "hlt"
    assert cpu.eip == CODE + 3


def test_hlt_wake_in_run():
    env = Env()
    cpu = env.cpu
    env.set_handler_code(0x30, IRET)
    env.code(HLT + NOP + HLT)
    cpu.eflags = 0x2 | IF
    assert cpu.run(100) == "hlt"
    cpu.raise_interrupt(0x30)
    assert cpu.run(100) == "hlt"
    assert cpu.eip == CODE + 3                # handler ran, iret, nop, second hlt
    assert cpu.esp == RING0_ESP


def test_hlt_with_if_clear_stays_halted():
    env = Env()
    cpu = env.cpu
    env.code(HLT + NOP)
    cpu.eflags = 0x2
    assert cpu.run(100) == "hlt"
    cpu.raise_interrupt(0x30)
    assert cpu.run(100) == "hlt"
    assert cpu.eip == CODE + 1 and cpu.halted
    assert cpu.esp == RING0_ESP


def test_sti_hlt_idiom():
    env = Env()
    cpu = env.cpu
    env.code(STI + HLT + NOP)
    cpu.eflags = 0x2
    cpu.raise_interrupt(0x30)
    env.step()                                # sti
    assert env.step() in (None, "hlt")        # hlt runs inside the shadow
    assert cpu.eip == CODE + 2
    env.step()
    at_handler(env, 0x30)
    assert env.stack(1) == [CODE + 2]


# --- iret -------------------------------------------------------------------------------
def test_iret_same_ring():
    env = Env()
    cpu = env.cpu
    env.set_handler_code(0x40, IRET)
    env.code(INT(0x40) + NOP)
    cpu.eflags = PRE | IF
    env.step(2)
    assert (cpu.eip, cpu.esp, cpu.cs, cpu.cpl) == (CODE + 2, RING0_ESP, CS0, 0)
    assert cpu.eflags == PRE | IF


def test_iret_back_to_ring3():
    env = Env()
    cpu = env.cpu
    env.set_gate(0x80, dpl=3)
    env.set_handler_code(0x80, IRET)
    env.enter_ring(3)
    env.code(INT(0x80) + NOP)
    cpu.eflags = 0x2 | IF | xe.CF
    env.step(2)
    assert (cpu.eip, cpu.esp, cpu.cs, cpu.ss, cpu.cpl) == (CODE + 2, RING3_ESP, CS3, DS3, 3)
    assert cpu.eflags == 0x2 | IF | xe.CF
    assert cpu.ds == DS3


def test_iret_back_to_ring1_from_ring0():
    env = Env()
    cpu = env.cpu
    env.set_gate(0x82, dpl=1)
    env.set_handler_code(0x82, IRET)
    env.enter_ring(1)
    esp = cpu.esp
    env.code(INT(0x82))
    cpu.eflags = 0x2 | IF
    env.step(2)
    assert (cpu.eip, cpu.esp, cpu.cs, cpu.ss, cpu.cpl) == (CODE + 2, esp, CS1, DS1, 1)


def _iret_frame(env: Env, eip: int, cs: int, eflags: int, esp: int | None = None,
                ss: int | None = None) -> None:
    words = [eip, cs, eflags] + ([] if esp is None else [esp, ss])
    env.cpu.esp -= 4 * len(words)
    for i, w in enumerate(words):
        env.mem.write32(env.cpu.esp + 4 * i, w)


def test_iret_to_outer_ring_nulls_more_privileged_data_segments():
    env = Env()
    cpu = env.cpu
    env.set_gdt(10, xe.code_segment(0, conforming=True, readable=True))
    conforming = 10 << 3
    cpu.load_segment("ds", DS0)           # DPL 0 < 3: nulled
    cpu.load_segment("es", DS3)           # DPL 3: kept
    cpu.load_segment("fs", DS1)           # DPL 1 < 3: nulled
    cpu.load_segment("gs", conforming)    # conforming code: kept
    env.code(IRET)
    _iret_frame(env, CODE + 0x100, CS3, 0x2 | IF, RING3_ESP - 8, DS3)
    env.step()
    assert (cpu.eip, cpu.cs, cpu.ss, cpu.esp, cpu.cpl) == (CODE + 0x100, CS3, DS3,
                                                           RING3_ESP - 8, 3)
    assert (cpu.ds, cpu.es, cpu.fs, cpu.gs) == (0, DS3, 0, conforming)


def test_iret_to_ring1_keeps_ring1_data_segments():
    env = Env()
    cpu = env.cpu
    cpu.load_segment("ds", DS0)
    cpu.load_segment("es", DS1)
    cpu.load_segment("fs", DS3)
    env.code(IRET)
    _iret_frame(env, CODE + 0x100, CS1, 0x2, ESP1 - 0x100, DS1)
    env.step()
    assert cpu.cpl == 1 and cpu.cs == CS1 and cpu.ss == DS1
    assert (cpu.ds, cpu.es, cpu.fs) == (0, DS1, DS3)


def test_iret_to_inner_ring_is_gp():
    env = Env()
    cpu = env.cpu
    env.enter_ring(3)
    env.code(IRET)
    _iret_frame(env, CODE, CS0, 0x2)
    env.step()
    at_handler(env, xe.GP)
    assert cpu.last_exception == (xe.GP, CS0)


def test_iret_at_ring0_sets_iopl_and_if():
    env = Env()
    cpu = env.cpu
    env.code(IRET)
    _iret_frame(env, CODE + 0x10, CS3, 0x2 | IF | (3 << 12), RING3_ESP, DS3)
    env.step()
    assert cpu.cpl == 3
    assert cpu.eflags == 0x2 | IF | (3 << 12)


def test_iret_at_ring3_keeps_iopl_and_if():
    env = Env()
    cpu = env.cpu
    env.enter_ring(3)
    cpu.eflags = 0x2 | IF
    env.code(IRET)
    _iret_frame(env, CODE + 0x10, CS3, 0x2 | (3 << 12) | xe.CF)
    env.step()
    assert cpu.eip == CODE + 0x10
    assert cpu.eflags == 0x2 | IF | xe.CF        # IOPL and IF unchanged, CF taken


# --- the pushed RF -------------------------------------------------------------------------
def test_rf_pushed_for_faults():
    """SDM vol. 3, 17.3.1.1: for any fault-class exception (other than an
    instruction-breakpoint #DB) the EFLAGS image pushed has RF = 1."""
    env = Env()
    env.code(UD2)
    env.step()
    at_handler(env, xe.UD)
    assert env.stack(3)[2] & RF


def test_rf_not_pushed_for_int_n_and_external_interrupts():
    env = Env()
    env.code(INT(0x40))
    env.step()
    assert env.stack(3)[2] & RF == 0
    env = Env()
    env.code(NOP)
    env.cpu.eflags = 0x2 | IF
    env.cpu.raise_interrupt(0x30)
    env.step()
    at_handler(env, 0x30)
    assert env.stack(3)[2] & RF == 0


# --- #DF and the triple fault ---------------------------------------------------------------
def test_double_fault_gp_then_np():
    """#GP at ring 3 whose gate is not present: #NP (contributory) while
    delivering #GP (contributory) is a #DF, error code 0."""
    env = Env()
    cpu = env.cpu
    env.set_gate(xe.GP, present=False)
    env.enter_ring(3)
    env.code(HLT)
    env.step()
    at_handler(env, xe.DF_VEC)
    assert cpu.last_exception == (xe.DF_VEC, 0)
    assert cpu.cpl == 0 and cpu.esp == ESP0 - 24
    assert env.stack(1) == [0]
    assert_frame(env.stack(6)[4:], [("esp", RING3_ESP), ("ss", DS3)])


def test_double_fault_pf_then_np():
    env = Env(paging=True)
    cpu = env.cpu
    env.pt.unmap(0x300000)
    env.set_gate(xe.PF_VEC, present=False)
    env.enter_ring(3)
    env.code(b"\xa1" + (0x300000).to_bytes(4, "little"))   # mov eax, [0x300000]
    env.step()
    at_handler(env, xe.DF_VEC)
    assert cpu.last_exception == (xe.DF_VEC, 0)
    assert cpu.cr2 == 0x300000


def test_double_fault_pf_while_delivering_pf():
    """The ring-0 stack is not mapped: #PF during delivery of a #PF is #DF.
    The #DF handler is in ring 1, whose stack is mapped."""
    env = Env(paging=True)
    cpu = env.cpu
    env.pt.unmap(ESP0 - 4)
    env.set_gate(xe.DF_VEC, sel=CS1)
    env.pt.unmap(0x300000)
    env.enter_ring(3)
    env.code(b"\xa1" + (0x300000).to_bytes(4, "little"))
    env.step()
    at_handler(env, xe.DF_VEC)
    assert cpu.last_exception == (xe.DF_VEC, 0)
    assert cpu.cpl == 1 and cpu.ss == DS1 and cpu.esp == ESP1 - 24
    assert env.stack(1) == [0]


def test_pf_while_delivering_gp_is_handled_serially():
    """Contributory then #PF is not a double fault: the #PF is delivered, with
    the supervisor-write error code of the failed push and CR2 on esp0's page."""
    env = Env(paging=True)
    cpu = env.cpu
    env.pt.unmap(ESP0 - 4)
    env.set_gate(xe.PF_VEC, sel=CS1)
    env.enter_ring(3)
    env.code(HLT)
    env.step()
    at_handler(env, xe.PF_VEC)
    assert cpu.last_exception == (xe.PF_VEC, xe.PG_W)
    assert ESP0 - 24 <= cpu.cr2 < ESP0
    assert cpu.cpl == 1 and cpu.esp == ESP1 - 24
    words = env.stack(6)
    words[3] &= ~RF
    assert_frame(words, [("error", xe.PG_W), ("eip", CODE), ("cs", CS3), ("eflags", 0x2),
                         ("esp", RING3_ESP), ("ss", DS3)])


def test_de_then_np_is_double_fault():
    env = Env()
    env.set_gate(xe.DE, present=False)
    env.code(DIV_ECX)      # #DE is contributory, #NP too
    env.step()
    at_handler(env, xe.DF_VEC)
    assert env.cpu.last_exception == (xe.DF_VEC, 0)


def test_benign_then_contributory_is_serial():
    env = Env()
    env.set_gate(xe.BP, present=False)
    env.code(INT3)          # #BP is benign: #NP is delivered
    env.step()
    at_handler(env, xe.NP)
    assert env.cpu.last_exception == (xe.NP, xe.BP * 8 + 2)   # INT3: EXT = 0


# INT n refused by its gate is the instruction's own fault, not a second
# exception: #GP/#NP(n*8+2), EXT clear, for every n, the exception vectors
# included (SDM vol. 2, INT n; issue 10).
@pytest.mark.parametrize("vector", [0, 1, 6, 8, 10, 11, 12, 13, 14, 17, 0x20, 0xFF])
def test_int_n_through_dpl0_gate_from_ring1_is_gp(vector):
    env = Env()
    cpu = env.cpu
    env.enter_ring(1)
    env.code(INT(vector))
    env.step()
    at_handler(env, xe.GP)
    assert cpu.shutdown is None
    assert cpu.last_exception == (xe.GP, vector * 8 + 2)
    assert env.stack(2) == [vector * 8 + 2, CODE]


def test_int_14_from_ring1_reaches_the_gp_handler_with_0x72():
    env = Env()
    cpu = env.cpu
    env.enter_ring(1)
    env.code(INT(14))
    assert cpu.run(1) == "limit"
    at_handler(env, xe.GP)
    assert cpu.last_exception == (xe.GP, 0x72)
    assert cpu.cpl == 0 and cpu.esp == ESP0 - 24


@pytest.mark.parametrize("vector", [8, 10, 13, 14])
def test_int_n_to_not_present_exception_gate_is_np(vector):
    env = Env()
    env.set_gate(vector, present=False)
    env.code(INT(vector))
    env.step()
    at_handler(env, xe.NP)
    assert env.cpu.shutdown is None
    assert env.cpu.last_exception == (xe.NP, vector * 8 + 2)


def test_int_14_beyond_idt_limit_is_gp_not_double():
    env = Env()
    env.cpu.idtr = (xe.IDT_BASE, 14 * 8 - 1)     # the #GP gate (13) still fits
    env.code(INT(14))
    env.step()
    at_handler(env, xe.GP)
    assert env.cpu.last_exception == (xe.GP, 14 * 8 + 2)


def test_int_8_through_an_entry_that_is_not_a_gate_is_gp():
    env = Env()
    env.mem.write(xe.IDT_BASE + 8 * 8, bytes(8))
    env.code(INT(8))
    env.step()
    at_handler(env, xe.GP)
    assert env.cpu.last_exception == (xe.GP, 8 * 8 + 2)


def test_int_8_at_ring0_runs_the_df_handler_without_error_code():
    env = Env()
    env.code(INT(8))
    env.step()
    at_handler(env, xe.DF_VEC)
    assert env.cpu.last_exception == (xe.DF_VEC, None)
    assert env.cpu.esp == RING0_ESP - 12


def test_int_8_whose_gate_faults_then_gp_gate_faults_is_double_not_triple():
    """int $8 refused (#GP, the first exception), then the #GP gate is not
    present (#NP): contributory after contributory, a #DF, not a shutdown."""
    env = Env()
    env.set_gate(xe.GP, present=False)
    env.enter_ring(1)
    env.code(INT(8))
    env.step()
    at_handler(env, xe.DF_VEC)
    assert env.cpu.last_exception == (xe.DF_VEC, 0)


def test_external_interrupt_is_benign_even_on_vector_14():
    """A hardware interrupt on vector 14 whose gate is not present: the #NP
    follows serially (EXT set), no #DF."""
    env = Env()
    env.set_gate(14, present=False)
    env.code(NOP)
    env.cpu.eflags = 0x2 | IF
    env.cpu.raise_interrupt(14)
    env.step()
    at_handler(env, xe.NP)
    assert env.cpu.last_exception == (xe.NP, 14 * 8 + 3)


@pytest.mark.parametrize("first,second,double", [
    ("ts", "gp", True), ("np", "gp", True), ("ss", "np", True), ("gp", "ts", True),
    ("de", "gp", True), ("pf", "gp", True), ("pf", "pf", True),
    ("gp", "pf", False), ("ud", "gp", False), ("ud", "pf", False), ("bp", "gp", False),
])
def test_double_fault_pairs(first, second, double):
    """Each class of pair, SDM vol. 3 table 6-5: the first exception raised by
    a ring-3 instruction, the second by its delivery to ring 0 (a not-present
    gate for #NP, a gate to a data segment for #GP, an unmapped ring-0 stack
    for #PF, a code segment as ss0 for #TS).  #DF goes to ring 1."""
    env = Env(paging=True)
    cpu = env.cpu
    vectors = {"ts": xe.TS, "np": xe.NP, "ss": xe.SS_VEC, "gp": xe.GP, "de": xe.DE,
               "pf": xe.PF_VEC, "ud": xe.UD, "bp": xe.BP}
    first_vec = vectors[first]
    env.set_gdt(12, xe.data_segment(3, present=False))          # selector 0x63
    env.set_gdt(13, xe.data_segment(3, limit=0xFF, g=False))    # selector 0x6B
    mov_eax = b"\xb8"
    code = {"gp": HLT, "de": DIV_ECX, "ud": UD2, "bp": INT3,
            "np": mov_eax + (0x63).to_bytes(4, "little") + MOV_DS_EAX,
            "ss": mov_eax + (0x6B).to_bytes(4, "little") + MOV_SS_EAX
            + b"\xbc\0\x10\0\0" + b"\x50",                       # mov esp,0x1000; push
            "pf": b"\xa1" + (0x300000).to_bytes(4, "little"),
            "ts": INT(0x40)}[first]
    if first == "bp":
        env.set_gate(xe.BP, dpl=3)
    if first == "ts":    # int 0x40 to a ring-2 handler whose ss2 is a code segment
        env.set_gate(0x40, sel=xe.CS2, dpl=3)
        env.set_tss(ss2=CS0)
    env.pt.unmap(0x300000)
    env.set_gate(xe.DF_VEC, sel=CS1)
    env.enter_ring(3)
    env.code(code)
    if second == "gp":
        env.set_gate(first_vec, sel=DS0)
    elif second == "np":
        env.set_gate(first_vec, present=False)
    elif second == "ts":
        env.set_tss(ss0=CS0)
    elif second == "pf":
        env.pt.unmap(ESP0 - 4)
        if first != "pf":
            env.set_gate(xe.PF_VEC, sel=CS1)     # its own stack (ring 1) is mapped
    for _ in range(4):
        env.step()
        if cpu.last_exception is not None:
            break
    assert cpu.shutdown is None
    if double:
        at_handler(env, xe.DF_VEC)
        assert cpu.last_exception == (xe.DF_VEC, 0)
        assert cpu.cpl == 1 and env.stack(1) == [0]
    else:
        at_handler(env, vectors[second])
        assert cpu.last_exception[0] == vectors[second]


def test_triple_fault_stops_the_cpu():
    env = Env()
    cpu = env.cpu
    cpu.idtr = (xe.IDT_BASE, 7)          # only vector 0 fits
    env.code(UD2 + NOP)
    assert cpu.run(100) == "triple-fault"
    eip, n = cpu.eip, cpu.instructions
    assert cpu.step() == "triple-fault"
    assert cpu.run(100) == "triple-fault"
    assert (cpu.eip, cpu.instructions) == (eip, n)


def test_triple_fault_from_not_present_df_gate():
    env = Env()
    cpu = env.cpu
    env.set_gate(xe.GP, present=False)
    env.set_gate(xe.DF_VEC, present=False)
    env.enter_ring(3)
    env.code(HLT)
    assert cpu.step() == "triple-fault"


def test_triple_fault_in_step():
    env = Env()
    env.cpu.idtr = (xe.IDT_BASE, 7)
    env.code(UD2)
    assert env.cpu.step() == "triple-fault"


# --- real mode: the interrupt vector table ---------------------------------------------
def _real_mode():
    from lguestsim.x86 import CPU, PhysicalMemory

    mem = PhysicalMemory(1 << 20)
    cpu = CPU(mem)                      # real mode, as after RESET
    mem.write(0x21 * 4, (0x0100 | (0x0200 << 16)).to_bytes(4, "little"))   # 0200:0100
    mem.write(0 * 4, (0x0180 | (0x0200 << 16)).to_bytes(4, "little"))      # #DE 0200:0180
    mem.write(0x2100, IRET)
    mem.write(0x2180, HLT)
    cpu.load_cs(0x1000)
    cpu.load_segment("ss", 0x0000)
    cpu.esp = 0x7C00
    cpu.eip = 0
    return mem, cpu


def test_real_mode_int_through_ivt_and_iret():
    mem, cpu = _real_mode()
    mem.write(0x10000, INT(0x21) + NOP)
    cpu.eflags = 0x2 | IF | xe.CF
    cpu.step()
    assert (cpu.cs, cpu.eip) == (0x0200, 0x0100)
    assert cpu.esp == 0x7C00 - 6
    assert [mem.read16(0x7C00 - 6 + 2 * i) for i in range(3)] == [0x0002, 0x1000,
                                                                  0x2 | IF | xe.CF]
    assert cpu.eflags & IF == 0
    cpu.step()                               # iret
    assert (cpu.cs, cpu.eip, cpu.esp) == (0x1000, 0x0002, 0x7C00)
    assert cpu.eflags == 0x2 | IF | xe.CF


def test_real_mode_divide_error_through_ivt():
    mem, cpu = _real_mode()
    mem.write(0x10000, b"\xf6\xf1")          # div cl
    cpu.eax, cpu.ecx = 0x1234, 0
    cpu.step()
    assert (cpu.cs, cpu.eip) == (0x0200, 0x0180)
    assert mem.read16(0x7C00 - 6) == 0       # IP of the div: a fault


# --- more of the SDM's delivery rules ---------------------------------------------------------
def test_16bit_interrupt_gate_pushes_words():
    """A 16-bit gate pushes FLAGS, CS, IP as words (SDM vol. 2, INT n: 'IF 16-bit
    gate ... Push(FLAGS); Push(far pointer to return location)')."""
    env = Env()
    cpu = env.cpu
    env.mem.write(0x1200, b"\xf4")
    env.set_gate(0x47, offset=0x1200, kind="interrupt16")
    env.code(INT(0x47))
    cpu.eflags = 0x2 | IF | xe.CF
    env.step()
    assert cpu.eip == 0x1200
    assert cpu.esp == RING0_ESP - 6
    assert [env.mem.read16(RING0_ESP - 6 + 2 * i) for i in range(3)] == [
        (CODE + 2) & 0xFFFF, CS0, 0x2 | IF | xe.CF]
    assert cpu.eflags & IF == 0


def test_tss_stack_is_read_at_each_delivery():
    """lguest's SET_STACK rewrites esp1 in the TSS; the next trap uses it."""
    env = Env()
    cpu = env.cpu
    env.set_gate(0x81, sel=CS1, dpl=3)
    env.enter_ring(3)
    env.set_tss(esp1=ESP1 - 0x400)
    env.code(INT(0x81))
    env.step()
    at_handler(env, 0x81)
    assert cpu.esp == ESP1 - 0x400 - 20
    assert_frame(env.stack(5), [("eip", CODE + 2), ("cs", CS3), ("eflags", 0x2),
                                ("esp", RING3_ESP), ("ss", DS3)])


def test_tss_too_short_for_the_ring1_stack_is_ts():
    """The TSS limit must cover ss1:esp1 (bytes 12-19): else #TS(TSS selector)."""
    env = Env()
    cpu = env.cpu
    env.set_gate(0x81, sel=CS1, dpl=3)
    env.set_gdt(23, xe.tss_descriptor(xe.TSS_BASE, limit=0x0B))
    cpu.load_tr(23 << 3)
    env.enter_ring(3)
    env.code(INT(0x81))
    env.step()
    at_handler(env, xe.TS)
    assert cpu.last_exception == (xe.TS, 23 << 3)
    assert cpu.esp == ESP0 - 24                 # ss0:esp0 is still inside the limit


def test_handler_offset_beyond_code_limit_is_gp0():
    env = Env()
    env.set_gdt(10, xe.code_segment(0, limit=0xFFFF, g=False))
    env.set_gate(0x48, offset=0x20000, sel=10 << 3)
    env.code(INT(0x48))
    env.step()
    at_handler(env, xe.GP)
    assert env.cpu.last_exception == (xe.GP, 0)


def test_single_step_trap():
    """TF set: #DB after the instruction, pushed EIP is the next one, the pushed
    EFLAGS still has TF, and the handler runs with TF clear."""
    env = Env()
    cpu = env.cpu
    env.code(b"\x40\x40")                        # inc eax; inc eax
    cpu.eflags = 0x2 | TF
    env.step()
    assert cpu.eax == 1
    at_handler(env, xe.DB)
    assert env.stack(3)[0] == CODE + 1
    assert env.stack(3)[2] & TF
    assert cpu.eflags & TF == 0


def test_nested_delivery_on_the_same_stack():
    """A fault inside a ring-0 handler nests on the ring-0 stack."""
    env = Env()
    cpu = env.cpu
    env.set_gate(0x80, dpl=3)
    env.set_handler_code(0x80, UD2)
    env.enter_ring(3)
    env.code(INT(0x80))
    env.step()
    at_handler(env, 0x80)
    env.step()
    at_handler(env, xe.UD)
    assert cpu.esp == ESP0 - 20 - 12
    words = env.stack(3)
    words[2] &= ~RF
    assert_frame(words, [("eip", env.handler(0x80)), ("cs", CS0), ("eflags", 0x2)])


def test_handler_in_conforming_code_runs_at_the_current_ring():
    """A conforming handler segment keeps CPL: no stack switch (SDM INT n:
    'IF code segment is conforming OR DPL = CPL THEN INTRA-PRIVILEGE-LEVEL')."""
    env = Env()
    cpu = env.cpu
    env.set_gdt(10, xe.code_segment(0, conforming=True))
    env.set_gate(0x49, sel=10 << 3, dpl=3)
    env.enter_ring(3)
    env.code(INT(0x49))
    env.step()
    at_handler(env, 0x49)
    assert cpu.cpl == 3 and cpu.cs == (10 << 3) | 3
    assert cpu.ss == DS3 and cpu.esp == RING3_ESP - 12
    assert_frame(env.stack(3), [("eip", CODE + 2), ("cs", CS3), ("eflags", 0x2)])


def test_handler_code_segment_not_present_is_np_selector():
    env = Env()
    env.set_gdt(10, xe.code_segment(0, present=False))
    env.set_gate(0x4A, sel=10 << 3)
    env.code(INT(0x4A))
    env.step()
    at_handler(env, xe.NP)
    assert env.cpu.last_exception == (xe.NP, 10 << 3)
    env = Env()
    env.set_gdt(10, xe.code_segment(0, present=False))
    env.set_gate(xe.UD, sel=10 << 3)
    env.code(UD2)
    env.step()
    at_handler(env, xe.NP)
    assert env.cpu.last_exception == (xe.NP, (10 << 3) | 1)     # EXT: an exception


def test_iret_with_mismatched_ss_is_gp():
    env = Env()
    env.code(IRET)
    _iret_frame(env, CODE, CS3, 0x2, RING3_ESP, DS0)     # SS RPL 0 != CS RPL 3
    env.step()
    at_handler(env, xe.GP)
    assert env.cpu.last_exception == (xe.GP, DS0)
    assert env.cpu.cpl == 0


def test_iret_to_not_present_code_is_np():
    env = Env()
    env.set_gdt(10, xe.code_segment(3, present=False))
    env.code(IRET)
    _iret_frame(env, CODE, (10 << 3) | 3, 0x2, RING3_ESP, DS3)
    env.step()
    at_handler(env, xe.NP)
    assert env.cpu.last_exception == (xe.NP, 10 << 3)


# --- the FPU and CR0.TS: lguest's lazy FPU switching ------------------------------------------
FNINIT = b"\xdb\xe3"
FWAIT = b"\x9b"


@pytest.mark.parametrize("cr0_bits,code,want", [
    (xe.CR0_TS, FNINIT, xe.NM),
    (xe.CR0_TS | xe.CR0_MP, FWAIT, xe.NM),
    (xe.CR0_TS, FWAIT, None),                  # wait faults on TS only with MP
    (xe.CR0_EM, FNINIT, xe.NM),
    (xe.CR0_EM, FWAIT, None),
    (0, FNINIT, None),
    (xe.CR0_TS, b"\xdd\x33", xe.NM),           # fnsave [ebx]
    (xe.CR0_TS, b"\xdd\x23", xe.NM),           # frstor [ebx]
])
def test_device_not_available(cr0_bits, code, want):
    env = Env()
    cpu = env.cpu
    cpu.cr0 = (cpu.cr0 & ~(xe.CR0_TS | xe.CR0_EM | xe.CR0_MP)) | cr0_bits
    env.code(code)
    cpu.ebx = xe.DATA
    env.step()
    if want is None:
        assert cpu.last_exception is None and cpu.eip == CODE + len(code)
    else:
        at_handler(env, want)
        assert cpu.last_exception == (want, None)
        assert env.stack(1) == [CODE]                # a fault: restartable


def test_clts_then_fpu_runs():
    env = Env()
    cpu = env.cpu
    env.set_handler_code(xe.NM, b"\x0f\x06\xcf")      # clts; iret
    cpu.cr0 = cpu.cr0 | xe.CR0_TS
    env.code(FNINIT + b"\xf4")
    assert cpu.run(20) == "hlt"
    assert cpu.eip == CODE + 3 and not cpu.cr0 & xe.CR0_TS


def test_nm_from_ring1_goes_to_ring0_stack():
    """The Guest (ring 1) touches the FPU with TS set: #NM to the Host's
    ring-0 handler, on ss0:esp0."""
    env = Env()
    cpu = env.cpu
    cpu.cr0 = cpu.cr0 | xe.CR0_TS
    env.enter_ring(1)
    esp = cpu.esp
    env.code(FNINIT)
    env.step()
    at_handler(env, xe.NM)
    assert cpu.esp == ESP0 - 20
    assert_frame(env.stack(5), [("eip", CODE), ("cs", CS1), ("eflags", env.stack(5)[2]),
                                ("esp", esp), ("ss", DS1)])


# --- alignment check (i486) -----------------------------------------------------------------
def test_alignment_check_at_ring3():
    """CR0.AM and EFLAGS.AC: an unaligned access at CPL 3 is #AC(0); at CPL 0
    or without AM/AC there is no check (SDM vol. 3, 6.15 interrupt 17)."""
    env = Env()
    cpu = env.cpu
    cpu.cr0 = cpu.cr0 | xe.CR0_AM
    env.enter_ring(3)
    env.code(b"\x8b\x03")                            # mov eax, [ebx]
    cpu.ebx = xe.DATA + 1
    cpu.eflags = 0x2 | xe.AC
    env.step()
    at_handler(env, xe.AC_VEC)
    assert cpu.last_exception == (xe.AC_VEC, 0)
    for ring, am, ac in [(0, True, True), (3, False, True), (3, True, False)]:
        env = Env()
        cpu = env.cpu
        if am:
            cpu.cr0 = cpu.cr0 | xe.CR0_AM
        env.enter_ring(ring)
        env.code(b"\x8b\x03")
        cpu.ebx = xe.DATA + 1
        cpu.eflags = 0x2 | (xe.AC if ac else 0)
        env.step()
        assert cpu.last_exception is None and cpu.eip == CODE + 2, (ring, am, ac)


def test_null_ss0_from_ring3_is_a_triple_fault():
    """ss0 null: INT n from ring 3 to a ring-0 handler is #TS; its own delivery
    needs ss0 again (#TS while delivering #TS: #DF), and so does the #DF's:
    the processor shuts down."""
    env = Env()
    env.set_tss(ss0=0)
    env.set_gate(0x80, dpl=3)
    env.enter_ring(3)
    env.code(INT(0x80))
    assert env.cpu.run(10) == "triple-fault"


def test_null_ss1_is_ts_delivered_to_ring0():
    env = Env()
    cpu = env.cpu
    env.set_tss(ss1=0)
    env.set_gate(0x81, sel=CS1, dpl=3)
    env.enter_ring(3)
    env.code(INT(0x81))
    env.step()
    at_handler(env, xe.TS)
    assert cpu.last_exception == (xe.TS, 0)      # null selector, EXT = 0 for INT n
    assert cpu.cpl == 0 and cpu.esp == ESP0 - 24
