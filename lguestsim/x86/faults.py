"""Architectural faults, the one way trouble leaves an instruction.

Anything an i386 would answer with an exception (#GP, #PF, #UD ...) is raised
inside the core as a CPUFault carrying the vector and, where the SDM gives one,
the error code.  The CPU catches it at the instruction boundary and delivers it
through the IDT (interrupts.py); nothing else may escape ``CPU.step()``.
"""

from __future__ import annotations

DE, DB, NMI, BP, OF, BR, UD, NM, DF = 0, 1, 2, 3, 4, 5, 6, 7, 8
TS, NP, SS, GP, PF, MF, AC = 10, 11, 12, 13, 14, 16, 17

NAMES = {
    DE: "#DE divide error", DB: "#DB debug", NMI: "NMI", BP: "#BP breakpoint",
    OF: "#OF overflow", BR: "#BR bound", UD: "#UD invalid opcode",
    NM: "#NM device not available", DF: "#DF double fault",
    TS: "#TS invalid TSS", NP: "#NP segment not present", SS: "#SS stack fault",
    GP: "#GP general protection", PF: "#PF page fault", MF: "#MF x87 error",
    AC: "#AC alignment check",
}

# Exceptions that push an error code (SDM vol. 3, table 6-1).
HAS_ERROR_CODE = frozenset({DF, TS, NP, SS, GP, PF, AC})
# The classes the double-fault rules are stated in.
CONTRIBUTORY = frozenset({DE, TS, NP, SS, GP})


#: P:016 Every exception an instruction can cause (#GP, #PF, #UD, #NM and
# the rest) leaves the code that noticed it as a Python `CPUFault`, carrying
# the vector and, for the vectors that have one, the error code.  Nobody
# delivers it on the spot: it unwinds to the CPU, which catches it at the
# instruction boundary, with the registers as they were before the faulting
# instruction began, and delivers it through the IDT (P:036).  That is the
# whole of a trap into lguest's Host, seen from the processor: the Guest does
# something ring 1 may not, a `CPUFault` is raised deep in the core, and the
# IDT the Switcher loaded sends it to a stub that goes back to the Host.  Any
# other Python exception leaving `step()` is a bug in the core, and the tests
# feed it random bytes to make sure there is none.
class CPUFault(Exception):
    """An architectural exception raised while executing an instruction."""

    def __init__(self, vector: int, error_code: int | None = None) -> None:
        super().__init__(vector, error_code)
        self.vector = vector
        self.error_code = error_code

    def __str__(self) -> str:
        name = NAMES.get(self.vector, f"vector {self.vector}")
        if self.error_code is None:
            return name
        return f"{name} (error code {self.error_code:#x})"


class TripleFault(Exception):
    """Delivery of a double fault itself faulted: a real CPU shuts down."""
