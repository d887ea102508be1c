"""The code view: disassembly around EIP, with symbols and the source line.

Instructions are read the way the CPU would read them now (through the page
tables in CR3, without touching accessed bits), disassembled by capstone, and
labelled with the Guest's or the Switcher's symbols and source lines.  While
the Host runs (between trips), it shows where the Guest will resume, read
through the Guest's own page tables.  Each instruction's base cost in cycles
(and, on hover, its family) comes from the processor's one opcode table,
x86/opcodes.py, through timing.py: the same figure the core charges before
taken branches, page walks and faults add theirs.
"""

from __future__ import annotations

import re

from ..pagewalk import read_code
from ..x86 import opcodes, timing
from ..x86.decode import DecodeError, NeedBytes, decode
from ..x86.disasm import disassemble as x86_disassemble
from .base import View, esc, h8, table

M32 = 0xFFFFFFFF
TARGET = re.compile(r"^(call|j\w+|loop\w*)\s+(0x[0-9a-f]+)$")


def disassemble(data: bytes, address: int) -> list[tuple[int, int, str]]:
    """(address, length, AT&T text) of each instruction in ``data``."""
    return x86_disassemble(data, address, att=True)


def base_cost(s, addr: int, length: int) -> tuple[str, str]:
    """(cycles, family) of the instruction at ``addr``, from the opcode table."""
    raw = read_code(s, addr, length)
    try:
        insn = decode(raw, addr) if raw else None
    except (DecodeError, NeedBytes):
        insn = None
    if insn is None:
        return "", ""
    cycles = timing.cost(timing.timing_key(insn), timing.memory_kind(insn))
    return str(cycles), opcodes.FAMILY.get(insn.mnemonic, "")


class CodeView(View):
    """Disassembly around the instruction about to run."""

    title = "Code"
    name = "code"

    def __init__(self, session, before: int = 6, after: int = 10) -> None:
        super().__init__(session)
        self.before = before
        self.after = after

    def position(self) -> int:
        s = self.session
        if s.in_trip:
            return (s.cpu.segs["cs"].base + s.cpu.eip) & M32
        lg = s.lg
        return lg.regs.eip if lg is not None else 0

    def listing(self) -> list[tuple[int, int, str]]:
        """(address, length, text) of the instructions around the current position."""
        s = self.session
        eip = self.position()
        syms = s.symbols_for(eip)
        start = eip
        if syms is not None:
            found = syms.lookup(eip)
            if found is not None:
                name, off = found
                if name == "trap_stubs":
                    start = eip - off % 16 - 16 * min(2, off // 16)
                elif off <= 768:
                    start = eip - off
        raw = read_code(s, start, (eip - start) + 16 * (self.after + 1))
        if raw is None:
            return []
        insns = disassemble(raw, start)
        idx = next((i for i, (a, _, _) in enumerate(insns) if a == eip), None)
        if idx is None:           # out of step with the stream: start at eip itself
            raw = read_code(s, eip, 16 * (self.after + 1)) or b""
            insns = disassemble(raw, eip)
            idx = 0
        return insns[max(0, idx - self.before): idx + self.after + 1]

    def body(self) -> str:
        s = self.session
        eip = self.position()
        rows, classes = [], []
        last_line = None
        where = "the instruction about to run" if s.in_trip else \
            "the Host runs now; this is where the Guest will resume"
        bps = set()
        for bp in s.breakpoints:
            bps |= set(bp.linear)
        syms = s.symbols_for(eip)
        for addr, length, text in self.listing():
            if syms is not None:
                found = syms.lookup(addr)
                if found and found[1] == 0:
                    rows.append(["", "", "", f"<b>{esc(found[0])}:</b>", ""])
                    classes.append("")
                line = syms.line(addr)
                if line and line != last_line:
                    src = syms.source_text(*line)
                    rows.append(["", "", "", f'<span class="src">{esc(line[0])}:{line[1]}'
                                 f'{"  " + esc(src.strip()) if src else ""}</span>', ""])
                    classes.append("")
                    last_line = line
            mark = "&#9654;" if addr == eip else ("&#9679;" if addr in bps else "")
            note = ""
            m = TARGET.match(text)
            if m and syms is not None:
                target = s.describe(int(m.group(2), 16)).split(" (")[0]
                note = f'<span class="dim">&lt;{esc(target)}&gt;</span>'
            cycles, family = base_cost(s, addr, length)
            cost = f'<span class="dim" title="{esc(family)}">{cycles}</span>' if cycles else ""
            rows.append([mark, h8(addr), cost, esc(text), note])
            classes.append("cur" if addr == eip else "")
        if not rows:
            return f'<span class="dim">no code mapped at {h8(eip)}</span>'
        head = f"<div>{esc(s.describe(eip))} &middot; {where}</div>"
        return head + table(rows, ["", "address", "cycles", "instruction", ""], classes)
