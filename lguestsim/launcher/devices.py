"""Devices: how the Guest finds them, and how the Launcher serves them.

The Guest learns what devices it has from one page just above its memory:
an array of 16 descriptors (struct lguest_device_desc: type, features,
status, number of pages, first page frame). A device that needs memory
shared with the Launcher (a block device's request page, a network slot
page) gets whole pages allocated above that, each new device's pages above
the last; so the top of the Guest's reachable memory creeps up as devices
are added, and the Launcher only tells the Host where it ends at the very end.
A device's interrupt is its descriptor's index + 1 (interrupt 0 is the timer).

Alongside each descriptor the Launcher keeps a ``Device``: the key the Guest
sends its output to, and the callbacks that serve it. ``handle_output`` gets
the DMA the Guest sent to that key; ``input`` is where the device's input
comes from (an ``InputSource``: standard input for the console, the tun
device's frames for a network), watched by the Waker (``waker``) and served
by ``DeviceList.handle_input`` when the Guest has been broken out.

Everything the Guest hands over is a Guest-physical address, hence also a
Launcher address, but the Launcher never trusts one: ``check_pointer`` makes
sure it lies below the top of the Guest's memory.
"""

from __future__ import annotations

import select
import struct
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from .abi import (
    DEVICE_DESC,
    DMA_ADDR,
    DMA_ADDRS,
    DMA_LEN,
    DMA_LENS,
    DMA_SIZE,
    DMA_USED_LEN,
    LGUEST_CONSOLE_DMA_KEY,
    LGUEST_DEVICE_T_CONSOLE,
    LGUEST_MAX_DEVICES,
    LHREQ_GETDMA,
    LHREQ_IRQ,
    PAGE_SIZE,
)
from .loader import map_zeroed_pages
from .memory import GuestMemory
from .report import (
    BROKEN_PIPE,
    EXIT_BROKEN_PIPE,
    EXIT_GUEST_DIED,
    Abort,
    LauncherError,
    Say,
    ptr,
    quiet,
    warn,
)

# Pages of shared memory each kind of device asks for ("sharenet", "tunnet"
# and "peer" are the three ways of making a network device).
DEVICE_PAGES = {"console": 0, "block": 1, "net": 1, "sharenet": 1, "tunnet": 1, "peer": 1}


def device_area_size(kinds: list[str]) -> int:
    """Bytes above Guest memory for the descriptor page and these devices' pages."""
    return PAGE_SIZE * (1 + sum(DEVICE_PAGES[kind] for kind in kinds))


class DevLguest(Protocol):
    """The open /dev/lguest, as the device handlers use it."""

    def read(self, n: int) -> bytes: ...

    def write(self, data: bytes) -> int: ...


@dataclass(frozen=True)
class Section:
    """One piece of a DMA buffer: ``length`` bytes at Guest-physical ``addr``."""

    addr: int
    length: int


OutputHandler = Callable[[DevLguest, list[Section], "Device"], int]
InputHandler = Callable[[DevLguest, "Device"], bool]

# What serving an input source did (``InputSource.serve``).
SERVED = "served"        # input went into a Guest buffer, and its irq was raised
BUSY = "busy"            # the Guest has no free buffer: the input stays where it is
DISCARDED = "discarded"  # the Guest will never take it: thrown away, with a warning
NOTHING = "nothing"      # there was nothing to serve after all


class InputSource(ABC):
    """Where a device's input comes from, as the Waker and handle_input see it.

    ``fd`` is a file descriptor ``select()`` can watch (None if the source
    has none, and says ``pending()`` instead). ``closed`` means "stop
    watching me" (the real Launcher takes the fd out of its set and tells
    the Waker). ``throttled`` means the Guest had no free buffer the last
    time: the Waker leaves the source alone until its next tick, rather
    than break the Guest out again for input it cannot take yet.
    """

    fd: int | None = None
    closed: bool = False
    throttled: bool = False

    def pending(self) -> bool:
        """Input waiting that select() cannot see (sources with no fd)."""
        return False

    @abstractmethod
    def serve(self, lguest: DevLguest, devices: DeviceList, dev: Device,
              asleep: bool) -> str:
        """Move what is ready into the Guest; return SERVED, BUSY, DISCARDED or NOTHING.

        ``asleep`` says the Guest sleeps with no timer set and nothing else
        can wake it: input it has no buffer for is then thrown away (with
        the real Launcher's warning) rather than kept for later.
        """

    def close(self) -> None:
        """Stop watching this source; release what it holds."""
        self.closed = True


