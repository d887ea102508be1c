"""lguestsim.x86: a pure-Python interpreted i386, the processor lguest runs on.

It knows nothing about lguest.  Start with cpu.py (the state and the run
loop), then decode.py and opcodes.py (bytes to instructions), translate.py
(instructions to Python), and the families it asks for code: moves.py,
alu.py, shifts.py, muldiv.py, bits.py, control.py, flag_control.py, then
system.py, strings.py and x87.py (x86/README.md maps the manuals onto them).
"""

from .cpu import CPU
from .faults import CPUFault
from .memory import PhysicalMemory

__all__ = ["CPU", "CPUFault", "PhysicalMemory"]
