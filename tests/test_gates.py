"""Call gates: far CALL and JMP through 386 and 286 call gates, far RET back.

test386.asm-style programs, assembled with GNU as and run from ring 0 of
``x86env.Env``: each enters ring 3 by IRET and then uses a gate in the GDT.
Where nothing faults, unicorn (QEMU, which implements call gates) runs the
same program and must end in the same registers, selectors and stacks.
Where the program faults, unicorn gives the vector and the faulting EIP and
the error code is the SDM's (vol. 2, CALL; vol. 3, 5.8): #GP(gate) for a
gate whose DPL is below CPL or RPL, #NP(gate) for a gate not present,
#GP(code) for a target that is not code or is less privileged, #NP(code) for
a target not present, #TS(ss) for a bad stack in the TSS, and #PF for the
parameter copy touching an unmapped page of the caller's stack.
"""

from __future__ import annotations

import protdiff
import x86env as xe
import x86env_unicorn as xu
from asm import assemble_with_symbols
from hypothesis import given
from hypothesis import strategies as st
from x86env import CODE, CS0, CS1, CS3, DS0, DS1, DS3, ESP0, ESP1, RING3_ESP, Env

GATE = 10                  # GDT entries used by the tests
GATE_SEL = GATE << 3
CONF0 = 11                 # a conforming ring-0 code segment
CONF0_SEL = CONF0 << 3


def program(user: str, inner: str = "hlt") -> tuple[bytes, dict[str, int]]:
    """Ring 0 enters ring 3 at ``user`` by IRET; ``inner`` is the gate's target."""
    return assemble_with_symbols(f"""
        pushl ${DS3}
        pushl ${RING3_ESP}
        pushl $0x2
        pushl ${CS3}
        pushl $user
        iret
    user:
        mov ${DS3}, %eax
        mov %eax, %ds
        mov %eax, %es
    at:
        {user}
    done: nop
        hlt
    inner:
        {inner}
    inner16:
        .code16
        {inner.replace("lretl", "lretw")}
        .code32
    """, CODE)


def world(code: bytes, gate: bytes | None = None, paging: bool = False, **gdt: bytes):
    def build() -> Env:
        env = Env(paging=paging)
        if gate is not None:
            env.set_gdt(GATE, gate)
        env.set_gdt(CONF0, xe.code_segment(0, conforming=True))
        for index, desc in gdt.items():
            env.set_gdt(int(index[1:]), desc)
        env.code(code)
        return env
    return build


STACKS = ((ESP0 - 0x40, 0x40), (RING3_ESP - 0x40, 0x40), (ESP1 - 0x40, 0x40))


def test_call_gate_to_ring0_copies_dword_parameters_and_lret_returns():
    code, syms = program(
        f"""pushl $0x1111
        pushl $0x2222
        mov $0x5A5A, %ebx
        lcall ${GATE_SEL | 3}, $0
    back:
        mov %esp, %esi""",
        """mov %esp, %edi
        mov 8(%esp), %eax
        mov 12(%esp), %ecx
        mov %ss, %edx
        lretl $8""")
    gate = xe.gate(syms["inner"], CS0, "call", dpl=3, params=2)
    ours, _ = protdiff.compare(world(code, gate), syms["done"], regions=STACKS)
    r = ours.regs
    assert (r["eax"], r["ecx"], r["edx"] & 0xFFFF) == (0x2222, 0x1111, DS0)
    assert r["edi"] == ESP0 - 24                      # SS, ESP, 2 params, CS, EIP
    assert r["esi"] == RING3_ESP                      # lret $8 dropped the parameters
    assert ours.sels["cs"] == CS3 and ours.sels["ss"] == DS3
    env = world(code, gate)()
    protdiff.run_core(env, syms["inner"])
    assert env.stack(6, ESP0 - 24) == [syms["back"], CS3, 0x2222, 0x1111,
                                       RING3_ESP - 8, DS3]


