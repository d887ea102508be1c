"""Small programs assembled with GNU as, for notebooks and experiments.

A notebook that wants to show one mechanism -- a single hypercall, a bad one,
a Guest that sends DMA to another -- is clearer with ten lines of assembly
than with the whole teaching Guest.  ``assemble(source, base)`` runs GNU as
and ld (binutils, ``--32``) on the text and returns a ``Program``: the flat
bytes to load, the ELF (with line information, so a session can stop at a
line of the program), and the address of every symbol.

``tiny_guest(source)`` wraps a snippet the way a Guest kernel needs it: it
starts at the entry point in ring 1 with the Launcher's page tables, can make
hypercalls with the ``HCALL n, a, b, c`` macro, lay out a one-section
``struct lguest_dma`` with ``DMA addr, len``, and finds a ``lguest_data``
page (with an empty asynchronous hypercall ring) after its own code.  The
snippet's lines keep their own numbers (``guest.s:1`` is its first line).

Where the story sits: this is the "write a tiny Guest" tool of the Mastery
chapter, used by ``lguestsim.session`` and by the tests.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

TOOLS = ("as", "ld", "objcopy", "nm")

PAGE_OFFSET = 0xC0000000
TINY_LOAD = 0x100000           # Guest-physical address a tiny Guest is loaded at

# Macros every tiny Guest may use.  HCALL puts the call in %eax and its
# arguments in %edx, %ebx, %ecx (the 2.6.23 order), then traps to the Host.
TINY_PRELUDE = """\
.macro HCALL n, a=0, b=0, c=0
        movl $\\n, %eax
        movl $\\a, %edx
        movl $\\b, %ebx
        movl $\\c, %ecx
        int $0x1f
.endm
.set PO, 0xC0000000
# One struct lguest_dma with a single section (addr, len); the other fifteen
# are empty and used_len starts at 0.
.macro DMA addr, len
        .long 0, \\addr
        .fill 15, 4, 0
        .short \\len
        .fill 15, 2, 0
.endm
"""

# struct lguest_data, after the program: interrupts enabled, every slot of the
# asynchronous hypercall ring free (0xff), an empty no-interrupt window.
TINY_DATA = """\
        .p2align 12
lguest_data:
        .long 0x200, 0, 0, 0, 0           # irq_enabled, blocked, cr2, time
        .fill 64, 1, 0xff                 # hcall_status: all free
        .fill 64 * 16, 1, 0               # hcalls
        .long 0, 0, 0                     # reserve_mem, guestid(+pad), tsc_khz
        .long noirq_start, noirq_end
noirq_start:
noirq_end:
        .p2align 12
"""


class AsmError(RuntimeError):
    """binutils is missing, or the source does not assemble."""


def have_binutils() -> bool:
    """Are GNU as, ld, objcopy and nm on the PATH?"""
    return all(shutil.which(t) for t in TOOLS)


@dataclass(frozen=True)
class Program:
    """An assembled program: flat bytes from ``base``, its ELF and its symbols."""

    code: bytes
    elf: bytes
    base: int
    symbols: dict[str, int] = field(hash=False)
    sources: dict[str, str] = field(hash=False)   # file name in the line table -> text

    def __len__(self) -> int:
        return len(self.code)


def _run(cmd: list[str], cwd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AsmError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


@lru_cache(maxsize=128)
def _assemble(files: tuple[tuple[str, str], ...], base: int) -> Program:
    if not have_binutils():
        raise AsmError("GNU binutils (as, ld, objcopy, nm) are not installed: "
                       "install binutils to assemble programs")
    with tempfile.TemporaryDirectory() as d:
        names = []
        for name, text in files:
            Path(d, name).write_text(text if text.endswith("\n") else text + "\n")
            names.append(name)
        _run(["as", "--32", "-g", "-o", "prog.o", *names], d)
        _run(["ld", "-m", "elf_i386", "--build-id=none", "-Ttext", hex(base), "-e", "_start",
              "-o", "prog.elf", "prog.o"], d)
        _run(["objcopy", "-O", "binary", "-j", ".text", "prog.elf", "prog.bin"], d)
        symbols = {}
        for line in _run(["nm", "prog.elf"], d).splitlines():
            parts = line.split()
            if len(parts) == 3:
                symbols[parts[2]] = int(parts[0], 16)
        code = Path(d, "prog.bin").read_bytes()
        elf = Path(d, "prog.elf").read_bytes()
    return Program(code, elf, base, symbols, dict(files))


def assemble(source: str, base: int = 0x10000, name: str = "prog.s") -> Program:
    """Assemble ``source`` (AT&T syntax, 32-bit) linked at ``base``; ``_start`` is its start."""
    head = ".code32\n.text\n.globl _start\n_start:\n"
    return _assemble((("head.s", head), (name, source)), base)


def tiny_guest(source: str, name: str = "guest.s") -> Program:
    """A snippet as a Guest kernel: linked at PAGE_OFFSET + 1 MiB, with the
    HCALL macro before it and a ``lguest_data`` page after it."""
    head = TINY_PRELUDE + ".code32\n.text\n.globl _start\n_start:\n"
    return _assemble((("prelude.s", head), (name, source), ("data.s", TINY_DATA)),
                     PAGE_OFFSET + TINY_LOAD)
