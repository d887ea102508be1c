"""Segment protection, privileged instructions and the EFLAGS rules, from the SDM.

  * SDM vol. 2, MOV (segment register) and vol. 3, 5.5-5.7: loading DS/ES/FS/GS
    checks null, table limit, type (data or readable code), privilege
    (DPL >= max(CPL, RPL) unless conforming code) and then presence (#NP);
    SS requires RPL = DPL = CPL and a writable data segment, #SS if absent.
    Error codes are the selector with the RPL bits cleared.
  * SDM vol. 3, 5.3: every access is checked against the segment limit
    (#GP(0), or #SS(0) through SS), expand-down segments invert the range;
    writes need a writable data segment, reads a readable one.
  * SDM vol. 3, 5.9 and 18.5: privileged instructions need CPL 0; CLI/STI and
    I/O need CPL <= IOPL (else, for I/O, the TSS I/O permission bitmap).
  * SDM vol. 2, POPF/IRET: IOPL changes only at CPL 0, IF only when
    CPL <= IOPL; neither faults; VM and RF are never set by POPF.
  * SDM vol. 2, JMP/CALL/RET far: a far transfer to non-conforming code needs
    DPL = CPL; RET to an outer ring pops SS:ESP and nulls more-privileged
    data segment registers.
"""

from __future__ import annotations

import pytest
import x86env as xe
from x86env import CODE, CS0, CS1, CS3, DATA, DS0, DS1, DS3, IF, RING0_ESP, Env

MOV_DS_EAX = b"\x8e\xd8"
MOV_SS_EAX = b"\x8e\xd0"
MOV_EAX_EBX = b"\x8b\x03"       # mov eax, [ebx]
MOV_EBX_EAX = b"\x89\x03"       # mov [ebx], eax
NOP = b"\x90"

# Extra GDT entries for these tests.
XO_CODE = 10 << 3               # execute-only code, DPL 0
NP_DATA = 11 << 3               # not-present data, DPL 0
RO_DATA = 12 << 3               # read-only data, DPL 0
SMALL_DATA = 13 << 3            # base DATA, byte-granular limit 0xFFF
DOWN_DATA = 14 << 3             # expand-down, limit 0xFFF, big
NP_DATA3 = (15 << 3) | 3        # not-present data, DPL 3
CONF_CODE = 16 << 3             # conforming readable code, DPL 0
RD_CODE = 17 << 3               # readable code, DPL 0
SMALL_STACK = 20 << 3           # base 0x5000, limit 0xFFF, DPL 0
SMALL_CODE = 21 << 3            # code, base 0, limit CODE + 0x3F (byte granular)
IO_TSS = 22 << 3                # a TSS whose I/O bitmap covers ports 0-0x3FF


def env_with_extras() -> Env:
    env = Env()
    env.set_gdt(10, xe.code_segment(0, readable=False))
    env.set_gdt(11, xe.data_segment(0, present=False))
    env.set_gdt(12, xe.data_segment(0, writable=False))
    env.set_gdt(13, xe.data_segment(0, base=DATA, limit=0xFFF, g=False))
    env.set_gdt(14, xe.data_segment(0, limit=0xFFF, g=False, expand_down=True))
    env.set_gdt(15, xe.data_segment(3, present=False))
    env.set_gdt(16, xe.code_segment(0, conforming=True))
    env.set_gdt(17, xe.code_segment(0))
    env.set_gdt(20, xe.data_segment(0, base=0x5000, limit=0xFFF, g=False))
    env.set_gdt(21, xe.code_segment(0, limit=CODE + 0x3F, g=False))
    return env


def fault_of(env: Env) -> tuple[int, int | None] | None:
    """The exception delivered by the last step (checked through the IDT),
    or None if the instruction completed."""
    cpu = env.cpu
    for v in range(32):
        if cpu.eip == env.handler(v):
            assert cpu.last_exception is not None and cpu.last_exception[0] == v
            return cpu.last_exception
    return None


def run_one(env: Env, code: bytes, **regs: int):
    env.code(code)
    for k, v in regs.items():
        setattr(env.cpu, k, v)
    env.step()
    return fault_of(env)


