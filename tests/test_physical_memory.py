"""PhysicalMemory's RAM: an anonymous mapping, paid for only where it is written,
and fill(), which gives whole pages of zeros back instead of writing them."""

from __future__ import annotations

import os

from lguestsim.x86.memory import PhysicalMemory

MIB = 1 << 20


def resident_bytes() -> int:
    """This process's resident set now (Linux's /proc/self/statm, in pages)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_fill_zeroes_exactly_the_range_and_tells_the_watchers():
    mem = PhysicalMemory(64 * 1024)
    mem.write(0, b"\xaa" * len(mem.ram))
    seen = []
    mem.watch(lambda addr, n: seen.append((addr, n)))
    mem.fill(0x123, 0x5000)                 # part page, whole pages, part page
    assert mem.read(0, 0x123) == b"\xaa" * 0x123
    assert mem.read(0x123, 0x5000) == bytes(0x5000)
    assert mem.read(0x5123, 0x100) == b"\xaa" * 0x100
    assert seen == [(0x123, 0x5000)]
    mem.fill(0x2000, 0x10, 0x5A)            # any other byte is written
    assert mem.read(0x2000, 0x11) == b"\x5a" * 0x10 + b"\x00"
    mem.fill(len(mem.ram) - 2, 4)           # past the end: those bytes are lost
    assert mem.read(len(mem.ram) - 2, 2) == b"\0\0"


def test_ram_costs_only_what_is_touched():
    before = resident_bytes()
    mem = PhysicalMemory(1024 * MIB)        # 1 GiB that is never all written
    for addr in range(0, 1024 * MIB, 64 * MIB):
        mem.write32(addr, addr | 1)         # one page in each 64 MiB
    mem.fill(0, 1024 * MIB)                 # what a new Launcher's memory gets
    assert mem.read32(64 * MIB) == 0
    assert resident_bytes() - before < 64 * MIB
    assert mem.m32[0] == 0 and len(mem.ram) == 1024 * MIB


def test_writes_take_any_byte_values_as_a_bytearray_did():
    mem = PhysicalMemory(8192)
    mem.write(10, [1, 2, 3])
    mem.write(8190, [9, 9, 9])              # the byte past the end is lost
    assert mem.read(10, 3) == b"\x01\x02\x03" and mem.read(8190, 3) == b"\x09\x09\xff"
