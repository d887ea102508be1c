"""The shipped Guest's lguest bus and drivers: console input, block, network.

The Guests here run the committed image on the real Host, laid out by the
real Launcher (``lay_out_guest``), but served by a small Launcher loop of this
file's own (``Guest.pump``), written from ABI.md section D and 2.6.23's
Launcher: console output and input at key 0, a block device served from a
bytearray, a network page shared between Guests (``--sharenet``) with an
optional Launcher-side peer in slot 0 (the tun device's role).

Several Guests share the one simulated CPU.  A Guest that halts must not
make the clock jump to its timer while another Guest has work: the Host
gives the CPU up first (read() returns EAGAIN), as a uniprocessor Host
would, and the loop here (``run_all``) reads the next Guest.
"""

from __future__ import annotations

import errno
import struct

import pytest

from lguestsim import guest
from lguestsim.host import HOST_AREA, Host
from lguestsim.host.lg import LD_BLOCKED
from lguestsim.launcher.abi import (
    DEVICE_DESC,
    LGUEST_DEVICE_F_RANDOMNESS,
    LGUEST_DEVICE_T_BLOCK,
    LGUEST_DEVICE_T_NET,
    LGUEST_NET_F_NOCSUM,
    LHREQ_GETDMA,
    LHREQ_INITIALIZE,
    LHREQ_IRQ,
    PAGE_SIZE,
)
from lguestsim.launcher.main import lay_out_guest
from lguestsim.launcher.memory import GuestMemory
from lguestsim.machine import Machine

MIB = 1 << 20
MEM = 16 * MIB
IMAGE = guest.ELF_IMAGE.read_bytes()

# The Launcher-side peer's address (slot 0), and the Guests' (02:00:<id>:00:00).
LAUNCHER_MAC = bytes.fromhex("020000aa0000")
BROADCAST = b"\xff" * 6


def guest_mac(guestid: int) -> bytes:
    return bytes([2, 0, guestid & 0xFF, guestid >> 8, 0, 0])


def ping_frame(dest: bytes, src: bytes, op: int, seq: int, stamp: int = 0) -> bytes:
    """The Guest's echo protocol (net.c): 60 bytes, EtherType 0x88B5."""
    text = b"lguestsim ping".ljust(38, b"\0")
    return dest + src + struct.pack(">HBBH", 0x88B5, op, 0, seq) + struct.pack("<I", stamp) + text


def new_host(guests: int = 1) -> Host:
    return Host(Machine(HOST_AREA + guests * (MEM + 8 * PAGE_SIZE) + MIB))


