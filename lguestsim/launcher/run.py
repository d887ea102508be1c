"""Telling the Host about the Guest, and running it.

Once the Guest's memory is laid out, the Launcher opens /dev/lguest and
writes LHREQ_INITIALIZE with four numbers: the top page the Guest may touch,
where its page directory is, where it starts, and its page_offset. From then
on the Launcher's life is one loop: read /dev/lguest, which runs the Guest,
and deal with whatever made the read come back:

* 8 bytes, {dma, key}: the Guest sent DMA to a key only the Launcher serves
  (console output is key 0): hand it to the device watching that key;
* EAGAIN: the Waker broke the Guest out because input is waiting: serve the
  input, then write LHREQ_BREAK 0 to let the Waker go on;
* ENOENT: the Guest is dead; reading once more gives the reason.
"""

from __future__ import annotations

import errno
import struct

from .abi import LHREQ_BREAK, LHREQ_INITIALIZE, READ_DMA
from .devices import DeviceList, DevLguest
from .report import EXIT_GUEST_DIED, LauncherError, Say, ptr, quiet

REASON_MAX = 1024  # the real Launcher's buffer for the reason a Guest died


#: L:180 tell_kernel: the four numbers the Host needs
def tell_kernel(lguest: DevLguest, pfnlimit: int, pgdir: int, start: int, page_offset: int,
                say: Say = quiet) -> None:
    """Write LHREQ_INITIALIZE {pfnlimit, pgdir, start, page_offset}.

    pfnlimit keeps the Guest away from everything above its memory and its
    devices' pages; pgdir (Guest-physical) and start (virtual) are where
    its page tables are and where it begins; page_offset says which virtual
    addresses are the kernel's.
    """
    say(f"Guest: {ptr(0)} - {ptr(pfnlimit * 4096)} ({pfnlimit * 4096:#x})")
    try:
        lguest.write(struct.pack("<5I", LHREQ_INITIALIZE, pfnlimit, pgdir, start, page_offset))
    except OSError as err:
        raise LauncherError(f"Writing to /dev/lguest: {err.strerror or err}") from None


def read_reason(lguest: DevLguest) -> str:
    """Why a dead Guest died, on one line."""
    try:
        raw = lguest.read(REASON_MAX - 1)
    except OSError as err:
        return f"the Guest died, and reading why failed: {err.strerror or err}"
    text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    return " ".join(text.split()) or "the Guest died without giving a reason"


#: L:220 run_guest: run the Guest, serve its I/O, and lay it to rest
def run_guest(lguest: DevLguest, devices: DeviceList) -> str:
    """Run the Guest until it dies; return the reason it gave.

    A Guest that gives the Launcher something it must refuse (a bad
    address) ends the run with a ``LauncherError``.
    """
    while True:
        try:
            got = lguest.read(READ_DMA.size)
        except OSError as err:
            failure = err
        else:
            if len(got) != READ_DMA.size:
                raise LauncherError(f"Running guest failed: read returned {len(got)} "
                                    f"bytes, not {READ_DMA.size}", EXIT_GUEST_DIED)
            dma, key = READ_DMA.unpack(got)
            devices.handle_output(lguest, dma, key)
            continue

        if failure.errno == errno.ENOENT:
            return read_reason(lguest)
        if failure.errno != errno.EAGAIN:
            raise LauncherError(f"Running guest failed: {failure.strerror or failure}",
                                EXIT_GUEST_DIED)
        # The Waker kicked us out: serve the input, then release it. (The Host
        # also says EAGAIN when the Guest halted with no timer set: only input
        # could wake it then, and with no device that takes input it would
        # sleep forever.)
        if not devices.handle_input(lguest) and not devices.takes_input():
            raise LauncherError("the Guest is asleep with no timer set, and no device "
                                "can wake it", EXIT_GUEST_DIED)
        try:
            lguest.write(struct.pack("<2I", LHREQ_BREAK, 0))
        except OSError as err:
            raise LauncherError(f"Resetting break: {err.strerror or err}",
                                EXIT_GUEST_DIED) from None