# --- loading data segment registers ------------------------------------------------------
@pytest.mark.parametrize("cpl,sel,want", [
    (0, 0x0000, None),                    # null: allowed in DS
    (0, 0x0003, None),                    # null with any RPL
    (0, 0x0100, (xe.GP, 0x0100)),         # beyond the GDT limit
    (0, 0x0103, (xe.GP, 0x0100)),         # ... error code without the RPL
    (0, 0x000C, (xe.GP, 0x000C)),         # LDT selector, LDTR null
    (0, xe.TSS_SEL, (xe.GP, xe.TSS_SEL)),  # system descriptor
    (0, XO_CODE, (xe.GP, XO_CODE)),       # execute-only code
    (0, RD_CODE, None),                   # readable code
    (0, NP_DATA, (xe.NP, NP_DATA)),       # not present
    (0, DS0 | 3, (xe.GP, DS0)),           # RPL 3 > DPL 0
    (0, DS3, None),                       # outer data from ring 0
    (3, DS0, (xe.GP, DS0)),               # DPL 0 < CPL 3
    (3, DS1, (xe.GP, DS1 & ~3)),          # DPL 1 < CPL 3
    (3, DS3, None),
    (3, CONF_CODE, None),                 # conforming code: no privilege check
    (3, NP_DATA3, (xe.NP, NP_DATA3 & ~3)),
    (3, NP_DATA, (xe.GP, NP_DATA)),       # privilege is checked before presence
    (1, DS1, None),
    (1, DS0 | 1, (xe.GP, DS0)),
])
def test_mov_ds(cpl, sel, want):
    env = env_with_extras()
    env.enter_ring(cpl)
    before = env.cpu.ds
    got = run_one(env, MOV_DS_EAX, eax=sel)
    assert got == want
    if want is None:
        assert env.cpu.ds == sel
        assert env.cpu.eip == CODE + 2
    else:
        assert env.cpu.ds == before
        assert env.stack(2)[1] == CODE        # a fault: EIP of the mov


@pytest.mark.parametrize("sreg,code", [("es", b"\x8e\xc0"), ("fs", b"\x8e\xe0"),
                                       ("gs", b"\x8e\xe8")])
def test_other_data_segment_registers(sreg, code):
    env = env_with_extras()
    assert run_one(env, code, eax=NP_DATA) == (xe.NP, NP_DATA)
    env = env_with_extras()
    assert run_one(env, code, eax=DS3) is None
    assert getattr(env.cpu, sreg) == DS3


def test_null_ds_faults_on_use():
    env = env_with_extras()
    assert run_one(env, MOV_DS_EAX, eax=0) is None
    assert run_one(env, MOV_EAX_EBX, ebx=DATA) == (xe.GP, 0)


def test_load_segment_api_raises_cpufault():
    from lguestsim.x86 import CPUFault

    env = env_with_extras()
    with pytest.raises(CPUFault) as e:
        env.cpu.load_segment("ds", NP_DATA)
    assert (e.value.vector, e.value.error_code) == (xe.NP, NP_DATA)
    with pytest.raises(CPUFault) as e:
        env.cpu.load_segment("ss", 0)
    assert (e.value.vector, e.value.error_code) == (xe.GP, 0)


# --- loading SS ------------------------------------------------------------------------
@pytest.mark.parametrize("cpl,sel,want", [
    (0, 0x0000, (xe.GP, 0)),              # null SS
    (0, DS0 | 3, (xe.GP, DS0)),           # RPL != CPL
    (0, 0x0030, (xe.GP, 0x0030)),         # DPL 3 != CPL 0
    (0, RO_DATA, (xe.GP, RO_DATA)),       # not writable
    (0, CS0, (xe.GP, CS0)),               # code
    (0, NP_DATA, (xe.SS_VEC, NP_DATA)),   # not present: #SS
    (0, 0x0100, (xe.GP, 0x0100)),
    (0, DS0, None),
    (3, DS3, None),
    (3, DS0 | 3, (xe.GP, DS0)),
    (1, DS1, None),
    (1, DS3 & ~3 | 1, (xe.GP, DS3 & ~3)),
])
def test_mov_ss(cpl, sel, want):
    env = env_with_extras()
    env.enter_ring(cpl)
    assert run_one(env, MOV_SS_EAX, eax=sel) == want
    if want is None:
        assert env.cpu.ss == sel


