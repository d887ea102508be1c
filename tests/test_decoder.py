"""The core's decoder against iced-x86, opcode by opcode.

For every byte of the one-byte map and of the 0F two-byte map, every ModRM
byte (so every group /r, every register and memory form), the SIB and
displacement forms, operand and address size (0x66, 0x67), segment
overrides, lock and rep prefixes, in 32-bit and 16-bit code: the core's
instruction length and mnemonic must equal iced-x86's.

Where the two disagree about validity:
  * the core says #UD, iced decodes something: the instruction must be one
    outside the set this core promises (ALLOWED_FEATURES, EXCLUDED_OPCODES and
    REQUIRED_X87 below, in one place, with their reasons);
  * the core decodes something iced calls invalid: executing it must deliver
    #UD (a decoder may leave the refusal to the executor, the CPU may not
    run it).

Spelling differences between iced and the core live in one table, CANON.
One more rule: where iced decodes F2/F3 0F xx as a post-i686 instruction
(tzcnt, lzcnt, wbnoinvd), the core may decode the i686 meaning, the
instruction without that prefix (rep bsf = bsf), and is compared with that.
"""

from __future__ import annotations

import iced_x86 as iced
import pytest
import x86env as xe
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lguestsim.x86 import decode as core_decode_mod

DecodeError = core_decode_mod.DecodeError
NeedBytes = core_decode_mod.NeedBytes

_MNEMONIC = {getattr(iced.Mnemonic, n): n.lower() for n in dir(iced.Mnemonic)
             if not n.startswith("_") and isinstance(getattr(iced.Mnemonic, n), int)}
_CODE = {getattr(iced.Code, n): n for n in dir(iced.Code)
         if not n.startswith("_") and isinstance(getattr(iced.Code, n), int)}
_FEATURE = {getattr(iced.CpuidFeature, n): n for n in dir(iced.CpuidFeature)
            if not n.startswith("_") and isinstance(getattr(iced.CpuidFeature, n), int)}

# --- the one table of spelling differences ------------------------------------
# iced-x86 name (lower case) -> the name the core uses (capstone/Intel style).
# Far transfers are told apart by iced's Code, see _ref_canon.
CANON = {
    "sal": "shl",            # D0-D3/C0-C1 /6: the SDM's SAL alias of /4
    "pause": "nop",          # F3 90: the core reports NOP with rep = 'rep'
    "reservednop": "nop",    # 0F 1F /1-/7: the SDM's reserved-NOP forms
    "fwait": "wait",
    "retf": "lret",          # far return
    "xlat": "xlatb",
}
FAR_CODES = ("CALL_PTR", "CALL_M16", "JMP_PTR", "JMP_M16")

# --- what the core need not decode, and why -----------------------------------
# iced's CpuidFeature for an instruction; any feature outside ALLOWED marks an
# instruction beyond the i386/i686 integer set this core implements.
ALLOWED_FEATURES = {
    "INTEL8086", "INTEL186", "INTEL286", "INTEL386", "INTEL486",  # the integer set
    "CPUID", "TSC", "MSR", "CX8", "CMOV", "SEP",                  # i586/i686 additions
    "MULTIBYTENOP", "PAUSE",                                      # 0F 1F NOP, F3 90
    "FPU", "FPU287", "FPU387",                                    # see the x87 rule
}
# Reasons for the excluded groups (documentation for a reader of a failure):
EXCLUDED_REASONS = {
    "MMX/SSE*/AVX*/3DNow/FMA/AES/SHA...": "SIMD: decoded only far enough to fault (#NM/#UD)",
    "VMX/SVM/SMX/SGX/TDX": "virtualisation extensions; lguest is a paravirtual hypervisor",
    "SYSCALL": "AMD's fast system call; lguest uses int $0x80 and sysenter is disabled",
    "SMM": "rsm is only valid in system management mode, which is not modelled",
    "RDPMC": "performance counters are not modelled",
    "POPCNT/LZCNT/BMI*/MOVBE/ADX/RDRAND/RDSEED/RDTSCP/RDPID/CLFSH/...":
        "integer extensions after the i686",
    "MONITOR/XSAVE/FSGSBASE/SMAP/...": "system extensions after the i686",
    "FXSR": "fxsave/fxrstor: the teaching Guest uses fnsave/frstor",
    "PREFETCHW/D3NOW/CYRIX_*/PADLOCK_*/KNC...": "vendor-specific",
}
# Opcodes the core may refuse although iced decodes them, each with its reason.
EXCLUDED_OPCODES = {
    0x0F0D: "0F 0D: AMD prefetch/prefetchw, and iced's reserved-NOP forms of it",
    0x0F18: "0F 18: SSE prefetch hints (/0-/3) and reserved-NOP hints (/4-/7)",
    **{0x0F19 + i: "hint-NOP space 0F 19-1E: reserved, never emitted by compilers"
       for i in range(6)},
    0x0FB9: "ud1: an undefined opcode by definition",
    0x0FFF: "ud0: an undefined opcode by definition",
}
# The x87 subset the core must decode: what a kernel's lazy FPU switching and
# its boot-time FPU probe execute (Linux 2.6.23 i387.c and bugs.h): fninit,
# fwait, fnsave/frstor, fnstsw, fnstcw/fldcw.  Other x87 instructions
# may be refused (#UD) or decoded; when decoded they must agree with iced.
REQUIRED_X87 = {"fninit", "wait", "fnsave", "frstor", "fnstsw", "fnstcw", "fldcw"}

