"""Network devices: a page of slots, and who else is on it.

A network device is one page of ``struct lguest_net`` slots, each holding
the 6-byte Ethernet address of one machine on the network (0 in the first
byte: free; bit 0x01 there: promiscuous, "send me everything"). The
descriptor's features tell the Guest which slot is its own; the key for
sending to the machine in slot n is the page's address plus 4n. The Guest
does the switching itself: to send a frame it looks through the slots and
sends a DMA to every other one whose address matches (or that is
promiscuous, or to everyone for a broadcast).

The real Launcher makes three kinds, and lguestsim all three:

``--sharenet=FILE``
    The page is a file every Guest on the network maps shared, so all their
    Launchers see the same slots, and since a DMA key names memory rather
    than an address, a send to another Guest's slot goes straight to that
    Guest through the Host: the Launcher never sees the traffic. Slots are
    handed out first come first served (the real Launcher takes an fcntl
    lock on one byte per slot). The Launchers that share a page must be in
    one process here, on one Host: naming the same file gives the same
    ``SharedMemory``; the page is read from the file the first time and
    written back to it when a Launcher lets its slot go.

``--tunnet=IPADDR`` or ``--tunnet=bridge:NAME``
    The other machine is the Launcher, standing in for the Host's network
    through a TAP device: the Launcher's address in slot 0 (promiscuous),
    the Guest in slot 1 (NET_PEERNUM). The Guest's frames for slot 0 are DMA
    to a private key (page + 0), which read() hands to the Launcher, who
    writes them to the TAP device; frames from the TAP device go into a
    buffer the Guest bound at its own key (page + 4), fetched with
    LHREQ_GETDMA, and the Guest's interrupt. This needs /dev/net/tun and
    the right to configure interfaces; without them it is an error.

a Launcher-side peer (``Options(devices=[("peer", "")])`` from Python)
    The same device as --tunnet, with a ``NetPeer`` instead of a TAP
    device: a test or a notebook sends frames to the Guest with
    ``peer.send(frame)`` and reads the frames it sent with
    ``peer.receive()``.
"""

from __future__ import annotations

import collections
import fcntl
import os
import socket
import struct
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

from .abi import (
    LGUEST_DEVICE_F_RANDOMNESS,
    LGUEST_DEVICE_T_NET,
    LGUEST_NET_F_NOCSUM,
    NET_PEERNUM,
    NET_PROMISC,
    NET_SLOT_SIZE,
    PAGE_SIZE,
)
from .console import scatter
from .devices import (
    BUSY,
    DISCARDED,
    NOTHING,
    SERVED,
    Device,
    DeviceList,
    DevLguest,
    InputSource,
    Section,
)
from .report import EXIT_NOT_STARTED, LauncherError, Say, ptr, quiet, warn

# The Launcher-side peer's Ethernet address (locally administered).
LAUNCHER_MAC = bytes.fromhex("020000aa0000")
ETH_FRAME_LEN = 1514
SLOTS_PER_PAGE = PAGE_SIZE // NET_SLOT_SIZE


def peer_offset(peernum: int) -> int:
    """The key of slot ``peernum``, from the page's address (the Guest's peer_key())."""
    return 4 * peernum


# -- what a tun-style device talks to ----------------------------------------

class FrameDevice(Protocol):
    """Frames in and out, one at a time, through a file descriptor."""

    def fileno(self) -> int: ...

    def read_frame(self) -> bytes | None: ...      # None: the device has gone

    def write_frame(self, frame: bytes) -> int: ...

    def close(self) -> None: ...