# --- limits and types on access ----------------------------------------------------------
@pytest.mark.parametrize("offset,size_code,want", [
    (0xFFC, MOV_EAX_EBX, None),
    (0xFFD, MOV_EAX_EBX, (xe.GP, 0)),      # the dword's last byte is past the limit
    (0x1000, MOV_EAX_EBX, (xe.GP, 0)),
    (0xFFF, b"\x8a\x03", None),            # mov al, [ebx]: the last byte
    (0xFFF, b"\x66\x8b\x03", (xe.GP, 0)),  # mov ax, [ebx]
])
def test_data_segment_limit(offset, size_code, want):
    env = env_with_extras()
    env.cpu.load_segment("ds", SMALL_DATA)
    env.mem.write32(DATA + 0xFFC, 0x11223344)
    assert run_one(env, size_code, ebx=offset) == want
    if want is None and size_code == MOV_EAX_EBX:
        assert env.cpu.eax == 0x11223344       # base DATA was applied


def test_fs_override_uses_fs_limit():
    env = env_with_extras()
    env.cpu.load_segment("fs", SMALL_DATA)
    assert run_one(env, b"\x64" + MOV_EAX_EBX, ebx=0x1000) == (xe.GP, 0)
    env = env_with_extras()
    env.cpu.load_segment("fs", SMALL_DATA)
    assert run_one(env, MOV_EAX_EBX, ebx=0x1000) is None   # DS is flat


@pytest.mark.parametrize("offset,want", [(0x800, (xe.GP, 0)), (0xFFF, (xe.GP, 0)),
                                         (0x1000, None), (0x20000, None)])
def test_expand_down_limit(offset, want):
    env = env_with_extras()
    env.cpu.load_segment("ds", DOWN_DATA)
    assert run_one(env, MOV_EAX_EBX, ebx=offset) == want


def test_stack_limit_is_ss_fault():
    env = env_with_extras()
    cpu = env.cpu
    cpu.load_segment("ss", SMALL_STACK)
    cpu.esp = 0x800
    assert run_one(env, b"\x8b\x45\x00", ebp=0x1000) == (xe.SS_VEC, 0)   # mov eax, [ebp]
    # delivered on the same (small) stack: base 0x5000
    assert cpu.esp == 0x800 - 16
    assert env.mem.read32(0x5000 + 0x800 - 16) == 0
    assert env.mem.read32(0x5000 + 0x800 - 12) == CODE


def test_push_past_stack_limit_is_ss_fault():
    """A ring-3 stack segment with a small limit: push at esp 2 would write at
    0xFFFFFFFE, past the limit: #SS(0), taken on the ring-0 stack."""
    env = env_with_extras()
    cpu = env.cpu
    env.set_gdt(20, xe.data_segment(3, base=0x5000, limit=0xFFF, g=False))
    env.enter_ring(3)
    cpu.load_segment("ss", SMALL_STACK | 3)
    cpu.esp = 2
    assert run_one(env, b"\x50", eax=0x12345678) == (xe.SS_VEC, 0)
    assert cpu.cpl == 0 and cpu.esp == xe.ESP0 - 24
    words = env.stack(6)
    assert words[:3] == [0, CODE, words[2]] and words[2] & 0xFFFF == CS3
    assert words[4] == 2 and words[5] & 0xFFFF == SMALL_STACK | 3


def test_write_to_read_only_data_is_gp():
    env = env_with_extras()
    env.cpu.load_segment("ds", RO_DATA)
    assert run_one(env, MOV_EAX_EBX, ebx=DATA) is None
    assert run_one(env, MOV_EBX_EAX, ebx=DATA, eax=5) == (xe.GP, 0)
    assert env.mem.read32(DATA) == 0


def test_cs_override_write_is_gp_and_execute_only_read_is_gp():
    env = env_with_extras()
    assert run_one(env, b"\x2e" + MOV_EAX_EBX, ebx=DATA) is None   # readable code
    assert run_one(env, b"\x2e" + MOV_EBX_EAX, ebx=DATA) == (xe.GP, 0)
    env = env_with_extras()
    env.cpu.load_cs(XO_CODE)
    assert run_one(env, b"\x2e" + MOV_EAX_EBX, ebx=DATA) == (xe.GP, 0)
    env = env_with_extras()
    env.cpu.load_segment("es", RD_CODE)
    assert run_one(env, b"\x26" + MOV_EBX_EAX, ebx=DATA) == (xe.GP, 0)