STRING_OPS = {"movs", "cmps", "stos", "lods", "scas", "ins", "outs"}


def _ref_canon(ins: iced.Instruction) -> str:
    name = _MNEMONIC[ins.mnemonic]
    code = _CODE[ins.code]
    if code.startswith(FAR_CODES):
        return "lcall" if name == "call" else "ljmp"
    return CANON.get(name, name)


class Ref:
    """iced-x86's view of one instruction."""

    def __init__(self, buf: bytes, code32: bool) -> None:
        ins = iced.Decoder(32 if code32 else 16, buf, ip=0).decode()
        self.valid = ins.code != iced.Code.INVALID
        self.length = ins.len
        self.mnemonic = _ref_canon(ins) if self.valid else None
        self.raw_name = _MNEMONIC[ins.mnemonic]
        self.features = {_FEATURE[f] for f in ins.cpuid_features()} if self.valid else set()
        self.rep = ("rep" if ins.has_rep_prefix else "repne" if ins.has_repne_prefix
                    else None)
        self.lock = ins.has_lock_prefix

    def is_x87(self) -> bool:
        return bool(self.features & {"FPU", "FPU287", "FPU387"})

    def excluded(self, opcode: int | None) -> str | None:
        """Why the core may refuse this instruction, or None if it must not."""
        if not self.valid:
            return "invalid"
        beyond = self.features - ALLOWED_FEATURES
        if beyond:
            return f"feature {sorted(beyond)}"
        if opcode in EXCLUDED_OPCODES:
            return EXCLUDED_OPCODES[opcode]
        if self.is_x87() and self.mnemonic not in REQUIRED_X87:
            return "x87 outside the required subset"
        return None


class Core:
    """The core's view: decoded (mnemonic, length), or refused (vector)."""

    def __init__(self, buf: bytes, code32: bool) -> None:
        self.insn = None
        self.vector = None
        try:
            self.insn = core_decode_mod.decode(buf, 0x1000, code32)
        except DecodeError as e:
            self.vector = e.vector
        self.valid = self.insn is not None
        self.length = self.insn.length if self.valid else None
        m = self.insn.mnemonic if self.valid else None
        # "simd" and an x87 "unsupported" are decoded for length only and
        # fault when executed: for the comparison they are refusals.
        self.unsupported = m == "simd" or (self.valid and self.insn.fpu is not None
                                           and self.insn.fpu[0] == "unsupported")
        self.mnemonic = m


FILL = bytes.fromhex("785634122143658799aabbccddeeff")   # displacements and immediates


def _opcode_key(buf: bytes) -> int | None:
    i = 0
    while i < len(buf) and buf[i] in (0x66, 0x67, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65,
                                      0xF0, 0xF2, 0xF3):
        i += 1
    if i >= len(buf):
        return None
    if buf[i] == 0x0F and i + 1 < len(buf):
        return 0x0F00 | buf[i + 1]
    return buf[i]


