"""The SingleStepTests 80386 data: one instruction in real mode, checked against a 386EX.

Each test of a MOO file (read by tests/moo.py) gives the registers and the
bytes of RAM before one instruction, recorded on real hardware, and what they
were after it (only what changed).  The CPU starts in real mode, as a 386
does; the test's code ends with ``hlt``, so the core runs until it halts and
the final EIP is the one after the ``hlt``.  A test whose instruction faults
(#UD for ``lock`` on a register operand) records the state at the handler's
``hlt`` instead, the frame pushed by the real-mode delivery in RAM.

Registers are compared in full except where the file (or the test) gives a
mask of defined bits; EFLAGS is compared on the bits a 386 defines (the
386EX returns ones in the reserved high bits).  Hashes on the suite's
revocation list are skipped.  The data lives beside the checkout in
``shared/ext/ss80386``: every ``*.MOO`` and ``*.MOO.gz`` there is run, so
adding the suite's files runs them too.  The normal suite runs a seeded
sample of at most ``SAMPLE`` tests of each file (all of the 500 in 00.MOO);
``SS386_ALL=1`` (``make ss386``) runs every test, for the whole suite's
1.7 million.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import moo
import pytest

from lguestsim.x86 import CPU, PhysicalMemory

DATA = Path(__file__).parents[2] / "shared" / "ext" / "ss80386"
#: Real mode reaches up to FFFF:FFFF = 0x10FFEF (no A20 wrap on a 386).
MEMORY = 0x111000
#: EFLAGS bits a 386 defines: CF PF AF ZF SF TF IF DF OF IOPL NT, bit 1, RF, VM.
EFLAGS_386 = 0x37FD7
#: Tests per file in the normal suite, picked with the file's name as the seed.
SAMPLE = 500
GPRS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
SEGS = ("es", "cs", "ss", "ds", "fs", "gs")


def _files() -> list[Path]:
    return sorted(p for p in DATA.glob("*") if p.name.upper().endswith((".MOO", ".MOO.GZ")))


def run_test(t: moo.MooTest, file_mask: dict[str, int]) -> list[str]:
    """Run one test on a fresh CPU; the differences from the 386EX, as text."""
    mem = PhysicalMemory(MEMORY)
    for addr, value in t.init.ram.items():
        mem.write8(addr, value)
    cpu = CPU(mem)
    regs = t.init.regs
    for name in GPRS:
        setattr(cpu, name, regs[name])
    cpu.load_cs(regs["cs"] & 0xFFFF)
    for name in ("ss", "ds", "es", "fs", "gs"):
        cpu.load_segment(name, regs[name] & 0xFFFF)
    cpu.eflags = regs["eflags"]
    cpu.eip = regs["eip"]
    why = cpu.run(16)
    diffs = []
    if why != "hlt":
        diffs.append(f"stopped with {why!r} at {cpu.cs:04x}:{cpu.eip:04x}")
    want = dict(regs)
    want.update(t.final.regs)
    mask = dict(file_mask)
    mask.update(t.final.mask)
    got = {name: getattr(cpu, name) for name in GPRS + SEGS}
    got["eip"] = cpu.eip
    got["eflags"] = cpu.eflags
    for name, value in got.items():
        m = mask.get(name, 0xFFFFFFFF)
        if name in SEGS:
            m &= 0xFFFF
        if name == "eflags":
            m &= EFLAGS_386
        if (value ^ want[name]) & m:
            diffs.append(f"{name} = {value:#x}, the 386EX has {want[name]:#x} (mask {m:#x})")
    ram = dict(t.init.ram)
    ram.update(t.final.ram)
    flags_at = t.exception[1] if t.exception else None
    for addr, value in sorted(ram.items()):
        got8 = mem.read8(addr)
        if flags_at is not None and addr in (flags_at, flags_at + 1):
            # the pushed FLAGS: the same defined bits as the register
            m = EFLAGS_386 >> (8 * (addr - flags_at)) & 0xFF
            if (got8 ^ value) & m:
                diffs.append(f"pushed flags byte [{addr:#x}] = {got8:#04x}, "
                             f"the 386EX has {value:#04x}")
        elif got8 != value:
            diffs.append(f"[{addr:#x}] = {got8:#04x}, the 386EX has {value:#04x}")
    if t.exception is not None and (cpu.last_exception or (None,))[0] != t.exception[0]:
        diffs.append(f"exception {cpu.last_exception}, the 386EX raised {t.exception[0]}")
    return diffs


def test_data_is_there() -> None:
    """The data directory exists and holds MOO files (CI puts shared/ beside the clone)."""
    assert _files(), (f"no *.MOO or *.MOO.gz files in {DATA}: put the project's shared/ "
                      "directory (shared/ext/ss80386) beside the checkout")


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_moo_file(path: Path) -> None:
    """Every test of the file, except revoked ones, ends as on the 386EX."""
    f = moo.load(path)
    assert f.cpu.strip() in ("386E", "386"), f"{path.name} is for the {f.cpu!r}, not a 386"
    skip = moo.revoked(DATA)
    tests = f.tests
    if os.environ.get("SS386_ALL") != "1" and len(tests) > SAMPLE:
        tests = random.Random(path.name).sample(tests, SAMPLE)
    failures = []
    ran = 0
    for t in tests:
        if t.hash in skip:
            continue
        ran += 1
        diffs = run_test(t, f.mask)
        if diffs:
            failures.append(f"#{t.index} {t.name} ({t.code.hex()}, {t.hash}): "
                            + "; ".join(diffs))
    assert ran, f"{path.name}: every test is revoked"
    assert not failures, (f"{len(failures)} of {ran} tests of {path.name} differ:\n"
                          + "\n".join(failures[:20]))


def test_reader_rejects_a_broken_file() -> None:
    """A truncated or foreign file is a clear error, not a wrong test."""
    raw = (DATA / "00.MOO").read_bytes() if (DATA / "00.MOO").exists() else b""
    with pytest.raises(moo.MooError, match="not a MOO file"):
        moo.parse(b"JUNK\x00\x00\x00\x00")
    if raw:
        with pytest.raises(moo.MooError):
            moo.parse(raw[:len(raw) // 2])
