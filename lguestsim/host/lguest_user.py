"""/dev/lguest: how a Launcher drives its Guest.

A Launcher opens the device, writes LHREQ_INITIALIZE with four numbers (the
highest page the Guest may touch, its initial page directory, its entry point
and its PAGE_OFFSET), then read()s to run the Guest.  read() returns when the
Guest sends DMA to one of the Launcher's keys (8 bytes: the DMA's address and
the key), fails with EAGAIN when the Waker broke the Guest out, and with
ENOENT once the Guest is dead -- after which a read() gives the reason.
Other writes send an interrupt (IRQ), fetch a bound buffer (GETDMA) or break
the Guest out (BREAK).  Errors are OSError with lguest's errno values.
"""

from __future__ import annotations

import errno
import struct

from .lg import LGUEST_IRQS, LHREQ_BREAK, LHREQ_GETDMA, LHREQ_INITIALIZE, LHREQ_IRQ, PAGE_SIZE


def _err(code: int, what: str) -> OSError:
    return OSError(code, f"{errno.errorcode.get(code, code)}: {what}")


class LguestFile:
    """One open /dev/lguest, belonging to the Launcher process that opened it."""

    def __init__(self, host, process) -> None:
        self.host = host
        self.process = process
        self.lg = None
        self.closed = False

    def _words(self, data: bytes, n: int) -> tuple[int, ...]:
        if len(data) < 4 * n:
            raise _err(errno.EFAULT, "short write")
        return struct.unpack_from(f"<{n}I", data)

    #: L:010 write
    def write(self, data: bytes, task=None) -> int:
        if self.closed:
            raise _err(errno.EBADF, "closed")
        (req,) = self._words(data, 1)
        lg = self.lg
        if req != LHREQ_INITIALIZE and lg is None:
            raise _err(errno.EINVAL, "write LHREQ_INITIALIZE first")
        if lg is not None and lg.dead is not None:
            raise _err(errno.ENOENT, "the Guest is dead")
        if task is not None and task is not self.process and req != LHREQ_BREAK:
            raise _err(errno.EPERM, "not the Launcher")
        if req == LHREQ_INITIALIZE:
            return self.initialize(data[4:])
        if req == LHREQ_GETDMA:
            (ukey,) = self._words(data[4:], 1)
            return self.host.io.get_dma(lg, ukey)
        if req == LHREQ_IRQ:
            (irq,) = self._words(data[4:], 1)
            if irq >= LGUEST_IRQS:
                raise _err(errno.EINVAL, f"irq {irq}")
            lg.irqs_pending |= 1 << irq
            return 0
        if req == LHREQ_BREAK:
            (on,) = self._words(data[4:], 1)
            # The real BREAK {1} blocks the Waker until the Launcher answers
            # with BREAK {0}; one thread of Python needs no blocking.
            lg.break_out = bool(on)
            return 0
        raise _err(errno.EINVAL, f"unknown request {req}")

    #: L:020 initialize
    def initialize(self, data: bytes) -> int:
        if self.lg is not None:
            raise _err(errno.EBUSY, "already initialized")
        pfnlimit, pgdir, start, page_offset = self._words(data, 4)
        if page_offset >> 22 >= 1023:
            raise _err(errno.EINVAL, f"page_offset {page_offset:#x} overlaps the Switcher")
        # The Host reaches Guest memory through the Launcher's: it can be no bigger.
        if pfnlimit * PAGE_SIZE > self.process.size:
            raise _err(errno.EINVAL, f"pfnlimit {pfnlimit} is beyond the Launcher's memory")
        self.lg = self.host.new_guest(self.process, pfnlimit, pgdir, start, page_offset)
        return 16

    #: L:040 read
    def read(self, size: int, task=None) -> bytes:
        lg = self.lg
        if lg is None:
            raise _err(errno.EINVAL, "write LHREQ_INITIALIZE first")
        if task is not None and task is not self.process:
            raise _err(errno.EPERM, "not the Launcher")
        if lg.dead is not None:
            reason = lg.dead.encode() + b"\0"
            return reason[:size]
        if lg.dma_is_pending:
            lg.dma_is_pending = False
        return self.host.run_guest(lg)

    #: L:060 close
    def close(self) -> None:
        if self.lg is not None:
            self.host.destroy_guest(self.lg)
            self.lg = None
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