class CallbackInput(InputSource):
    """An input source made of two callables (the first Launcher's interface):
    ``ready()`` says input is waiting, ``handle(lguest, dev)`` serves it and
    returns False to be watched no more."""

    def __init__(self, handle: InputHandler, ready: Callable[[], bool] | None) -> None:
        self.handle = handle
        self.ready = ready

    def pending(self) -> bool:
        return self.ready is not None and bool(self.ready())

    def serve(self, lguest: DevLguest, devices: DeviceList, dev: Device,
              asleep: bool) -> str:
        if not self.handle(lguest, dev):
            self.closed = True
        return SERVED


#: L:186 Beside each descriptor the Guest sees, the Launcher keeps a record of
# its own, as the C Launcher keeps a `struct device` in a linked list (here a
# Python list, `DeviceList.devices`). Output is matched by key: when a read of
# /dev/lguest hands back a DMA sent to `watch_key`, `handle_output` serves it,
# and what it returns becomes the buffer's used_len. Input is an `InputSource`
# (standard input, a TAP device, a Python peer) that the Waker watches and
# `DeviceList.handle_input` serves. A device's interrupt is its slot number
# plus one, since interrupt 0 belongs to the timer.
@dataclass
class Device:
    """One device: its descriptor, its memory, and how to serve it."""

    name: str
    index: int               # slot in the descriptor page; the irq is index + 1
    desc: int                # Guest-physical address of its descriptor
    mem: int                 # Guest-physical address of its pages (0 if none)
    memory: GuestMemory
    # Output: the Guest sent DMA to watch_key. Returns the bytes used.
    watch_key: int = 0
    handle_output: OutputHandler | None = None
    # Input: where it comes from, and how it is served (None: no input).
    input: InputSource | None = None
    priv: Any = None
    # The list the device belongs to: how a handler asks the Host for buffers.
    owner: DeviceList | None = field(default=None, repr=False)

    @property
    def watching(self) -> bool:
        """Does this device still wait for input?"""
        return self.input is not None and not self.input.closed

    @property
    def irq(self) -> int:
        return self.index + 1

    def read_iov(self, iov: list[Section]) -> bytes:
        """The bytes of a DMA buffer, section after section."""
        return b"".join(self.memory.read(s.addr, s.length) for s in iov)