def test_code_segment_limit():
    env = env_with_extras()
    env.cpu.load_cs(SMALL_CODE)
    # jmp rel32 to CODE + 0x100: past the limit, #GP(0) at the jmp
    assert run_one(env, b"\xe9" + (0x100 - 5).to_bytes(4, "little")) == (xe.GP, 0)
    assert env.stack(1)[0] == 0 and env.stack(2)[1] == CODE
    env = env_with_extras()
    env.cpu.load_cs(SMALL_CODE)
    env.mem.write(CODE, NOP * 0x40 + NOP)
    env.cpu.eip = CODE
    for _ in range(0x40):
        env.step()
    assert env.cpu.eip == CODE + 0x40 and fault_of(env) is None
    env.step()                               # the byte at CODE + 0x40 is outside
    assert fault_of(env) == (xe.GP, 0)


# --- privileged instructions ---------------------------------------------------------------
PRIVILEGED = {
    "hlt": b"\xf4", "mov cr3": b"\x0f\x22\xd8", "mov eax,cr0": b"\x0f\x20\xc0",
    "mov cr0": b"\x0f\x22\xc0", "lgdt": b"\x0f\x01\x13", "lidt": b"\x0f\x01\x1b",
    "ltr": b"\x0f\x00\xd8", "lldt": b"\x0f\x00\xd0", "clts": b"\x0f\x06",
    "invlpg": b"\x0f\x01\x3b", "wbinvd": b"\x0f\x09", "invd": b"\x0f\x08",
    "mov dr7": b"\x0f\x23\xf8", "rdmsr": b"\x0f\x32", "wrmsr": b"\x0f\x30",
    "lmsw": b"\x0f\x01\xf0",
}
IOPL_SENSITIVE = {
    "cli": b"\xfa", "sti": b"\xfb", "in al,dx": b"\xec", "out dx,al": b"\xee",
    "in al,imm": b"\xe4\x60", "out imm,al": b"\xe6\x60", "in eax,dx": b"\xed",
    "insb": b"\x6c", "outsb": b"\x6e",
}


@pytest.mark.parametrize("cpl", [1, 3])
@pytest.mark.parametrize("name", sorted(PRIVILEGED))
def test_privileged_instruction_outside_ring0_is_gp0(cpl, name):
    env = env_with_extras()
    env.enter_ring(cpl)
    before = (env.cpu.cr0, env.cpu.cr3, env.cpu.gdtr, env.cpu.idtr)
    assert run_one(env, PRIVILEGED[name], eax=0x80000011, ebx=DATA, ecx=0x174) == (xe.GP, 0)
    assert (env.cpu.cr0, env.cpu.cr3, env.cpu.gdtr, env.cpu.idtr) == before


@pytest.mark.parametrize("cpl", [1, 3])
@pytest.mark.parametrize("name", sorted(IOPL_SENSITIVE))
def test_iopl_sensitive_with_iopl_below_cpl_is_gp0(cpl, name):
    env = env_with_extras()
    env.enter_ring(cpl)
    env.cpu.eflags = 0x2 | IF
    calls = []
    env.cpu.port_in = lambda port, size: calls.append(("in", port)) or 0
    env.cpu.port_out = lambda port, size, value: calls.append(("out", port))
    assert run_one(env, IOPL_SENSITIVE[name], edx=0x60, esi=DATA, edi=DATA) == (xe.GP, 0)
    assert calls == []


@pytest.mark.parametrize("name", sorted(IOPL_SENSITIVE))
def test_iopl_sensitive_allowed_when_iopl_is_cpl(name):
    env = env_with_extras()
    env.enter_ring(3)
    env.cpu.eflags = 0x2 | (3 << xe.IOPL_SHIFT)
    assert run_one(env, IOPL_SENSITIVE[name], edx=0x60, esi=DATA, edi=DATA) is None


def test_cli_sti_at_ring1_with_iopl1():
    env = env_with_extras()
    env.enter_ring(1)
    env.cpu.eflags = 0x2 | IF | (1 << xe.IOPL_SHIFT)
    assert run_one(env, b"\xfa") is None and env.cpu.eflags & IF == 0
    assert run_one(env, b"\xfb") is None and env.cpu.eflags & IF


def test_privileged_instructions_work_at_ring0():
    env = env_with_extras()
    assert run_one(env, b"\x0f\x20\xc0") is None          # mov eax, cr0
    assert env.cpu.eax & xe.CR0_PE
    assert run_one(env, b"\x0f\x06") is None               # clts
    assert run_one(env, b"\xfa") is None                   # cli at IOPL 0
    assert run_one(env, b"\xf4") is None and env.cpu.halted