def _rep_prefixes(buf: bytes) -> set[int]:
    """Offsets of the F2/F3 bytes in ``buf``'s prefix run."""
    found = set()
    for i, b in enumerate(buf):
        if b in (0xF2, 0xF3):
            found.add(i)
        elif b not in (0x66, 0x67, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0xF0):
            break
    return found


def _pad(buf: bytes) -> bytes:
    buf = buf[:15]
    return buf + FILL[: max(0, 16 - len(buf))]


def compare(buf: bytes, code32: bool = True) -> str | None:
    """None when core and reference agree on ``buf``; else what differs.
    Cases the core decodes but iced refuses are returned as 'UD?' to be run."""
    buf = _pad(buf)
    ref = Ref(buf, code32)
    core = Core(buf, code32)
    opcode = _opcode_key(buf)
    where = f"{buf.hex(' ')} ({'32' if code32 else '16'}-bit)"
    if core.valid and not core.unsupported:
        if not ref.valid:
            return "UD?"
        reps = _rep_prefixes(buf)
        if ref.features - ALLOWED_FEATURES and reps:
            # F3 0F BC is tzcnt today, rep bsf on an i686 (likewise lzcnt,
            # wbnoinvd), wherever F3 sits among the prefixes: compare with
            # the instruction without its F2/F3 prefixes.
            stripped = bytes(b for i, b in enumerate(buf) if i not in reps)
            ref = Ref(stripped + FILL[:len(reps)], code32)
            ref.length += len(reps)
        if core.length != ref.length or core.mnemonic != ref.mnemonic:
            return (f"{where}: core {core.mnemonic} len {core.length}, "
                    f"iced {ref.mnemonic} len {ref.length}")
        base = ref.mnemonic.rstrip("bwd") if ref.mnemonic else ""
        if base in STRING_OPS and core.insn.rep != ref.rep:
            return f"{where}: core rep {core.insn.rep!r}, iced {ref.rep!r}"
        if ref.raw_name == "pause" and core.insn.rep != "rep":
            return f"{where}: pause must decode as nop with rep, core rep {core.insn.rep!r}"
        if core.insn.lock != ref.lock:
            return f"{where}: core lock {core.insn.lock}, iced {ref.lock}"
        return None
    # The core refuses (or decodes for length only).
    why = ref.excluded(opcode)
    if why is None:
        state = "unsupported" if core.valid else f"#{core.vector}"
        return f"{where}: core {state}, iced {ref.mnemonic} len {ref.length} is required"
    return None


# --- generating the byte strings ------------------------------------------------
SIBS = (0x00, 0x24, 0x25, 0x65, 0xA5, 0xE4, 0x1D, 0xCD, 0x4C)  # index none/esp/ebp, scales


def modrm_forms(addr32: bool, regs=range(8)):
    """Every ModRM byte (with the given reg fields) and, for 32-bit addressing,
    the SIB forms: base/index none, ebp base with mod 0 (disp32), all scales."""
    for mod in range(4):
        for reg in regs:
            for rm in range(8):
                m = (mod << 6) | (reg << 3) | rm
                if addr32 and mod != 3 and rm == 4:
                    for sib in SIBS:
                        yield bytes((m, sib))
                else:
                    yield bytes((m,))


ONE_BYTE_OPCODES = [b for b in range(256)
                    if b not in (0x0F, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67,
                                 0xF0, 0xF2, 0xF3)]
TWO_BYTE_OPCODES = list(range(256))


# Core bugs this file found (all fixed): kept as regressions, see
# test_regressions_found_by_the_sweep.
REGRESSIONS = {
    "jcxz-name": ("E3 is jcxz or jecxz by the address size (0x67), not the operand size "
                  "(SDM vol. 2, Jcc: 'JCXZ ... if CX register is 0, address-size 16')",
                  ["67 e3 10", "66 e3 10"], ["e3 10", "67 e3 10"]),
    "mov-cr-mod": ("0F 20-23 (mov to/from CR/DR): the mod field is ignored and always "
                   "treated as 11b, there is no memory form (SDM vol. 2, MOV-Move to/from "
                   "Control Registers)",
                   ["0f 20 00", "0f 22 18", "0f 21 04 24", "0f 23 05"], ["0f 20 06"]),
    "lock-reg-dest": ("LOCK is valid only where the destination is memory: lock add r32, "
                      "[mem] (03 /r) and the other ALU G,E forms are #UD (SDM vol. 2, LOCK)",
                      ["f0 03 00", "f0 02 00", "f0 33 00", "f0 66 2b 00"], []),
}