@dataclass
class DeviceList:
    """The descriptor page at Guest-physical ``mem`` and the devices behind it.

    ``top`` is the first byte above the Guest's memory and its devices'
    pages: what the Launcher finally tells the Host as pfnlimit * 4096.
    """

    memory: GuestMemory
    mem: int
    say: Say = quiet
    descs: int = field(init=False)
    top: int = field(init=False)
    devices: list[Device] = field(default_factory=list)

    def __post_init__(self) -> None:
        # One zeroed page of descriptors just above Guest memory.
        self.descs = map_zeroed_pages(self.memory, self.mem, 1)
        self.top = self.mem + PAGE_SIZE

    #: L:190 Setting up devices. Every device needs a descriptor, so that the
    # Guest can find it, and a `Device`, so that the Launcher can serve it. The
    # descriptors live in one zeroed page just above the Guest's memory:
    # sixteen 12-byte slots, where a type of 0 marks a free one. A device that
    # shares memory with the Launcher asks for pages and gets them at the
    # current top, which then moves up past them, so the memory the Guest may
    # reach grows with each device. The descriptor records the first page's
    # frame number: that is how the Guest's driver finds the shared page.
    def new_dev_desc(self, type_: int, features: int, num_pages: int) -> int:
        """Fill the first empty descriptor; return its index.

        A device that needs memory gets ``num_pages`` zeroed pages at the
        current top, which then moves up past them.
        """
        for i in range(LGUEST_MAX_DEVICES):
            addr = self.descs + i * DEVICE_DESC.size
            if self.memory.read16(addr) == 0:
                pfn = 0
                if num_pages:
                    map_zeroed_pages(self.memory, self.top, num_pages)
                    pfn = self.top // PAGE_SIZE
                    self.top += num_pages * PAGE_SIZE
                self.memory.write(addr, DEVICE_DESC.pack(type_, features, 0, num_pages, pfn))
                return i
        raise LauncherError(f"too many devices (at most {LGUEST_MAX_DEVICES})")

    #: L:191 `new_device` does the rest: it takes a descriptor, makes the
    # `Device`, works out its key (the device's memory plus `watch_off`, so key 0
    # for the console, which has no memory) and appends it to the list.
    # Appending rather than prepending matters: the Guest meets its devices in
    # descriptor order, so the order on the command line is the order of its
    # disks and network cards.
    def new_device(self, name: str, type_: int, num_pages: int, features: int,
                   handle_input: InputHandler | None, watch_off: int,
                   handle_output: OutputHandler | None,
                   input_ready: Callable[[], bool] | None = None) -> Device:
        """Make a device and append it to the list.

        Devices go on the Guest's bus in the order they were made, which is
        command-line order: the first block device named becomes the first
        block device the Guest sees. The key the Guest sends output to is
        the device's memory plus ``watch_off``.
        """
        index = self.new_dev_desc(type_, features, num_pages)
        desc = self.descs + index * DEVICE_DESC.size
        mem = DEVICE_DESC.unpack(self.memory.read(desc, DEVICE_DESC.size))[4] * PAGE_SIZE
        dev = Device(name, index, desc, mem, self.memory, watch_key=mem + watch_off,
                     handle_output=handle_output, owner=self)
        if handle_input is not None:
            dev.input = CallbackInput(handle_input, input_ready)
        self.devices.append(dev)
        return dev

    def descriptor(self, index: int) -> dict[str, int]:
        """A descriptor as the Guest sees it now (type, features, status, ...)."""
        raw = self.memory.read(self.descs + index * DEVICE_DESC.size, DEVICE_DESC.size)
        return dict(zip(("type", "features", "status", "num_pages", "pfn"),
                        DEVICE_DESC.unpack(raw), strict=True))

    #: L:210 Device handling. Everything the Guest hands the Launcher is an
    # address, and since a Guest-physical address is a Launcher address, the
    # Launcher could use it as it is. That is exactly why it checks first: in the
    # C Launcher a hostile Guest could otherwise point it at the Launcher's own
    # code and data above the Guest's memory. Both the start and the end must lie
    # below the top of Guest memory (the end is checked apart because in C a
    # huge size could wrap around). A bad address ends this Launcher with status
    # 1: the Guest is broken, and the Launcher will not guess what it meant.
    def check_pointer(self, addr: int, size: int) -> int:
        """``addr`` if ``size`` bytes there lie below the top of Guest memory.

        Both ends are checked, as the original does (so a buffer ending
        exactly at the top is refused too). Anything else means the Guest
        is broken or hostile, and the Launcher stops.
        """
        if addr >= self.top or addr + size >= self.top:
            raise LauncherError(
                f"the Guest handed over an invalid address {addr:#x} ({size} bytes; "
                f"its memory ends at {self.top:#x})", EXIT_GUEST_DIED)
        return addr

    #: L:211 A `struct lguest_dma` is how the Guest describes a buffer: up to 16
    # sections, each an address and a length, ended by the first length of 0,
    # and a used_len word that whoever consumes the buffer fills in. `dma2iov`
    # checks the structure itself, then every section, and turns it into a list
    # of `Section`s, the Python stand-in for the C Launcher's iovec array. It
    # also returns where used_len is, so the caller can report what it took.
    def dma2iov(self, dma: int) -> tuple[list[Section], int]:
        """Check a struct lguest_dma and its sections.

        Returns the sections (up to the first of length 0) and the address
        of its used_len, where the Launcher says how much it used.
        """
        self.check_pointer(dma, DMA_SIZE)
        addrs = DMA_ADDRS.unpack(self.memory.read(dma + DMA_ADDR, DMA_ADDRS.size))
        lens = DMA_LENS.unpack(self.memory.read(dma + DMA_LEN, DMA_LENS.size))
        iov = []
        for addr, length in zip(addrs, lens, strict=True):
            if not length:
                break
            iov.append(Section(self.check_pointer(addr, length), length))
        return iov, dma + DMA_USED_LEN

    #: L:214 Input runs the other way: the Launcher has bytes and needs a Guest
    # buffer to put them in. The Guest binds buffers to a key in advance (the
    # BIND_DMA hypercall), and LHREQ_GETDMA asks the Host for the first free
    # one at that key. The Host returns its address and, since a write() can
    # return only one number, leaves the interrupt the Guest bound with it in the
    # buffer's used_len. The Launcher fills the buffer, writes the real length
    # over used_len and raises that interrupt with LHREQ_IRQ (`trigger_irq`).
    def get_dma_buffer(self, lguest: DevLguest,
                       key: int) -> tuple[list[Section], int, int] | None:
        """Ask the Host for a buffer the Guest bound to ``key``, for input.

        Returns (sections, address of used_len, irq to raise when filled),
        or None if the Guest has no free buffer there. The Host hands the irq
        over by writing it into the buffer's used_len.
        """
        try:
            dma = lguest.write(struct.pack("<2I", LHREQ_GETDMA, key))
        except OSError:
            return None
        iov, used_len = self.dma2iov(dma)
        return iov, used_len, self.memory.read32(used_len)

    def trigger_irq(self, lguest: DevLguest, irq: int) -> None:
        """Make interrupt ``irq`` pending in the Guest."""
        try:
            lguest.write(struct.pack("<2I", LHREQ_IRQ, irq))
        except OSError as err:
            raise LauncherError(f"Triggering irq {irq}: {err.strerror or err}",
                                EXIT_GUEST_DIED) from None

    #: L:212 When read() returns {dma, key}, the Guest has sent a DMA that no
    # other Guest took, so the Host passed it up to this Launcher. The Launcher
    # finds the device watching that key and lets it serve the buffer; what the
    # handler returns is written into used_len, where the Guest's driver looks
    # to learn how much was taken. A key nobody watches only earns a warning: a
    # Guest that shared the network may just have left, and the DMA has nowhere
    # to go.
    def handle_output(self, lguest: DevLguest, dma: int, key: int) -> None:
        """The Guest sent the DMA at ``dma`` to ``key``: find who wants it.

        The device watching that key serves it, and what it returns is
        written straight into the buffer's used_len. Output to a key nobody
        watches is possible (the Host passes the Launcher any DMA no other
        Guest took, say for a network the other Guest just left), so it is
        only a warning.
        """
        iov, used_len = self.dma2iov(dma)
        for dev in self.devices:
            if dev.handle_output is not None and key == dev.watch_key:
                self.memory.write32(used_len, dev.handle_output(lguest, iov, dev))
                return
        warn(f"Pending dma {ptr(dma)}, key {ptr(key)}")

    def takes_input(self) -> bool:
        """Is any device still watching for input?"""
        return any(dev.watching for dev in self.devices)

    def input_fds(self, throttled: bool = True) -> list[int]:
        """The file descriptors of the devices still watching for input."""
        return [dev.input.fd for dev in self.devices
                if dev.watching and dev.input.fd is not None
                and (throttled or not dev.input.throttled)]

    def ready(self, throttled: bool = False, fds_only: bool = False) -> list[Device]:
        """The devices whose input is ready now (select() with a zero timeout).

        Throttled sources are left out unless ``throttled``; sources without
        a file descriptor (``pending()``) are left out when ``fds_only``.
        """
        watched = [dev for dev in self.devices if dev.watching
                   and (throttled or not dev.input.throttled)]
        fds = [dev.input.fd for dev in watched if dev.input.fd is not None]
        readable = set(select.select(fds, [], [], 0)[0]) if fds else set()
        return [dev for dev in watched
                if (dev.input.fd is not None and dev.input.fd in readable)
                or (not fds_only and dev.input.pending())]

    #: L:217 When read() returns EAGAIN the Launcher serves every device whose
    # input is ready, and, like the C Launcher, goes round again until a round
    # serves nothing: a source may have several lots waiting (a pipe full of
    # keystrokes, a burst of frames). lguestsim adds throttling. A source the
    # Guest has no free buffer for stays readable, so rather than loop on it, or
    # have the Waker break the Guest out again for input it cannot take yet, the
    # Launcher marks it throttled and keeps the input for later. Only when the
    # Guest sleeps with nothing else to wake it (`asleep`) is such input thrown
    # away, with the real Launcher's warning.
    def handle_input(self, lguest: DevLguest, asleep: bool = False) -> int:
        """Serve every device whose input is ready, until none is; return how many served.

        This runs when read() came back with EAGAIN: the Waker broke the
        Guest out, or the Guest went to sleep. A source the Guest has no
        free buffer for is throttled (kept for later) -- unless ``asleep``,
        when the Guest can never take it and it is thrown away. A source
        that ends is watched no more.
        """
        served = 0
        while True:
            busy = False
            for dev in self.ready(throttled=asleep):
                result = dev.input.serve(lguest, self, dev, asleep)
                if result in (SERVED, DISCARDED):
                    dev.input.throttled = False
                    served += result == SERVED
                    busy = True
                elif result == BUSY:
                    dev.input.throttled = True
            if not busy:
                return served

    def close(self) -> None:
        """Stop watching every input (the Launcher is done)."""
        for dev in self.devices:
            if dev.input is not None and not dev.input.closed:
                dev.input.close()


