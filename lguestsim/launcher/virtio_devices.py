"""The 2.6.25 Launcher's devices: console, block and network over virtqueues.

Each device is a descriptor on the device page (device_page.py) with one or
two virtqueues (virtio.py).  Output arrives as a NOTIFY of a virtqueue: the
Launcher takes every chain the Guest made available, serves it, puts it in
the used ring and raises the virtqueue's interrupt.  Input (console
keystrokes, network frames from other Guests) waits in an ``InputSource``
until the Waker or a sleeping Guest lets the Launcher serve it into a buffer
the Guest made available on its receive queue.

What lguestsim leaves out of 2.6.25's Launcher: the block device's I/O
thread (requests are served at once, when the Guest NOTIFYs), --tunnet and
Launcher-side peers for virtio Guests (only --sharenet networks), and
promiscuous mode, which 2.6.25's virtio network had no way to ask for.
"""

from __future__ import annotations

import collections
import os
import struct
import weakref
from dataclasses import dataclass, field
from typing import Any, TextIO

from .abi import SECTOR_SIZE
from .block import open_disk
from .console import ConsoleInput, Terminal
from .device_page import (
    VIRTIO_ID_BLOCK,
    VIRTIO_ID_CONSOLE,
    VIRTIO_ID_NET,
    VirtioDevice,
    VirtioDevices,
    write_out,
)
from .devices import BUSY, DISCARDED, NOTHING, SERVED, Console, DevLguest, InputSource
from .report import EXIT_GUEST_DIED, LauncherError, Say, quiet, warn
from .virtio import VIRTQUEUE_NUM, Virtqueue

DISCARD_SIZE = 256

# virtio_blk (2.6.25): the request header, the status byte, the config.
VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_SCSI_CMD = 0, 1, 2
VIRTIO_BLK_T_BARRIER = 0x80000000
VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP = 0, 1, 2
VIRTIO_BLK_F_SEG_MAX = 2
BLK_OUTHDR = struct.Struct("<IIQ")          # type, ioprio, sector
BLK_CONFIG = struct.Struct("<QII")          # capacity, size_max, seg_max

# virtio_net (2.6.25): the header before every frame, the MAC feature.
VIRTIO_NET_F_MAC = 5
VIRTIO_NET_HDR_SIZE = 10
ETH_FRAME_LEN = 1514


def _fail(why: str) -> LauncherError:
    return LauncherError(why, EXIT_GUEST_DIED)


# -- the console

#: L:233 Console output, 2.6.25 style: every chain on the output queue is
# written out as it is, then returned with a length of 0 (the Launcher wrote
# nothing into it), and the Guest is interrupted once for the lot.  A
# writable piece in an output chain is the Guest's mistake, and ends it.
def handle_console_output(lguest: DevLguest, vq: Virtqueue) -> None:
    dev: VirtioDevice = vq.owner_dev
    while (got := vq.get_vq_desc()) is not None:
        head, pieces = got
        if any(p.write for p in pieces):
            raise _fail("Input buffers in output queue?")
        write_out(dev.priv.out, vq.read_pieces(pieces))
        vq.add_used(head, 0)
    dev.owner.trigger_vq_irq(lguest, vq)


def enable_input(lguest: DevLguest, vq: Virtqueue) -> None:
    """The Guest added receive buffers: input that waited for one may go now."""
    dev: VirtioDevice = vq.owner_dev
    if dev.input is not None:
        dev.input.throttled = False


class VirtioConsoleInput(ConsoleInput):
    """Standard input into the console's receive queue (virtqueue 0)."""

    #: L:234 Console input, 2.6.25 style: take a chain from the receive queue
    # (it must be all writable), read standard input into it, return it used
    # with the length read and raise the queue's interrupt.  With no chain
    # available the input waits (or, when the Guest sleeps for good, is
    # thrown away).  When standard input ends, the 2.6.25 Launcher simply
    # stopped listening; this one also hands the Guest an empty buffer, so
    # that its shell sees the end of input, as the 2.6.23 console does.
    def serve(self, lguest: DevLguest, devices: Any, dev: Any, asleep: bool) -> str:
        if not asleep and not self.typed():
            return BUSY
        vq = dev.vqs[0]
        got = vq.get_vq_desc()
        if got is None:
            if not asleep:
                return BUSY
            if self.fed:
                # The line just fed has not been taken yet: the Guest needs a
                # turn to read it and offer its buffer again.
                self.fed = False
                return BUSY
            data = self._read(DISCARD_SIZE)
            self.check_abort(data)
            if not data:
                self.close()
                return NOTHING
            warn(f"console: no buffer! ({len(data)} bytes of input discarded)")
            return DISCARDED
        head, pieces = got
        if not all(p.write for p in pieces):
            raise _fail("Output buffers in console in queue?")
        size = sum(p.length for p in pieces)
        data = self._read(size) if self.typed() else self._read_line(size)
        vq.write_pieces(pieces, data)
        vq.add_used(head, len(data))
        devices.trigger_vq_irq(lguest, vq)
        self.fed = not self.typed()
        if not data:
            self.say("console: input ended")
            self.close()
        self.check_abort(data)
        return SERVED


    #: L:239 lguestsim's own: input from a pipe or a file is "typed" one line at
    # a time, and only when the Guest waits for it (it sleeps with nothing else
    # to do).  A terminal's keys go in as they come, as always.  Without this a
    # script piped in would be swallowed whole by the first Guest, and a
    # `reboot` in it would leave the rebooted Guest nothing to read.
    def typed(self) -> bool:
        if self._tty is None:
            try:
                self._tty = os.isatty(self.fd)
            except OSError:
                self._tty = False
        return self._tty

    _tty: bool | None = None
    fed = False              # a line went in, and the Guest has not run since

    def _read_line(self, size: int) -> bytes:
        line = b""
        while len(line) < size and not line.endswith(b"\n"):
            got = self._read(1)
            if not got:
                break
            line += got
        return line


