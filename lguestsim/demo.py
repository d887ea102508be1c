"""A small demonstration program on the simulated processor.

Before lguestsim could boot a Guest, running it ran this: a few hand-encoded
32-bit x86 instructions, run on ``lguestsim.x86`` with paging off, and the
registers and counters they end with. It is still a quick way to see the
processor work on its own::

    python -m lguestsim.demo [--verbose]
    python -m lguestsim --demo [--verbose]
"""

from __future__ import annotations

import argparse
import sys

# The demonstration program, hand-encoded 32-bit x86, one instruction a line:
# (machine code, assembly). It sums 1..100 into eax, stores the sum, then
# calls a function that squares ebx, with a push/pop around the call.
DEMO_LOAD = 0x1000  # where the program is loaded and starts
DEMO_STACK = 0x8000  # initial esp (the stack grows down from here)
DEMO_RESULT = 0x2000  # where the sum is stored

DEMO_PROGRAM: list[tuple[bytes, str]] = [
    (bytes([0x31, 0xC0]), "xor  eax, eax          ; sum = 0"),
    (bytes([0xB9, 0x64, 0, 0, 0]), "mov  ecx, 100          ; i = 100"),
    # loop: (offset 7)
    (bytes([0x01, 0xC8]), "add  eax, ecx          ; loop: sum += i"),
    (bytes([0x49]), "dec  ecx               ; i -= 1, sets ZF at 0"),
    (bytes([0x75, 0xFB]), "jnz  loop              ; back 5 bytes to `add`"),
    (bytes([0xA3, 0x00, 0x20, 0, 0]), "mov  [0x2000], eax     ; store the sum (5050)"),
    (bytes([0x50]), "push eax               ; keep the sum on the stack"),
    (bytes([0xBB, 0x07, 0, 0, 0]), "mov  ebx, 7"),
    (bytes([0xE8, 0x02, 0, 0, 0]), "call square            ; skip 2 bytes: pop, hlt"),
    (bytes([0x5A]), "pop  edx               ; edx = 5050"),
    (bytes([0xF4]), "hlt"),
    # square:
    (bytes([0x0F, 0xAF, 0xDB]), "imul ebx, ebx          ; square: ebx = 49"),
    (bytes([0xC3]), "ret"),
]

EFLAGS_BITS = [
    (0, "CF"), (2, "PF"), (4, "AF"), (6, "ZF"), (7, "SF"),
    (8, "TF"), (9, "IF"), (10, "DF"), (11, "OF"),
]


def demo_code() -> bytes:
    return b"".join(code for code, _ in DEMO_PROGRAM)


def listing() -> str:
    lines, addr = [], DEMO_LOAD
    for code, asm in DEMO_PROGRAM:
        lines.append(f"  {addr:08x}  {code.hex(' '):<16} {asm}")
        addr += len(code)
    return "\n".join(lines)


def decode_eflags(value: int) -> str:
    names = [name for bit, name in EFLAGS_BITS if value >> bit & 1]
    iopl = value >> 12 & 3
    if iopl:
        names.append(f"IOPL={iopl}")
    return " ".join(names) or "-"


def run_demo(verbose: bool = False) -> int:
    from lguestsim.x86 import CPU, PhysicalMemory

    mem = PhysicalMemory(1 << 20)
    mem.write(DEMO_LOAD, demo_code())
    cpu = CPU(mem)
    cpu.reset_flat32()
    cpu.eip = DEMO_LOAD
    cpu.esp = DEMO_STACK

    print("lguestsim demo: a small program on the simulated i386 (protected mode,")
    print(f"paging off), at {DEMO_LOAD:#x}:")
    if verbose:
        print(listing())
    why = cpu.run(10_000)
    print(f"stopped: {why}")
    print()
    regs = ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp"]
    for name in regs:
        value = getattr(cpu, name)
        print(f"  {name} = {value:#010x}  ({value})")
    print(f"  eip = {cpu.eip:#010x}")
    print(f"  eflags = {cpu.eflags:#010x}  [{decode_eflags(cpu.eflags)}]")
    print(f"  [{DEMO_RESULT:#x}] = {int.from_bytes(mem.read(DEMO_RESULT, 4), 'little')}")
    print(f"cycles = {cpu.cycles}  instructions = {cpu.instructions}")
    return 0 if why == "hlt" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lguestsim.demo",
                                     description="Run a small program on the simulated CPU.")
    parser.add_argument("-v", "--verbose", action="store_true", help="print its listing too")
    args = parser.parse_args(argv)
    return run_demo(verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