def test_286_call_gate_copies_words():
    code, syms = program(
        f"""pushw $0x3333
        pushw $0x4444
        pushw $0x5555
        lcall ${GATE_SEL | 3}, $0
    back:""")
    # A 286 gate has a 16-bit offset: its target is a 16-bit ring-0 segment at 64 KiB.
    cs16 = xe.code_segment(0, base=CODE, limit=0xFFFF, g=False, big=False)
    gate = xe.gate(syms["inner16"] - CODE, 12 << 3, "call", dpl=3, params=3)
    gate = gate[:5] + bytes([0x80 | (3 << 5) | 0x4]) + gate[6:]     # type 4: 286 call gate
    env = world(code, gate, g12=cs16)()
    protdiff.run_core(env, syms["inner16"])
    cpu = env.cpu
    assert cpu.cpl == 0 and cpu.esp == ESP0 - 14
    words = [env.mem.read16(ESP0 - 14 + 2 * i) for i in range(7)]
    assert words == [syms["back"] & 0xFFFF, CS3, 0x5555, 0x4444, 0x3333,
                     (RING3_ESP - 6) & 0xFFFF, DS3]
    protdiff.compare(world(code, gate, g12=cs16), syms["inner16"], regions=STACKS)


def test_call_gate_same_ring_pushes_cs_and_eip_only():
    code, syms = program(
        f"""lcall ${GATE_SEL | 3}, $0
        mov %esp, %esi""",
        """mov %esp, %edi
        lretl""")
    gate = xe.gate(syms["inner"], CS3, "call", dpl=3)
    ours, _ = protdiff.compare(world(code, gate), syms["done"], regions=STACKS)
    assert ours.regs["edi"] == RING3_ESP - 8 and ours.regs["esi"] == RING3_ESP


def test_call_gate_to_conforming_code_stays_in_ring3():
    """SDM vol. 3, 5.8.6: a conforming target runs at the caller's CPL, so CS.RPL
    is 3 and the stack does not change.  QEMU takes the target's DPL as the
    new CPL here (CS.RPL 0), so unicorn is not the oracle."""
    code, syms = program(
        f"""lcall ${GATE_SEL | 3}, $0""",
        """mov %cs, %ebx
        mov %esp, %edi
        lretl""")
    gate = xe.gate(syms["inner"], CONF0_SEL, "call", dpl=3)
    env = world(code, gate)()
    out = protdiff.run_core(env, syms["done"])
    assert out.fault is None and env.cpu.cpl == 3
    assert out.regs["ebx"] & 0xFFFF == CONF0_SEL | 3
    assert out.regs["edi"] == RING3_ESP - 8 and out.regs["esp"] == RING3_ESP


def test_jmp_through_call_gate_to_conforming_code():
    code, syms = program(f"ljmp ${GATE_SEL | 3}, $0", "mov %cs, %ebx\n        jmp done")
    gate = xe.gate(syms["inner"], CONF0_SEL, "call", dpl=3)
    ours, _ = protdiff.compare(world(code, gate), syms["done"], regions=STACKS)
    assert ours.regs["ebx"] & 0xFFFF == CONF0_SEL | 3
    assert ours.sels["ss"] == DS3 and ours.regs["esp"] == RING3_ESP


def test_lret_to_ring3_nulls_ring0_data_segments():
    code, syms = program(
        f"""lcall ${GATE_SEL | 3}, $0
        mov %ds, %ebx
        mov %es, %ecx""",
        f"""mov ${DS0}, %eax
        mov %eax, %ds
        lretl""")
    gate = xe.gate(syms["inner"], CS0, "call", dpl=3)
    ours, _ = protdiff.compare(world(code, gate), syms["done"], regions=STACKS)
    assert ours.regs["ebx"] & 0xFFFF == 0 and ours.regs["ecx"] & 0xFFFF == DS3


def _fault(code: bytes, syms: dict[str, int], gate: bytes | None, compare: bool = True,
           paging: bool = False, tss: dict[str, int] | None = None, **gdt: bytes):
    build = world(code, gate, paging, **gdt)

    def with_tss() -> Env:
        env = build()
        if tss:
            env.set_tss(**tss)
        return env
    if compare:
        ours, _ = protdiff.compare(with_tss, syms["done"])
    env = with_tss()
    out = protdiff.run_core(env, syms["done"])
    assert out.fault is not None, "no fault"
    return env, out


