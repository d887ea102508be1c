"""gcc's own x87 code on the core: tests/x87/fpmath.c, run here and natively.

The program uses what ordinary C does with floating point on a 386 with a
387 (gcc -m32 -O2 -mfpmath=387 -march=i386): double comparisons (fucom,
fnstsw, sahf), long double, sqrt (fsqrt), int and long long conversions
(fild; fistp under a truncating control word set with fnstcw/fldcw), loops
in float, double and long double.  It is built twice: freestanding, loaded
flat and run on the core until it halts; and as a normal program for this
machine (an x86 whose x87 rounds as the 387 does for these operations), fed
the same inputs.  The 64-bit result words must agree exactly.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from lguestsim.x86 import CPU, PhysicalMemory

SOURCE = Path(__file__).parent / "x87" / "fpmath.c"
FLAGS = ["-m32", "-O2", "-mfpmath=387", "-march=i386", "-fno-math-errno", "-Wall", "-Wextra"]
FREESTANDING = ["-ffreestanding", "-fno-pic", "-fno-stack-protector", "-nostdlib",
                "-fno-asynchronous-unwind-tables"]
LOAD, INPUTS, OUTPUTS = 0x100000, 0x2FF000, 0x300000
INPUT_VALUES = [1.5, -2.25, 2.0 ** -1070, 1e300, 3.14159, -0.0, 7.0, 1e-5, 123456.789,
                -98765.4321, 2.5, float("nan")]
LINKER = f"""ENTRY(_start)
SECTIONS {{
  . = {LOAD:#x};
  .text : {{ *(.text.start) *(.text .text.*) }}
  .rodata : {{ *(.rodata .rodata.*) }}
  .data : {{ *(.data .data.*) }}
  .bss : {{ *(.bss .bss.* COMMON) }}
  /DISCARD/ : {{ *(.comment) *(.note*) *(.eh_frame*) }}
}}
"""


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def tools() -> None:
    missing = [t for t in ("gcc", "ld", "objcopy") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: apt-get install gcc gcc-multilib binutils "
                    "(.ci/run installs them)")


def native_results(tmp: Path) -> list[int]:
    exe = tmp / "fpmath"
    _run(["gcc", *FLAGS, "-DNATIVE", "-o", str(exe), str(SOURCE)])
    text = " ".join(v.hex() for v in INPUT_VALUES)
    return [int(w, 16) for w in _run([str(exe)], input=text).stdout.split()]


def core_results(tmp: Path) -> tuple[list[int], CPU]:
    obj, elf, flat, lds = (tmp / n for n in ("fp.o", "fp.elf", "fp.bin", "fp.ld"))
    lds.write_text(LINKER)
    _run(["gcc", *FLAGS, *FREESTANDING, "-c", str(SOURCE), "-o", str(obj)])
    _run(["ld", "-m", "elf_i386", "-nostdlib", "-T", str(lds), "-o", str(elf), str(obj)])
    _run(["objcopy", "-O", "binary", str(elf), str(flat)])
    mem = PhysicalMemory(4 << 20)
    mem.write(LOAD, flat.read_bytes())
    mem.write(INPUTS, struct.pack("<12d", *INPUT_VALUES))
    cpu = CPU(mem)
    cpu.reset_flat32()
    cpu.esp = 0x200000
    cpu.eip = LOAD
    assert cpu.run(2_000_000) == "hlt", "the program did not finish"
    words = []
    for i in range(200):
        w = struct.unpack("<Q", mem.read(OUTPUTS + 8 * i, 8))[0]
        if w == 0xC0FFEE:
            break
        words.append(w)
    return words, cpu


def test_gcc_x87_program_agrees_with_this_machine(tools, tmp_path: Path) -> None:
    ours, cpu = core_results(tmp_path)
    native = native_results(tmp_path)
    assert len(ours) == len(native) > 70
    bad = [f"word {i}: core {a:016x} native {b:016x}"
           for i, (a, b) in enumerate(zip(ours, native, strict=True)) if a != b]
    assert not bad, "\n".join(bad)
    # the program did use the FPU in earnest: comparisons, conversions, sqrt
    assert cpu.fpu.cw & 0xC00 == 0, "the truncating control word was put back"
