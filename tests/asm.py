"""Assemble small test programs with GNU as (binutils), for readable tests.

``assemble(source, base)`` returns the bytes of ``source`` (AT&T syntax,
``.code32`` unless the source says otherwise) linked at ``base``.  CI installs
binutils; without it the tests that need it fail, saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import lru_cache

import pytest


def have_binutils() -> bool:
    return all(shutil.which(t) for t in ("as", "ld", "objcopy"))


def need_binutils() -> None:
    if not have_binutils():
        pytest.fail("GNU binutils (as, ld, objcopy) are not installed: "
                    "apt-get install binutils (.ci/run installs it)")


@lru_cache(maxsize=256)
def assemble(source: str, base: int = 0x10000) -> bytes:
    return assemble_with_symbols(source, base)[0]


@lru_cache(maxsize=256)
def assemble_with_symbols(source: str, base: int = 0x10000) -> tuple[bytes, dict[str, int]]:
    """The bytes, and the address of every symbol (labels and .set names)."""
    need_binutils()
    with tempfile.TemporaryDirectory() as d:
        s, o, elf, out = (os.path.join(d, n) for n in ("t.s", "t.o", "t.elf", "t.bin"))
        with open(s, "w") as f:
            f.write(".code32\n.text\n.globl _start\n_start:\n" + source + "\n")
        subprocess.run(["as", "--32", "-o", o, s], check=True, capture_output=True)
        subprocess.run(["ld", "-m", "elf_i386", "-Ttext", hex(base), "-e", "_start", "-o", elf, o],
                       check=True, capture_output=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", elf, out], check=True,
                       capture_output=True)
        nm = subprocess.run(["nm", elf], check=True, capture_output=True, text=True).stdout
        symbols = {}
        for line in nm.splitlines():
            parts = line.split()
            if len(parts) == 3:
                symbols[parts[2]] = int(parts[0], 16)
        with open(out, "rb") as f:
            return f.read(), symbols