def setup_console(devices: VirtioDevices, out: TextIO | None = None) -> VirtioDevice:
    """The console: virtio id 3, a receive queue and a transmit queue."""
    dev = devices.new_virtio_device("console", VIRTIO_ID_CONSOLE)
    dev.priv = Console(out)
    for handler in (enable_input, handle_console_output):
        devices.add_virtqueue(dev, handler).owner_dev = dev
    devices.say(f"device {dev.desc:#x}: console")
    return dev


def attach_console_input(dev: VirtioDevice, fd: int, say: Say = quiet,
                         raw: bool = True) -> VirtioConsoleInput:
    terminal = Terminal(fd)
    if raw and terminal.make_raw():
        say("console: the terminal is in raw mode until the Launcher ends")
    source = VirtioConsoleInput(fd, terminal, say)
    dev.input = source
    return source


# -- the block device

@dataclass
class VirtioBlock:
    """The file behind a virtio disk, with its size fixed when the Launcher started."""

    path: str
    fd: int
    size: int
    requests: int = 0
    refused: int = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


#: L:235 A virtio block request is one chain: the readable header
# {type, ioprio, sector}, then the data (readable for a write, writable for a
# read), and last a writable status byte.  The Launcher reads or writes the
# file at sector * 512, puts VIRTIO_BLK_S_OK or _IOERR in the status byte, and
# returns the chain with the number of bytes it wrote into it.  A request
# reaching past the end of the file is refused with IOERR and never grows the
# file (2.6.25's Launcher gave up entirely there).  A chain with no header or
# no status byte ends the Guest.
def service_io(lguest: DevLguest, vq: Virtqueue) -> None:
    dev: VirtioDevice = vq.owner_dev
    blk: VirtioBlock = dev.priv
    while (got := vq.get_vq_desc()) is not None:
        head, pieces = got
        outs = [p for p in pieces if not p.write]
        ins = [p for p in pieces if p.write]
        if not outs or not ins or outs[0].length < BLK_OUTHDR.size or ins[-1].length < 1:
            raise _fail(f"Bad virtblk cmd {len(outs)} out={len(outs)} in={len(ins)}")
        blk.requests += 1
        type_, _ioprio, sector = BLK_OUTHDR.unpack(vq.memory.read(outs[0].addr, BLK_OUTHDR.size))
        status_piece = ins[-1]
        data_outs, data_ins = outs[1:], ins[:-1]
        last_in = status_piece.length - 1
        written = 0
        off = sector * SECTOR_SIZE
        if type_ & VIRTIO_BLK_T_SCSI_CMD:
            status = VIRTIO_BLK_S_UNSUPP
        elif type_ & VIRTIO_BLK_T_OUT:
            data = b"".join(vq.memory.read(p.addr, p.length) for p in data_outs)
            if off + len(data) > blk.size:
                blk.refused += 1
                warn(f"virtblk: write past end {off}+{len(data)} refused")
                status = VIRTIO_BLK_S_IOERR
            else:
                os.pwrite(blk.fd, data, off)
                status = VIRTIO_BLK_S_OK
        else:
            want = sum(p.length for p in data_ins) + last_in
            if off + want > blk.size:
                blk.refused += 1
                warn(f"virtblk: read past end {off}+{want} refused")
                status = VIRTIO_BLK_S_IOERR
            else:
                data = os.pread(blk.fd, want, off)
                done = 0
                for p in data_ins:
                    vq.memory.write(p.addr, data[done:done + p.length])
                    done += p.length
                if last_in:
                    vq.memory.write(status_piece.addr, data[done:done + last_in])
                written = want
                status = VIRTIO_BLK_S_OK
        vq.memory.write8(status_piece.addr + last_in, status)
        vq.add_used(head, written + 1)
    dev.owner.trigger_vq_irq(lguest, vq)


