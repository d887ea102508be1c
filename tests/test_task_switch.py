"""Hardware task switches: far JMP/CALL to a TSS or task gate, INT through a
task gate, IRET with NT, checked against unicorn and the SDM (vol. 3, ch. 7).

Task A is ``x86env.Env``'s ring-0 world with its TSS (selector 0x38); task B
has a TSS of its own at TSS_B (selector 0x60).  Unicorn (QEMU implements the
switch) runs the same programs where no exception is involved, and must end
with the same registers, selectors, TR, CR0.TS, and the same bytes in both
TSSs and the data page.  Interrupts through task gates and faults are the
SDM's: unicorn does not deliver them through the IDT.
"""

from __future__ import annotations

import struct

import protdiff
import pytest
import x86env as xe
import x86env_unicorn as xu
from asm import assemble_with_symbols
from hypothesis import given
from hypothesis import strategies as st
from x86env import CODE, CS0, CS3, DATA, DS0, DS3, TSS_BASE, TSS_SEL, Env

TSS_B = 0x3200
B = 12                          # GDT index of task B's TSS
B_SEL = B << 3
GATE = 13                       # GDT index for a task gate
GATE_SEL = GATE << 3
B_STACK = 0x7000
REGIONS = ((TSS_BASE, 104), (TSS_B, 104), (DATA, 0x40))


def tss_image(eip: int, esp: int = B_STACK, cs: int = CS0, ss: int = DS0, ds: int = DS0,
              eflags: int = 0x2, ldt: int = 0, cr3: int = 0, link: int = 0,
              regs: tuple[int, ...] = (0xA0, 0xA1, 0xA2, 0xA3, 0, 0xA5, 0xA6, 0xA7)) -> bytes:
    """A 386 TSS (SDM vol. 3, figure 7-2) for a task starting at cs:eip."""
    t = bytearray(104)
    struct.pack_into("<I", t, 0, link)
    struct.pack_into("<IIIIIII", t, 4, xe.ESP0, DS0, xe.ESP1, xe.DS1, xe.ESP2, xe.DS2, cr3)
    r = list(regs)
    r[4] = esp
    struct.pack_into("<II8I", t, 32, eip, eflags, *r)
    struct.pack_into("<6I", t, 72, ds, cs, ss, ds, ds, ds)
    struct.pack_into("<IHH", t, 96, ldt, 0, 104)
    return bytes(t)


def world(source: str, tss_limit: int = 0x67, paging: bool = False, **tss: int):
    code, syms = assemble_with_symbols(source, CODE)

    def build() -> Env:
        env = Env(paging=paging)
        env.code(code)
        env.set_gdt(B, xe.tss_descriptor(TSS_B, limit=tss_limit))
        env.mem.write(TSS_B, tss_image(syms["task_b"], **tss))
        return env
    return build, syms


def busy(env: Env, index: int) -> bool:
    return bool(env.mem.read32(xe.GDT_BASE + index * 8 + 4) & 0x200)


def test_call_to_tss_and_iret_back():
    build, syms = world(f"""
        mov $0x11111111, %eax
        mov $0x33333333, %ebx
        lcall ${B_SEL}, $0
    back:
        mov %ebx, {DATA + 8}
    done: nop
    task_b:
        pushf
        popl {DATA}
        str {DATA + 4}
        mov %eax, {DATA + 12}
        iret
    b_after:
    """)
    ours, _ = protdiff.compare(build, syms["done"], regions=REGIONS)
    flags_in_b, tr_in_b, ebx_after, eax_in_b = struct.unpack("<4I", ours.mem[-0x40:-0x30])
    assert flags_in_b & xe.NT and tr_in_b & 0xFFFF == B_SEL
    assert eax_in_b == 0xA0                         # task B's own registers
    assert ebx_after == 0x33333333                  # task A's, restored
    assert ours.tr == TSS_SEL and ours.ts and not ours.eflags & xe.NT
    env = build()
    protdiff.run_core(env, syms["done"])
    assert env.mem.read16(TSS_B) == TSS_SEL          # B's back link
    assert busy(env, 7) and not busy(env, B)
    assert env.mem.read32(TSS_BASE + 32) == syms["back"]   # A's EIP, saved by the CALL
    assert env.mem.read32(TSS_B + 32) == syms["b_after"]   # B's, saved by its IRET