class NetPeer:
    """The Launcher's end of the network, for Python: the tun device's role.

    ``send(frame)`` queues a frame for the Guest; the Waker notices (a byte
    in a pipe is what it select()s on), and the Launcher puts the frame into
    one of the Guest's receive buffers. ``receive()`` returns the frames
    the Guest sent to the Launcher's slot, oldest first.
    """

    def __init__(self, mac: bytes = LAUNCHER_MAC) -> None:
        if len(mac) != 6:
            raise ValueError("an Ethernet address is 6 bytes")
        self.mac = bytes(mac)
        self.to_guest: collections.deque[bytes] = collections.deque()
        self.from_guest: collections.deque[bytes] = collections.deque()
        self.sent = 0            # frames handed to the Guest
        self._bell_r, self._bell_w = os.pipe()
        os.set_blocking(self._bell_r, False)
        os.set_blocking(self._bell_w, False)
        self.closed = False

    # -- the Python side
    def send(self, frame: bytes) -> None:
        """Queue ``frame`` for the Guest (at most 1514 bytes are delivered)."""
        if self.closed:
            raise ValueError("the peer is closed")
        self.to_guest.append(bytes(frame))
        try:
            os.write(self._bell_w, b"\0")
        except BlockingIOError:
            pass                 # the bell is ringing plenty already

    def receive(self) -> bytes | None:
        """The oldest frame the Guest sent us, or None."""
        return self.from_guest.popleft() if self.from_guest else None

    def receive_all(self) -> list[bytes]:
        """Every frame the Guest sent us and nobody read yet."""
        frames = list(self.from_guest)
        self.from_guest.clear()
        return frames

    # -- the Launcher side (a FrameDevice)
    def fileno(self) -> int:
        return self._bell_r

    def pending(self) -> bool:
        return bool(self.to_guest)

    def read_frame(self) -> bytes | None:
        if self._bell_r >= 0:
            try:
                os.read(self._bell_r, 1)
            except BlockingIOError:
                pass
        if not self.to_guest:
            return b"" if not self.closed else None
        self.sent += 1
        return self.to_guest.popleft()

    def write_frame(self, frame: bytes) -> int:
        self.from_guest.append(bytes(frame))
        return len(frame)

    def close(self) -> None:
        """No more frames for the Guest (its Launcher stops watching once it has
        taken those already sent). Frames the Guest sent stay readable."""
        if self.closed:
            return
        self.closed = True
        if self._bell_w >= 0:
            try:
                os.write(self._bell_w, b"\0")
            except BlockingIOError:
                pass

    def release(self) -> None:
        """The Launcher is done with us: let the pipe go."""
        self.closed = True
        for fd in (self._bell_r, self._bell_w):
            if fd >= 0:
                os.close(fd)
        self._bell_r = self._bell_w = -1


class TapDevice:
    """A real TAP device (/dev/net/tun): frames to and from the Host's network."""

    TUNSETIFF = 0x400454CA
    TUNSETNOCSUM = 0x400454C8
    IFF_TAP = 0x0002
    IFF_NO_PI = 0x1000

    def __init__(self) -> None:
        self.fd = os.open("/dev/net/tun", os.O_RDWR)
        try:
            ifr = struct.pack("16sH22x", b"tap%d", self.IFF_TAP | self.IFF_NO_PI)
            got = fcntl.ioctl(self.fd, self.TUNSETIFF, ifr)
            self.name = got[:16].rstrip(b"\0").decode()
            # No checksums needed on frames coming in: trust us.
            fcntl.ioctl(self.fd, self.TUNSETNOCSUM, 1)
        except BaseException:
            os.close(self.fd)
            raise

    def fileno(self) -> int:
        return self.fd

    def read_frame(self) -> bytes | None:
        try:
            return os.read(self.fd, 65536)
        except OSError:
            return None

    def write_frame(self, frame: bytes) -> int:
        try:
            return os.write(self.fd, frame)
        except OSError:
            return 0xFFFFFFFF            # writev()'s -1, as a u32

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# -- the tun-style device -----------------------------------------------------

class TunNet(InputSource):
    """Frames from a ``FrameDevice`` into the Guest, and the Guest's back out."""

    def __init__(self, frames: FrameDevice, say: Say = quiet) -> None:
        self.frames = frames
        self.fd = frames.fileno()
        self.say = say
        # Has the Guest sent anything yet? Until then, having no buffer for
        # our input is expected (it is still starting up), and no warning.
        self.seen_output = False

    def close(self) -> None:
        super().close()
        release = getattr(self.frames, "release", None)
        (release or self.frames.close)()

    def pending(self) -> bool:
        """Frames queued that the bell did not announce (a full pipe)."""
        pending = getattr(self.frames, "pending", None)
        return bool(pending()) if pending is not None else False

    #: L:219 Network input follows the console's pattern. The buffer comes from
    # the key of the Guest's own slot (page + 4), one frame is read from the TAP
    # device or the peer, as much of it as fits is laid into the buffer, and the
    # interrupt tells the Guest. A frame the Guest has no buffer for stays queued
    # while the Guest may still bind one, and a device that has gone away closes
    # the source.
    def serve(self, lguest: DevLguest, devices: DeviceList, dev: Device,
              asleep: bool) -> str:
        got = devices.get_dma_buffer(lguest, dev.mem + peer_offset(NET_PEERNUM))
        if got is None and not asleep:
            return BUSY
        frame = self.frames.read_frame()
        if frame is None:
            self.close()
            return NOTHING
        if not frame and got is None:
            return NOTHING
        if got is None:
            if self.seen_output:
                warn(f"network: no dma buffer! ({len(frame)} byte frame discarded)")
            self.say(f"tun input packet len {len(frame)} (discarded)")
            return DISCARDED
        iov, used_len, irq = got
        n = scatter(devices, iov, frame[:sum(s.length for s in iov)])
        devices.memory.write32(used_len, n)
        devices.trigger_irq(lguest, irq)
        head = " ".join(f"{b:02x}" for b in frame[:2])
        self.say(f"tun input packet len {n} [{head}] (sent)")
        return SERVED