def _io_bitmap_env() -> Env:
    """Ring 3, IOPL 0, a TSS with an I/O bitmap: port 0x60 allowed, the rest of
    0-0x3FF denied, ports from 0x400 beyond the TSS limit."""
    env = env_with_extras()
    base = 0x6000
    bitmap = bytearray(b"\xff" * 128) + b"\xff"
    bitmap[0x60 // 8] &= ~(1 << (0x60 % 8))
    env.mem.write(base, xe.tss32(xe.ESP0, DS0, xe.ESP1, DS1, iomap_base=104) + bytes(bitmap))
    env.set_gdt(22, xe.tss_descriptor(base, limit=104 + 128))
    env.cpu.load_tr(IO_TSS)
    env.enter_ring(3)
    env.cpu.eflags = 0x2
    return env


@pytest.mark.parametrize("code,edx,want", [
    (b"\xe4\x60", 0, None),                 # in al, 0x60: allowed by the bitmap
    (b"\xe4\x61", 0, (xe.GP, 0)),           # in al, 0x61: denied
    (b"\xec", 0x60, None),                  # in al, dx
    (b"\x66\xed", 0x60, (xe.GP, 0)),        # in ax, dx: needs 0x60 and 0x61
    (b"\xec", 0x400, (xe.GP, 0)),           # beyond the TSS limit
])
def test_io_permission_bitmap(code, edx, want):
    env = _io_bitmap_env()
    assert run_one(env, code, edx=edx) == want


# --- pushf / popf / iret flag rules --------------------------------------------------------
IOPL3 = 3 << xe.IOPL_SHIFT
IOPL1 = 1 << xe.IOPL_SHIFT


def _popf(env: Env, image: int, op16: bool = False):
    cpu = env.cpu
    if op16:
        cpu.esp -= 2
        env.mem.write16(cpu.esp, image)
    else:
        cpu.esp -= 4
        env.mem.write32(cpu.esp, image)
    return run_one(env, (b"\x66" if op16 else b"") + b"\x9d")


@pytest.mark.parametrize("cpl,start,image,want", [
    (0, 0x2, 0x2 | IF | IOPL3 | xe.CF, 0x2 | IF | IOPL3 | xe.CF),
    (0, 0x2 | IF | IOPL3, 0x2, 0x2),
    (0, 0x2, 0x2 | xe.RF | xe.VM | xe.AC, 0x2 | xe.AC),   # RF cleared, VM unchanged
    (1, 0x2 | IOPL1, 0x2 | IF | IOPL3, 0x2 | IF | IOPL1),  # IF yes, IOPL no
    (1, 0x2 | IF, 0x2 | IOPL3 | xe.ZF, 0x2 | IF | xe.ZF),  # IOPL 0 < CPL 1: IF kept
    (3, 0x2 | IF, 0x2 | xe.CF | IOPL3, 0x2 | IF | xe.CF),  # neither IF nor IOPL
    (3, 0x2, 0x2 | IF, 0x2),
    (3, 0x2 | IOPL3, 0x2 | IF, 0x2 | IF | IOPL3),         # IOPL 3: IF yes, IOPL no
])
def test_popf_rules(cpl, start, image, want):
    env = env_with_extras()
    env.enter_ring(cpl)
    env.cpu.eflags = start
    assert _popf(env, image) is None
    assert env.cpu.eflags == want


def test_popf16_only_low_word():
    env = env_with_extras()
    env.cpu.eflags = 0x2 | xe.AC
    assert _popf(env, 0x2 | xe.CF | IF, op16=True) is None
    assert env.cpu.eflags == 0x2 | xe.AC | xe.CF | IF


@pytest.mark.parametrize("cpl", [0, 1, 3])
def test_pushf_image(cpl):
    env = env_with_extras()
    env.enter_ring(cpl)
    flags = 0x2 | xe.CF | xe.OF | xe.AC | (IF if cpl == 0 else 0)
    env.cpu.eflags = flags
    esp = env.cpu.esp
    assert run_one(env, b"\x9c") is None
    assert env.cpu.esp == esp - 4
    assert env.mem.read32(esp - 4) == flags


# --- far transfers -------------------------------------------------------------------------
def test_far_jmp_to_outer_nonconforming_code_is_gp():
    env = env_with_extras()
    # jmp far 0x2B:CODE+0x10 from ring 0: DPL 3 != CPL 0
    code = b"\xea" + (CODE + 0x10).to_bytes(4, "little") + CS3.to_bytes(2, "little")
    assert run_one(env, code) == (xe.GP, CS3 & ~3)


def test_far_jmp_to_conforming_code_keeps_cpl():
    env = env_with_extras()
    env.enter_ring(3)
    code = b"\xea" + (CODE + 0x10).to_bytes(4, "little") + (CONF_CODE | 3).to_bytes(2, "little")
    env.mem.write(CODE + 0x10, NOP)
    assert run_one(env, code) is None
    assert env.cpu.eip == CODE + 0x10 and env.cpu.cpl == 3
    assert env.cpu.cs & 3 == 3


def test_far_call_and_ret_same_ring():
    env = env_with_extras()
    cpu = env.cpu
    env.mem.write(CODE + 0x40, b"\xcb")               # retf
    code = b"\x9a" + (CODE + 0x40).to_bytes(4, "little") + RD_CODE.to_bytes(2, "little")
    assert run_one(env, code) is None
    assert (cpu.cs, cpu.eip, cpu.esp) == (RD_CODE, CODE + 0x40, RING0_ESP - 8)
    assert env.mem.read32(cpu.esp) == CODE + 7
    assert env.mem.read32(cpu.esp + 4) & 0xFFFF == CS0
    env.step()
    assert (cpu.cs, cpu.eip, cpu.esp) == (CS0, CODE + 7, RING0_ESP)


def test_far_ret_to_outer_ring():
    env = env_with_extras()
    cpu = env.cpu
    cpu.load_segment("ds", DS0)
    cpu.load_segment("es", DS3)
    for i, w in enumerate([CODE + 0x80, CS3, xe.RING3_ESP - 4, DS3]):
        env.mem.write32(RING0_ESP - 16 + 4 * i, w)
    cpu.esp = RING0_ESP - 16
    assert run_one(env, b"\xcb") is None
    assert (cpu.cs, cpu.eip, cpu.ss, cpu.esp, cpu.cpl) == (CS3, CODE + 0x80, DS3,
                                                           xe.RING3_ESP - 4, 3)
    assert (cpu.ds, cpu.es) == (0, DS3)


def test_far_ret_to_inner_ring_is_gp():
    env = env_with_extras()
    env.enter_ring(3)
    cpu = env.cpu
    cpu.esp -= 8
    env.mem.write32(cpu.esp, CODE)
    env.mem.write32(cpu.esp + 4, CS0)
    assert run_one(env, b"\xcb") == (xe.GP, CS0)


def test_lguest_guest_ring1_segments():
    """lguest's Guest kernel runs with cs 0x61 and ds 0x69 (GDT 12/13, DPL 1,
    RPL 1); built here from the Host's point of view."""
    env = env_with_extras()
    env.set_gdt(12, xe.code_segment(1))
    env.set_gdt(13, xe.data_segment(1))
    cpu = env.cpu
    cpu.load_cs(0x61)
    for s in ("ss", "ds", "es"):
        cpu.load_segment(s, 0x69)
    assert cpu.cpl == 1 and cpu.cs == 0x61 and cpu.ss == 0x69
    cpu.esp = ESP1_GUEST = xe.ESP1 - 0x100
    assert run_one(env, b"\x50") is None                # push eax works at ring 1
    assert cpu.esp == ESP1_GUEST - 4
    assert run_one(env, b"\xfa") == (xe.GP, 0)          # cli traps (IOPL 0)
    assert cpu.cpl == 0 and cpu.cs == CS0


def test_ring_helpers_match():
    # a sanity check of the environment itself: the selectors' RPLs are the rings
    assert [xe.CODE_SEL[r] & 3 for r in range(4)] == [0, 1, 2, 3]
    assert CS1 & 3 == 1 and DS1 & 3 == 1 and CS3 & 3 == 3 and DS3 & 3 == 3


# --- descriptor tables ----------------------------------------------------------------------
def test_ldt_selectors():
    env = env_with_extras()
    cpu = env.cpu
    ldt = 0x7000
    env.mem.write(ldt, xe.data_segment(0, base=DATA, limit=0xFF, g=False)
                  + xe.data_segment(3, present=False))
    env.set_gdt(23, xe.ldt_descriptor(ldt, 15))
    cpu.load_ldtr(23 << 3)
    env.mem.write32(DATA + 0x10, 0xABCD)
    assert run_one(env, MOV_DS_EAX, eax=xe.selector(0, ldt=True)) is None
    assert run_one(env, MOV_EAX_EBX, ebx=0x10) is None and cpu.eax == 0xABCD
    assert run_one(env, MOV_EAX_EBX, ebx=0x100) == (xe.GP, 0)
    assert run_one(env, MOV_DS_EAX, eax=xe.selector(1, 3, ldt=True)) == (xe.NP, 0x0C)
    assert run_one(env, MOV_DS_EAX, eax=xe.selector(2, ldt=True)) == (xe.GP, 0x14)


def test_segment_load_sets_accessed_bit():
    env = env_with_extras()
    env.set_gdt(24, xe.data_segment(0, accessed=False))
    assert env.mem.read8(xe.GDT_BASE + 24 * 8 + 5) & 1 == 0
    assert run_one(env, MOV_DS_EAX, eax=24 << 3) is None
    assert env.mem.read8(xe.GDT_BASE + 24 * 8 + 5) & 1 == 1


def test_ltr_marks_busy_and_refuses_a_busy_tss():
    env = env_with_extras()
    cpu = env.cpu
    env.set_gdt(25, xe.tss_descriptor(0x6800))
    assert run_one(env, b"\x0f\x00\xd8", eax=25 << 3) is None      # ltr ax
    assert cpu.tr == 25 << 3
    assert env.mem.read8(xe.GDT_BASE + 25 * 8 + 5) & 0xF == 0xB    # busy
    assert run_one(env, b"\x0f\x00\xd8", eax=25 << 3) == (xe.GP, 25 << 3)
    assert run_one(env, b"\x0f\x00\xd8", eax=DS0) == (xe.GP, DS0)


def test_lgdt_lidt_sgdt_sidt():
    env = env_with_extras()
    cpu = env.cpu
    env.mem.write(DATA, (0x3F).to_bytes(2, "little") + (0x12340).to_bytes(4, "little"))
    assert run_one(env, b"\x0f\x01\x1b", ebx=DATA) is None           # lidt [ebx]
    assert cpu.idtr == (0x12340, 0x3F)
    assert run_one(env, b"\x0f\x01\x0b", ebx=DATA + 8) is None       # sidt [ebx]
    assert env.mem.read(DATA + 8, 6) == env.mem.read(DATA, 6)
    assert run_one(env, b"\x0f\x01\x03", ebx=DATA + 16) is None      # sgdt [ebx]
    assert env.mem.read16(DATA + 16) == xe.GDT_ENTRIES * 8 - 1
    assert env.mem.read32(DATA + 18) == xe.GDT_BASE


@pytest.mark.parametrize("code,sel,zf,value", [
    (b"\x0f\x03\xc1", SMALL_DATA, True, 0xFFF),          # lsl eax, ecx
    (b"\x0f\x03\xc1", 0x100, False, None),               # beyond the GDT: ZF = 0
    (b"\x0f\x02\xc1", DS3, True, 0x00C0F200),            # lar: G D/B, P DPL3 S type 2
    (b"\x0f\x00\xe1", XO_CODE, False, None),             # verr cx: execute-only
    (b"\x0f\x00\xe1", RD_CODE, True, None),              # verr: readable code
    (b"\x0f\x00\xe9", RO_DATA, False, None),             # verw: read-only data
    (b"\x0f\x00\xe9", DS0, True, None),
])
def test_lar_lsl_verr_verw(code, sel, zf, value):
    env = env_with_extras()
    cpu = env.cpu
    cpu.eflags = 0x2 | (0 if zf else xe.ZF)
    assert run_one(env, code, ecx=sel, eax=0x5555) is None
    assert bool(cpu.eflags & xe.ZF) == zf
    if value is not None:
        # LAR masks the descriptor's high dword with 00FxFF00H: bits 16-19
        # (limit 19:16) are left to the implementation
        mask = 0xFFF0FFFF if code[1] == 2 else 0xFFFFFFFF
        assert cpu.eax & mask == value
    elif not zf and code[1] in (2, 3):
        assert cpu.eax == 0x5555                          # unchanged when ZF = 0


def test_verr_at_ring3_of_ring0_data_is_zf0():
    env = env_with_extras()
    env.enter_ring(3)
    env.cpu.eflags = 0x2 | xe.ZF
    assert run_one(env, b"\x0f\x00\xe1", ecx=DS0) is None
    assert not env.cpu.eflags & xe.ZF