def _sweep(prefix: bytes, opcode: bytes, code32: bool, addr32: bool) -> list[str]:
    bad = []
    for tail in modrm_forms(addr32):
        buf = prefix + opcode + tail
        r = compare(buf, code32)
        if r is not None and r != "UD?":
            bad.append(r)
        elif r == "UD?":
            _UD_CANDIDATES.setdefault(opcode, []).append((_pad(buf), code32))
    return bad


_UD_CANDIDATES: dict[bytes, list[tuple[bytes, bool]]] = {}


def _report(bad: list[str]) -> str:
    return f"{len(bad)} disagreements, first ones:\n" + "\n".join(bad[:12])


@pytest.mark.parametrize("op", ONE_BYTE_OPCODES, ids=lambda b: f"{b:02x}")
def test_one_byte_map_every_modrm(op):
    bad = _sweep(b"", bytes((op,)), True, True)
    assert not bad, _report(bad)


@pytest.mark.parametrize("op", TWO_BYTE_OPCODES, ids=lambda b: f"0f{b:02x}")
def test_two_byte_map_every_modrm(op):
    bad = _sweep(b"", bytes((0x0F, op)), True, True)
    assert not bad, _report(bad)


SIZE_PREFIXES = [b"\x66", b"\x67", b"\x66\x67"]


@pytest.mark.parametrize("prefix", SIZE_PREFIXES, ids=lambda p: p.hex())
def test_operand_and_address_size_prefixes(prefix):
    bad = []
    addr32 = 0x67 not in prefix
    for op in ONE_BYTE_OPCODES:
        bad += _sweep(prefix, bytes((op,)), True, addr32)
    for op in TWO_BYTE_OPCODES:
        bad += _sweep(prefix, bytes((0x0F, op)), True, addr32)
    assert not bad, _report(bad)


def test_every_sib_byte():
    """All 256 SIB bytes under every mod and reg, for one load (8B /r) and one
    group (F7 /r), in 32-bit addressing."""
    bad = []
    for op in (0x8B, 0xF7):
        for mod in range(3):
            for reg in range(8):
                for sib in range(256):
                    r = compare(bytes((op, (mod << 6) | (reg << 3) | 4, sib)))
                    if r is not None:
                        bad.append(r)
    assert not bad, _report(bad)


@pytest.mark.parametrize("prefix", [b"", b"\x66", b"\x67"], ids=lambda p: p.hex() or "none")
def test_16bit_code(prefix):
    """In 16-bit code (real mode), 0x66/0x67 select the 32-bit forms."""
    bad = []
    addr32 = 0x67 in prefix
    for op in ONE_BYTE_OPCODES:
        bad += _sweep(prefix, bytes((op,)), False, addr32)
    for op in TWO_BYTE_OPCODES:
        bad += _sweep(prefix, bytes((0x0F, op)), False, addr32)
    assert not bad, _report(bad)


@pytest.mark.parametrize("prefix", [b"\x26", b"\x2e", b"\x36", b"\x3e", b"\x64", b"\x65",
                                    b"\xf0", b"\xf2", b"\xf3"], ids=lambda p: p.hex())
def test_segment_lock_rep_prefixes(prefix):
    bad = []
    for op in ONE_BYTE_OPCODES:
        bad += _sweep(prefix, bytes((op,)), True, True)
    for op in TWO_BYTE_OPCODES:
        bad += _sweep(prefix, bytes((0x0F, op)), True, True)
    assert not bad, _report(bad)


PREFIX_BYTES = [0x66, 0x67, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0xF0, 0xF2, 0xF3]


