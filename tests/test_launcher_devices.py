"""The Launcher's devices and the Waker, on the real Host.

Two kinds of Guest run here. Tiny Guests, a few lines of assembly linked into
an ELF with the "GenuineLguest" marker, exercise the Launcher's side of each
protocol on their own -- they send exactly the requests a test wants, good or
hostile, and need nothing from the teaching Guest. The shipped teaching Guest,
when its drivers are built in, shows the same devices end to end: its shell
reads the console, its block driver reads and writes the disk, its network
driver pings another Guest and answers the Launcher-side peer.

The acceptance checks of issue 4 for the Launcher are here: (1) --block, (2)
console input through a pipe, (3) two Guests exchanging frames and the
Launcher-side peer, (5) hostile I/O: block requests past the end, a Guest that
never binds buffers.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import launcher_images as li
import pytest
from asm import assemble_with_symbols
from guestenv import DATA, PRELUDE

from lguestsim.launcher import main
from lguestsim.launcher.abi import NET_PROMISC
from lguestsim.launcher.main import run_many
from lguestsim.launcher.net import LAUNCHER_MAC, NetPeer
from lguestsim.launcher.report import EXIT_ASLEEP, EXIT_INTERRUPTED

ROOT = Path(__file__).resolve().parent.parent
PO = 0xC0000000
LOAD = 0x100000
MIB = 1 << 20
PAGE = 4096
MEM = 16 * MIB
SHIPPED = main.SHIPPED_GUEST


def lguest(*args: str, stdin: bytes = b"", timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m lguestsim ARGS < stdin``."""
    return subprocess.run([sys.executable, "-m", "lguestsim", *args], cwd=ROOT, input=stdin,
                          capture_output=True, timeout=timeout)




# -- tiny Guests ------------------------------------------------------------------

# What most tiny Guests start with: a stack, LGUEST_INIT, and an interrupt
# handler for irq IRQ (vector 32 + IRQ) that counts interrupts in "irqs".
# WAIT sleeps until the count moves: it looks with interrupts off, and halts
# (the Host wakes a halted Guest for an interrupt and turns them on).
COMMON = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        movl $handler, %ebx
        movl %ebx, %ecx
        andl $0xffff, %ebx
        orl $0x610000, %ebx
        andl $0xffff0000, %ecx
        orl $0x8e00, %ecx
        movl $6, %eax
        movl $(32 + IRQ), %edx
        int $0x1f
        jmp main

handler:
        incl irqs
        movl $0x200, lguest_data
        iret

.macro WAIT
1:      movl $0, lguest_data
        movl irqs, %eax
        cmpl %eax, seen
        jne 2f
        HCALL 10
        jmp 1b
2:      incl seen
        movl $0x200, lguest_data
.endm

.macro SAY dma
        HCALL 13, 0, \\dma-PO
.endm
"""

TAIL = """
        .p2align 2
irqs:   .long 0
seen:   .long 0
power:  .asciz "Power down"
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""


def dma(label: str, *sections: tuple[str, int | str]) -> str:
    """A struct lguest_dma at ``label`` with (address expression, length) sections."""
    addrs = [a for a, _ in sections] + ["0"] * (16 - len(sections))
    lens = [str(n) for _, n in sections] + ["0"] * (16 - len(sections))
    return (f"        .p2align 2\n{label}: .long 0\n        .long {', '.join(addrs)}\n"
            f"        .short {', '.join(lens)}\n")


def tiny_elf(tmp_path: Path, source: str, irq: int = 1, **consts: int) -> tuple[Path, dict]:
    """Assemble a tiny Guest and write it as an ELF kernel image; returns (path, symbols)."""
    sets = "".join(f".set {k}, {v:#x}\n" for k, v in {"IRQ": irq, **consts}.items())
    text = PRELUDE + sets + '.ascii "GenuineLguest"\n' + COMMON + "main:\n" + source + TAIL + DATA
    code, symbols = assemble_with_symbols(text, PO + LOAD)
    path = tmp_path / f"tiny{len(list(tmp_path.iterdir()))}.elf"
    path.write_bytes(li.elf([(LOAD, code, 0)]))
    return path, symbols