@dataclass
class Console:
    """The console's own state: where its output goes (None: sys.stdout)."""

    out: TextIO | None = None


def write_out(out: TextIO | None, data: bytes) -> None:
    """Console bytes to ``out`` (None: standard output), unchanged where it has
    a binary side (both generations' consoles write through here)."""
    stream = out if out is not None else sys.stdout
    binary = getattr(stream, "buffer", None)
    if binary is not None:
        stream.flush()
        binary.write(data)
        binary.flush()
    else:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()


#: L:213 The console's output handler: gather the sections into one run of
# bytes and write it out, returning the count for used_len. The bytes go to the
# binary side of the stream when it has one, so whatever the Guest prints,
# escape sequences included, arrives unchanged. A failed write returns what a
# failed writev() would, -1, which as an unsigned 32-bit used_len is 0xFFFFFFFF;
# but a broken pipe (the reader went away) stops the Launcher, as SIGPIPE would.
def handle_console_output(lguest: DevLguest, iov: list[Section], dev: Device) -> int:
    """Write whatever the Guest sent to standard output; return the bytes written.

    The count becomes the DMA's used_len. If writing fails the count is what
    a failed writev() returns, -1, which as a u32 is 0xFFFFFFFF.
    """
    data = dev.read_iov(iov)
    try:
        write_out(dev.priv.out if dev.priv is not None else None, data)
    except BrokenPipeError:
        # Nobody reads the console any more (``lguest ... | head``): the real
        # Launcher dies of SIGPIPE here, and every Guest on its stdout stops.
        raise Abort(BROKEN_PIPE, EXIT_BROKEN_PIPE) from None
    except OSError:
        return 0xFFFFFFFF
    return len(data)


#: L:192 The console is the one device every Guest gets, and the simplest: no
# shared pages, and output sent to key 0, where `handle_console_output` writes
# it to standard output (or to a stream the caller chose, so several Guests can
# share a screen with their lines labelled). It is made after the devices named
# on the command line, so it is the last on the Guest's bus. Its input half is
# attached once the layout is done (`attach_console_input` in console.py).
def setup_console(devices: DeviceList, out: TextIO | None = None) -> Device:
    """Add the console: no pages, output sent to key 0, written to standard output.

    Console input (a 256-byte buffer the Guest binds at key 0, filled from
    standard input) comes later, with the Waker.
    """
    dev = devices.new_device("console", LGUEST_DEVICE_T_CONSOLE, 0, 0, None,
                             LGUEST_CONSOLE_DMA_KEY, handle_console_output)
    dev.priv = Console(out)
    devices.say(f"device {ptr(dev.mem)}: console")
    return dev