#: L:216 A frame the Guest sent to slot 0 is a frame for the Host's network: it
# goes out through the TAP device (or to the Python peer) as it is, and the byte
# count becomes used_len. The first one also tells the input side that the
# Guest's network driver is up, so from then on input it has no buffer for is
# worth a warning.
def handle_tun_output(lguest: DevLguest, iov: list[Section], dev: Device) -> int:
    """A frame the Guest sent to slot 0: out through the tun device."""
    tun: TunNet = dev.input if isinstance(dev.input, TunNet) else dev.priv
    tun.seen_output = True
    return tun.frames.write_frame(dev.read_iov(iov))


#: L:196 The device behind `--tunnet`, and behind the Python peer: one page, the
# Guest in slot 1 (NET_PEERNUM), and the randomness flag for its unpredictable
# timing. NOCSUM is not set, because these frames may reach real networks and
# need real checksums. The Launcher writes its own address into slot 0 with the
# promiscuous bit set, so the Guest sends it every frame; those frames are DMA
# to the page's own address (page + 0), a key only this Launcher serves, so
# they come back to it from read().
def _tun_device(devices: DeviceList, frames: FrameDevice, mac: bytes, say: Say) -> Device:
    """The device both --tunnet and the Python peer make."""
    # The Guest is slot NET_PEERNUM; the timing is random enough to feed
    # its entropy pool. No NOCSUM: these frames can reach the real world.
    dev = devices.new_device("net", LGUEST_DEVICE_T_NET, 1,
                             NET_PEERNUM | LGUEST_DEVICE_F_RANDOMNESS, None,
                             peer_offset(0), handle_tun_output)
    tun = TunNet(frames, say)
    dev.input = tun
    dev.priv = tun
    # We are slot 0, and promiscuous: we want every frame.
    devices.memory.write(dev.mem, bytes([mac[0] | NET_PROMISC]) + mac[1:6])
    return dev


#: L:197 lguestsim adds another way to be the far end: a `NetPeer`, a Python
# object in place of the TAP device. A test or a notebook calls
# `peer.send(frame)` to give the Guest a frame and `peer.receive()` to collect
# what the Guest sent, with no privileges and no real network involved. To the
# rest of the Launcher it looks like a TAP device: a file descriptor for the
# Waker to watch (a pipe, rung once for each frame) and frames in and out.
def setup_peer_net(devices: DeviceList, mac: bytes = LAUNCHER_MAC,
                   say: Say = quiet) -> NetPeer:
    """A network device whose other end is a ``NetPeer`` (Python)."""
    peer = NetPeer(mac)
    dev = _tun_device(devices, peer, mac, say)
    say(f"device {ptr(dev.mem)}: peer net {mac.hex(':')}")
    return peer


