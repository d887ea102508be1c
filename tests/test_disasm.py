"""The core's disassembler (x86/syntax.py) against capstone.

Where capstone is missing (the live book, in Pyodide) the views print what
syntax.py writes, so it must write what capstone writes.  Compared here, in
AT&T and Intel syntax, same mnemonic and operands:

  * every instruction of the shipped Guests (guest.elf, guest-virtio.elf)
    and of the Switcher, by a linear sweep of their text from every symbol
    (each function, each label, each of the Switcher's 256 trap stubs);
  * one encoding of every entry of the opcode map, in register and memory
    forms, with and without an operand-size prefix;
  * random encodings drawn from the map (hypothesis), with random prefixes,
    ModRM, SIB, displacements and immediates.

capstone 5 departs from the 386 in a few places, and there the comparison
steps aside, each for the reason given below: CAPSTONE_READS_LATER,
the_targets_may_differ(), capstone_drops_the_66(), capstone_mixes_the_reps(),
undefined_on_hardware().
16-bit code is not compared: the views only show 32-bit code, and capstone
5's 16-bit mode departs from the SDM itself (98 after a segment prefix as
cwtl, an "l" suffix on 16-bit registers after F2/F3 0F, jump targets not
wrapped at 64 KiB).
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import capstone
import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import example, given
from hypothesis import strategies as st

from lguestsim.guest import IMAGES
from lguestsim.guest import build as gb
from lguestsim.switcher import HERE as SWITCHER_DIR
from lguestsim.switcher import SWITCHER_ADDR
from lguestsim.x86 import disasm, opcodes, syntax
from lguestsim.x86.decode import DecodeError, NeedBytes, decode

_CS = {}
for _att in (True, False):
    for _code32 in (True, False):
        _CS[_att, _code32] = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32 if _code32
                                         else capstone.CS_MODE_16)
        if _att:
            _CS[_att, _code32].syntax = capstone.CS_OPT_SYNTAX_ATT
    _CS[_att] = _CS[_att, True]

# F3 0F 09/BC/BD: capstone reads the prefix as making a later instruction
# (wbnoinvd, tzcnt, lzcnt); a 386-686 ignores it there, and so does the core.
CAPSTONE_READS_LATER = {"wbnoinvd": "wbinvd", "tzcnt": "bsf", "lzcnt": "bsr",
                        "tzcntl": "bsfl", "tzcntw": "bsfw", "lzcntl": "bsrl", "lzcntw": "bsrw"}
BRANCHES = ({0x70 + c for c in range(16)} | {0x0F80 + c for c in range(16)}
            | {0xE0, 0xE1, 0xE2, 0xE3, 0xE8, 0xE9, 0xEB})


def capstone_text(code: bytes, address: int, att: bool, code32: bool = True
                  ) -> tuple[int, str] | None:
    found = list(_CS[att, code32].disasm(code, address, 1))
    if not found:
        return None
    mnemonic, _, rest = f"{found[0].mnemonic} {found[0].op_str}".strip().partition(" ")
    mnemonic = CAPSTONE_READS_LATER.get(mnemonic, mnemonic)
    return found[0].size, (mnemonic + " " + rest).strip()


def the_targets_may_differ(insn) -> bool:
    """A relative branch with a 66 or 67 prefix: the SDM wraps the target at 16
    bits by the operand size alone, capstone 5 by the address size, or not at all."""
    return insn.opcode in BRANCHES and any(b in (0x66, 0x67) for b in insn.raw[:insn.length - 1])


def undefined_on_hardware(insn) -> bool:
    """bswap with a 16-bit operand: undefined in the SDM; the core swaps the 32-bit
    register, capstone names the 16-bit one."""
    return 0x0FC8 <= insn.opcode <= 0x0FCF and not insn.op32


def capstone_drops_the_66(insn) -> bool:
    """66 with F2 or F3 before a 0F opcode: capstone takes F2/F3 for an SSE
    mandatory prefix and then ignores 66; the 386 applies 66 (and ignores F2/F3)."""
    return insn.opcode > 0xFF and insn.rep is not None and 0x66 in insn.raw[:insn.length - 2]


def capstone_mixes_the_reps(insn) -> bool:
    """Both F2 and F3: capstone's reading of each (rep, hint, bnd, mandatory
    prefix) then depends on their order; the 386 takes the last."""
    prefixes = insn.raw[:insn.length]
    return 0xF2 in prefixes[:8] and 0xF3 in prefixes[:8] and _prefix_bytes(insn) >= {0xF2, 0xF3}


def _prefix_bytes(insn) -> set[int]:
    out = set()
    for b in insn.raw:
        if b not in (0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3):
            break
        out.add(b)
    return out


def compare(code: bytes, address: int, code32: bool = True) -> bool:
    """Both disassemblers on the instruction at the start of ``code``; True if
    both decode it (and then their texts are asserted equal)."""
    try:
        insn = decode(code[:15], address, code32)
    except (DecodeError, NeedBytes):
        return False
    compared = False
    for att in (True, False):
        theirs = capstone_text(code, address, att, code32)
        if theirs is None or theirs[0] != insn.length or undefined_on_hardware(insn) \
                or capstone_drops_the_66(insn) or capstone_mixes_the_reps(insn):
            continue
        try:
            ours = syntax.text(insn, att)
        except syntax.Unprintable:
            continue
        want = theirs[1]
        if the_targets_may_differ(insn):
            ours, want = ours.rsplit(" ", 1)[0], want.rsplit(" ", 1)[0]
        assert ours == want, (code[:insn.length].hex(), "AT&T" if att else "Intel")
        compared = True
    return compared


# --- what the shipped code contains -------------------------------------------

def _sweep(code: bytes, base: int, starts: list[int]) -> int:
    """Linear sweep from each start to the next: every instruction compared."""
    starts = sorted(set(s for s in starts if base <= s < base + len(code)))
    count = 0
    for start, end in zip(starts, starts[1:] + [base + len(code)], strict=True):
        covered = start
        for ins in _CS[True].disasm(code[start - base:end - base], start):
            off = ins.address - base
            assert compare(code[off:off + 15], ins.address), \
                f"the core does not decode {ins.bytes.hex()} at {ins.address:#x}"
            count += 1
            covered += ins.size
        assert covered == end, f"the sweep from {start:#x} stopped at {covered:#x}, not {end:#x}"
    return count


def _elf_text(path) -> tuple[bytes, int, list[int]]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        text = elf.get_section_by_name(".text")
        starts = [s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()
                  if s["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE") and s.name]
        return text.data(), text["sh_addr"], starts


@pytest.mark.parametrize("image", ["guest.elf", "guest-virtio.elf"])
def test_every_instruction_of_a_shipped_guest(image):
    code, base, starts = _elf_text(IMAGES / image)
    assert _sweep(code, base, starts) > 4000   # some 4,500 instructions


def _user_program(defines: tuple[str, ...]) -> bytes:
    """The Guest's user program (the shell), linked again with its symbols: the
    Guest carries it only as flat bytes (user_image.S)."""
    missing = [t for t in gb.TOOLS if shutil.which(t) is None]
    assert not missing, f"{missing} missing: install gcc, gcc-multilib and binutils"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gb._run(["ld", *gb.LDFLAGS, "-T", "user.ld", "-o", str(tmp / "user.elf"),
                 *gb._compile(gb.USER_SOURCES, tmp, defines)])
        return (tmp / "user.elf").read_bytes()


@pytest.mark.parametrize("image,defines", [("guest.elf", ()),
                                           ("guest-virtio.elf", gb.VIRTIO_DEFINES)])
def test_every_instruction_of_a_shipped_guests_user_program(image, defines):
    elf = ELFFile(io.BytesIO(_user_program(defines)))
    user = elf.get_section_by_name(".user")
    code, base = user.data(), user["sh_addr"]
    # the very bytes the shipped Guest carries between user_image_start and _end
    with open(IMAGES / image, "rb") as f:
        kernel = ELFFile(f)
        syms = {s.name: s["st_value"] for s in kernel.get_section_by_name(".symtab")
                .iter_symbols()}
        rodata = kernel.get_section_by_name(".rodata")
        start = syms["user_image_start"] - rodata["sh_addr"]
        assert rodata.data()[start:start + len(code)] == code
        assert syms["user_image_end"] - syms["user_image_start"] == len(code)
    # each function by its size (data follows the last), each assembler label
    # to the next symbol
    symbols = sorted((s["st_value"], s["st_size"], s["st_info"]["type"])
                     for s in elf.get_section_by_name(".symtab").iter_symbols()
                     if s["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE", "STT_OBJECT")
                     and s["st_value"] >= base)
    count = 0
    for i, (address, size, kind) in enumerate(symbols):
        if kind == "STT_OBJECT":
            continue
        end = address + size if size else symbols[i + 1][0]
        count += _sweep(code[:end - base], base, [address])
    assert count > 2000   # some 2,350 instructions


def test_every_instruction_of_the_switcher():
    code = (SWITCHER_DIR / "switcher.bin").read_bytes()
    syms = {k: int(v, 16) for k, v in json.loads((SWITCHER_DIR / "switcher.json").read_text())
            .items()}
    end = syms["switcher_end"] - SWITCHER_ADDR
    starts = list(syms.values()) + [syms["trap_stubs"] + 16 * v for v in range(256)]
    assert _sweep(code[:end], SWITCHER_ADDR, starts) > 1000   # some 1,100


# --- the whole opcode map -----------------------------------------------------

def _map_entries() -> list[tuple[bytes, int | None]]:
    """(opcode bytes, ModRM reg for a group entry) of every entry of the map."""
    out = [(bytes([o]), None) for o in opcodes.ONE_BYTE if o not in opcodes.GROUPS]
    out += [(bytes([0x0F, o]), None) for o in opcodes.TWO_BYTE]
    for o, (_, table) in opcodes.GROUPS.items():
        head = bytes([o]) if o < 0x100 else bytes([0x0F, o & 0xFF])
        out += [(head, r) for r, e in enumerate(table) if e is not None]
    out += [(bytes([esc]), r) for esc in range(0xD8, 0xE0) for r in range(8)]
    return out


ENTRIES = _map_entries()
TAIL = bytes.fromhex("f48537a1c29b0e5d7701")
# ModRM mod and r/m: a register, [SIB], [disp32], [ebp + disp8], [SIB + disp32]
FORMS = (0xC3, 0x04, 0x05, 0x45, 0x84)


def test_every_entry_of_the_map_in_register_and_memory_forms():
    compared = 0
    for head, reg in ENTRIES:
        for prefix in (b"", b"\x66"):
            for form in FORMS:
                modrm = form | (2 if reg is None else reg) << 3
                compared += compare(prefix + head + bytes([modrm]) + TAIL, 0xC0101000)
    assert compared > 2500


PREFIXES = [0x66, 0x67, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0xF0, 0xF2, 0xF3]


@given(entry=st.sampled_from(ENTRIES), prefixes=st.lists(st.sampled_from(PREFIXES), max_size=3),
       modrm=st.integers(0, 255), tail=st.binary(min_size=12, max_size=12),
       address=st.integers(0, 0xFFFFFFFF))
@example(entry=(b"\xf6", 1), prefixes=[], modrm=0x88, tail=bytes.fromhex("652eed") + bytes(9),
         address=0)                                     # test's alias F6 /1: a signed byte
@example(entry=(b"\x08", None), prefixes=[], modrm=0x0C,
         tail=bytes.fromhex("2502437626") + bytes(7), address=0)  # SIB, no base, no index
@example(entry=(b"\xa5", None), prefixes=[0xF2], modrm=0, tail=bytes(12), address=0)
@example(entry=(b"\xff", 2), prefixes=[0x3E, 0x26], modrm=0, tail=bytes(12), address=0)
@example(entry=(b"\xff", 5), prefixes=[0x66, 0xF2], modrm=0, tail=bytes(12), address=0)
@example(entry=(b"\x00", None), prefixes=[0x66, 0xF2, 0xF0], modrm=0, tail=bytes(12),
         address=0)                                     # TSX hints: capstone's prefix order
@example(entry=(b"\x01", None), prefixes=[0xF0, 0xF2], modrm=0, tail=bytes(12), address=0)
def test_random_encodings_from_the_map(entry, prefixes, modrm, tail, address):
    head, reg = entry
    if reg is not None:
        modrm = modrm & 0xC7 | reg << 3
    compare(bytes(prefixes) + head + bytes([modrm]) + tail, address)


# --- choosing the disassembler ------------------------------------------------

def test_the_environment_forces_the_cores_printer(monkeypatch):
    code = bytes.fromhex("8b4424088b0d00100000f3abcd80c3")
    want = disasm.disassemble(code, 0xC0100000, att=True, engine_name="capstone")
    assert disasm.engine() == "capstone"
    monkeypatch.setenv("LGUESTSIM_DISASM", "lguestsim")
    assert disasm.engine() == "lguestsim"
    assert disasm.disassemble(code, 0xC0100000, att=True) == want
    assert [t for _, _, t in want] == ["movl 8(%esp), %eax", "movl 0x1000, %ecx",
                                       "rep stosl %eax, %es:(%edi)", "int $0x80", "retl"]
    insn = decode(code, 0xC0100000)
    assert disasm.format_insn(insn) == "c0100000: mov eax, dword ptr [esp + 8]"
    assert str(insn) == "c0100000: mov"   # the decoder's own, without the printers


@pytest.mark.parametrize("att", [True, False], ids=["AT&T", "Intel"])
def test_whole_listings_are_the_same_with_either_engine(att):
    # what the code views and the Switcher's exercises ask for: a listing of a
    # stretch of code, which ends where the first engine stops
    code = (SWITCHER_DIR / "switcher.bin").read_bytes()
    with open(IMAGES / "guest.elf", "rb") as f:
        text = ELFFile(f).get_section_by_name(".text").data()
    for data, base in ((code, SWITCHER_ADDR), (text, 0xC0100000)):
        want = disasm.disassemble(data, base, att=att, engine_name="capstone")
        assert disasm.disassemble(data, base, att=att, engine_name="lguestsim") == want
        assert len(want) > 1000


def test_an_unknown_disassembler_is_refused(monkeypatch):
    monkeypatch.setenv("LGUESTSIM_DISASM", "objdump")
    with pytest.raises(ValueError, match="unknown disassembler 'objdump'"):
        disasm.engine()


def test_capstone_asked_for_but_missing_is_an_error(monkeypatch):
    monkeypatch.setattr(disasm, "_capstone", lambda code32, att: None)
    assert disasm.engine() == "lguestsim"          # chosen by itself: the fallback
    assert disasm.disassemble(b"\xc3", 0, att=True) == [(0, 1, "retl")]
    with pytest.raises(ValueError, match="capstone is asked for but not installed"):
        disasm.disassemble(b"\xc3", 0, engine_name="capstone")


def test_the_listing_stops_where_the_core_stops():
    # a P6 fcmov the core refuses, after a nop: one instruction, as capstone
    # stops at bytes it cannot decode
    code = bytes.fromhex("90dac1")
    assert disasm.disassemble(code, 0, engine_name="lguestsim") == [(0, 1, "nop")]
    assert disasm.disassemble(bytes.fromhex("900f0b0fff"), 0, engine_name="lguestsim") == \
        [(0, 1, "nop"), (1, 2, "ud2")]
