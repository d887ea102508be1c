"""The Switcher chapter's exercises: one world switch, instruction by instruction.

Every instruction a question names occurs once in the whole Switcher, so
"just after `lidtl 0x1018(%eax)`" means one moment.  The answers are found by
running the Switcher on the simulated CPU, never from the Host's records: the
first trap back is read from the trace's switch event, which the Host writes
as it takes the trip's registers, before it handles the trap and re-enters.
"""

from __future__ import annotations

from typing import Any

from ..pagewalk import read_code
from ..session import Session
from ..symbols import switcher_symbols
from ..x86.disasm import disassemble
from . import Chapter, cached

# (instruction as the code view shows it, the register it changes)
STEPS = (("movl %edx, %esp", "esp"), ("movl %ebx, %cr3", "cr3"),
         ("lidtl 0x1018(%eax)", "idtr base"), ("movl 0x100e(%eax), %edx", "edx"),
         ("lgdtl 0x1020(%eax)", "gdtr base"), ("addl $0xfb8, %edx", "edx"))


def switcher_listing(session: Session) -> list[tuple[int, int, str]]:
    """The whole Switcher's code, disassembled (the CPU must be in a trip)."""
    syms = switcher_symbols()
    start, end = syms.address("switch_to_guest"), syms.address("switcher_end")
    return disassemble(read_code(session, start, end - start) or b"", start, att=True)


def register(session: Session, name: str) -> int:
    cpu = session.cpu
    return {"esp": cpu.esp, "edx": cpu.edx, "cr3": cpu.cr3, "idtr base": cpu.idtr[0],
            "gdtr base": cpu.gdtr[0], "tr": cpu.tr}[name]


@cached
def value_after(text: str, reg: str) -> int:
    s = Session.boot()
    s.step_to("switch")
    listing = switcher_listing(s)
    at = [i for i, (_, _, t) in enumerate(listing) if t == text]
    if len(at) != 1:
        raise ValueError(f"{text!r} occurs {len(at)} times in the Switcher")
    s.run_to(listing[at[0] + 1][0])
    return register(s, reg)


@cached
def switch_in_length() -> int:
    s = Session.boot()
    stop = s.step_to("switch")
    start = s.cpu.instructions
    s.run_to(stop.event.eip)            # the Guest's first instruction, after the iret
    return s.cpu.instructions - start


@cached
def first_trap() -> tuple[int, int]:
    s = Session.boot()
    stop = s.step_to("switch", match=lambda e: e.to == "host")
    return (stop.event.trapnum, stop.event.errcode)


class SwitcherExercises(Chapter):
    chapter = "switcher"
    hints = {1: "step with the code view until that instruction has run",
             2: "s.cpu.instructions counts them",
             3: "step until the CPU is back at the Host's return address (0x5000), then read "
                "trapnum and errcode in the regs page"}

    def draw(self) -> None:
        self.what, self.reg = self.choice(STEPS)

    def questions(self) -> list[str]:
        return [f"Step the first world switch to just after the instruction `{self.what}`. "
                f"What is {self.reg} then? (a number)",
                "How many instructions does the CPU execute from switch_to_guest up to and "
                "including the iret into the Guest, on the first world switch?",
                "On the Guest's first trap back to the Host, which vector's stub does the CPU "
                "enter, and what error code does the processor push? Answer as a pair "
                "(vector, code)."]

    def expected(self, number: int, *inputs: Any) -> Any:
        return {1: lambda: value_after(self.what, self.reg),
                2: switch_in_length,
                3: first_trap}[number]()