#: L:195 A network device is a page of slots, one 6-byte Ethernet address for
# each machine on the network; the descriptor's features tell the Guest which
# slot is its own, and a frame for the machine in slot n is a DMA to the page's
# address plus 4n. With `--tunnet` the other machine is the Host itself: the
# Launcher opens a TAP device, which hands frames to the Host's network stack as
# if a network card had received them, gives it an IP address (or adds it to a
# bridge) and brings it up. After that it only carries frames between the Guest
# and the TAP device. All this needs /dev/net/tun and the right to configure
# interfaces, so a failure here is an error that suggests the alternatives.
def setup_tun_net(devices: DeviceList, arg: str, say: Say = quiet) -> TapDevice:
    """``--tunnet=IPADDR`` or ``--tunnet=bridge:NAME``: a TAP device, configured."""
    where = f"--tunnet={arg}"
    try:
        tap = TapDevice()
    except OSError as err:
        raise LauncherError(f"{where}: cannot make a TAP device (/dev/net/tun): "
                            f"{err.strerror or err}; use --sharenet between Guests, or "
                            f"the Launcher-side peer from Python", EXIT_NOT_STARTED) from None
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            bridge = arg[len("bridge:"):] if arg.startswith("bridge:") else None
            if bridge is not None:
                _add_to_bridge(sock, tap.name, bridge, where)
                _bring_up(sock, tap.name, None, where)
            else:
                try:
                    ip = socket.inet_aton(arg)
                except OSError:
                    raise LauncherError(f"{where}: not an IPv4 address or bridge:NAME",
                                        EXIT_NOT_STARTED) from None
                _bring_up(sock, tap.name, ip, where)
            mac = _hwaddr(sock, tap.name, where)
        finally:
            sock.close()
        dev = _tun_device(devices, tap, mac, say)
    except BaseException:
        tap.close()
        raise
    say(f"device {ptr(dev.mem)}: tun net {arg if bridge is None else 'bridged'} ({tap.name})")
    if bridge is not None:
        say(f"attached to bridge: {bridge}")
    return tap


SIOCGIFINDEX, SIOCBRADDIF = 0x8933, 0x89A2
SIOCSIFADDR, SIOCSIFFLAGS, SIOCGIFHWADDR = 0x8916, 0x8914, 0x8927
IFF_UP = 0x1


def _ioctl(sock: socket.socket, request: int, arg: bytes, what: str, where: str) -> bytes:
    try:
        return fcntl.ioctl(sock, request, arg)
    except OSError as err:
        raise LauncherError(f"{where}: {what}: {err.strerror or err}",
                            EXIT_NOT_STARTED) from None


def _add_to_bridge(sock: socket.socket, name: str, bridge: str, where: str) -> None:
    got = _ioctl(sock, SIOCGIFINDEX, struct.pack("16si20x", name.encode(), 0),
                 f"can't find the index of {name}", where)
    index = struct.unpack_from("i", got, 16)[0]
    _ioctl(sock, SIOCBRADDIF, struct.pack("16si20x", bridge.encode(), index),
           f"can't add {name} to bridge {bridge}", where)


def _bring_up(sock: socket.socket, name: str, ip: bytes | None, where: str) -> None:
    if ip is not None:
        addr = struct.pack("16sH2s4s8x", name.encode(), socket.AF_INET, b"\0\0", ip)
        _ioctl(sock, SIOCSIFADDR, addr, f"setting {name} address", where)
    _ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), IFF_UP),
           f"bringing interface {name} up", where)


def _hwaddr(sock: socket.socket, name: str, where: str) -> bytes:
    got = _ioctl(sock, SIOCGIFHWADDR, struct.pack("16s24x", name.encode()),
                 f"getting hw address for {name}", where)
    return got[18:24]


# -- --sharenet ------------------------------------------------------------------

@dataclass
class NetFile:
    """One shared network file, as the Launchers of one Host see it."""

    path: str
    segment: Any                      # the Host's SharedMemory for the page
    host: Any
    taken: set[int] = field(default_factory=set)

    def read_page(self) -> bytes:
        return self.host.mem.read(self.segment.base, PAGE_SIZE)

    def write_back(self) -> None:
        """Put the page back in the file, as a shared mapping would have it."""
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except OSError:
            return
        try:
            os.pwrite(fd, self.read_page(), 0)
        except OSError:
            pass
        finally:
            os.close(fd)


# Per Host: the network files its Launchers have open, by real path.
_NET_FILES: weakref.WeakKeyDictionary[Any, dict[str, NetFile]] = weakref.WeakKeyDictionary()