def word(launcher, symbols: dict, name: str, index: int = 0) -> int:
    return launcher.layout.memory.read32(symbols[name] - PO + 4 * index)


def start(opts_list, **kw):
    """Launchers for the options, on one new Host (not run yet)."""
    return main.start_launchers(list(opts_list), **kw)


# -- (1) the block device -------------------------------------------------------------

# The block page is the first device's page: just above the descriptor page.
BLOCK_PAGE = MEM + PAGE
PGDIR = MEM - PAGE          # the Launcher's page directory, no initrd
DEV_VIRT = 0xD0000000       # where the tiny Guest maps the device pages

BLOCK_GUEST = """
        movl $0, lguest_data                  # no interrupts: we never wait for one
        # Map the descriptor page and the block page at DEV_VIRT: a page table
        # of our own, hung in the Launcher's page directory.
        movl $(ptes - PO + 7), PO + PGDIR + (DEV_VIRT >> 22) * 4
        HCALL 12, BLOCK, reply-PO, 0x100+IRQ    # BIND_DMA: the one reply buffer
        movl %eax, bound
        movl DEV_VIRT + PAGE + 16, %eax       # num_sectors, from the Launcher
        movl %eax, nsectors

.macro REQ i, type, sector, bytes, dma
        movl $\\type, DEV_VIRT + PAGE
        movl $\\sector, DEV_VIRT + PAGE + 4
        movl $\\bytes, DEV_VIRT + PAGE + 8
        movl $0, DEV_VIRT + PAGE + 12
        movl $0, reply                        # the reply buffer is free again
        HCALL 13, BLOCK, \\dma-PO
        movl DEV_VIRT + PAGE + 12, %eax
        movl %eax, results + 4 * \\i
        movl reply, %eax
        movl %eax, replies + 4 * \\i
        movl \\dma, %eax
        movl %eax, sent + 4 * \\i
.endm
        REQ 0, 1, 2, 512, wdma                # write sector 2
        REQ 1, 1, NS, 512, wdma               # write just past the end
        REQ 2, 1, NS-1, 1024, wdma2         # write running past the end
        REQ 3, 0, NS, 512, ping               # read just past the end
        REQ 4, 0, 1, 512, ping                # read sector 1
        HCALL 2, power-PO

        .p2align 2
bound:  .long 0
nsectors: .long 0
results: .fill 8, 4, 0
replies: .fill 8, 4, 0
sent:   .fill 8, 4, 0xff
""" + dma("ping") + dma("wdma", ("wbuf-PO", 512)) + dma("wdma2", ("wbuf2-PO", 1024)) \
    + dma("reply", ("rbuf-PO", 512)) + """
        .p2align 12
ptes:   .long MEM + 7, MEM + PAGE + 7
        .fill 1022, 4, 0
wbuf:   .fill 512, 1, 0x57
        .p2align 10
wbuf2:  .fill 1024, 1, 0x58
        .p2align 12
rbuf:   .fill 512, 1, 0
"""


