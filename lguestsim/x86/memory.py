"""Physical memory: the machine's RAM as one anonymous mapping.

Everything lives here: the Host's tables, the Switcher, every Guest's memory.
Accesses are little-endian.  Writes made from Python (the Host, the Launcher,
tests) are reported to whoever watches, so the CPU can throw away decoded code
that the write changed; the CPU's own fast paths write the RAM directly and
keep their own books.
"""

from __future__ import annotations

import mmap
import sys
import weakref
from collections.abc import Callable

# Linux's MADV_DONTNEED on a private anonymous mapping hands the pages back
# and makes them read as zeros again; elsewhere zeroing means writing zeros.
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None) if sys.platform.startswith("linux") else None
_REMOVE = getattr(mmap, "MADV_REMOVE", None) if sys.platform.startswith("linux") else None
_PRIVATE = mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0)
_CHUNK = 1 << 20          # zeros are written at most this many bytes at a time


#: P:014 Physical memory is a single anonymous `mmap`, plus two
# `memoryview`s over the same bytes so that generated code can read or write
# an aligned 16- or 32-bit word with one indexing operation.  Like lguest's
# mmap of /dev/zero, the kernel hands out its pages zeroed and only when first
# written, so a machine with 2 GiB of RAM costs the Python process what its
# Host and Guests have touched, not 2 GiB (it indexes and slices as a
# bytearray does, but never changes size).  Reads beyond the end give
# 0xFF and writes there are lost, which is what an empty bus does.  Python
# code writes RAM directly all the time: the Launcher loading a Guest's
# kernel, the Host pushing an interrupt frame onto a Guest's stack, a test
# setting up a page table.  Such writes go through `write()`, which tells the
# watchers, and the CPU is one: it throws away any translated code the write
# landed on (P:029).  The CPU's own fast stores need no watcher, because they
# never reach a page that holds translated code.  A watcher that is a method
# is held weakly: the memory must not keep alive every CPU ever attached to
# it, so a CPU that is dropped stops watching by itself.
class PhysicalMemory:
    """RAM of ``size`` bytes.  Reads past the end give 0xFF, writes are lost."""

    def __init__(self, size: int, fd: int | None = None) -> None:
        if size <= 0 or size % 4096:
            raise ValueError(f"memory size must be a positive multiple of 4096, not {size}")
        self.size = size
        # Private, not mmap's default of shared: only then does MADV_DONTNEED
        # give zeros back (a shared mapping keeps its pages in shmem).  RAM
        # built over a file (``fd``, a memfd the native door shares with C
        # Launchers) is shared, and MADV_REMOVE gives its pages back instead.
        if fd is None:
            self.ram = mmap.mmap(-1, size, flags=_PRIVATE)
            self._give_back = _DONTNEED
        else:
            self.ram = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
            self._give_back = _REMOVE
        # Views over the same bytes, used by the CPU's aligned fast paths.
        self.m16 = memoryview(self.ram).cast("H")
        self.m32 = memoryview(self.ram).cast("I")
        self._watchers: list[tuple[weakref.ref | None, Callable]] = []
        # The weak reference to the object of the only watcher, when there is
        # just one and it is a method (the usual case: one CPU).  That CPU
        # may then store to a page it knows holds no translated code without
        # calling itself to be told so (PhysicalMemory.sole_watcher).
        self.sole_ref: weakref.ref | None = None

    def watch(self, callback: Callable[[int, int], None]) -> None:
        """Call ``callback(addr, n)`` after every write through this object.

        A bound method is held by a weak reference, so watching does not keep
        its object alive; a plain function is held until ``unwatch``.
        """
        # Each watcher is (weak reference to the object or None, function):
        # calling the function with the object is what WeakMethod does, less
        # a Python-level call on every write (writes are the hot path here).
        if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
            entry = (weakref.ref(callback.__self__), callback.__func__)
        else:
            entry = (None, callback)
        # Forget the watchers whose objects are gone, so the list cannot grow.
        self._watchers = [w for w in self._watchers if _alive(w)]
        self._watchers.append(entry)
        self._rewatched()

    def unwatch(self, callback: Callable[[int, int], None]) -> None:
        """Stop calling ``callback``; a callback not watching is an error."""
        for i, w in enumerate(self._watchers):
            if _bound(w) == callback:
                del self._watchers[i]
                self._rewatched()
                return
        raise ValueError(f"{callback!r} is not watching this memory")

    @property
    def watchers(self) -> list[Callable[[int, int], None]]:
        """The live watchers (those whose objects still exist)."""
        self._watchers = [w for w in self._watchers if _alive(w)]
        self._rewatched()
        return [f for f in (_bound(w) for w in self._watchers) if f is not None]

    def _notify(self, addr: int, n: int) -> None:
        dead = False
        for ref, func in self._watchers:
            if ref is None:
                func(addr, n)
                continue
            obj = ref()
            if obj is None:
                dead = True
            else:
                func(obj, addr, n)
        if dead:
            self._watchers = [w for w in self._watchers if _alive(w)]
            self._rewatched()

    def _rewatched(self) -> None:
        w = self._watchers
        self.sole_ref = w[0][0] if len(w) == 1 else None

    def sole_watcher(self, obj: object) -> bool:
        """Whether ``obj`` is the only one watching (its method is the only watcher)."""
        ref = self.sole_ref
        return ref is not None and ref() is obj

    def written(self, addr: int, n: int) -> None:
        """Tell the watchers that ``n`` bytes at ``addr`` were written straight
        into ``ram`` (the CPU's bulk string stores do this once per page)."""
        if self._watchers:
            self._notify(addr, n)

    def read(self, addr: int, n: int) -> bytes:
        if 0 <= addr and addr + n <= self.size:
            return bytes(self.ram[addr:addr + n])
        return bytes(self.ram[a] if 0 <= a < self.size else 0xFF for a in range(addr, addr + n))

    def write(self, addr: int, data: bytes) -> None:
        n = len(data)
        if 0 <= addr and addr + n <= self.size:
            try:
                self.ram[addr:addr + n] = data
            except TypeError:       # a list of byte values: an mmap takes only buffers
                self.ram[addr:addr + n] = bytes(data)
        else:
            for i, b in enumerate(data):
                if 0 <= addr + i < self.size:
                    self.ram[addr + i] = b
        if n:
            self._notify(addr, n)

    def read8(self, addr: int) -> int:
        return self.ram[addr] if 0 <= addr < self.size else 0xFF

    def read16(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 2), "little")

    def read32(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 4), "little")

    def write8(self, addr: int, value: int) -> None:
        self.write(addr, bytes((value & 0xFF,)))

    def write16(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFF).to_bytes(2, "little"))

    def write32(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def fill(self, addr: int, n: int, byte: int = 0) -> None:
        """Set ``n`` bytes at ``addr`` to ``byte``; whole pages of zeros are given back."""
        if n <= 0:
            return
        if not (0 <= addr and addr + n <= self.size):
            self.write(addr, bytes((byte,)) * n)
            return
        start, end = addr, addr + n
        if byte == 0 and self._give_back is not None:
            # The whole pages inside the range go back to the kernel (they
            # read as zeros, and cost nothing until written again).
            first = (start + 0xFFF) & ~0xFFF
            last = end & ~0xFFF
            if first < last:
                self.ram[start:first] = bytes(first - start)
                self.ram.madvise(self._give_back, first, last - first)
                self.ram[last:end] = bytes(end - last)
                self._notify(addr, n)
                return
        chunk = bytes((byte,)) * min(n, _CHUNK)
        while start < end:
            k = min(_CHUNK, end - start)
            self.ram[start:start + k] = chunk[:k]
            start += k
        self._notify(addr, n)


def _alive(watcher: tuple) -> bool:
    return watcher[0] is None or watcher[0]() is not None


def _bound(watcher: tuple) -> Callable[[int, int], None] | None:
    """The watcher as the callable that was registered (None if its object is gone)."""
    ref, func = watcher
    if ref is None:
        return func
    obj = ref()
    return None if obj is None else func.__get__(obj)
