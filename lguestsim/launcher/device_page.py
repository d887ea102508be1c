"""The 2.6.25 device page: virtio devices described to the Guest.

In 2.6.25 the page just above Guest memory holds a run of variable-length
descriptors, packed one after another and ended by a type of 0:

* struct lguest_device_desc: u8 type (a virtio id: net 1, block 2,
  console 3), u8 num_vq, u8 feature_len, u8 config_len, u8 status;
* num_vq x struct lguest_vqconfig {u16 num, u16 irq, u32 pfn}: each
  virtqueue's size, interrupt and the page its vring starts on;
* two feature bitmaps of feature_len bytes: the Launcher's offer, then the
  Guest's acceptance;
* config_len bytes of the device's configuration (a disk's capacity, a
  network card's address).

The vrings get pages above the descriptor page, as 2.6.23's device pages
did, so the Guest's reachable memory still grows with each device.  The
Guest writes status bits into its descriptor (ACKNOWLEDGE, DRIVER,
DRIVER_OK, FAILED) and NOTIFYs the descriptor's address when it resets a
device; it NOTIFYs a vring's page when it has added buffers there.

``VirtioDevices`` is the 2.6.23 ``DeviceList`` with those differences:
the Waker and the input sources use it the same way.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .abi import PAGE_SIZE
from .devices import DeviceList, DevLguest, write_out
from .loader import map_zeroed_pages
from .report import EXIT_GUEST_DIED, LauncherError, ptr, warn
from .virtio import VIRTQUEUE_NUM, Virtqueue, VringLayout, vring_size

VIRTIO_ID_NET, VIRTIO_ID_BLOCK, VIRTIO_ID_CONSOLE = 1, 2, 3
VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER = 1, 2
VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED = 4, 0x80

DESC_HEADER = struct.Struct("<BBBBB")       # type, num_vq, feature_len, config_len, status
VQCONFIG = struct.Struct("<HHI")            # num, irq, pfn
assert (DESC_HEADER.size, VQCONFIG.size) == (5, 8)
# The 2.6.25 Launcher reserves this many pages above Guest memory for devices.
DEVICE_PAGES = 256

VqHandler = Callable[[DevLguest, Virtqueue], None]


@dataclass
class VirtioDevice:
    """One virtio device: where its descriptor is, its virtqueues, how to serve them."""

    name: str
    type: int
    desc: int                      # Guest-physical address of its descriptor
    memory: Any
    owner: VirtioDevices = field(repr=False)
    vqs: list[Virtqueue] = field(default_factory=list)
    handlers: list[VqHandler | None] = field(default_factory=list)
    input: Any = None              # an InputSource the Waker watches
    priv: Any = None
    on_reset: Callable[[], None] | None = None
    # The Launcher's own record of the layout: the Guest can write its
    # descriptor, so its sizes are never read back from there.
    feature_len: int = 0
    config_len: int = 0

    # The 2.6.23 Device's names, for the Waker and views that share them.
    @property
    def watching(self) -> bool:
        return self.input is not None and not self.input.closed

    def header(self) -> tuple[int, int, int, int, int]:
        return DESC_HEADER.unpack(self.memory.read(self.desc, DESC_HEADER.size))

    @property
    def status(self) -> int:
        return self.header()[4]

    def features_at(self) -> int:
        """Where the first feature bitmap (the Launcher's offer) starts."""
        return self.desc + DESC_HEADER.size + VQCONFIG.size * len(self.vqs)

    def accepted(self, bit: int) -> bool:
        """Did the Guest accept feature ``bit`` (its half of the bitmap)?"""
        if bit // 8 >= self.feature_len:
            return False
        byte = self.memory.read8(self.features_at() + self.feature_len + bit // 8)
        return bool(byte & (1 << (bit % 8)))


#: L:225 2.6.25's device list.  The descriptor page is the same page just above
# Guest memory, but it now holds packed, variable-length descriptors; each
# virtqueue gets its vring's pages at the current top, and its own interrupt,
# handed out in order from 1 (0 is the timer).  A device's descriptor cannot
# grow once the next one is written after it, so its virtqueues come first,
# then its feature bits, then its configuration, as the C Launcher asserts.
@dataclass
class VirtioDevices(DeviceList):
    next_irq: int = 1
    end: int = field(init=False, default=0)      # first free byte of the descriptor page
    limit: int = 0                               # mem + DEVICE_PAGES pages

    def __post_init__(self) -> None:
        super().__post_init__()
        self.end = self.descs
        self.limit = self.mem + DEVICE_PAGES * PAGE_SIZE

    def get_pages(self, num: int) -> int:
        """``num`` zeroed pages at the top of the device area."""
        if self.top + num * PAGE_SIZE > self.limit:
            raise LauncherError("Not enough memory for devices")
        addr = map_zeroed_pages(self.memory, self.top, num)
        self.top += num * PAGE_SIZE
        return addr

    def new_virtio_device(self, name: str, type_: int) -> VirtioDevice:
        """Write an empty descriptor of ``type_`` after the last one."""
        if self.end + DESC_HEADER.size + 1 > self.descs + PAGE_SIZE:
            raise LauncherError("Too many devices")
        self.memory.write(self.end, DESC_HEADER.pack(type_, 0, 0, 0, 0))
        dev = VirtioDevice(name, type_, self.end, self.memory, self)
        self.end += DESC_HEADER.size
        self.devices.append(dev)
        return dev

    def _grow(self, dev: VirtioDevice, data: bytes) -> None:
        if dev is not self.devices[-1]:
            raise LauncherError(f"{dev.name}: only the last device's descriptor can grow")
        if self.end + len(data) + 1 > self.descs + PAGE_SIZE:
            raise LauncherError("Too many devices")
        self.memory.write(self.end, data)
        self.end += len(data)

    def add_virtqueue(self, dev: VirtioDevice, handler: VqHandler | None,
                      num: int = VIRTQUEUE_NUM) -> Virtqueue:
        """A vring of ``num`` entries for ``dev``, with the next interrupt."""
        if dev.feature_len or dev.config_len:
            raise LauncherError(f"{dev.name}: virtqueues must come before features and config")
        pages = (vring_size(num) + PAGE_SIZE - 1) // PAGE_SIZE
        base = self.get_pages(pages)
        irq = self.next_irq
        self.next_irq += 1
        vq = Virtqueue(self.memory, VringLayout(base, num), irq, self.check_pointer)
        self._grow(dev, VQCONFIG.pack(num, irq, base // PAGE_SIZE))
        self.memory.write8(dev.desc + 1, len(dev.vqs) + 1)
        dev.vqs.append(vq)
        dev.handlers.append(handler)
        return vq

    def add_feature(self, dev: VirtioDevice, bit: int) -> None:
        """Offer feature ``bit`` (the first half of the bitmap)."""
        if dev.config_len:
            raise LauncherError(f"{dev.name}: features must come before config")
        if bit // 8 >= dev.feature_len:
            grow = bit // 8 + 1 - dev.feature_len
            # Both halves grow: shift nothing, since nothing follows yet.
            self._grow(dev, bytes(2 * grow))
            dev.feature_len += grow
            self.memory.write8(dev.desc + 2, dev.feature_len)
        at = dev.features_at() + bit // 8
        self.memory.write8(at, self.memory.read8(at) | 1 << (bit % 8))

    def set_config(self, dev: VirtioDevice, config: bytes) -> None:
        """The device's configuration bytes, after the feature bitmaps."""
        if dev.config_len:
            raise LauncherError(f"{dev.name}: config already set")
        self._grow(dev, config)
        dev.config_len = len(config)
        self.memory.write8(dev.desc + 3, len(config))

    def config_at(self, dev: VirtioDevice) -> int:
        return dev.features_at() + 2 * dev.feature_len

    def descriptor_table(self) -> list[dict[str, Any]]:
        """Every descriptor as the Guest sees it now (for the views and tests)."""
        out = []
        for dev in self.devices:
            type_, num_vq, feature_len, config_len, status = dev.header()
            out.append({"name": dev.name, "type": type_, "num_vq": num_vq,
                        "feature_len": feature_len, "config_len": config_len,
                        "status": status,
                        "vqs": [{"num": vq.num, "irq": vq.irq, "pfn": vq.ring.base // PAGE_SIZE}
                                for vq in dev.vqs]})
        return out

    #: L:229 A NOTIFY's address, as the Launcher's handle_output() sorts it.  A
    # device descriptor's address means its status changed; an address in a
    # vring's first page means "I added buffers there", which is passed to the
    # handler of that virtqueue (unless the device has not even been
    # acknowledged yet: that is only warned about).  Anything else below the
    # top of Guest RAM is the early console: a NUL-terminated string, printed
    # as it is.  Any other address is the Guest's mistake, and ends it.
    def handle_notify(self, lguest: DevLguest, addr: int) -> None:
        for dev in self.devices:
            if addr == dev.desc:
                self.update_device_status(dev)
                return
            for vq, handler in zip(dev.vqs, dev.handlers, strict=True):
                if vq.ring.base // PAGE_SIZE != addr // PAGE_SIZE:
                    continue
                if dev.status == 0:
                    warn(f"{dev.name} gave early output")
                    return
                if handler is not None:
                    handler(lguest, vq)
                return
        if addr >= self.mem:
            raise LauncherError(f"Bad NOTIFY {addr:#x}", EXIT_GUEST_DIED)
        self.early_console(addr)

    def early_console(self, addr: int) -> None:
        raw = self.memory.read(addr, min(self.mem - addr, 256))
        console = next((d for d in self.devices if d.name == "console"), None)
        write_out(console.priv.out if console is not None and console.priv else None,
                  raw.split(b"\0", 1)[0])

    #: L:232 A status change.  Status 0 is a reset: the Launcher zeroes the
    # device's vrings, forgets how far it had read them, and clears the Guest's
    # half of the feature bits, so a rebooted or reloaded driver starts clean.
    # FAILED is only reported.
    def update_device_status(self, dev: VirtioDevice) -> None:
        status = dev.status
        if status == 0:
            self.say(f"Resetting device {dev.name}")
            for vq in dev.vqs:
                self.memory.write(vq.ring.base, bytes(vq.ring.size))
                vq.reset()
            self.memory.write(dev.features_at() + dev.feature_len, bytes(dev.feature_len))
            if dev.on_reset is not None:
                dev.on_reset()
        elif status & VIRTIO_CONFIG_S_FAILED:
            warn(f"Device {dev.name} configuration FAILED")
        else:
            self.say(f"Device {dev.name} status {status:#x}")

    def trigger_vq_irq(self, lguest: DevLguest, vq: Virtqueue) -> None:
        """Raise the virtqueue's interrupt, unless the Guest asked for quiet."""
        if vq.wants_interrupt():
            self.trigger_irq(lguest, vq.irq)

    def describe(self) -> list[str]:
        return [f"device {ptr(d.desc)}: {d.name}" for d in self.devices]
