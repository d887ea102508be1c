"""Disassembly for views and traces: capstone where it is installed.

The core's own decoder knows lengths and mnemonics; capstone gives the
operands in the familiar AT&T or Intel text.  ``format_insn`` falls back to
the core's mnemonic when capstone is missing.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4)
def _capstone(code32: bool, att: bool):
    try:
        import capstone
    except ImportError:  # pragma: no cover - capstone is a dependency
        return None
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32 if code32 else capstone.CS_MODE_16)
    if att:
        md.syntax = capstone.CS_OPT_SYNTAX_ATT
    return md


#: P:041 Instructions as text.  The core's decoder knows what an
# instruction is and how long; for the text of its operands lguestsim uses
# capstone, the disassembly library, rather than teaching the decoder to
# print.  `format_insn()`, behind `str()` of a decoded `Insn`, takes
# capstone's text only when capstone agrees on the instruction's length, and
# shows the core's bare mnemonic otherwise, so what is printed is what the
# core runs.  The code views (views/code.py) ask for AT&T syntax, the syntax
# of the Guest's and the Switcher's sources beside them.
def disassemble(data: bytes, address: int, code32: bool = True, count: int = 0,
                att: bool = False) -> list[tuple[int, int, str]]:
    """(address, length, text) for each instruction capstone finds in ``data``
    (Intel syntax, or AT&T with ``att``)."""
    md = _capstone(code32, att)
    if md is None:
        return []
    out = []
    for ins in md.disasm(data, address, count):
        out.append((ins.address, ins.size, f"{ins.mnemonic} {ins.op_str}".strip()))
    return out


def format_insn(insn) -> str:
    found = disassemble(insn.raw, insn.eip, True, 1) if insn.raw else []
    if found and found[0][1] == insn.length:
        return f"{insn.eip:08x}: {found[0][2]}"
    return f"{insn.eip:08x}: {insn.mnemonic}"
