"""Disassembly for views and traces: capstone where it is installed, syntax.py otherwise.

The core's own decoder knows lengths and mnemonics; the text of the operands,
in AT&T or Intel syntax, comes from capstone when it can be imported and from
the core's own printer (syntax.py) when it cannot, as in the live book, where
Pyodide has no capstone.  The two print the same text (tests/test_disasm.py).
Setting ``LGUESTSIM_DISASM=lguestsim`` in the environment, or passing
``engine="lguestsim"``, uses the core's printer even where capstone is
installed.
"""

from __future__ import annotations

import os
from functools import lru_cache

from . import syntax

ENGINES = ("capstone", "lguestsim")


@lru_cache(maxsize=4)
def _capstone(code32: bool, att: bool):
    try:
        import capstone
    except ImportError:
        return None
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32 if code32 else capstone.CS_MODE_16)
    if att:
        md.syntax = capstone.CS_OPT_SYNTAX_ATT
    return md


def engine(choice: str | None = None) -> str:
    """The disassembler in use: ``choice``, else $LGUESTSIM_DISASM, else capstone if present."""
    choice = choice or os.environ.get("LGUESTSIM_DISASM") or None
    if choice is not None and choice not in ENGINES:
        raise ValueError(f"unknown disassembler {choice!r}: one of {', '.join(ENGINES)}")
    if choice == "lguestsim":
        return "lguestsim"
    if _capstone(True, False) is None:
        if choice == "capstone":
            raise ValueError("capstone is asked for but not installed (pip install capstone)")
        return "lguestsim"
    return "capstone"


#: P:041 Instructions as text.  The core's decoder knows what an instruction
# is and how long; a listing also wants its operands written out, in the AT&T
# syntax of the Guest's and the Switcher's sources (the code views ask for
# that) or in Intel's.  Where capstone, the disassembly library, is
# installed, lguestsim asks it.  Where it is not, and in the live book it
# never is, since Pyodide has no capstone, the core prints the text itself
# from its decoded `Insn` and the opcode map (syntax.py, P:085), spelled
# exactly as capstone would, so the reader sees one listing either way.
# `format_insn()`, the text of a decoded `Insn`, takes capstone's text
# only when capstone agrees on the instruction's length, so what is printed
# is what the core runs.
def disassemble(data: bytes, address: int, code32: bool = True, count: int = 0,
                att: bool = False, engine_name: str | None = None
                ) -> list[tuple[int, int, str]]:
    """(address, length, text) for each instruction in ``data`` (Intel syntax, or
    AT&T with ``att``), up to the first that cannot be decoded."""
    if engine(engine_name) == "lguestsim":
        return syntax.disassemble(data, address, code32, count, att)
    out = []
    for ins in _capstone(code32, att).disasm(data, address, count):
        out.append((ins.address, ins.size, f"{ins.mnemonic} {ins.op_str}".strip()))
    return out


def format_insn(insn, att: bool = False, engine_name: str | None = None) -> str:
    """``eip: text`` of a decoded instruction."""
    if engine(engine_name) == "lguestsim":
        try:
            return f"{insn.eip:08x}: {syntax.text(insn, att)}"
        except syntax.Unprintable:
            return f"{insn.eip:08x}: {insn.mnemonic}"
    found = disassemble(insn.raw, insn.eip, True, 1, att, "capstone") if insn.raw else []
    if found and found[0][1] == insn.length:
        return f"{insn.eip:08x}: {found[0][2]}"
    return f"{insn.eip:08x}: {insn.mnemonic}"
