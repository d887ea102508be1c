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

Where there is no GNU as -- the live book, where Python runs in the reader's
browser -- programs come prebuilt.  ``book/lite.py`` assembles every program
the chapters ask for (the tiny Guests, the Switcher with its line table) and
ships each in the ``prebuilt/`` folder of lguestsim's wheel under a key: the
hash of its source files, its base address and the tools' flags.  A text
that changed has another key, so a stale program is never found, only built
again by the next ``make book``; a text the cache lacks stops with one line
saying that assembling needs the local install.

Where the story sits: this is the "write a tiny Guest" tool of the Mastery
chapter, used by ``lguestsim.session`` and by the tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

TOOLS = ("as", "ld", "objcopy", "nm")
# How the tools are run: part of a prebuilt program's key, so that changing
# a flag here makes every shipped program stale.
AS_FLAGS = ("--32", "-g")
LD_FLAGS = ("-m", "elf_i386", "--build-id=none")
# Where the live book's programs are shipped (LGUESTSIM_PREBUILT names
# another folder), and where an assembling run records what it built
# (LGUESTSIM_ASM_RECORD, set by the book's build while the chapters run).
PREBUILT = Path(__file__).resolve().parent / "prebuilt"

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


class NeedsLocalInstall(AsmError):
    """New text to assemble where there is no assembler (the live book).

    IPython shows an exception that has ``_render_traceback_`` by that
    method's lines instead of a traceback: the reader sees one line.
    """

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


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


def program_key(files: tuple[tuple[str, str], ...], base: int) -> str:
    """The name a program is shipped under: its sources, base and flags, hashed."""
    what = json.dumps([AS_FLAGS, LD_FLAGS, base, files])
    return hashlib.sha256(what.encode()).hexdigest()[:32]


def _encode(program: Program) -> str:
    return json.dumps({"base": program.base, "files": list(program.sources.items()),
                       "symbols": program.symbols,
                       "code": base64.b64encode(program.code).decode(),
                       "elf": base64.b64encode(program.elf).decode()})


def _decode(text: str) -> Program:
    d = json.loads(text)
    return Program(base64.b64decode(d["code"]), base64.b64decode(d["elf"]), d["base"],
                   d["symbols"], dict(d["files"]))


def prebuilt_folder() -> Path:
    """Where shipped programs are looked for (LGUESTSIM_PREBUILT, or PREBUILT)."""
    return Path(os.environ.get("LGUESTSIM_PREBUILT") or PREBUILT)


def prebuilt(files: tuple[tuple[str, str], ...], base: int) -> Program | None:
    """The shipped program for these sources and base, if there is one."""
    try:
        program = _decode((prebuilt_folder() / f"{program_key(files, base)}.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    # The key is a hash: the sources themselves settle it.
    if program.base != base or tuple(program.sources.items()) != tuple(files):
        return None
    return program


def _record(files: tuple[tuple[str, str], ...], base: int, program: Program) -> None:
    folder = os.environ.get("LGUESTSIM_ASM_RECORD")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        Path(folder, f"{program_key(files, base)}.json").write_text(_encode(program))


@lru_cache(maxsize=128)
def _assemble(files: tuple[tuple[str, str], ...], base: int) -> Program:
    if have_binutils():
        program = _binutils(files, base)
        _record(files, base, program)
        return program
    program = prebuilt(files, base)
    if program is not None:
        return program
    if sys.platform == "emscripten":     # Pyodide: the live book in a browser
        raise NeedsLocalInstall("lguestsim: this text is not among the live book's prebuilt "
                                "programs, and assembling new text needs GNU as: run the "
                                "chapter in the local install (make lab)")
    raise AsmError("GNU binutils (as, ld, objcopy, nm) are not installed: "
                   "install binutils to assemble programs")


def _binutils(files: tuple[tuple[str, str], ...], base: int) -> Program:
    with tempfile.TemporaryDirectory() as d:
        names = []
        for name, text in files:
            Path(d, name).write_text(text if text.endswith("\n") else text + "\n")
            names.append(name)
        _run(["as", *AS_FLAGS, "-o", "prog.o", *names], d)
        _run(["ld", *LD_FLAGS, "-Ttext", hex(base), "-e", "_start",
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


def tiny_guest_files(source: str, name: str = "guest.s") -> tuple[tuple[tuple[str, str], ...],
                                                                  int]:
    """What ``tiny_guest`` assembles: its files (name, text) and its base."""
    head = TINY_PRELUDE + ".code32\n.text\n.globl _start\n_start:\n"
    return ((("prelude.s", head), (name, source), ("data.s", TINY_DATA)),
            PAGE_OFFSET + TINY_LOAD)


def tiny_guest(source: str, name: str = "guest.s") -> Program:
    """A snippet as a Guest kernel: linked at PAGE_OFFSET + 1 MiB, with the
    HCALL macro before it and a ``lguest_data`` page after it."""
    return _assemble(*tiny_guest_files(source, name))
