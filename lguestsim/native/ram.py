"""The machine's RAM, window by window: what a native Launcher may share.

The door's machine has its RAM in one memfd (``PhysicalMemory(size, fd)``),
but that file holds everything: the Host's tables, the Switcher, every
Guest.  A Launcher must get only its own Guest's memory, so each window of
RAM the door gives a Launcher is backed by a memfd of its own, mapped over
that stretch of the machine's RAM in place (``mmap`` with MAP_FIXED at the
same addresses, so the CPU's views of RAM stay as they are).  When the
window is given back, the machine's own file is mapped there again and the
window's file is closed: a process that kept a copy of its descriptor holds
pages no Guest will ever use again.
"""

from __future__ import annotations

import ctypes
import mmap
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]


def _map_over(mem, addr: int, size: int, fd: int, offset: int) -> None:
    """Map ``fd`` at ``offset`` over RAM bytes [addr, addr + size) of ``mem``."""
    if addr < 0 or addr + size > mem.size or addr % mmap.PAGESIZE or size % mmap.PAGESIZE:
        raise ValueError(f"not whole pages of RAM: {addr:#x}+{size:#x}")
    cell = ctypes.c_char.from_buffer(mem.ram, addr)
    where = ctypes.addressof(cell)
    del cell                         # no export of the buffer left behind
    got = _libc.mmap(where, size, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_SHARED | getattr(mmap, "MAP_FIXED", 0x10), fd, offset)
    if got != where:
        err = ctypes.get_errno()
        raise OSError(err, f"mapping a window over the machine's RAM: {os.strerror(err)}")


def open_window(mem, addr: int, size: int) -> int:
    """Back RAM [addr, addr + size) with a new, zeroed memfd; return it."""
    fd = os.memfd_create("lguestsim-guest", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        _map_over(mem, addr, size, fd, 0)
    except BaseException:
        os.close(fd)
        raise
    mem.written(addr, size)          # whatever was translated there is gone
    return fd


def close_window(mem, ram_fd: int, addr: int, size: int, fd: int) -> None:
    """Put the machine's own file (``ram_fd``) back under [addr, addr + size),
    zeroed, and close the window's ``fd``."""
    _map_over(mem, addr, size, ram_fd, addr)
    mem.fill(addr, size)             # zeros, and the machine's pages given back
    os.close(fd)