def disk(tmp_path: Path, sectors: int) -> tuple[Path, bytes]:
    image = bytes((i * 7 + i // 512) & 0xFF for i in range(sectors * 512))
    path = tmp_path / "disk.img"
    path.write_bytes(image)
    return path, image


def test_the_run_loop_takes_only_started_launchers():
    # Starting Options is main's step (main.run_many); the loop below it in
    # the story refuses them rather than reach back up for main.
    from lguestsim.launcher import run

    with pytest.raises(TypeError, match="starts Options first"):
        run.run_many([main.Options()])


def test_block_requests_from_a_tiny_guest(tmp_path, capsys):
    ns = 8
    path, before = disk(tmp_path, ns)
    elf, syms = tiny_elf(tmp_path, BLOCK_GUEST, BLOCK=BLOCK_PAGE, PGDIR=PGDIR, DEV_VIRT=DEV_VIRT,
                         NS=ns, MEM=MEM, PAGE=PAGE)
    opts = main.Options(mem_mb=16, image=str(elf), devices=[("block", str(path))])
    (launcher,) = run_many([opts])
    err = capsys.readouterr().err
    assert (launcher.status, launcher.reason) == (0, "CRASH: Power down"), err
    blk = launcher.resources[0]
    assert launcher.devices.devices[0].mem == BLOCK_PAGE          # the first device
    assert word(launcher, syms, "bound") == 1
    assert word(launcher, syms, "nsectors") == ns
    assert [word(launcher, syms, "results", i) for i in range(5)] == [1, 2, 2, 2, 1]
    # A read fills the reply buffer (used_len = bytes); a write's reply is empty.
    assert [word(launcher, syms, "replies", i) for i in range(5)] == [0, 0, 0, 0, 512]
    assert [word(launcher, syms, "sent", i) for i in range(5)] == [0] * 5
    rbuf = launcher.layout.memory.read(syms["rbuf"] - PO, 512)
    assert rbuf == before[512:1024]
    after = path.read_bytes()
    assert len(after) == ns * 512                                   # never extended
    assert after[1024:1536] == b"\x57" * 512                        # the write landed
    assert after[:1024] == before[:1024] and after[1536:] == before[1536:]
    assert (blk.requests, blk.refused) == (5, 3)
    lines = [line for line in err.splitlines() if "refused" in line]
    assert lines == [
        f"lguest: block: write at sector {ns} (offset {ns * 512}) is past the end of "
        f"{path} ({ns} sectors, {ns * 512} bytes): refused",
        f"lguest: block: write of 1024 bytes at sector {ns - 1} (offset {(ns - 1) * 512}) "
        f"would run past the end of {path} ({ns * 512} bytes): the file is not extended: "
        f"refused",
        f"lguest: block: read at sector {ns} (offset {ns * 512}) is past the end of "
        f"{path} ({ns} sectors, {ns * 512} bytes): refused",
    ]


NO_REPLY_GUEST = """
        movl $0, lguest_data
        movl $(ptes - PO + 7), PO + PGDIR + (DEV_VIRT >> 22) * 4
        movl $0, DEV_VIRT + PAGE                # a read of sector 0, but no reply buffer
        movl $512, DEV_VIRT + PAGE + 8
        HCALL 13, BLOCK, ping-PO
        HCALL 2, power-PO
""" + dma("ping") + """
        .p2align 12
ptes:   .long MEM + 7, MEM + PAGE + 7
        .fill 1022, 4, 0
"""

CHATTY_GUEST = """
        movl $0, lguest_data
        SAY hello
        SAY hello
        HCALL 2, power-PO
hello_text: .ascii "still here\\n"
""" + dma("hello", ("hello_text-PO", 11))


def test_a_block_request_with_no_reply_buffer_ends_that_launcher_only(tmp_path, capsys):
    path, before = disk(tmp_path, 4)
    bad, _ = tiny_elf(tmp_path, NO_REPLY_GUEST, BLOCK=BLOCK_PAGE, PGDIR=PGDIR,
                      DEV_VIRT=DEV_VIRT, MEM=MEM, PAGE=PAGE)
    good, _ = tiny_elf(tmp_path, CHATTY_GUEST)
    bad_launcher, good_launcher = run_many([
        main.Options(mem_mb=16, image=str(bad), devices=[("block", str(path))]),
        main.Options(mem_mb=16, image=str(good))])
    assert bad_launcher.status == main.EXIT_GUEST_DIED
    assert bad_launcher.reason == "Block request didn't give us a dma buffer"
    assert bad_launcher.lg.dead is None             # killed by its Launcher closing it
    assert good_launcher.reason == "CRASH: Power down"
    assert capsys.readouterr().out == "still here\n" * 2
    assert path.read_bytes() == before


def test_block_device_with_the_shipped_guest(tmp_path):
    path, before = disk(tmp_path, 64)
    commands = b"devices\nread 1\nwrite 3 written by the Guest\nread 64\nquit\n"
    proc = lguest(f"--block={path}", "32", str(SHIPPED), "shell", stdin=commands)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b"lguest: CRASH: Power down\n"
    # The disk is the first device (command-line order), the console the second.
    assert "device 0: block, irq 1, features 0x8000, 1 page at pfn 0x2001" in out
    assert "device 1: console, irq 2" in out
    row = " ".join(f"{b:02x}" for b in before[512:520])
    assert f"guest> read 1\nsector 1 of lgba:\n000  {row}" in out
    assert "wrote 20 bytes of text (and zeros to 512) to sector 3" in out
    assert "sector 64 is past the end of the disk (64 sectors)" in out
    after = path.read_bytes()
    assert after[3 * 512:4 * 512] == b"written by the Guest".ljust(512, b"\0")
    assert after[:3 * 512] == before[:3 * 512] and after[4 * 512:] == before[4 * 512:]


def test_lguest_32_block_boots_and_the_demo_reads_sector_0(tmp_path):
    path, before = disk(tmp_path, 16)
    proc = lguest("32", f"--block={path}")
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    row = " ".join(f"{b:02x}" for b in before[:8])
    assert f"guest> read 0\nsector 0 of lgba:\n000  {row}" in out
    assert path.read_bytes() == before


def test_block_file_that_cannot_be_opened(tmp_path):
    proc = lguest(f"--block={tmp_path / 'nothing.img'}", "16")
    assert proc.returncode == main.EXIT_NOT_STARTED
    assert proc.stderr.decode() == (f"lguest: Failed to open {tmp_path / 'nothing.img'}: "
                                    f"No such file or directory\n")


# -- (2) console input ---------------------------------------------------------------

# The console is the only device: irq 1. Each input is echoed back; the end
# of the input (an empty buffer) powers the Guest off.
ECHO_GUEST = """
        HCALL 12, 0, cin-PO, 0x100+IRQ      # one input buffer at key 0
loop:   WAIT
        movl cin, %eax
        testl %eax, %eax
        jz ended
        movw %ax, out + 68                    # echo what came
        SAY out
        movl $0, cin                          # the buffer is free again
        jmp loop
ended:  HCALL 2, power-PO
""" + dma("cin", ("cbuf-PO", 256)) + dma("out", ("cbuf-PO", 0)) + """
        .p2align 8
cbuf:   .fill 256, 1, 0
"""

SLEEPER = """
1:      HCALL 10
        jmp 1b
"""


def test_console_input_through_a_pipe_reaches_a_tiny_guest(tmp_path):
    elf, _ = tiny_elf(tmp_path, ECHO_GUEST)
    text = b"hello, Guest\nsecond line\n" * 30          # more than one buffer's worth
    proc = lguest("16", str(elf), stdin=text)
    assert proc.stderr == b"lguest: CRASH: Power down\n"
    assert proc.returncode == 0
    assert proc.stdout == text                             # nothing lost, in order


def test_console_input_reaches_the_shipped_shell_and_the_answer_comes_back():
    proc = lguest("32", str(SHIPPED), "shell", stdin=b"help\nbogus\nquit\n")
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    assert "guest> help\n  help " in out
    assert "guest> bogus\nbogus: no such command (try help)\n" in out
    assert out.endswith("Goodbye from the Guest: powering off.\n")


def test_the_shell_ignores_arrow_keys_and_says_when_a_line_is_cut():
    # The Launcher passes a terminal's keys on as they come; the Guest's
    # terminal in miniature skips their escape sequences, and cuts a line
    # at 255 characters with a line saying so.
    arrows = b"\x1b[A\x1b[B\x1bOC\x1b[1;5D"
    proc = lguest("32", str(SHIPPED), "shell",
                  stdin=arrows + b"help" + arrows + b"\n" + b"x" * 300 + b"\nquit\n")
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    assert "guest> help\n  help " in out
    assert "[A" not in out and "OC" not in out and "\x1b" not in out
    assert ("guest> " + "x" * 255 + "\nconsole: line too long: characters past the 255th "
            "were dropped\n") in out
    assert "x" * 256 not in out


def test_the_end_of_the_input_is_the_shells_end_too():
    proc = lguest("32", str(SHIPPED), "shell", stdin=b"devices\n")
    assert proc.returncode == 0, proc.stderr
    assert "user: the console input has ended" in proc.stdout.decode()


def test_input_with_no_buffer_is_discarded_and_a_sleeping_guest_ends(tmp_path):
    elf, _ = tiny_elf(tmp_path, SLEEPER)
    proc = lguest("16", str(elf), stdin=b"abc")
    assert proc.returncode == EXIT_ASLEEP
    assert proc.stderr.decode() == (
        "lguest: console: no dma buffer! (3 bytes of input discarded)\n"
        "lguest: the Guest is asleep with no timer set, and nothing can wake it: "
        "its input has ended\n")
    proc = lguest("16", str(elf))                          # empty input: no warning
    assert proc.returncode == EXIT_ASLEEP
    assert proc.stderr.decode().count("\n") == 1


def test_three_ctrl_c_within_a_second_stop_the_launcher(tmp_path):
    elf, _ = tiny_elf(tmp_path, ECHO_GUEST)
    r, w = os.pipe()
    out = Stream()
    try:
        (launcher,) = start([main.Options(mem_mb=16, image=str(elf), console_in=r,
                                          console_out=out)])
        source = launcher.devices.devices[0].input
        now = [100.0]
        source.clock = lambda: now[0]
        # Two ^C, then a key: the count starts again. Then ^C three seconds apart.
        for key, at in ((b"\x03", 100.0), (b"\x03", 100.2), (b"x", 100.3),
                        (b"\x03", 101.0), (b"\x03", 102.0), (b"\x03", 104.5)):
            now[0] = at
            os.write(w, key)
            run_many([launcher], wait=0)
            assert not launcher.ended
        assert out.getvalue() == b"\x03\x03x\x03\x03\x03"
        for at in (105.0, 105.5, 106.9):                    # within "about a second"
            now[0] = at
            os.write(w, b"\x03")
            run_many([launcher], wait=0)
        assert launcher.status == EXIT_INTERRUPTED
        assert launcher.reason == "three ^C within a second: the Launcher stops"
        assert launcher.lg.dead is None and launcher.lguest.closed
    finally:
        os.close(r)
        os.close(w)


def test_three_ctrl_c_in_one_read_stop_the_launcher(tmp_path):
    # Keys pressed faster than the Launcher reads arrive together: three ^C
    # in one read count as three. A read that is not all ^C counts none.
    elf, _ = tiny_elf(tmp_path, ECHO_GUEST)
    r, w = os.pipe()
    try:
        (launcher,) = start([main.Options(mem_mb=16, image=str(elf), console_in=r,
                                          console_out=Stream())])
        source = launcher.devices.devices[0].input
        source.clock = lambda: 200.0
        for keys in (b"\x03\x03x", b"\x03\x03"):
            os.write(w, keys)
            run_many([launcher], wait=0)
            assert not launcher.ended
        os.write(w, b"\x03")                          # the third, in the same second
        run_many([launcher], wait=0)
        assert launcher.status == EXIT_INTERRUPTED
        (launcher,) = start([main.Options(mem_mb=16, image=str(elf), console_in=r,
                                          console_out=Stream())])
        os.write(w, b"\x03\x03\x03")
        run_many([launcher], wait=0)
        assert launcher.status == EXIT_INTERRUPTED
        assert launcher.reason == "three ^C within a second: the Launcher stops"
    finally:
        os.close(r)
        os.close(w)


def test_a_terminal_goes_raw_and_comes_back(tmp_path):
    import pty
    import termios
    elf, _ = tiny_elf(tmp_path, ECHO_GUEST)
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        out = Stream()
        (launcher,) = start([main.Options(mem_mb=16, image=str(elf), console_in=slave,
                                          console_out=out)])
        raw = termios.tcgetattr(slave)
        assert raw[3] & (termios.ICANON | termios.ECHO | termios.ISIG) == 0
        os.write(master, b"typed\n")
        run_many([launcher], wait=0)
        assert out.getvalue() == b"typed\n"          # as typed: no line editing
        launcher.finish(1, "done")
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


class Stream:
    """A binary stream standing in for standard output."""

    def __init__(self) -> None:
        import io
        self.buffer = io.BytesIO()

    def write(self, text: str) -> int:
        return self.buffer.write(text.encode())

    def flush(self) -> None:
        pass

    def getvalue(self) -> bytes:
        return self.buffer.getvalue()


# -- (3) networks ----------------------------------------------------------------------

NET_PAGE = MEM + PAGE       # the network device is the first device

# Slot 1 of a tun-style network (the Launcher in slot 0): take one frame,
# send it back to slot 0, power off.
PEER_ECHO = """
        HCALL 12, NET+4, rx-PO, 0x100+IRQ     # one receive buffer at our key
        WAIT
        movl rx, %eax
        movw %ax, tx + 68
        HCALL 13, NET, tx-PO                     # back to slot 0, the Launcher
        HCALL 2, power-PO
""" + dma("rx", ("buf-PO", 1514)) + dma("tx", ("buf-PO", 0)) + """
        .p2align 12
buf:    .fill 1514, 1, 0
"""


def test_a_frame_from_the_launcher_side_peer_reaches_a_tiny_guest_and_back(tmp_path):
    elf, _ = tiny_elf(tmp_path, PEER_ECHO, NET=NET_PAGE)
    (launcher,) = start([main.Options(mem_mb=16, image=str(elf), devices=[("peer", "")])])
    (peer,) = launcher.peers
    memory = launcher.layout.memory
    # The Launcher is slot 0, promiscuous; the Guest is told it is slot 1.
    assert memory.read(NET_PAGE, 6) == bytes([LAUNCHER_MAC[0] | NET_PROMISC]) + LAUNCHER_MAC[1:]
    assert launcher.devices.descriptor(0)["features"] == 0x8001
    run_many([launcher], wait=0)                      # boots, binds, sleeps
    assert not launcher.ended and peer.receive() is None
    frame = b"\x02\x00\x00\x00\x00\x00" + LAUNCHER_MAC + b"\x88\xb5" + bytes(range(46))
    peer.send(frame)
    run_many([launcher], wait=0)
    assert launcher.reason == "CRASH: Power down"
    assert peer.receive_all() == [frame]


def test_frames_for_a_guest_with_no_buffers_are_kept_then_dropped(tmp_path, capsys):
    elf, _ = tiny_elf(tmp_path, SLEEPER)
    (launcher,) = start([main.Options(mem_mb=16, image=str(elf), devices=[("peer", "")])])
    (peer,) = launcher.peers
    peer.send(b"\xff" * 60)
    run_many([launcher], wait=0)
    # The Guest sleeps and never bound a buffer: the frame is thrown away (no
    # warning: the Guest never sent anything, so it may just not be up yet).
    assert not launcher.ended and peer.sent == 1 and not peer.to_guest
    assert capsys.readouterr().err == ""
    launcher.finish(0, "done")


# Two Guests on a --sharenet page: the first one started (slot 0) waits for a
# frame and answers; the second (slot 1) sends one to slot 0 and waits for the
# answer, which it shows on its console.
PINGED = """
        HCALL 12, NET+0, rx-PO, 0x100+IRQ
        WAIT
        movl rx, %eax
        movw %ax, tx + 68
        movl $0x474e4f50, buf + 11               # "PONG"
        HCALL 13, NET+4, tx-PO                 # to slot 1
        HCALL 2, power-PO
""" + dma("rx", ("buf-PO", 1514)) + dma("tx", ("buf-PO", 0)) + """
        .p2align 12
buf:    .fill 1514, 1, 0
"""

PINGER = """
        HCALL 12, NET+4, rx-PO, 0x100+IRQ
        HCALL 13, NET+0, tx-PO                 # to slot 0
        movl tx, %eax
        movl %eax, sent
        WAIT
        movl rx, %eax
        movw %ax, show + 68
        SAY show
        HCALL 2, power-PO
sent:   .long 0
frame:  .ascii "to slot 0: PING\\n"
""" + dma("rx", ("buf-PO", 1514)) + dma("tx", ("frame-PO", 16)) \
    + dma("show", ("buf-PO", 0)) + """
        .p2align 12
buf:    .fill 1514, 1, 0
"""


def test_two_tiny_guests_exchange_frames_over_a_shared_network_file(tmp_path, capsys):
    net = tmp_path / "net"
    pinged, _ = tiny_elf(tmp_path, PINGED, NET=NET_PAGE)
    pinger, syms = tiny_elf(tmp_path, PINGER, NET=NET_PAGE)
    a, b = run_many([
        main.Options(mem_mb=16, image=str(pinged), devices=[("sharenet", str(net))]),
        main.Options(mem_mb=16, image=str(pinger), devices=[("sharenet", str(net))])])
    assert (a.reason, b.reason) == ("CRASH: Power down", "CRASH: Power down")
    # Slots first come first served; NOCSUM for a Guest-to-Guest network.
    assert [launcher.devices.descriptor(0)["features"] for launcher in (a, b)] == [
        0x4000, 0x4001]
    assert capsys.readouterr().out == "to slot 0: PONG\n"
    assert word(b, syms, "sent") == 16
    # No frame went through a Launcher (only b's console line): the Host moved
    # them Guest to Guest.
    assert (a.outputs, b.outputs) == (0, 1)
    assert net.read_bytes() == bytes(PAGE)            # written back: nobody published


def test_two_shipped_guests_ping_each_other(tmp_path):
    net = tmp_path / "net"
    proc = lguest("--guests=2", f"--sharenet={net}", "32", str(SHIPPED), "shell",
                  stdin=b"net\nping broadcast\nquit\n")
    out = proc.stdout.decode()
    assert proc.returncode == EXIT_ASLEEP, proc.stderr          # Guest 1 never ended
    assert proc.stderr.decode().splitlines() == [
        "lguest[0]: CRASH: Power down",
        "lguest[1]: the Guest is asleep with no timer set, and nothing can wake it: "
        "it has no input"]
    assert "[0] slot 0: 02:00:00:00:00:00 (this Guest)\n[0] slot 1: 02:00:01:00:00:00\n" in out
    assert "[1] lguestnet: echo request from 02:00:00:00:00:00 (seq 1): answered" in out
    assert "[0] 60 bytes from 02:00:01:00:00:00: seq=1 time=" in out
    # The file holds the page as the Guests left it: Guest 0 left the network.
    page = net.read_bytes()
    assert page[:6] == bytes(6) and page[6:12] == bytes.fromhex("020001000000")


def test_the_shipped_guest_answers_the_launcher_side_peer():
    r, w = os.pipe()
    out = Stream()
    try:
        (launcher,) = start([main.Options(mem_mb=32, cmdline=["shell"], console_in=r,
                                          console_out=out, devices=[("peer", "")])])
        (peer,) = launcher.peers
        run_many([launcher], wait=0, until=lambda: b"guest> " in out.getvalue())
        me = bytes([2, 0, launcher.lg.guestid, 0, 0, 0])
        text = b"lguestsim ping".ljust(38, b"\0")
        request = me + LAUNCHER_MAC + struct.pack(">HBBH", 0x88B5, 1, 0, 7) + \
            struct.pack("<I", 0x1234) + text
        peer.send(request)
        run_many([launcher], wait=0)
        reply = LAUNCHER_MAC + me + struct.pack(">HBBH", 0x88B5, 2, 0, 7) + \
            struct.pack("<I", 0x1234) + text
        assert peer.receive_all() == [reply]
        assert b"echo request from 02:00:00:aa:00:00 (seq 7): answered" in out.getvalue()
        os.write(w, b"quit\n")
        run_many([launcher], wait=0)
        assert launcher.reason == "CRASH: Power down"
    finally:
        os.close(r)
        os.close(w)


def test_net_peer_queues_frames_both_ways():
    peer = NetPeer()
    peer.send(b"one")
    peer.send(b"two")
    assert peer.pending() and peer.read_frame() == b"one" and peer.read_frame() == b"two"
    assert peer.read_frame() == b""
    peer.write_frame(b"back")
    assert peer.receive() == b"back" and peer.receive() is None
    peer.send(b"last")
    peer.close()
    assert peer.read_frame() == b"last" and peer.read_frame() is None
    peer.release()
    assert peer.read_frame() is None


# Slot 1 of a --tunnet network: every frame that comes in goes back out.
TAP_ECHO = """
        HCALL 12, NET+4, rx-PO, 0x100+IRQ
loop:   WAIT
        movl rx, %eax
        movw %ax, tx + 68
        HCALL 13, NET, tx-PO
        movl $0, rx
        jmp loop
""" + dma("rx", ("buf-PO", 1514)) + dma("tx", ("buf-PO", 0)) + """
        .p2align 12
buf:    .fill 1514, 1, 0
"""


def test_tunnet_with_a_real_tap_device(tmp_path):
    import socket

    from lguestsim.launcher.net import TapDevice
    try:
        TapDevice().close()
        probe = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        probe.close()
    except (OSError, AttributeError) as err:
        pytest.fail(f"no TAP device or packet socket here ({err}): the test needs root and "
                    "/dev/net/tun, as CI has")
    elf, _ = tiny_elf(tmp_path, TAP_ECHO, NET=NET_PAGE)
    (launcher,) = start([main.Options(mem_mb=16, image=str(elf),
                                      devices=[("tunnet", "10.213.7.1")])])
    tap = launcher.resources[0]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    try:
        sock.bind((tap.name, 0))
        sock.setblocking(False)
        # The Launcher's slot holds the TAP device's own address, promiscuous.
        mac = launcher.layout.memory.read(NET_PAGE, 6)
        assert mac[0] & NET_PROMISC
        run_many([launcher], wait=0)
        frame = b"\xff" * 6 + bytes.fromhex("020000aa0001") + b"\x88\xb5" + \
            b"hello through a TAP device".ljust(46, b"\0")
        sock.send(frame)
        echoed = []

        def echo_seen() -> bool:
            while True:
                try:
                    data, addr = sock.recvfrom(4096)
                except BlockingIOError:
                    return bool(echoed)
                if addr[2] != socket.PACKET_OUTGOING and data == frame:
                    echoed.append(data)

        run_many([launcher], wait=2, until=echo_seen, max_rounds=2000)
        assert echoed == [frame]
        assert not launcher.ended
    finally:
        sock.close()
        launcher.finish(0, "done")


def test_tunnet_without_a_tap_device_is_a_clear_error(tmp_path):
    proc = lguest("--tunnet=bridge:no-such-bridge", "16")
    assert proc.returncode == main.EXIT_NOT_STARTED
    err = proc.stderr.decode()
    assert err.startswith("lguest: --tunnet=bridge:no-such-bridge: ") and err.count("\n") == 1


# -- one CPU, several Launchers ----------------------------------------------------------

def test_python_m_lguestsim_32_is_unchanged():
    proc = lguest("32")
    assert proc.returncode == 0
    assert proc.stderr == b"lguest: CRASH: Power down\n"
    assert proc.stdout.decode().endswith("Goodbye from the Guest: powering off.\n")


def test_guests_option_runs_several_launchers_with_marked_lines():
    proc = lguest("--guests=2", "16", stdin=b"")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode().splitlines() == ["lguest[0]: CRASH: Power down",
                                                 "lguest[1]: CRASH: Power down"]
    lines = proc.stdout.decode().splitlines()
    assert all(line.startswith(("[0] ", "[1] ")) for line in lines)
    zero = [line[4:] for line in lines if line.startswith("[0] ")]
    one = [line[4:] for line in lines if line.startswith("[1] ")]
    assert zero[-1] == one[-1] == "Goodbye from the Guest: powering off."
    assert "Host: guest id 1, " in "\n".join(one)