LCALL = f"lcall ${GATE_SEL | 3}, $0"


def test_gate_dpl_below_cpl_is_gp_gate():
    code, syms = program(LCALL)
    env, out = _fault(code, syms, xe.gate(0, CS0, "call", dpl=2))
    assert env.cpu.last_exception == (xe.GP, GATE_SEL)
    assert out.fault_eip == syms["at"]


def test_gate_dpl_below_rpl_is_gp_gate():
    """Ring 1 code using the gate with RPL 3 (as if on a ring-3 caller's behalf)."""
    code, syms = assemble_with_symbols(f"""
        pushl ${DS1}
        pushl ${ESP1 - 0x100}
        pushl $0x2
        pushl ${CS1}
        pushl $user
        iret
    user:
        lcall ${GATE_SEL | 3}, $0
    done: nop
    """, CODE)
    env, _ = _fault(code, syms, xe.gate(0, CS0, "call", dpl=1))
    assert env.cpu.last_exception == (xe.GP, GATE_SEL)
    code, syms = assemble_with_symbols(f"""
        pushl ${DS1}
        pushl ${ESP1 - 0x100}
        pushl $0x2
        pushl ${CS1}
        pushl $user
        iret
    user:
        lcall ${GATE_SEL | 1}, $0
    done: nop
    inner: hlt
    """, CODE)
    env = world(code, xe.gate(syms["inner"], CS0, "call", dpl=1))()
    protdiff.run_core(env, syms["inner"])
    assert env.cpu.cpl == 0 and env.cpu.esp == ESP0 - 16


def test_gate_not_present_is_np_gate():
    code, syms = program(LCALL)
    env, _ = _fault(code, syms, xe.gate(0, CS0, "call", dpl=3, present=False))
    assert env.cpu.last_exception == (xe.NP, GATE_SEL)


def test_gate_to_a_data_segment_is_gp_target():
    code, syms = program(LCALL)
    env, _ = _fault(code, syms, xe.gate(0, DS0, "call", dpl=3))
    assert env.cpu.last_exception == (xe.GP, DS0)


def test_gate_to_a_non_present_code_segment_is_np_target():
    code, syms = program(LCALL)
    env, _ = _fault(code, syms, xe.gate(0, 12 << 3, "call", dpl=3),
                    g12=xe.code_segment(0, present=False))
    assert env.cpu.last_exception == (xe.NP, 12 << 3)


def test_gate_to_null_code_selector_is_gp0():
    code, syms = program(LCALL)
    env, _ = _fault(code, syms, xe.gate(0, 0, "call", dpl=3))
    assert env.cpu.last_exception == (xe.GP, 0)


def test_jmp_through_gate_to_inner_ring_is_gp_target():
    code, syms = program(f"ljmp ${GATE_SEL | 3}, $0")
    env, _ = _fault(code, syms, xe.gate(0, CS0, "call", dpl=3))
    assert env.cpu.last_exception == (xe.GP, CS0)


def test_call_gate_to_outer_ring_is_gp_target():
    """Ring 1 calling a gate whose code is ring 3: less privileged, refused."""
    code, syms = assemble_with_symbols(f"""
        pushl ${DS1}
        pushl ${ESP1 - 0x100}
        pushl $0x2
        pushl ${CS1}
        pushl $user
        iret
    user:
        lcall ${GATE_SEL | 1}, $0
    done: nop
    """, CODE)
    env, _ = _fault(code, syms, xe.gate(0, CS3, "call", dpl=3))
    assert env.cpu.last_exception == (xe.GP, CS3 & 0xFFFC)


def test_stack_switch_with_a_code_segment_as_ss_is_ts():
    """Ring 3 calls a gate to ring 1 whose ss1 in the TSS is a code segment:
    #TS(ss1), delivered to ring 0 (whose stack is sound); nothing changed."""
    code, syms = program(LCALL)
    env, out = _fault(code, syms, xe.gate(0, CS1, "call", dpl=3), tss={"ss1": CS0})
    assert env.cpu.last_exception == (xe.TS, CS0)
    assert env.stack(6)[4:] == [RING3_ESP, DS3]