def setup_block_file(devices: VirtioDevices, filename: str, say: Say = quiet) -> VirtioBlock:
    """Open ``filename`` read-write: the Guest's next virtio disk."""
    fd, size = open_disk(filename)
    try:
        dev = devices.new_virtio_device("block", VIRTIO_ID_BLOCK)
        devices.add_virtqueue(dev, service_io).owner_dev = dev
        devices.add_feature(dev, VIRTIO_BLK_F_SEG_MAX)
        devices.set_config(dev, BLK_CONFIG.pack(size // SECTOR_SIZE, 0, VIRTQUEUE_NUM - 2))
    except BaseException:
        os.close(fd)
        raise
    blk = VirtioBlock(filename, fd, size)
    dev.priv = blk
    say(f"device {dev.desc:#x}: virtblock {size // SECTOR_SIZE} sectors")
    return blk


# -- the network

#: L:236 --sharenet for virtio Guests.  2.6.25's Guests share no page any
# more, so the Launchers switch frames themselves: every Launcher naming the
# same file joins one `Switch`, with a port per Guest.  A frame a Guest
# transmits goes into the queue of every other port whose address it names
# (all of them, for a broadcast); each port's Launcher later serves its queue
# into its own Guest's receive buffers, so no Launcher writes another's Guest.
@dataclass
class Switch:
    name: str
    ports: list[NetPort] = field(default_factory=list)
    joined: int = 0          # ports ever made: each new one gets the next address

    def transmit(self, sender: NetPort, frame: bytes) -> int:
        dest = frame[:6]
        sent = 0
        for port in self.ports:
            if port is sender or port.closed:
                continue
            if dest[0] & 1 or dest == port.mac:
                port.queue.append(frame)
                sent += 1
        return sent


_SWITCHES: weakref.WeakKeyDictionary[Any, dict[str, Switch]] = weakref.WeakKeyDictionary()


def switch_for(host: Any, filename: str) -> Switch:
    """The switch every Launcher on ``host`` naming ``filename`` joins."""
    key = os.path.realpath(filename)
    return _SWITCHES.setdefault(host, {}).setdefault(key, Switch(key))


class NetPort(InputSource):
    """One Guest's port on a switch: frames waiting for its receive queue."""

    def __init__(self, switch: Switch, mac: bytes) -> None:
        self.switch = switch
        self.mac = mac
        self.queue: collections.deque[bytes] = collections.deque()
        self.dev: VirtioDevice | None = None

    def pending(self) -> bool:
        return bool(self.queue)

    #: L:237 A frame for our Guest: it needs a chain from the receive queue,
    # all writable, big enough for the virtio_net header and the frame.  The
    # header goes first (all zero: no checksum offload, no segmentation), then
    # the frame, and the chain returns used with both lengths.
    def serve(self, lguest: DevLguest, devices: Any, dev: Any, asleep: bool) -> str:
        if not self.queue:
            return NOTHING
        vq = dev.vqs[0]
        got = vq.get_vq_desc()
        if got is None:
            if asleep:
                self.queue.popleft()
                warn("net: no receive buffer! (a frame discarded)")
                return DISCARDED
            return BUSY
        head, pieces = got
        if not all(p.write for p in pieces):
            raise _fail("Output buffers in network receive queue?")
        frame = self.queue.popleft()
        used = vq.write_pieces(pieces, bytes(VIRTIO_NET_HDR_SIZE) + frame)
        vq.add_used(head, used)
        devices.trigger_vq_irq(lguest, vq)
        return SERVED

    def close(self) -> None:
        super().close()
        if self in self.switch.ports:
            self.switch.ports.remove(self)


def handle_net_output(lguest: DevLguest, vq: Virtqueue) -> None:
    """Transmit every chain: strip the virtio_net header, hand the frame to the switch."""
    dev: VirtioDevice = vq.owner_dev
    port: NetPort = dev.priv
    while (got := vq.get_vq_desc()) is not None:
        head, pieces = got
        if any(p.write for p in pieces):
            raise _fail("Input buffers in network transmit queue?")
        data = vq.read_pieces(pieces)
        frame = data[VIRTIO_NET_HDR_SIZE:VIRTIO_NET_HDR_SIZE + ETH_FRAME_LEN]
        if len(frame) >= 14:
            port.switch.transmit(port, frame)
        vq.add_used(head, 0)
    dev.owner.trigger_vq_irq(lguest, vq)


def setup_net_file(devices: VirtioDevices, filename: str, host: Any,
                   say: Say = quiet) -> NetPort:
    """A virtio network card on the switch that ``filename`` names."""
    switch = switch_for(host, filename)
    switch.joined += 1
    n = switch.joined        # a rebooted Guest's card is a new port, with a new address
    mac = bytes([0x02, 0x00, 0x00, 0x00, (n >> 8) & 0xFF, n & 0xFF])
    dev = devices.new_virtio_device("net", VIRTIO_ID_NET)
    for handler in (enable_input, handle_net_output):
        devices.add_virtqueue(dev, handler).owner_dev = dev
    devices.add_feature(dev, VIRTIO_NET_F_MAC)
    devices.set_config(dev, mac)
    port = NetPort(switch, mac)
    port.dev = dev
    dev.priv = port
    dev.input = port
    switch.ports.append(port)
    say(f"device {dev.desc:#x}: net {mac.hex(':')} on {filename}")
    return port