def test_jmp_to_tss_and_back():
    build, syms = world(f"""
        mov $0x11111111, %eax
        ljmp ${B_SEL}, $0
    back:
        mov %eax, {DATA}
    done: nop
    task_b:
        pushf
        popl {DATA + 4}
        ljmp ${TSS_SEL}, $0
    """)
    ours, _ = protdiff.compare(build, syms["done"], regions=REGIONS)
    assert not struct.unpack("<I", ours.mem[-0x3C:-0x38])[0] & xe.NT
    assert ours.regs["eax"] == 0x11111111 and ours.tr == TSS_SEL
    env = build()
    protdiff.run_core(env, syms["back"])
    assert busy(env, 7) and not busy(env, B) and env.mem.read16(TSS_B) == 0


def test_call_through_a_task_gate():
    build, syms = world(f"""
        lcall ${GATE_SEL | 3}, $0
    done: nop
    task_b:
        str {DATA}
        iret
    """)

    def with_gate() -> Env:
        env = build()
        env.set_gdt(GATE, xe.gate(0, B_SEL, "task", dpl=3))
        return env
    ours, _ = protdiff.compare(with_gate, syms["done"], regions=REGIONS)
    assert ours.mem[-0x40:-0x3E] == B_SEL.to_bytes(2, "little")


def test_int_through_a_task_gate_nests_and_iret_returns():
    build, syms = world(f"""
        mov $0x5555, %esi
        int $0x40
    back:
    done: nop
    task_b:
        pushf
        popl {DATA}
        mov %esi, {DATA + 4}
        iret
    """)
    env = build()
    env.mem.write(xe.IDT_BASE + 0x40 * 8, xe.gate(0, B_SEL, "task"))
    cpu = env.cpu
    cpu.breakpoints.add(syms["done"])
    assert cpu.run(50) == "breakpoint"
    assert cpu.tr == TSS_SEL and cpu.esi == 0x5555 and cpu.eip == syms["done"]
    assert env.mem.read32(DATA) & xe.NT and env.mem.read32(DATA + 4) == 0xA6
    assert env.mem.read16(TSS_B) == TSS_SEL and not busy(env, B)


def test_exception_through_a_task_gate_pushes_its_error_code():
    """#GP through a task gate: the switch saves the faulting EIP in task A's
    TSS, and the error code goes on task B's stack (SDM vol. 3, 6.12.2)."""
    build, syms = world("""
        mov $0x63, %eax
    fault:
        mov %eax, %ds
    done: nop
    task_b:
        hlt
    """)
    env = build()
    env.mem.write(xe.IDT_BASE + xe.GP * 8, xe.gate(0, B_SEL, "task"))
    env.step(2)
    cpu = env.cpu
    assert cpu.tr == B_SEL and cpu.eip == syms["task_b"]
    assert cpu.last_exception == (xe.GP, 0x60)
    assert cpu.esp == B_STACK - 4 and env.mem.read32(B_STACK - 4) == 0x60
    assert env.mem.read32(TSS_BASE + 32) == syms["fault"]
    assert cpu.eflags & xe.NT and cpu.cr0 & xe.CR0_TS


# --- refused switches: all in the old task's context --------------------------------
def _refused(build, syms, want, compare=True):
    if compare:
        protdiff.compare(build, syms["done"])
    env = build()
    out = protdiff.run_core(env, syms["done"])
    assert out.fault is not None
    assert env.cpu.last_exception == want
    assert env.cpu.tr == TSS_SEL and not env.cpu.cr0 & xe.CR0_TS
    return env


def test_tss_with_a_short_limit_is_ts():
    build, syms = world(f"ljmp ${B_SEL}, $0\ndone: nop\ntask_b: hlt", tss_limit=0x66)
    _refused(build, syms, (xe.TS, B_SEL))


def test_busy_tss_is_gp():
    build, syms = world(f"lcall ${TSS_SEL}, $0\ndone: nop\ntask_b: hlt")
    _refused(build, syms, (xe.GP, TSS_SEL))


