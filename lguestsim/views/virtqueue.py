"""The virtqueue view: the rings of the 2.6.25 (virtio) generation.

Beside the DMA view of 2.6.23, this shows each virtqueue the Launcher set up
for a virtio Guest: its three indices (the Guest's available index, how far
the Launcher has read it, the Launcher's used index), the chains the Guest
has offered and the Launcher not yet taken (the Launcher's to serve), the
descriptor table with the side that owns each entry, and the last entries
of the used ring (the Guest's to collect).
"""

from __future__ import annotations

import struct

from ..launcher.device_page import VirtioDevices
from ..launcher.virtio import VRING_DESC_F_NEXT, VRING_DESC_F_WRITE
from .base import View, esc, h8, table

STATUS = ((1, "ACKNOWLEDGE"), (2, "DRIVER"), (4, "DRIVER_OK"), (0x80, "FAILED"))
VIRTIO_IDS = {1: "network", 2: "block", 3: "console"}


def offered(vq) -> list[int]:
    """Heads the Guest made available that the Launcher has not taken yet."""
    idx = vq.avail_idx()
    count = (idx - vq.last_avail_idx) & 0xFFFF
    if count > vq.num:
        return []
    return [vq.memory.read16(vq.ring.avail + 4 + 2 * ((vq.last_avail_idx + i) % vq.num))
            for i in range(count)]


def chain(vq, head: int) -> list[int]:
    """The descriptor numbers of the chain from ``head`` (at most ``num``)."""
    out, i = [], head
    while i < vq.num and len(out) < vq.num:
        out.append(i)
        _addr, _len, flags, nxt = vq.descriptor(i)
        if not flags & VRING_DESC_F_NEXT:
            break
        i = nxt
    return out


class VirtqueueView(View):
    """Every virtqueue of every virtio Guest: indices, ownership, descriptors."""

    title = "Virtqueues (2.6.25)"
    name = "virtqueues"

    def __init__(self, session, descriptors: int = 8, used: int = 4) -> None:
        super().__init__(session)
        self.descriptors = descriptors
        self.used = used

    def queue(self, dev, q: int, vq) -> str:
        heads = offered(vq)
        launchers = {i for h in heads for i in chain(vq, h)}
        rows = []
        for i in range(min(vq.num, self.descriptors)):
            addr, length, flags, nxt = vq.descriptor(i)
            kind = ("write" if flags & VRING_DESC_F_WRITE else "read") + (
                f" -> {nxt}" if flags & VRING_DESC_F_NEXT else "")
            owner = "Launcher (offered)" if i in launchers else "Guest"
            rows.append([str(i), h8(addr), str(length), esc(kind), esc(owner)])
        used_idx = vq.used_idx()
        used_rows = []
        for k in range(1, min(self.used, used_idx if used_idx else 0) + 1):
            at = vq.ring.used + 4 + 8 * ((used_idx - k) % vq.num)
            head, length = struct.unpack("<II", vq.memory.read(at, 8))
            used_rows.append([str((used_idx - k) & 0xFFFF), str(head), str(length)])
        return (f"<div>{esc(dev.name)} queue {q}: ring at {h8(vq.ring.base)}, {vq.num} entries, "
                f"irq {vq.irq}; avail idx {vq.avail_idx()}, Launcher has read to "
                f"{vq.last_avail_idx}, used idx {used_idx}; offered heads "
                f"{esc(heads or '-')}</div>"
                + table(rows, ["desc", "addr", "len", "flags", "owner"])
                + (table(used_rows, ["used idx", "head", "len written"]) if used_rows else ""))

    def body(self) -> str:
        out = []
        for run in self.session.runs:
            layout = run.layout
            devices = getattr(layout, "devices", None)
            if not isinstance(devices, VirtioDevices):
                out.append(f"<div>{esc(run.name)}: not a virtio Guest (see the DMA view)"
                           "</div>")
                continue
            for dev in devices.devices:
                status = " ".join(n for bit, n in STATUS if dev.status & bit) or "0"
                out.append(f"<div><b>{esc(run.name)}: {esc(dev.name)}</b> (virtio id "
                           f"{dev.type}, {esc(VIRTIO_IDS.get(dev.type, '?'))}), status "
                           f"{esc(status)}</div>")
                for q, vq in enumerate(dev.vqs):
                    out.append(self.queue(dev, q, vq))
        return "".join(out)
