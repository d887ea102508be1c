"""I/O views: DMA buffers and transfers, and the device descriptor page.

In lguest 2.6.23 all I/O is DMA between buffers named by keys.  A receiver
binds an array of struct lguest_dma under a key (BIND_DMA); a sender's
SEND_DMA to that key makes the Host copy the sender's sections into the first
free receive buffer, section by section, write the byte count into both
used_len fields and raise the receiver's interrupt.  The DMA view shows the
bound arrays, the transfers in the trace, and the bytes that arrived.

The device page is how a Guest learns what it has: the Launcher writes one
descriptor per device into the page just above Guest memory, and the Guest's
driver writes status bits back into it.
"""

from __future__ import annotations

from ..host.io import DMA_SIZE, Dma
from ..trace import Event
from .base import View, esc, h8, table
from .timeline import describe_event

DEVICE_TYPES = {1: "console", 2: "network", 3: "block"}
STATUS_BITS = ((1, "ACKNOWLEDGE"), (2, "DRIVER"), (4, "DRIVER_OK"), (8, "REMOVED"),
               (16, "REMOVED_ACK"), (128, "FAILED"))
STATUS_BITS_25 = ((1, "ACKNOWLEDGE"), (2, "DRIVER"), (4, "DRIVER_OK"), (0x80, "FAILED"))


def key_text(key: object) -> str:
    if isinstance(key, tuple) and len(key) == 3:
        return (f"shared memory +{key[2]:#x}" if key[0] == 1 else f"private {key[2]:#x}")
    return f"{key:#x}" if isinstance(key, int) else str(key)


def dump(data: bytes, width: int = 16) -> str:
    hexs = " ".join(f"{b:02x}" for b in data[:width])
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in data[:width])
    return f"{hexs}  |{esc(text)}|"


class DMAView(View):
    """Bound receive buffers, DMA transfers, and what the last one delivered."""

    title = "DMA"
    name = "dma"

    def __init__(self, session, last: int = 8) -> None:
        super().__init__(session)
        self.last = last

    def bound(self) -> list[list[str]]:
        rows = []
        for run in self.session.runs:
            lg = run.lg
            if lg is None:
                continue
            for info in lg.dma:
                bufs = []
                for j in range(min(info.num_dmas, 4)):
                    addr = info.dmas + j * DMA_SIZE
                    try:
                        d = Dma.unpack(run.process.read(addr, DMA_SIZE))
                    except ValueError:
                        continue
                    secs = ", ".join(f"{n}@{a:#x}" for a, n in d.sections())
                    state = f"used {d.used_len}" if d.used_len else "free"
                    bufs.append(f"[{j}] {state}: {secs}")
                rows.append([f"Guest {lg.guestid}", esc(key_text(info.key)),
                             f"{h8(info.dmas)} &times; {info.num_dmas}", str(info.next_dma),
                             str(info.interrupt), "<br>".join(esc(b) for b in bufs)])
        return rows

    def body(self) -> str:
        s = self.session
        bound = self.bound()
        out = ["<div>Receive buffers bound with BIND_DMA:</div>"]
        out.append(table(bound, ["receiver", "key", "array (guest-phys)", "next", "irq",
                                 "buffers (used_len: sections len@addr)"])
                   if bound else '<div class="dim">none</div>')
        evs = s.trace.of("dma")
        rows = []
        for e in evs[-self.last:]:
            sections = e.data.get("sections")
            if sections is None:
                sections = self.launcher_sections(e)
            secs = ", ".join(f"{n}@{a:#x}" for a, n in sections)
            rows.append([str(e.cycle), f"Guest {e.data.get('guest')}",
                         esc(key_text(e.data.get("key"))), esc(describe_event(e)), esc(secs)])
        out.append("<div>Transfers (SEND_DMA):</div>")
        out.append(table(rows, ["cycle", "sender", "key", "what", "sender's sections"])
                   if rows else '<div class="dim">none yet</div>')
        arrived = self.arrived(evs)
        if arrived:
            out.append(arrived)
        return "".join(out)

    def launcher_sections(self, ev: Event) -> list[tuple[int, int]]:
        """The sections of a DMA sent to a Launcher, read from the sender's memory."""
        run = next((r for r in self.session.runs
                    if r.lg is not None and r.lg.guestid == ev.data.get("guest")), None)
        addr = ev.data.get("dma")
        if run is None or addr is None:
            return []
        try:
            return Dma.unpack(run.process.read(addr, DMA_SIZE)).sections()
        except ValueError:
            return []

    def arrived(self, evs: list[Event]) -> str:
        """The bytes of the last Guest-to-Guest transfer, as the receiver holds them."""
        s = self.session
        last = next((e for e in reversed(evs) if isinstance(e.data.get("to"), int)
                     and e.data.get("bytes")), None)
        if last is None:
            return ""
        run = next((r for r in s.runs
                    if r.lg is not None and r.lg.guestid == last.data["to"]), None)
        if run is None:
            return ""
        for info in run.lg.dma:
            for j in range(info.num_dmas):
                addr = info.dmas + j * DMA_SIZE
                d = Dma.unpack(run.process.read(addr, DMA_SIZE))
                if d.used_len == last.data["bytes"]:
                    data = b""
                    for a, n in d.sections():
                        data += run.process.read(a, n)
                    data = data[:d.used_len]
                    return (f"<div>Arrived in Guest {run.lg.guestid}'s buffer {j} "
                            f"(used_len {d.used_len}, irq {info.interrupt} raised):</div>"
                            f"<pre>{dump(data, 48)}</pre>")
        return ""