@settings(deadline=None)
@example(prefixes=[0x66, 0xF3], two=True, op=0x09, tail=b"", code32=False)  # wbnoinvd
@example(prefixes=[0x3E, 0xF3], two=True, op=0xBC, tail=b"\xc0", code32=True)  # tzcnt
@given(prefixes=st.lists(st.sampled_from(PREFIX_BYTES), max_size=4),
       two=st.booleans(), op=st.integers(0, 255),
       tail=st.binary(min_size=0, max_size=12), code32=st.booleans())
def test_random_prefix_combinations(prefixes, two, op, tail, code32):
    buf = bytes(prefixes) + (b"\x0f" if two else b"") + bytes((op,)) + tail
    r = compare(buf, code32)
    if r == "UD?":
        _assert_executes_as_ud(_pad(buf), code32)
    else:
        assert r is None, r


# --- decoded by the core, invalid to iced: must be #UD when executed -----------
def _real_mode_cpu(buf: bytes):
    """Real mode, code at 1000:0000, every IVT vector at 0000:0500+v (hlt)."""
    from lguestsim.x86 import CPU, PhysicalMemory

    mem = PhysicalMemory(1 << 20)
    cpu = CPU(mem)
    for v in range(256):
        mem.write32(v * 4, 0x500 + v)
        mem.write8(0x500 + v, 0xF4)
    cpu.load_cs(0x1000)
    cpu.load_segment("ss", 0x2000)
    cpu.esp = 0xFFF0
    mem.write(0x10000, buf)
    cpu.eip = 0
    return cpu


def _assert_executes_as_ud(buf: bytes, code32: bool) -> None:
    if code32:
        env = xe.Env()
        env.code(buf)
        cpu = env.cpu
        cpu.step()
        where = cpu.eip == env.handler(xe.UD)
    else:
        cpu = _real_mode_cpu(buf)
        cpu.step()
        where = (cpu.cs, cpu.eip) == (0, 0x500 + xe.UD)
    assert cpu.last_exception is not None and cpu.last_exception[0] == xe.UD and where, (
        f"{buf.hex(' ')} ({'32' if code32 else '16'}-bit): iced says invalid, the core "
        f"decodes {Core(buf, code32).mnemonic!r} and executing it gave "
        f"{cpu.last_exception} (want #UD)")


def test_decoded_but_invalid_instructions_raise_ud():
    """Runs after the sweeps (pytest keeps file order): everything the core
    decoded while iced said invalid must fault with #UD when executed."""
    if not _UD_CANDIDATES:
        # the sweeps may not have run (e.g. -k selection): build the list here
        for op in ONE_BYTE_OPCODES:
            _sweep(b"", bytes((op,)), True, True)
        for op in TWO_BYTE_OPCODES:
            _sweep(b"", bytes((0x0F, op)), True, True)
    failures = []
    for cases in _UD_CANDIDATES.values():
        for buf, code32 in cases[:64]:
            try:
                _assert_executes_as_ud(buf, code32)
            except AssertionError as e:
                failures.append(str(e).splitlines()[0])
    assert not failures, _report(failures)


# --- fixed facts, a few by hand ---------------------------------------------------
@pytest.mark.parametrize("hexbytes,code32,mnemonic,length", [
    ("e3 10", True, "jecxz", 2),
    ("67 e3 10", True, "jcxz", 3),        # the count register follows the address size
    ("66 e3 10", True, "jecxz", 3),
    ("e3 10", False, "jcxz", 2),
    ("67 e3 10", False, "jecxz", 3),
    ("66 98", True, "cbw", 2),
    ("98", True, "cwde", 1),
    ("66 99", True, "cwd", 2),
    ("a5", True, "movsd", 1),
    ("66 a5", True, "movsw", 2),
    ("a5", False, "movsw", 1),
    ("0f 44 c1", True, "cmove", 3),
    ("0f 95 c0", True, "setne", 3),
    ("0f b6 c1", True, "movzx", 3),
    ("75 00", True, "jne", 2),
    ("0f 85 00 00 00 00", True, "jne", 6),
    ("66 0f 85 00 00", True, "jne", 5),   # rel16 with an operand-size prefix
    ("0f 85 00 00", False, "jne", 4),
    ("c7 05 00 10 00 00 78 56 34 12", True, "mov", 10),
    ("66 c7 05 00 10 00 00 34 12", True, "mov", 9),
    ("67 c7 06 00 10 78 56 34 12", True, "mov", 9),   # 16-bit addressing, disp16
    ("8b 04 25 00 10 00 00", True, "mov", 7),         # SIB, no base: disp32
    ("8b 44 24 08", True, "mov", 4),
    ("9a 00 10 00 00 08 00", True, "lcall", 7),
    ("66 ea 00 10 08 00", True, "ljmp", 6),
    ("cd 80", True, "int", 2),
    ("0f 01 38", True, "invlpg", 3),
])
def test_known_encodings(hexbytes, code32, mnemonic, length):
    buf = bytes.fromhex(hexbytes) + FILL
    insn = core_decode_mod.decode(buf, 0x1000, code32)
    assert (insn.mnemonic, insn.length) == (mnemonic, length)
    assert compare(bytes.fromhex(hexbytes), code32) is None


