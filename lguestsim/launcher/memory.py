"""The Launcher's address space, which is the Guest's physical memory.

The real Launcher is linked high (at 0xB8000000) so that everything below is
free to become the Guest's memory: when the Guest writes a 1 at its physical
address 0, the Launcher finds a 1 at its own address 0. Guest memory comes
first, then one page of device descriptors, then the device pages; the
Launcher tells the Host where that ends, and the Guest may touch nothing
above it.

In lguestsim the Launcher's address space is a range of the simulated
machine's RAM that the Host gives the process (``host.new_process``). This
module wraps it, or a plain bytearray when there is no Host (tests, notebooks),
in ``GuestMemory``: byte and little-endian word access by Guest-physical
address, refusing anything outside the range.
"""

from __future__ import annotations

from typing import Protocol

from .abi import PAGE_SIZE
from .report import LauncherError


def page_align(n: int) -> int:
    """Round ``n`` up to a whole number of pages."""
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


class Backing(Protocol):
    """Anything that reads and writes bytes by address: the Host's process."""

    def read(self, addr: int, n: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


class PlainBacking:
    """A Launcher address space of its own: a bytearray, for use without a Host."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.data[addr:addr + n])

    def write(self, addr: int, data: bytes) -> None:
        self.data[addr:addr + len(data)] = data


#: L:101 lguestsim keeps the rule that Guest-physical address N is Launcher
# address N, but it has no mmap() to build the Launcher's memory with. The
# simulated Host gives each Launcher a `Process` instead, a run of the simulated
# machine's RAM, and `GuestMemory` reads and writes it by Guest-physical
# address, in bytes or little-endian words. Every access is checked against the
# size the Launcher owns, so a kernel that does not fit ends in a clear
# `LauncherError` instead of scribbling over memory it does not own. Without a
# Host (tests, notebooks) the same class wraps a plain bytearray.
class GuestMemory:
    """``size`` bytes of Launcher address space, from address 0.

    Every access is checked against ``size``: the Launcher only touches what
    it owns, so an access outside is a bug in the Launcher, or an image that
    does not fit, and ends in a ``LauncherError``.
    """

    def __init__(self, backing: Backing, size: int) -> None:
        self.backing = backing
        self.size = size

    @classmethod
    def plain(cls, size: int) -> GuestMemory:
        """Memory of ``size`` bytes in a bytearray (no Host needed)."""
        return cls(PlainBacking(size), size)

    def check(self, addr: int, n: int) -> None:
        if addr < 0 or n < 0 or addr + n > self.size:
            raise LauncherError(
                f"{n} bytes at {addr:#x} are outside the Launcher's memory "
                f"(0 - {self.size:#x})")

    def read(self, addr: int, n: int) -> bytes:
        self.check(addr, n)
        return self.backing.read(addr, n)

    def write(self, addr: int, data: bytes) -> None:
        self.check(addr, len(data))
        self.backing.write(addr, bytes(data))

    def zero(self, addr: int, n: int) -> None:
        self.check(addr, n)
        zero = getattr(self.backing, "zero", None)
        if zero is not None:            # the Host's process: pages handed back, not written
            zero(addr, n)
            return
        for start in range(addr, addr + n, 1 << 20):   # no n-byte buffer of zeros at once
            self.backing.write(start, bytes(min(1 << 20, addr + n - start)))

    def read8(self, addr: int) -> int:
        return self.read(addr, 1)[0]

    def read16(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 2), "little")

    def read32(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 4), "little")

    def write8(self, addr: int, value: int) -> None:
        self.write(addr, bytes([value & 0xFF]))

    def write16(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFF).to_bytes(2, "little"))

    def write32(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))