def test_not_present_tss_is_np():
    build, syms = world(f"ljmp ${B_SEL}, $0\ndone: nop\ntask_b: hlt")

    def absent() -> Env:
        env = build()
        env.set_gdt(B, xe.tss_descriptor(TSS_B, present=False))
        return env
    _refused(absent, syms, (xe.NP, B_SEL))


@pytest.mark.parametrize("target", ["code", "ldt_tss"])
def test_task_gate_to_a_non_tss_is_gp(target):
    build, syms = world(f"ljmp ${GATE_SEL}, $0\ndone: nop\ntask_b: hlt")

    def bad_gate() -> Env:
        env = build()
        if target == "code":
            env.set_gdt(GATE, xe.gate(0, CS0, "task"))
            return env
        env.set_gdt(GATE, xe.gate(0, B_SEL | 4, "task"))    # a TSS in the LDT: never
        return env
    want_sel = CS0 if target == "code" else B_SEL | 4    # the error code keeps TI
    # SDM JMP: a task gate's TSS selector in the LDT is #GP; QEMU raises #TS.
    _refused(bad_gate, syms, (xe.GP, want_sel), compare=target == "code")


def test_tss_dpl_below_cpl_is_gp():
    build, syms = world(f"""
        pushl ${DS3}
        pushl ${xe.RING3_ESP}
        pushl $0x2
        pushl ${CS3}
        pushl $user
        iret
    user:
        ljmp ${B_SEL | 3}, $0
    done: nop
    task_b: hlt
    """)
    _refused(build, syms, (xe.GP, B_SEL))


def test_iret_with_nt_to_a_task_that_is_not_busy_is_ts():
    build, syms = world("""
        pushf
        orl $0x4000, (%esp)
        popf
        iret
    done: nop
    task_b: hlt
    """)

    def linked() -> Env:
        env = build()
        env.mem.write16(TSS_BASE, B_SEL)             # back link to an available TSS
        return env
    env = linked()
    env.step(4)
    assert env.cpu.last_exception == (xe.TS, B_SEL) and env.cpu.tr == TSS_SEL


# --- faults in the new task's context ------------------------------------------------
def test_bad_code_segment_in_the_new_tss_faults_in_the_new_task():
    """B's CS is a data segment: the switch completes (TR = B, A's state saved,
    CR0.TS set), then #TS(CS) is raised with B's registers and stack."""
    build, syms = world(f"ljmp ${B_SEL}, $0\nback:\ndone: nop\ntask_b: hlt", cs=DS0)
    env = build()
    env.step()
    cpu = env.cpu
    assert cpu.last_exception == (xe.TS, DS0)
    assert cpu.tr == B_SEL and cpu.cr0 & xe.CR0_TS
    assert env.mem.read32(TSS_BASE + 32) == syms["back"]
    assert cpu.eip == env.handler(xe.TS)
    # The #TS frame is on B's stack and names B's EIP.
    assert cpu.esp == B_STACK - 16 and env.stack(2)[1] == syms["task_b"]


def test_not_present_data_segment_in_the_new_tss_is_np():
    build, syms = world(f"ljmp ${B_SEL}, $0\ndone: nop\ntask_b: hlt", ds=0x70)
    env = build()
    env.set_gdt(14, xe.data_segment(0, present=False))
    env.step()
    assert env.cpu.last_exception == (xe.NP, 0x70) and env.cpu.tr == B_SEL