def test_rep_and_lock_reported_separately():
    insn = core_decode_mod.decode(bytes.fromhex("f3 a5") + FILL, 0, True)
    assert (insn.mnemonic, insn.rep) == ("movsd", "rep")
    insn = core_decode_mod.decode(bytes.fromhex("f2 ae") + FILL, 0, True)
    assert (insn.mnemonic, insn.rep) == ("scasb", "repne")
    insn = core_decode_mod.decode(bytes.fromhex("f0 01 08") + FILL, 0, True)
    assert (insn.mnemonic, insn.lock) == ("add", True)


def test_lock_on_a_register_destination_is_ud():
    with pytest.raises(DecodeError) as e:
        core_decode_mod.decode(bytes.fromhex("f0 01 c0") + FILL, 0, True)
    assert e.value.vector == xe.UD


def test_instruction_longer_than_15_bytes_is_gp():
    buf = b"\x66" * 14 + bytes.fromhex("05 00 00")   # 17 bytes of one instruction
    with pytest.raises(DecodeError) as e:
        core_decode_mod.decode(buf + FILL, 0, True)
    assert e.value.vector == xe.GP


def test_short_buffer_asks_for_more_bytes():
    with pytest.raises(NeedBytes):
        core_decode_mod.decode(bytes.fromhex("b8 01 02"), 0, True)


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regressions_found_by_the_sweep(name):
    _check_regression(name)


def _check_regression(name: str) -> None:
    reason, cases32, cases16 = REGRESSIONS[name]
    bad = [compare(bytes.fromhex(h), True) for h in cases32]
    bad += [compare(bytes.fromhex(h), False) for h in cases16]
    bad = [b for b in bad if b not in (None, "UD?")]
    for h in cases32:            # what the core decodes and iced refuses must be #UD
        if compare(bytes.fromhex(h), True) == "UD?":
            try:
                _assert_executes_as_ud(_pad(bytes.fromhex(h)), True)
            except AssertionError as e:
                bad.append(str(e).splitlines()[0])
    assert not bad, reason + "\n" + "\n".join(bad)


def test_comparison_can_fail():
    """The oracle is not a tautology: a wrong length or name is reported."""
    assert compare(bytes.fromhex("01 c0")) is None
    ref = Ref(bytes.fromhex("01 c0") + FILL, True)
    assert (ref.mnemonic, ref.length) == ("add", 2)
    assert Ref(bytes.fromhex("0f 10 00") + FILL, True).excluded(0x0F10)
    assert Ref(bytes.fromhex("0f a2") + FILL, True).excluded(0x0FA2) is None  # cpuid required
    assert Ref(bytes.fromhex("db e3") + FILL, True).excluded(0xDB) is None    # fninit required


def test_a_wrong_decoder_is_caught(monkeypatch):
    """Feed the oracle a decoder that gets one length and one name wrong."""
    real = core_decode_mod.decode

    def broken(buf, eip, code32=True):
        insn = real(buf, eip, code32)
        if buf[0] == 0x01:
            insn.length += 1
        if buf[0] == 0x29:
            insn.mnemonic = "add"
        return insn

    monkeypatch.setattr(core_decode_mod, "decode", broken)
    assert "len" in compare(bytes.fromhex("01 c0"))
    assert "core add" in compare(bytes.fromhex("29 c0"))
    assert compare(bytes.fromhex("31 c0")) is None