def test_stack_switch_to_a_not_present_stack_is_ss():
    """SDM CALL: a not-present new stack is #SS(selector); QEMU raises #TS."""
    code, syms = program(LCALL)
    env, _ = _fault(code, syms, xe.gate(0, CS1, "call", dpl=3), False, tss={"ss1": 12 << 3 | 1},
                    g12=xe.data_segment(1, present=False))
    assert env.cpu.last_exception == (xe.SS_VEC, 12 << 3)


def test_stack_switch_with_null_ss_is_ts0():
    code, syms = program(LCALL)
    env, _ = _fault(code, syms, xe.gate(0, CS1, "call", dpl=3), tss={"ss1": 0})
    assert env.cpu.last_exception == (xe.TS, 0)


def test_parameter_copy_faulting_on_the_outer_stack():
    """The caller's ESP sits 4 bytes below an unmapped page and the gate asks
    for 3 dwords: the copy page-faults (user read, CR2 in the hole) before
    anything changes, and the #PF frame shows ring 3's untouched ESP."""
    code, syms = program(f"""mov $0x{0x200000 - 4:x}, %esp
        {LCALL}""")

    def hole() -> Env:
        env = world(code, xe.gate(0, CS0, "call", dpl=3, params=3), paging=True)()
        env.pt.unmap(0x200000)
        return env
    uni = protdiff.run_unicorn(hole(), syms["done"])
    env = hole()
    out = protdiff.run_core(env, syms["done"])
    assert out.fault == uni.fault == xe.PF_VEC and out.fault_eip == uni.fault_eip
    cpu = env.cpu
    assert cpu.last_exception == (xe.PF_VEC, xe.PG_U) and cpu.cr2 == 0x200000
    assert env.stack(6)[4:] == [0x200000 - 4, DS3]


def test_new_stack_too_small_for_the_frame_is_ss():
    """ss1 with a 16-byte limit cannot take SS, ESP, CS, EIP and two
    parameters: #SS(ss1), nothing pushed.  (QEMU does not check the new
    stack's limit and writes below its base, so no unicorn comparison.)"""
    code, syms = program(f"pushl $1\n        pushl $2\n        {LCALL}")
    env, _ = _fault(code, syms, xe.gate(0, CS1, "call", dpl=3, params=2), False,
                    tss={"ss1": 12 << 3 | 1, "esp1": 0x10},
                    g12=xe.data_segment(1, limit=0xF, g=False))
    assert env.cpu.last_exception == (xe.SS_VEC, 12 << 3)


def test_lret_to_outer_ring_checks_the_returned_ss():
    """The inner code corrupts the saved SS on its stack: lret raises #GP(ss)."""
    code, syms = program(LCALL, f"movl ${DS0}, 12(%esp)\n        lretl")
    env = world(code, xe.gate(0, CS0, "call", dpl=3))()
    env.mem.write(xe.GDT_BASE + GATE * 8, xe.gate(syms["inner"], CS0, "call", dpl=3))
    out = protdiff.run_core(env, syms["done"])
    assert out.fault == xe.GP and env.cpu.last_exception == (xe.GP, DS0)
    uni = protdiff.run_unicorn(world(code, xe.gate(syms["inner"], CS0, "call", dpl=3))(),
                               syms["done"])
    assert uni.fault == xe.GP and uni.fault_eip == out.fault_eip


def test_call_gate_cycles_are_charged():
    from lguestsim.x86 import timing
    code, syms = program(LCALL, "lretl")
    env = world(code, xe.gate(0, CS0, "call", dpl=3, params=2))()
    env.mem.write(xe.GDT_BASE + GATE * 8, xe.gate(syms["inner"], CS0, "call", dpl=3, params=2))
    protdiff.run_core(env, syms["user"] + 9)
    before = env.cpu.cycles
    env.step()
    assert env.cpu.cpl == 0
    spent = env.cpu.cycles - before
    assert spent >= timing.CALL_GATE + timing.PRIVILEGE_CHANGE + 2 * timing.CALL_GATE_PARAMETER


