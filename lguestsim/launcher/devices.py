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
from .report import EXIT_GUEST_DIED, LauncherError, Say, ptr, quiet, warn

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


#: L:120 the device list, and one device
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

    #: L:190 new_dev_desc: a descriptor, and any pages the device needs
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

    #: L:210 check_pointer: never trust an address from the Guest
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

    #: L:210 handle_input: serve every device whose input is ready
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


def handle_console_output(lguest: DevLguest, iov: list[Section], dev: Device) -> int:
    """Write whatever the Guest sent to standard output; return the bytes written.

    The count becomes the DMA's used_len. If writing fails the count is what
    a failed writev() returns, -1, which as a u32 is 0xFFFFFFFF.
    """
    data = dev.read_iov(iov)
    stream = dev.priv.out if dev.priv is not None and dev.priv.out is not None else sys.stdout
    try:
        binary = getattr(stream, "buffer", None)
        if binary is not None:
            stream.flush()
            binary.write(data)
            binary.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()
    except OSError:
        return 0xFFFFFFFF
    return len(data)


#: L:190 setup_console: the one device every Guest has
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
