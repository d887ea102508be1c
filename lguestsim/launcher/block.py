"""The block device: a file on the Launcher's side, sectors on the Guest's.

``--block=FILE`` gives the Guest a disk. The device has one page shared with
the Guest, a ``struct lguest_block_page``: the Guest writes a request there
(read or write, the starting sector, how many bytes) and sends a DMA to the
page's own address; the Launcher has put the disk's size there, in 512-byte
sectors, before the Guest ever ran. For a write the DMA carries the data;
for a read it is an empty "ping", and the Launcher puts the data into the
one reply buffer the Guest bound at that same key. Either way the Launcher
writes the result into the page (1 done, 2 error) and raises the device's
interrupt through the reply buffer.

The real Launcher checks that a request starts inside the file and that a
write does not run past its end; it gives up entirely when one does not
(after cutting the file back, for a write). lguestsim keeps those checks
but refuses just the request: an error message on standard error, result 2,
the reply buffer handed back empty and the interrupt raised, and the file
never written past its end, let alone extended. A read that starts inside
the file but runs past its end is short, and result 2 says so, as in the
real Launcher. A request with no reply buffer bound still stops the
Launcher, as it does the real one: there is no way to tell the Guest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .abi import (
    BLOCK_DONE,
    BLOCK_ERROR,
    BLOCK_NUM_SECTORS,
    BLOCK_PAGE,
    BLOCK_RESULT,
    LGUEST_DEVICE_F_RANDOMNESS,
    LGUEST_DEVICE_T_BLOCK,
    SECTOR_SIZE,
)
from .console import scatter
from .devices import Device, DeviceList, DevLguest, Section
from .report import EXIT_GUEST_DIED, EXIT_NOT_STARTED, LauncherError, Say, ptr, quiet, warn


@dataclass
class BlockFile:
    """The file behind one block device, and its size when the Launcher started."""

    path: str
    fd: int
    size: int
    say: Say = quiet
    requests: int = 0
    refused: int = 0

    @property
    def num_sectors(self) -> int:
        return self.size // SECTOR_SIZE

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


#: L:194 A block device is a file on the Launcher's side. It gets one shared
# page, a `struct lguest_block_page`, where the Guest will write its requests,
# and before the Guest ever runs the Launcher writes the disk's size there in
# 512-byte sectors, found by seeking to the end (which works for a plain file
# and a real disk alike). There is no input handler, because a disk never
# speaks unless spoken to; output is watched at the page's own address. The
# randomness flag tells the Guest that the device's timing is unpredictable
# enough to feed its entropy pool.
def open_disk(filename: str) -> tuple[int, int]:
    """Open a disk file read-write (either generation's --block): its fd and size."""
    try:
        fd = os.open(filename, os.O_RDWR)
    except OSError as err:
        raise LauncherError(f"Failed to open {filename}: {err.strerror or err}",
                            EXIT_NOT_STARTED) from None
    try:
        # The safe way to learn the size: it could be a file or a real disk.
        return fd, os.lseek(fd, 0, os.SEEK_END)
    except OSError as err:
        os.close(fd)
        raise LauncherError(f"Failed to find the size of {filename}: {err.strerror or err}",
                            EXIT_NOT_STARTED) from None


def setup_block_file(devices: DeviceList, filename: str, say: Say = quiet) -> BlockFile:
    """Open ``filename`` read-write and make it the Guest's next block device."""
    fd, size = open_disk(filename)
    try:
        # One page, no input (a disk has nothing to say unasked), output
        # watched at the page itself; its timing makes it a randomness source.
        dev = devices.new_device("block", LGUEST_DEVICE_T_BLOCK, 1,
                                 LGUEST_DEVICE_F_RANDOMNESS, None, 0, handle_block_output)
    except BaseException:
        os.close(fd)
        raise
    blk = BlockFile(filename, fd, size, say)
    dev.priv = blk
    devices.memory.write32(dev.mem + BLOCK_NUM_SECTORS, blk.num_sectors)
    say(f"device {ptr(dev.mem)}: block {blk.num_sectors} sectors")
    return blk


#: L:215 A block request arrives as a DMA to the block page. The page says what
# is wanted (read or write, the first sector, how many bytes); for a write the
# DMA carries the data, for a read it is empty and the data goes into the reply
# buffer the Guest bound at the page's address. Then the Launcher writes the
# result into the page (1 done, 2 error) and raises the interrupt that came with
# the reply buffer. Where the C Launcher gives up entirely on a request outside
# the file, lguestsim refuses just that request, with a message and result 2,
# and never writes past the file's end. A request with no reply buffer still
# stops the Launcher, since there is no way to tell the Guest.
def handle_block_output(lguest: DevLguest, iov: list[Section], dev: Device) -> int:
    """Serve the request in the block page; return 0 (the result is in the page)."""
    blk: BlockFile = dev.priv
    blk.requests += 1
    devices = _device_list(dev)
    type_, sector, nbytes, _result, _num = BLOCK_PAGE.unpack(
        dev.memory.read(dev.mem, BLOCK_PAGE.size))
    off = sector * SECTOR_SIZE
    what = "WRITE" if type_ else "READ"
    blk.say(f"Block: {what} at offset {off}")

    # The Guest was to bind a reply buffer at the page's address: it is how
    # we tell it the request is finished.
    reply = devices.get_dma_buffer(lguest, dev.mem)
    if reply is None:
        raise LauncherError("Block request didn't give us a dma buffer", EXIT_GUEST_DIED)
    reply_iov, used_len, irq = reply

    length = 0
    if off >= blk.size:
        result = refuse(blk, f"{what.lower()} at sector {sector} (offset {off}) is past the "
                        f"end of {blk.path} ({blk.num_sectors} sectors, {blk.size} bytes)")
    elif type_:
        # A write: the DMA they sent holds the data. Check before writing,
        # so the file is never written past its end.
        data = dev.read_iov(iov)
        if off + len(data) > blk.size:
            result = refuse(blk, f"write of {len(data)} bytes at sector {sector} (offset "
                            f"{off}) would run past the end of {blk.path} ({blk.size} "
                            f"bytes): the file is not extended")
        else:
            try:
                length = os.pwrite(blk.fd, data, off)
            except OSError as err:
                warn(f"block: writing {blk.path} at offset {off}: {err.strerror or err}")
            result = BLOCK_DONE if length == nbytes else BLOCK_ERROR
    else:
        # A read: the data goes into the reply buffer, as much as it holds.
        room = sum(s.length for s in reply_iov)
        try:
            data = os.pread(blk.fd, room, off)
        except OSError as err:
            warn(f"block: reading {blk.path} at offset {off}: {err.strerror or err}")
            data = b""
        length = scatter(devices, reply_iov, data)
        result = BLOCK_DONE if length == nbytes else BLOCK_ERROR
    if result == BLOCK_ERROR and length:
        blk.say(f"Block: {what} of {nbytes} bytes at offset {off} moved {length}")

    # The reply's length: what a read put there; nothing for a write (the
    # reply only says it is done) or a refusal.
    dev.memory.write32(used_len, length if not type_ else 0)
    dev.memory.write32(dev.mem + BLOCK_RESULT, result)
    devices.trigger_irq(lguest, irq)
    return 0


def refuse(blk: BlockFile, why: str) -> int:
    """A request the Launcher will not carry out: say why, and fail it."""
    blk.refused += 1
    warn(f"block: {why}: refused")
    return BLOCK_ERROR


def _device_list(dev: Device) -> DeviceList:
    if dev.owner is None:
        raise LauncherError("a block device that belongs to no device list", EXIT_GUEST_DIED)
    return dev.owner