def open_net_file(host: Any, filename: str) -> NetFile:
    """The shared page behind ``filename`` on ``host``, made on first use.

    For friendliness a missing file is created (one blank page), as the
    real Launcher does.
    """
    files = _NET_FILES.setdefault(host, {})
    key = os.path.realpath(filename)
    if key in files:
        return files[key]
    try:
        fd = os.open(filename, os.O_RDWR)
    except FileNotFoundError:
        try:
            fd = os.open(filename, os.O_RDWR | os.O_CREAT, 0o600)
            os.write(fd, bytes(PAGE_SIZE))
        except OSError as err:
            raise LauncherError(f"cannot open net file '{filename}': {err.strerror or err}",
                                EXIT_NOT_STARTED) from None
    except OSError as err:
        raise LauncherError(f"cannot open net file '{filename}': {err.strerror or err}",
                            EXIT_NOT_STARTED) from None
    try:
        page = os.pread(fd, PAGE_SIZE, 0).ljust(PAGE_SIZE, b"\0")
    finally:
        os.close(fd)
    segment = host.new_shared_memory(PAGE_SIZE)
    host.mem.write(segment.base, page)
    files[key] = NetFile(key, segment, host)
    return files[key]


@dataclass
class NetSlot:
    """A slot one Launcher holds in a shared network file, until it ends."""

    net: NetFile
    slot: int
    device: Device | None = None

    def close(self) -> None:
        """Let the slot go (the real Launcher's lock goes with its process)."""
        if self.slot in self.net.taken:
            self.net.taken.discard(self.slot)
            self.net.write_back()


#: L:198 The third kind, `--sharenet=FILE`, joins Guests to each other. Every
# Guest on the network maps the same page, so each sees the others' slots; and
# since the Host tells DMA keys apart by the memory behind them, not by their
# addresses, a slot's key means the same in every Guest, and a DMA to another
# Guest's slot goes straight to that Guest through the Host. Each Launcher needs
# a slot nobody else holds. The C Launcher takes an fcntl lock on one byte per
# slot, which the kernel drops if the Launcher dies; here the Launchers of one
# Host share a Python set of taken slots, and each gives its slot back when it
# ends.
def find_slot(net: NetFile, filename: str) -> int:
    for slot in range(SLOTS_PER_PAGE):
        if slot not in net.taken:
            net.taken.add(slot)
            return slot
    raise LauncherError(f"No free slots in network file {filename}", EXIT_NOT_STARTED)


#: L:199 Setting up the shared network: open (or create, with one blank page)
# the file, take a slot, make a device with one page whose features give the
# slot and NOCSUM (these frames never leave the machine), then put the shared
# page in place of the zeroed one. The C Launcher maps the file MAP_SHARED over
# it; the simulated Host has no files, so it keeps one `SharedMemory` page per
# file, read from the file when first used and written back when a slot is
# released. No handlers: the traffic is between the Guests and never passes
# through a Launcher.
def setup_net_file(devices: DeviceList, filename: str, host: Any,
                   say: Say = quiet) -> NetSlot:
    """``--sharenet=FILE``: a network device whose page is shared through ``filename``."""
    process = devices.memory.backing
    if host is None or not hasattr(process, "map_shared"):
        raise LauncherError(f"--sharenet={filename}: a shared network needs the simulated "
                            f"Host", EXIT_NOT_STARTED)
    net = open_net_file(host, filename)
    slot = find_slot(net, filename)
    try:
        # One page; the features say which slot is ours and that no checksums
        # are needed. No handlers: the traffic is between the Guests.
        dev = devices.new_device("net", LGUEST_DEVICE_T_NET, 1, slot | LGUEST_NET_F_NOCSUM,
                                 None, 0, None)
        # The zeroed page new_device() made is replaced by the shared one.
        process.map_shared(dev.mem, net.segment)
    except BaseException:
        net.taken.discard(slot)
        raise
    say(f"device {ptr(dev.mem)}: shared net {filename}, peer {slot}")
    return NetSlot(net, slot, dev)


def slots(devices: DeviceList, dev: Device) -> list[bytes]:
    """The addresses published on ``dev``'s network page, slot by slot."""
    page = devices.memory.read(dev.mem, PAGE_SIZE)
    return [page[i * NET_SLOT_SIZE:(i + 1) * NET_SLOT_SIZE] for i in range(SLOTS_PER_PAGE)]


__all__ = ["NetPeer", "TapDevice", "TunNet", "NetFile", "NetSlot", "LAUNCHER_MAC",
           "peer_offset", "setup_peer_net", "setup_tun_net", "setup_net_file", "find_slot",
           "open_net_file", "slots"]