# --- random far transfers against unicorn --------------------------------------------------
TARGETS = 14               # GDT 14..21: code segments, DPL 0-3, non-conforming then conforming
ABSENT_CODE = 22           # a ring-0 code segment marked not present
ENTRY = 0x18000            # where every target's code starts (a nop)


@st.composite
def far_transfers(draw):
    cpl = draw(st.integers(0, 3))
    call = draw(st.booleans())
    kind = draw(st.sampled_from(["gate"] * 6 + ["code", "data", "null", "absent"]))
    dpl = draw(st.integers(0, 3))
    conforming = draw(st.booleans())
    # QEMU gives a CALL through a gate to conforming code the target's DPL as
    # CPL (SDM 5.8.6: the CPL does not change), so that case is left to the
    # hand-written test above.
    if call and conforming and dpl < cpl and kind == "gate":
        conforming = False
    return dict(cpl=cpl, call=call, kind=kind, dpl=dpl, conforming=conforming,
                # a gate any ring may use most of the time, so most cases get past it
                gate_dpl=draw(st.sampled_from([0, 1, 2, 3, 3, 3, 3, 3])),
                gate_present=draw(st.integers(0, 9)) > 0,
                rpl=draw(st.integers(0, 3)), params=draw(st.integers(0, 3)),
                gate_rpl=draw(st.integers(0, 3)))


def _transfer_world(t: dict):
    cpl = t["cpl"]
    target = {"code": (TARGETS + t["dpl"] + 4 * t["conforming"]) << 3 | t["rpl"],
              "gate": (TARGETS + t["dpl"] + 4 * t["conforming"]) << 3 | t["rpl"],
              "data": DS0, "null": 0, "absent": ABSENT_CODE << 3}[t["kind"]]
    op = "lcall" if t["call"] else "ljmp"
    sel = (GATE_SEL | t["gate_rpl"]) if t["kind"] == "gate" else target
    enter = "" if cpl == 0 else f"""
        pushl ${xe.DATA_SEL[cpl]}
        pushl ${xe.STACK_TOP[cpl] - 0x100}
        pushl $0x2
        pushl ${xe.CODE_SEL[cpl]}
        pushl $user
        iret"""
    code, syms = assemble_with_symbols(f"""{enter}
    user:
        pushl $0x1111
        pushl $0x2222
        pushl $0x3333
    at: {op} ${sel}, ${ENTRY}
    done: nop
    """, CODE)

    def build() -> Env:
        env = Env()
        env.code(code)
        env.mem.write(ENTRY, b"\x90\xf4")
        for dpl in range(4):
            env.set_gdt(TARGETS + dpl, xe.code_segment(dpl))
            env.set_gdt(TARGETS + 4 + dpl, xe.code_segment(dpl, conforming=True))
        env.set_gdt(ABSENT_CODE, xe.code_segment(0, present=False))
        if t["kind"] == "gate":
            env.set_gdt(GATE, xe.gate(ENTRY, target, "call", dpl=t["gate_dpl"],
                                      present=t["gate_present"], params=t["params"]))
        return env
    return build, syms


@given(far_transfers())
@xu.examples(ci=200, local=40)
def test_random_far_transfers_match_unicorn(t):
    """Far JMP/CALL from each ring to code segments and through call gates
    of every DPL, RPL, presence and parameter count: the same outcome as
    QEMU's: where it lands (CS, CPL, SS:ESP and the copied frame), or which
    exception at which EIP."""
    build, _ = _transfer_world(t)
    stacks = tuple((xe.STACK_TOP[r] - 0x140, 0x140) for r in range(4))
    ours, _ = protdiff.compare(build, ENTRY, regions=stacks)
    xu.COUNTS["far transfer"] += 1
    if ours.fault is None:
        assert ours.eip == ENTRY