class Guest:
    """One Guest and the small Launcher that serves it."""

    def __init__(self, host: Host, cmdline=(), disk: bytearray | None = None,
                 net=None, slot: int = 1, launcher_peer: bool = False,
                 extra_types=(), block_error: bool = False) -> None:
        self.host = host
        self.out = bytearray()
        self.input = bytearray()
        self.eof = False               # say "input ended" once the input is used up
        self.eof_sent = False
        self.chunk = 256
        self.disk = disk
        self.block_error = block_error
        self.block_requests: list[tuple[int, int, int]] = []   # type, sector, bytes
        self.block_sent: list[int] = []                          # bytes in the DMA sent
        self.frames: list[bytes] = []  # what the Guest sent to the Launcher-side peer
        self.reason: str | None = None
        size = MEM + 8 * PAGE_SIZE
        self.process = host.new_process(size)
        self.memory = GuestMemory(self.process, size)
        layout = lay_out_guest(self.memory, MEM, IMAGE, "guest.elf", cmdline=list(cmdline))
        devices = layout.devices
        self.devices = devices
        self.block_page = self.net_page = None
        if disk is not None:
            index = devices.new_dev_desc(LGUEST_DEVICE_T_BLOCK, LGUEST_DEVICE_F_RANDOMNESS, 1)
            self.block_page = devices.descriptor(index)["pfn"] * PAGE_SIZE
            self.memory.write32(self.block_page + 16, len(disk) // 512)     # num_sectors
        if net is not None or launcher_peer:
            # The network page: shared memory, or (tun-like) the Launcher's own.
            self.net_page = devices.top
            if net is not None:
                self.process.map_shared(self.net_page, net)
            else:
                self.memory.zero(self.net_page, PAGE_SIZE)
            if launcher_peer:
                self.memory.write(self.net_page, bytes([LAUNCHER_MAC[0] | 1]) + LAUNCHER_MAC[1:])
            self.slot = slot
            self.add_desc(LGUEST_DEVICE_T_NET, slot | LGUEST_NET_F_NOCSUM, 1, self.net_page)
            devices.top += PAGE_SIZE
        for t in extra_types:
            self.add_desc(t, 0, 0, 0)
        self.dev = host.open(self.process)
        assert self.dev.write(struct.pack("<5I", LHREQ_INITIALIZE, devices.top // PAGE_SIZE,
                                          layout.pgdir, layout.kernel.start,
                                          layout.kernel.page_offset)) == 16
        self.lg = self.dev.lg

    def add_desc(self, type_: int, features: int, num_pages: int, addr: int) -> None:
        for i in range(16):
            at = self.devices.descs + 12 * i
            if self.memory.read16(at) == 0:
                self.memory.write(at, DEVICE_DESC.pack(type_, features, 0, num_pages,
                                                       addr // PAGE_SIZE))
                return
        raise AssertionError("no free descriptor")

    # -- what the Guest hands us
    def sections(self, dma: int) -> list[tuple[int, int]]:
        addrs = struct.unpack("<16I", self.memory.read(dma + 4, 64))
        lens = struct.unpack("<16H", self.memory.read(dma + 68, 32))
        out = []
        for a, n in zip(addrs, lens, strict=True):
            if not n:
                break
            out.append((a, n))
        return out

    def gather(self, dma: int) -> bytes:
        return b"".join(self.memory.read(a, n) for a, n in self.sections(dma))

    def getdma(self, key: int) -> int | None:
        try:
            return self.dev.write(struct.pack("<2I", LHREQ_GETDMA, key))
        except OSError as err:
            assert err.errno == errno.ENOENT
            return None

    def irq(self, irq: int) -> None:
        self.dev.write(struct.pack("<2I", LHREQ_IRQ, irq))

    def descriptor(self, index: int) -> dict[str, int]:
        return self.devices.descriptor(index)

    # -- serving it
    def serve_block(self, dma: int) -> None:
        page = self.block_page
        type_, sector, nbytes = struct.unpack("<iII", self.memory.read(page, 12))
        self.block_requests.append((type_, sector, nbytes))
        self.block_sent.append(sum(n for _, n in self.sections(dma)))
        reply = self.getdma(page)
        assert reply is not None, "the Guest bound no reply buffer"
        irq = self.memory.read32(reply)
        off = sector * 512
        if type_:
            data = self.gather(dma)
            assert off + len(data) <= len(self.disk)
            self.disk[off:off + len(data)] = data
            length = len(data)
            self.memory.write32(reply, 0)
        else:
            length = 0
            for a, n in self.sections(reply):
                chunk = bytes(self.disk[off + length:off + length + n])
                self.memory.write(a, chunk)
                length += len(chunk)
            self.memory.write32(reply, length)
        result = 2 if self.block_error else 1 + (nbytes != length)
        self.memory.write32(page + 12, result)
        self.memory.write32(dma, 0)
        self.irq(irq)

    def feed_console(self) -> bool:
        """Put waiting input (or the end of it) into the Guest's buffer."""
        if not self.input and not (self.eof and not self.eof_sent):
            return False
        dma = self.getdma(0)
        if dma is None:
            return False       # the buffer is still full: keep the input
        irq = self.memory.read32(dma)
        (addr, room), = self.sections(dma)
        data = bytes(self.input[:min(room, self.chunk)])
        del self.input[:len(data)]
        self.memory.write(addr, data)
        self.memory.write32(dma, len(data))
        if not data:
            self.eof_sent = True
        self.irq(irq)
        return True

    def pump(self) -> str:
        """One read() of /dev/lguest, and whatever it asks of us.

        Returns "dma", "idle" (halted, or giving the CPU up) or "dead"."""
        if self.reason is not None:
            return "dead"
        try:
            got = self.dev.read(8)
        except OSError as err:
            if err.errno == errno.ENOENT:
                self.reason = self.dev.read(1024).rstrip(b"\0").decode()
                return "dead"
            assert err.errno == errno.EAGAIN, err
            self.feed_console()
            return "idle"
        dma, key = struct.unpack("<II", got)
        if key == 0:
            data = self.gather(dma)
            self.out += data
            self.memory.write32(dma, len(data))
        elif key == self.block_page:
            self.serve_block(dma)
        elif self.net_page is not None and key == self.net_page:
            data = self.gather(dma)
            self.frames.append(data)
            self.memory.write32(dma, len(data))
        else:
            raise AssertionError(f"DMA to an unknown key {key:#x}")
        return "dma"

    @property
    def console(self) -> str:
        return self.out.decode()

    def run_until(self, done, limit: int = 20000) -> None:
        for _ in range(limit):
            if done():
                return
            if self.pump() == "dead":
                assert done(), f"the Guest died ({self.reason}):\n{self.console}"
                return
        raise AssertionError(f"gave up waiting:\n{self.console}")

    def run_to_death(self) -> str:
        self.run_until(lambda: self.reason is not None)
        return self.reason


def run_all(guests, done, limit: int = 50000) -> None:
    """Round robin: each Guest gets one read() in turn until done().

    A round where every read() comes back idle is normal (each Guest halted
    and gave the CPU to another that had an interrupt waiting); many in a
    row mean that every Guest sleeps and nothing will wake them."""
    idle_rounds = 0
    for _ in range(limit):
        if done():
            return
        states = [g.pump() for g in guests]
        idle_rounds = idle_rounds + 1 if all(s != "dma" for s in states) else 0
        if idle_rounds > 100:
            raise AssertionError("every Guest is asleep:\n" +
                                 "\n----\n".join(g.console for g in guests))
    raise AssertionError("gave up")


def after(text: str, marker: str) -> str:
    assert marker in text, text
    return text[text.index(marker):]


# -- the bus

def test_bus_writes_the_status_bits_and_gives_irq_index_plus_one():
    host = new_host()
    g = Guest(host, disk=bytearray(64 * 512), launcher_peer=True, extra_types=[9])
    g.eof = True
    assert g.run_to_death() == "CRASH: Power down"
    out = g.console
    # console first (lay_out_guest), then block, network, the unknown type
    assert "lguest bus: device 0 is a console device, irq 1, driver lguestcons" in out
    assert "lguest bus: device 1 is a block device, irq 2, driver lguestblk" in out
    assert "lguest bus: device 2 is a network device, irq 3, driver lguestnet" in out
    assert "lguest bus: device 3 is a unknown device, irq 4, driver (none)" in out
    ack, drv, ok = 1, 2, 4
    assert [g.descriptor(i)["status"] for i in range(4)] == [ack | drv | ok] * 3 + [ack]
    assert g.descriptor(4)["status"] == 0
    # Each driver bound its buffers with its device's interrupt: the console
    # one buffer at key 0, the disk one reply buffer at its page, the network
    # 8 receive buffers at page + 4 * slot, which it unbound at power-off.
    binds = [e.args for e in host.trace.of("hypercall") if e.name == "BIND_DMA"]
    keys = [key for key, _dmas, _numirq in binds]
    assert keys == [0, g.block_page, g.net_page + 4, g.net_page + 4]
    assert [numirq for _key, _dmas, numirq in binds] == [
        1 << 8 | 1, 1 << 8 | 2, 8 << 8 | 3, 0]
    assert {(info.key[2], info.num_dmas, info.interrupt) for info in g.lg.dma} == {
        (0, 1, 1), (g.block_page, 1, 2)}


def test_a_probe_that_fails_leaves_driver_without_driver_ok():
    host = new_host()
    # A network slot that does not fit in its page: the driver refuses it.
    g = Guest(host, launcher_peer=True, slot=4000)
    g.eof = True
    assert g.run_to_death() == "CRASH: Power down"
    assert "lguestnet: slot 4000 does not fit in 1 pages" in g.console
    assert g.descriptor(1)["status"] == 1 | 2


def test_a_network_probe_the_host_refuses_leaves_no_trace():
    host = new_host()
    net = host.new_shared_memory(PAGE_SIZE)
    bind = host.io.bind_dma

    def refuse_receive_buffers(lg, ukey, dmas, numdmas, interrupt):
        return 0 if numdmas == 8 and interrupt else bind(lg, ukey, dmas, numdmas, interrupt)

    host.io.bind_dma = refuse_receive_buffers
    g = Guest(host, cmdline=["shell"], net=net, slot=2)
    g.input += b"net\nping broadcast\nquit\n"
    assert g.run_to_death() == "CRASH: Power down"
    out = g.console
    assert "lguestnet: the Host refused our receive buffers" in out
    assert out.count("there is no network device") == 2     # net and ping know
    assert net_slot(g, 2) == bytes(6)                        # no MAC left for others
    index = next(i for i in range(16) if g.descriptor(i)["type"] == LGUEST_DEVICE_T_NET)
    assert not g.descriptor(index)["status"] & 4             # no DRIVER_OK
    irq = index + 1
    blocked = g.memory.read32(g.lg.lguest_data + LD_BLOCKED)
    assert blocked & (1 << irq), "its interrupt line is masked again"


# -- the console

def test_console_lines_reach_the_shell_and_its_answers_come_back():
    host = new_host()
    g = Guest(host, cmdline=["shell"])
    g.input += b"help\r\nbogus  words\n\ndevices\nquit\n"
    g.chunk = 7                        # a few bytes at a time, as a slow pipe
    assert g.run_to_death() == "CRASH: Power down"
    out = g.console
    assert "user: my arguments: shell" in out
    shell = after(out, "user: reading commands from the console")
    assert "guest> help\n  help " in shell
    assert "  ping [MAC|broadcast] [COUNT]" in shell
    assert "guest> bogus  words\nbogus: no such command (try help)\n" in shell
    assert "guest> \nguest> devices\n" in shell
    assert ("device 0: console, irq 1, features 0x0, 0 pages, status 0x7 "
            "ACKNOWLEDGE DRIVER DRIVER_OK\n") in shell
    assert "guest> quit\nuser: goodbye\ninit: exit(0)" in shell
    assert out.endswith("Goodbye from the Guest: powering off.\n")


def test_backspace_and_the_end_of_the_input():
    host = new_host()
    g = Guest(host, cmdline=["shell"])
    g.input += b"hemp\x7f\x7flp\nnet"     # "help", then a line the input cuts short
    g.eof = True
    assert g.run_to_death() == "CRASH: Power down"
    shell = after(g.console, "user: reading commands")
    assert "guest> hemp\b \b\b \blp\n  help" in shell
    assert "guest> netthere is no network device\n" in shell
    assert "user: the console input has ended\nuser: goodbye" in shell


def test_without_shell_the_boot_does_not_read_the_console():
    host = new_host()
    g = Guest(host, cmdline=["hello"])
    g.input += b"quit\n"
    assert g.run_to_death() == "CRASH: Power down"
    assert "guest>" not in g.console
    assert "user: my arguments: hello\n" in g.console


# -- the block device

def disk_with(text: bytes, sector: int, sectors: int = 128) -> bytearray:
    disk = bytearray(sectors * 512)
    disk[sector * 512:sector * 512 + len(text)] = text
    return disk


def test_block_read_and_write_through_the_shell():
    host = new_host()
    disk = disk_with(b"Sector one says hello", 1)
    g = Guest(host, cmdline=["shell"], disk=disk)
    g.input += b"read 1\nwrite 5 written by the Guest\nread 5\nread 128\nquit\n"
    assert g.run_to_death() == "CRASH: Power down"
    out = g.console
    assert "lgba: 128 sectors (64 KiB), key " in out
    assert ("guest> read 1\nsector 1 of lgba:\n"
            "000  53 65 63 74 6f 72 20 6f  6e 65 20 73 61 79 73 20  |Sector one says |\n"
            "010  68 65 6c 6c 6f 00 00 00  00 00 00 00 00 00 00 00  |hello...........|\n"
            "020  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
            "*\n"
            "1f0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
            "guest> write 5") in out
    assert "wrote 20 bytes of text (and zeros to 512) to sector 5" in out
    assert disk[5 * 512:6 * 512] == b"written by the Guest".ljust(512, b"\0")
    assert "|written by the G|" in after(out, "sector 5 of lgba:")
    assert "sector 128 is past the end of the disk (128 sectors)" in out
    # The protocol: type, sector, bytes for each request, one at a time.
    assert g.block_requests == [(0, 1, 512), (1, 5, 512), (0, 5, 512)]
    # A read is an empty "ping" (the data comes back in the reply buffer);
    # a write carries its data.
    assert g.block_sent == [0, 512, 0]


def test_block_errors_are_reported():
    host = new_host()
    g = Guest(host, cmdline=["shell"], disk=disk_with(b"x", 0), block_error=True)
    g.input += b"read 0\nquit\n"
    assert g.run_to_death() == "CRASH: Power down"
    assert "read failed: error -5" in g.console


def test_the_boot_shows_sector_0_when_there_is_a_disk():
    host = new_host()
    g = Guest(host, disk=disk_with(b"BOOT SECTOR", 0))
    assert g.run_to_death() == "CRASH: Power down"
    out = g.console
    demo = after(out, "guest> devices\n")
    assert "device 1: block, irq 2, features 0x8000, 1 page at pfn" in demo
    assert "guest> read 0\nsector 0 of lgba:\n000  42 4f 4f 54" in demo
    assert "|BOOT SECTOR.....|" in demo
    assert demo.index("user: goodbye") > demo.index("BOOT SECTOR")


# -- the network

def test_two_guests_ping_each_other_over_the_shared_page():
    host = new_host(2)
    net = host.new_shared_memory(PAGE_SIZE)
    b = Guest(host, cmdline=["shell"], net=net, slot=1)
    a = Guest(host, cmdline=["shell"], net=net, slot=0)
    run_all([a, b], lambda: "guest> " in a.console and "guest> " in b.console)
    a_mac, b_mac = guest_mac(a.lg.guestid), guest_mac(b.lg.guestid)
    a.input += f"net\nping broadcast\nping {b_mac.hex(':')} 2\nquit\n".encode()
    run_all([a, b], lambda: a.reason is not None)
    assert a.reason == "CRASH: Power down"
    out = a.console
    assert f"slot 0: {a_mac.hex(':')} (this Guest)\nslot 1: {b_mac.hex(':')}\n" in out
    replies = [line for line in out.splitlines() if line.startswith("60 bytes from")]
    assert [r.split(" time=")[0] for r in replies] == [
        f"60 bytes from {b_mac.hex(':')}: seq=1",
        f"60 bytes from {b_mac.hex(':')}: seq=1",
        f"60 bytes from {b_mac.hex(':')}: seq=2",
    ]
    assert "did not answer" not in out
    # B's kernel answered by itself, while its shell waited for input.
    assert b.console.count(f"lguestnet: echo request from {a_mac.hex(':')}") == 3
    assert ("guest> " + f"lguestnet: echo request from {a_mac.hex(':')} (seq 1): answered\n"
            in b.console)
    assert b.console.endswith("(seq 2): answered\n")
    # A left the network when it powered off: its slot is free again.
    assert net_slot(b, 0) == bytes(6)
    assert net_slot(b, 1) == b_mac
    # Every frame went Guest to Guest: none reached a Launcher.
    assert a.frames == b.frames == []
    dmas = [e for e in host.trace.of("dma") if e.data.get("to") not in (None, "launcher")]
    assert len(dmas) == 6 and all(e.bytes == 60 for e in dmas)


def net_slot(g: Guest, slot: int) -> bytes:
    return g.memory.read(g.net_page + 6 * slot, 6)


def test_a_frame_from_the_launcher_side_peer_is_answered():
    host = new_host()
    g = Guest(host, cmdline=["shell"], launcher_peer=True)
    g.run_until(lambda: "guest> " in g.console)
    me = guest_mac(g.lg.guestid)
    assert net_slot(g, 1) == me and net_slot(g, 0)[0] == LAUNCHER_MAC[0] | 1
    # The tun side: GETDMA at the Guest's key (page + 4 * its slot), fill, interrupt.
    key = g.net_page + 4 * 1
    dma = g.getdma(key)
    irq = g.memory.read32(dma)
    assert irq == 2
    frame = ping_frame(me, LAUNCHER_MAC, 1, 7, stamp=0x1234)
    pieces = g.sections(dma)
    assert sum(n for _, n in pieces) == 1514
    g.memory.write(pieces[0][0], frame)
    g.memory.write32(dma, len(frame))
    g.irq(irq)
    g.run_until(lambda: "answered" in g.console)
    g.run_until(lambda: g.pump() == "idle")          # back to waiting for input
    # The reply came to the Launcher (slot 0, promiscuous) as a DMA to page + 0.
    assert g.frames == [ping_frame(LAUNCHER_MAC, me, 2, 7, stamp=0x1234)]
    assert "guest> lguestnet: echo request from 02:00:00:aa:00:00 (seq 7): answered\n" in g.console
    # and the receive buffer went back to the Host, free again.
    assert g.memory.read32(dma) == 0 and g.getdma(key) == dma


def test_receive_buffers_are_eight_of_1514_bytes_some_across_a_page():
    host = new_host()
    g = Guest(host, cmdline=["shell"], launcher_peer=True)
    g.run_until(lambda: "guest> " in g.console)
    (info,) = [i for i in g.lg.dma if i.num_dmas != 1]
    assert (info.num_dmas, info.interrupt) == (8, 2)
    layouts = [g.sections(info.dmas + 100 * i) for i in range(8)]
    assert all(sum(n for _, n in s) == 1514 for s in layouts)
    assert any(len(s) == 2 for s in layouts)
    assert all(a % PAGE_SIZE + n <= PAGE_SIZE for s in layouts for a, n in s)


def test_ping_with_no_answer_times_out_and_nobody_is_unreachable():
    host = new_host()
    g = Guest(host, cmdline=["shell"], launcher_peer=True)
    g.input += b"ping broadcast\nping 02:00:09:00:00:00\nping 02:00:00:aa:00:00\nquit\n"
    assert g.run_to_death() == "CRASH: Power down"
    out = g.console
    # The Launcher's slot is promiscuous: it gets every frame, and does not answer.
    assert "seq=1: 1 of 1 peer did not answer within 10 ms" in out
    assert len(g.frames) == 3
    assert g.frames[0][:6] == BROADCAST and g.frames[1][:6] == bytes.fromhex("020009000000")


def test_nobody_to_send_to():
    host = new_host()
    net = host.new_shared_memory(PAGE_SIZE)
    g = Guest(host, cmdline=["shell"], net=net, slot=3)
    g.input += b"ping\nping 02:00:01:00:00:00\nnet\nquit\n"
    assert g.run_to_death() == "CRASH: Power down"
    out = g.console
    assert out.count("ping: no one else on the network has that address") == 2
    assert "slot 3: 02:00:00:00:00:00 (this Guest)\n" in out


def test_a_promiscuous_guest_overhears_the_others():
    host = new_host(3)
    net = host.new_shared_memory(PAGE_SIZE)
    b = Guest(host, cmdline=["shell"], net=net, slot=1)
    c = Guest(host, cmdline=["shell"], net=net, slot=2)
    a = Guest(host, cmdline=["shell"], net=net, slot=0)
    run_all([a, b, c], lambda: all("guest> " in g.console for g in (a, b, c)))
    c.input += b"promisc on\nnet\n"
    run_all([a, b, c], lambda: c.console.endswith("promiscuous\nguest> "))
    a_mac, b_mac, c_mac = (guest_mac(g.lg.guestid) for g in (a, b, c))
    assert f"slot 2: {c_mac.hex(':')} (this Guest) promiscuous" in c.console
    a.input += f"ping {b_mac.hex(':')}\nquit\n".encode()
    run_all([a, b, c], lambda: a.reason is not None)
    assert f"60 bytes from {b_mac.hex(':')}: seq=1" in a.console
    # C saw the request go to B and the reply come back, and answered neither.
    assert f"lguestnet: overheard 60 bytes from {a_mac.hex(':')} to {b_mac.hex(':')}" in c.console
    assert f"lguestnet: overheard 60 bytes from {b_mac.hex(':')} to {a_mac.hex(':')}" in c.console
    assert "echo request" not in c.console


def test_the_boot_pings_when_there_is_a_network():
    host = new_host(2)
    net = host.new_shared_memory(PAGE_SIZE)
    b = Guest(host, cmdline=["shell"], net=net, slot=1)
    b.run_until(lambda: "guest> " in b.console)
    a = Guest(host, net=net, slot=0)
    run_all([a, b], lambda: a.reason is not None)
    demo = after(a.console, "guest> devices\n")
    assert "device 1: network, irq 2, features 0x4000, 1 page at pfn" in demo
    assert "guest> net\nslot 0:" in demo
    assert "guest> ping broadcast\n60 bytes from 02:00:00:00:00:00: seq=1 time=" in demo
    assert "lguestnet: left the network (slot 0 cleared)" in demo
    assert host.machine.cpu.instructions < 1_500_000


def test_device_boot_stays_small():
    host = new_host()
    g = Guest(host, disk=disk_with(b"x", 0), launcher_peer=True)
    assert g.run_to_death() == "CRASH: Power down"
    assert host.machine.cpu.instructions < 1_000_000


@pytest.mark.parametrize("image", [guest.BZIMAGE])
def test_bzimage_is_the_same_kernel(image):
    # The images are one kernel: the bzImage carries the same drivers.
    from lguestsim.guest.build import unpack_bzimage
    flat = unpack_bzimage(image.read_bytes())
    assert b"lguestnet" in flat and b"lguestblk" in flat and b"lguestcons" in flat
