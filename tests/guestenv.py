"""Tiny Guests for Host tests: assembled snippets run under the real Host.

``boot(source)`` assembles ``source`` (AT&T, linked at PAGE_OFFSET + 1 MiB),
lays it out the way the Launcher would (Guest RAM mapped linearly at
PAGE_OFFSET by initial page tables below the top of memory), initializes a
Guest through /dev/lguest and returns (host, dev, lg, process).  The snippet
starts in ring 1 with the Launcher's page tables, like a Guest kernel.  A
``lguest_data`` label and the helper macros below make hypercalls short.
"""

from __future__ import annotations

import struct

from asm import assemble_with_symbols

from lguestsim.asm import TINY_DATA, TINY_PRELUDE
from lguestsim.host import HOST_AREA, LHREQ_INITIALIZE, Host
from lguestsim.host.io import Dma
from lguestsim.machine import Machine

PAGE_OFFSET = 0xC0000000
LOAD = 0x100000
MEM = 8 << 20

# The same HCALL macro and lguest_data page the package's tiny Guests use.
PRELUDE = TINY_PRELUDE
DATA = TINY_DATA


def page_tables(proc, mem_bytes: int) -> int:
    """The Launcher's initial tables: all RAM at PAGE_OFFSET (PTE flags 7)."""
    pages = mem_bytes // 4096
    pgdir = mem_bytes - 4096
    linear = pgdir - ((pages + 1023) // 1024) * 4096
    proc.write(linear, b"".join(struct.pack("<I", (i * 4096) | 7) for i in range(pages)))
    for i in range(0, pages, 1024):
        proc.write32(pgdir + ((i + PAGE_OFFSET // 4096) // 1024) * 4, (linear + i * 4) | 7)
    return pgdir


def boot(source: str, mem_bytes: int = MEM, host: Host | None = None, slots: int = 1,
         share=None, **host_options):
    """Boot ``source`` as a Guest (on ``host``, or a new machine with room for ``slots``)."""
    code, symbols = assemble_with_symbols(PRELUDE + source + DATA, PAGE_OFFSET + LOAD)
    if host is None:
        machine = Machine(HOST_AREA + slots * (mem_bytes + 4096) + (1 << 20))
        host = Host(machine, **host_options)
    proc = host.new_process(mem_bytes + 4096)
    if share is not None:       # the page above RAM comes from shared memory
        proc.map_shared(mem_bytes, share)
    proc.write(LOAD, code)
    pgdir = page_tables(proc, mem_bytes)
    dev = host.open(proc)
    # pfnlimit includes the page above RAM, where the Launcher's device page would be.
    assert dev.write(struct.pack("<5I", LHREQ_INITIALIZE, mem_bytes // 4096 + 1, pgdir,
                                 PAGE_OFFSET + LOAD, PAGE_OFFSET)) == 16
    proc.symbols = symbols
    return host, dev, dev.lg, proc


def sym32(proc, name: str, index: int = 0) -> int:
    """A 32-bit word of the Guest at a label (read through the Launcher's memory)."""
    return proc.read32(proc.symbols[name] - PAGE_OFFSET + 4 * index)


def run_to_death(dev, limit: int = 100) -> tuple[str, list[bytes]]:
    """read() until the Guest dies; returns (reason, console output chunks)."""
    out = []
    for _ in range(limit):
        try:
            got = dev.read(8)
        except OSError as e:
            import errno
            if e.errno == errno.ENOENT:
                return dev.read(1024).rstrip(b"\0").decode(), out
            raise
        dma, key = struct.unpack("<II", got)
        out.append(console_bytes(dev, dma))
    raise AssertionError("the Guest did not die")


def console_bytes(dev, dma: int) -> bytes:
    proc = dev.process
    return b"".join(proc.read(a, n) for a, n in Dma.read(proc, dma).sections())