class DevicePageView(View):
    """The device descriptor page the Launcher wrote above Guest memory."""

    title = "Device descriptor page"
    name = "devices"

    def body(self) -> str:
        s = self.session
        out = []
        for run in s.runs:
            layout = run.layout
            if layout is None:
                out.append(f"<div>{esc(run.name)}: a tiny Guest, no Launcher devices.</div>")
                continue
            devices = layout.devices
            if hasattr(devices, "descriptor_table"):
                # What 2.6.25 changed: packed virtio descriptors with virtqueues.
                rows = [[str(i), esc(f"{d['type']} ({d['name']})"), str(d["num_vq"]),
                         str(d["feature_len"]), str(d["config_len"]),
                         esc(" ".join(n for bit, n in STATUS_BITS_25 if d["status"] & bit)
                             or "0"),
                         esc(", ".join(f"irq {q['irq']} pfn {q['pfn']:#x}" for q in d["vqs"]))]
                        for i, d in enumerate(devices.descriptor_table())]
                out.append(f"<div>{esc(run.name)}: virtio descriptors at guest-physical "
                           f"{h8(devices.descs)}</div>")
                out.append(table(rows, ["#", "virtio id", "queues", "feature bytes",
                                        "config bytes", "status", "virtqueues"]))
                continue
            rows = []
            for i in range(16):
                d = devices.descriptor(i)
                if not d["type"]:
                    continue
                status = " ".join(n for bit, n in STATUS_BITS if d["status"] & bit) or "0"
                dev = next((x for x in devices.devices if x.index == i), None)
                rows.append([str(i), esc(DEVICE_TYPES.get(d["type"], d["type"])),
                             f"{d['features']:#06x}", esc(status), str(d["num_pages"]),
                             h8(d["pfn"] * 4096) if d["pfn"] else "-",
                             str(i + 1), esc(f"{dev.watch_key:#x}") if dev else ""])
            out.append(f"<div>{esc(run.name)}: descriptors at guest-physical "
                       f"{h8(devices.descs)} (the page just above its {layout.mem >> 20} MiB)"
                       "</div>")
            out.append(table(rows, ["#", "type", "features", "status (written by the Guest)",
                                    "pages", "pages at", "irq", "output key"]))
        return "".join(out)
