"""The opcode table: every opcode's mnemonic, form, family and cycle cost.

opcodes.py names each opcode's mnemonic and operand form, and `FAMILIES`
each mnemonic's family (the module that carries it out) and base cycles.
The translator finds an inline instruction's code through that family, the
helpers are looked up by mnemonic, and timing.py reads its costs from the
same column; these tests hold the table and its readers to one another.
"""

from __future__ import annotations

from lguestsim.x86 import opcodes, strings, system, timing, translate, x87_transcendental
from lguestsim.x86.decode import decode


def map_mnemonics() -> set[str]:
    names = set()
    for table in (opcodes.ONE_BYTE, opcodes.TWO_BYTE):
        for mnemonic, _form in table.values():
            names.update(mnemonic.split("/"))
    for _form, members in opcodes.GROUPS.values():
        names.update(m for e in members if e for m in e[0].split("/"))
    names.update(m for m, _op in opcodes.X87_TABLE.values())
    return names


def test_every_mnemonic_of_the_maps_has_a_family_and_a_cost():
    missing = sorted(m for m in map_mnemonics() if m not in opcodes.FAMILY)
    assert not missing, f"no family in opcodes.FAMILIES: {missing}"
    assert all(opcodes.KEY[m] in opcodes.CYCLES for m in map_mnemonics())
    stray = sorted(set(opcodes.FAMILY) - map_mnemonics())
    assert not stray, f"opcodes.FAMILIES names mnemonics no map has: {stray}"


def test_the_translator_finds_each_inline_instruction_through_its_family():
    for name, module in translate.FAMILIES.items():
        for mnemonic, emit in module.EMIT.items():
            assert opcodes.FAMILY[mnemonic] == name, (mnemonic, name)
            assert translate.INLINE[mnemonic] is emit
    written = {m for module in translate.FAMILIES.values() for m in module.EMIT}
    assert set(translate.INLINE) == written


def test_every_instruction_is_carried_out_in_its_familys_module():
    """Written inline by its family's module, or a helper of that module's
    (the 387's instructions reach x87.py through system.py's escape)."""
    for mnemonic, family in opcodes.FAMILY.items():
        if family in translate.FAMILIES:
            module = translate.FAMILIES[family]
            assert mnemonic in module.EMIT or module.HELPERS.get(mnemonic) is not None, (
                mnemonic, family)
            assert mnemonic in translate.INLINE or (
                translate.HELPERS[mnemonic] is module.HELPERS[mnemonic]), mnemonic
        elif family == "strings":
            assert translate.HELPERS[mnemonic] is strings.HELPERS[mnemonic], mnemonic
        elif family == "x87":
            assert translate.HELPERS[mnemonic] is system.fpu, mnemonic
        else:
            assert family == "system", (mnemonic, family)
            assert translate.HELPERS[mnemonic] is system.HELPERS[mnemonic], mnemonic


def test_timing_reads_the_table():
    assert timing.BASE is opcodes.CYCLES
    div = decode(bytes.fromhex("f7f1"), 0, True)           # div ecx
    assert timing.cost(timing.timing_key(div)) == opcodes.FAMILIES["muldiv"]["div"] == 40
    cmov = decode(bytes.fromhex("0f44c1"), 0, True)        # cmove eax, ecx
    assert timing.timing_key(cmov) == "cmovcc"
    assert timing.cost("cmovcc") == opcodes.CYCLES["cmovcc"]


def test_describe_gives_the_four_facts():
    assert opcodes.describe(0x0FA4) == [opcodes.Opcode("shld", "Ev,Gv,Ib", "shifts", 3)]
    assert opcodes.describe(0xF7, 7) == [opcodes.Opcode("idiv", "Ev", "muldiv", 43)]
    assert [o.mnemonic for o in opcodes.describe(0x99)] == ["cwd", "cdq"]
    assert opcodes.describe(0x0F70) == [] and opcodes.describe(0xFE, 7) == []
    assert {o.family for o in opcodes.describe(0x0F01)} == {"system"}


def test_the_387_functions_are_the_ones_carried_out():
    assert set(opcodes.X87_FUNCTIONS) == set(x87_transcendental.FUNCTIONS)


def test_movsx_is_costed_as_itself_not_as_the_string_move():
    # The 386 manual: MOVSX/MOVZX r32, r/m8 take 3 cycles from a register;
    # MOVSB/W/D take 7 (modelled as 4, timing.py).  "movsx" starts with
    # "movs" and is one letter longer, which once made it a string move.
    for code, key in [("0fbec0", "movsx"), ("0fbfc0", "movsx"), ("0fb6c0", "movzx"),
                      ("a4", "movs"), ("66a5", "movs"), ("a5", "movs"), ("6c", "ins"),
                      ("6f", "outs"), ("ac", "lods"), ("ae", "scas")]:
        insn = decode(bytes.fromhex(code), 0)
        assert timing.timing_key(insn) == key, (code, insn.mnemonic)
    movsx = decode(bytes.fromhex("0fbec0"), 0)
    assert timing.cost(timing.timing_key(movsx)) == 3