# --- what the new TSS loads ------------------------------------------------------------
def test_task_switch_loads_cr3_and_ldtr():
    """Paging on: task B has its own page directory (mapping DATA elsewhere)
    and an LDT whose one data segment it loads into ES."""
    build, syms = world(f"""
        lcall ${B_SEL}, $0
    done: nop
    task_b:
        mov $0x4, %eax
        mov %eax, %es
        movl $0xBBBBBBBB, %es:{DATA}
        mov %cr3, %ebx
        mov %ebx, %es:{DATA + 4}
        iret
    """, paging=True, ldt=15 << 3, cr3=0x50000)

    def two_spaces() -> Env:
        env = build()
        # B's directory: a copy of A's, with DATA's page mapped to 0x60000.
        env.mem.write(0x50000, env.mem.read(xe.PD_BASE, 4096))
        pt = env.mem.read32(xe.PD_BASE) & ~0xFFF
        env.mem.write(0x51000, env.mem.read(pt, 4096))
        env.mem.write32(0x50000, 0x51000 | 7)
        env.mem.write32(0x51000 + (DATA >> 12) * 4, 0x60000 | 7)
        env.set_gdt(15, xe.ldt_descriptor(0x3400, 7))
        env.mem.write(0x3400, xe.data_segment(0))
        env.set_tss(cr3=xe.PD_BASE)        # task A's own, loaded when B returns to it
        return env
    ours, _ = protdiff.compare(two_spaces, syms["done"],
                               regions=REGIONS + ((0x60000, 8),))
    assert ours.mem[-8:] == struct.pack("<II", 0xBBBBBBBB, 0x50000)
    env = two_spaces()
    protdiff.run_core(env, syms["done"])
    assert env.cpu.cr3 == xe.PD_BASE and env.cpu.ldtr == 0   # A's, back again


def test_286_tss_call_and_back():
    """A 16-bit TSS (type 1): 16-bit registers, no CR3, FS and GS; the limit
    need only reach 0x2B; the high halves of the registers are loaded with
    ones (Bochs, after the 386).  QEMU answers this switch with a #TS that
    Intel's rules do not call for, so unicorn is not the oracle here."""
    build, syms = world(f"""
        mov $0x77777777, %edx
        lcall ${B_SEL}, $0
    done: nop
    task_b:
        mov %ecx, {DATA}
        iret
    b_after:
    """)

    def tss16() -> Env:
        env = build()
        t = bytearray(44)
        struct.pack_into("<HHHHH", t, 14, syms["task_b"] & 0xFFFF, 0x2, 0xC1, 0xC2, 0xC3)
        struct.pack_into("<HHHHH", t, 24, 0xC4, 0x6000, 0, 0, 0)
        struct.pack_into("<HHHHH", t, 34, DS0, 0x80, DS0, DS0, 0)
        env.mem.write(TSS_B, bytes(t))
        env.set_gdt(16, xe.code_segment(0, base=CODE & 0xFFFF0000, limit=0xFFFFF))
        env.set_gdt(B, xe.descriptor(TSS_B, 0x2B, 0x81, 0))
        return env
    env = tss16()
    ours = protdiff.run_core(env, syms["task_b"])
    assert ours.fault is None and ours.tr == B_SEL and ours.sels["cs"] == 0x80
    assert ours.regs["ecx"] == 0xFFFF00C2 and ours.regs["esp"] == 0xFFFF6000
    assert ours.sels["fs"] == ours.sels["gs"] == 0 and ours.eflags & xe.NT
    assert env.mem.read16(TSS_B) == TSS_SEL
    ours = protdiff.run_core(env, syms["done"])
    assert ours.fault is None and ours.tr == TSS_SEL
    assert env.mem.read32(DATA) == 0xFFFF00C2 and ours.regs["edx"] == 0x77777777
    # B's registers went back into its 16-bit slots when it left by IRET.
    assert env.mem.read16(TSS_B + 20) == 0x00C2 and env.mem.read16(TSS_B + 14) == (
        syms["b_after"] & 0xFFFF)


def test_task_switch_costs_cycles():
    from lguestsim.x86 import timing
    build, syms = world(f"ljmp ${B_SEL}, $0\ndone: nop\ntask_b: hlt")
    env = build()
    before = env.cpu.cycles
    env.step()
    assert env.cpu.cycles - before >= timing.TASK_SWITCH


def test_a_task_switch_from_ring1_can_land_in_ring0():
    """The TSS's DPL is the only privilege check: ring 1 code that may use a
    DPL 1 TSS descriptor gets whatever CS the TSS names, ring 0 included.
    This is why a Host must never let a Guest's GDT hold a TSS descriptor
    (or a gate) that the Guest kernel in ring 1 could use."""
    build, syms = world(f"""
        pushl ${xe.DS1}
        pushl ${xe.ESP1 - 0x100}
        pushl $0x2
        pushl ${xe.CS1}
        pushl $ring1
        iret
    ring1:
        ljmp ${B_SEL | 1}, $0
    done: nop
    task_b:
        nop
    """)

    def dpl1() -> Env:
        env = build()
        env.set_gdt(B, xe.tss_descriptor(TSS_B, dpl=1))
        return env
    ours, _ = protdiff.compare(dpl1, syms["task_b"] + 1)
    assert ours.sels["cs"] == CS0 and ours.tr & ~3 == B_SEL
    env = dpl1()
    protdiff.run_core(env, syms["task_b"] + 1)
    assert env.cpu.cpl == 0


# --- random task switches against unicorn ----------------------------------------------
ENTRY = 0x18000


@st.composite
def task_switches(draw):
    return dict(cpl=draw(st.integers(0, 3)), call=draw(st.booleans()),
                via_gate=draw(st.booleans()), gate_dpl=draw(st.sampled_from([0, 3, 3])),
                gate_present=draw(st.integers(0, 9)) > 0,
                dpl=draw(st.sampled_from([0, 1, 2, 3, 3, 3])), rpl=draw(st.integers(0, 3)),
                busy=draw(st.integers(0, 9)) == 0, present=draw(st.integers(0, 9)) > 0,
                limit=draw(st.sampled_from([0x67, 0x67, 0x67, 0x66, 0x2B, 0xFFF])),
                ring=draw(st.integers(0, 3)), v86=draw(st.integers(0, 4)) == 0,
                iopl=draw(st.integers(0, 3)))


def _task_world(t: dict):
    cpl = t["cpl"]
    op = "lcall" if t["call"] else "ljmp"
    sel = (GATE_SEL if t["via_gate"] else B_SEL) | t["rpl"]
    enter = "" if cpl == 0 else f"""
        pushl ${xe.DATA_SEL[cpl]}
        pushl ${xe.STACK_TOP[cpl] - 0x100}
        pushl $0x2
        pushl ${xe.CODE_SEL[cpl]}
        pushl $user
        iret"""
    code, syms = assemble_with_symbols(f"""{enter}
    user:
        mov $0x12345678, %esi
    at: {op} ${sel}, $0
    done: nop
    """, CODE)
    ring = t["ring"]
    flags = 0x2 | (t["iopl"] << 12)
    if t["v86"]:
        image = tss_image(0, esp=0x1000, cs=ENTRY >> 4, ss=0x6000, ds=0x7000,
                          eflags=flags | xe.VM)
    else:
        image = tss_image(ENTRY, esp=xe.STACK_TOP[ring] - 0x200, cs=xe.CODE_SEL[ring],
                          ss=xe.DATA_SEL[ring], ds=xe.DATA_SEL[ring], eflags=flags)

    def build() -> Env:
        env = Env()
        env.code(code)
        env.mem.write(ENTRY, b"\x90\x90")
        env.mem.write(TSS_B, image)
        env.set_gdt(B, xe.tss_descriptor(TSS_B, limit=t["limit"], dpl=t["dpl"], busy=t["busy"],
                                         present=t["present"]))
        if t["via_gate"]:
            env.set_gdt(GATE, xe.gate(0, B_SEL, "task", dpl=t["gate_dpl"],
                                      present=t["gate_present"]))
        return env
    return build, syms


@given(task_switches())
@xu.examples(ci=150, local=30)
def test_random_task_switches_match_unicorn(t):
    """JMP/CALL to a TSS or through a task gate, from every ring, to a task in
    any ring or in virtual-8086 mode, with the descriptor's DPL, busy bit,
    presence and limit drawn at random: QEMU's outcome, registers, selectors,
    TR, CR0.TS, both TSSs and both descriptors' busy bits."""
    build, _ = _task_world(t)
    regions = ((TSS_BASE, 104), (TSS_B, 104), (xe.GDT_BASE + 7 * 8, 8),
               (xe.GDT_BASE + B * 8, 8))
    ours, _ = protdiff.compare(build, ENTRY, regions=regions)
    xu.COUNTS["task switch"] += 1
    if ours.fault is None:
        assert ours.tr & ~3 == B_SEL
