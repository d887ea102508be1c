"""The native door: C Launchers on the simulated Host (lguestsim/native).

Each hostile case is a small C program (tests/native/hostile.c) that does one
thing lguest refuses, run through the door beside a neighbour: another C
Launcher (tests/native/neighbour.c) booting the hostile corpus's tiny
neighbour Guest, which must print its sum and power down.  The errno each
case gets is the one lguest gives (and the Python Host's own checks give:
the door passes requests through), with no traceback in the Host's output
and no hang (every run has a deadline).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lguestsim import asm
from lguestsim.native.build import BuildError, build_door
from lguestsim.native.command import door_env
from lguestsim.native.door import Door

sys.path.insert(0, str(Path(__file__).parent))
from hostile import NEIGHBOUR, NEIGHBOUR_SUM  # noqa: E402

HERE = Path(__file__).parent / "native"
CFLAGS = ["-m32", "-O2", "-Wall", "-Wextra", "-Werror", "-fno-delete-null-pointer-checks"]
DEADLINE = 120.0           # seconds any one run may take before the test fails
MEM = 8 << 20              # the neighbour's RAM (and a page of nothing above it)
SPIN = "1: jmp 1b\n"       # a Guest that never stops by itself


def compile_c(source: Path, out: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("the native door's tests need gcc and gcc-multilib "
                    "(apt-get install gcc gcc-multilib)")
    done = subprocess.run(["gcc", *CFLAGS, "-o", str(out), str(source)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"gcc -m32 failed (is gcc-multilib installed?):\n{done.stderr}"
    return out


class _Image:
    """A Launcher's Guest memory, laid out in a bytearray to be written to a file."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)

    def write(self, addr: int, data: bytes) -> None:
        self.data[addr:addr + len(data)] = data

    def write32(self, addr: int, value: int) -> None:
        self.write(addr, struct.pack("<I", value))


def tiny_image(source: str, path: Path) -> list[str]:
    """A tiny 2.6.23 Guest as the Python Launcher lays it out (world.py's
    _make_tiny_run): the neighbour program's arguments to boot it."""
    from lguestsim.world import _linear_page_tables
    image = _Image(MEM + 4096)
    image.write(asm.TINY_LOAD, asm.tiny_guest(source).code)
    pgdir = _linear_page_tables(image, MEM)
    path.write_bytes(image.data)
    return [str(path), str(MEM + 4096), hex(pgdir), hex(asm.PAGE_OFFSET + asm.TINY_LOAD),
            hex(asm.PAGE_OFFSET)]


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    out = tmp_path_factory.mktemp("native")
    try:
        folder = build_door(out / "cache")
    except BuildError as e:
        pytest.fail(str(e))
    return {
        "door": folder,
        "neighbour": compile_c(HERE / "neighbour.c", out / "neighbour"),
        "hostile": compile_c(HERE / "hostile.c", out / "hostile"),
        "good": tiny_image(NEIGHBOUR, out / "neighbour.img"),
        "spin": tiny_image(SPIN, out / "spin.img"),
        "dir": out,
    }


class Run:
    """One Host behind the door, and the native programs run on it."""

    def __init__(self, tools, tmp_path: Path, room: int = 512 << 20) -> None:
        self.tools = tools
        self.log = io.StringIO()
        self.door = Door(str(tmp_path / "door.sock"), room=room, log=self.log)
        self.kids: list[subprocess.Popen] = []
        self.tmp = tmp_path

    def start(self, argv: list[str], virtio: bool = False) -> subprocess.Popen:
        # Output goes to a file: a pipe could be held open by a forked Waker.
        env = door_env(self.door.path, self.tools["door"], virtio)
        out = self.tmp / f"out{len(self.kids)}.txt"
        with open(out, "w") as f:
            kid = subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT)
        kid.out = out
        self.kids.append(kid)
        return kid

    def neighbour(self, *extra: str) -> subprocess.Popen:
        return self.start([str(self.tools["neighbour"]), *self.tools["good"], *extra])

    def serve(self, until=None, deadline: float = DEADLINE) -> None:
        """Serve until every program has ended (or ``until()``); fail at the deadline."""
        end = time.monotonic() + deadline
        done = until or (lambda: all(k.poll() is not None for k in self.kids))
        self.door.serve(until=lambda: done() or time.monotonic() > end, idle=0.05)
        if not done():
            self.kill_all()
            pytest.fail(f"still running after {deadline} s: {[k.args for k in self.kids]}")
        if until is None:
            # Every program has ended: the Host hears the last of their connections.
            self.door.serve(until=lambda: not self.door.conns or time.monotonic() > end,
                            idle=0.05)
            assert not self.door.conns, "connections left open after every program ended"

    def kill_all(self) -> None:
        for k in self.kids:
            if k.poll() is None:
                k.kill()
                k.wait()

    def output(self, kid: subprocess.Popen) -> str:
        return kid.out.read_text() + f"(status {kid.returncode})\n"

    def close(self) -> None:
        self.kill_all()
        self.door.close()
        assert "Traceback" not in self.log.getvalue(), self.log.getvalue()
        assert "failed" not in self.log.getvalue(), self.log.getvalue()


def neighbour_finished(text: str) -> None:
    assert f"dma sum={NEIGHBOUR_SUM:08x}" in text, text
    assert "dead: CRASH: Power down" in text, text


# Each case: its program's arguments and the lines it must print.  Where a
# bad request is refused, the errno is lguest's (ABI.md section C and the
# seeds: EINVAL before INITIALIZE, EBUSY for a second one, EINVAL for an
# irq >= LGUEST_IRQS, an unknown request or a page_offset over the Switcher,
# EPERM for anyone but the Launcher except BREAK).  A write shorter than its
# request is EFAULT (the Host cannot fetch the words); a longer one is fine,
# since lguest reads only the words it needs.  A pgdir or a start outside
# memory is not checked at INITIALIZE in lguest: the Guest dies of it at its
# first run, and read() says ENOENT and then why.  pfnlimit beyond the
# memory the Launcher has mapped, and a 2.6.25 guest_base that is not where
# it mapped it, are refused (EINVAL).
CASES = {
    "before-initialize": ([], ["irq: ret=-1 errno=EINVAL", "read: ret=-1 errno=EINVAL"]),
    "twice-initialize": ([], ["first: ret=16 errno=0", "second: ret=-1 errno=EBUSY"]),
    "bad-irq": ([], ["init: ret=16 errno=0", "irq: ret=-1 errno=EINVAL"]),
    "short-write": ([], ["two-bytes: ret=-1 errno=EFAULT",
                         "short-initialize: ret=-1 errno=EFAULT"]),
    "oversized-write": ([], ["init: ret=16 errno=0", "irq: ret=0 errno=0"]),
    "garbage-request": ([], ["init: ret=16 errno=0", "request: ret=-1 errno=EINVAL"]),
    "pfnlimit-beyond-memory": ([], ["init: ret=-1 errno=EINVAL"]),
    "pgdir-outside-memory": ([], ["init: ret=16 errno=0", "read: ret=-1 errno=ENOENT",
                                  "reason: bad read address"]),
    "start-outside-memory": ([], ["init: ret=16 errno=0", "read: ret=-1 errno=ENOENT",
                                  "reason: unhandled trap 14"]),
    "page-offset-over-switcher": ([], ["init: ret=-1 errno=EINVAL"]),
    "waker-not-launcher": ([], ["init: ret=16 errno=0", "child-irq: ret=-1 errno=EPERM",
                                "child-read: ret=-1 errno=EPERM", "parent-irq: ret=0 errno=0"]),
    # The one file the door hands a Launcher is its own Guest's window of RAM
    # (its 4 MiB and a page, and the 16 MiB kept above), not the machine's.
    "door-files": ([], ["init: ret=16 errno=0", f"file: size={(4 << 20) + 4096 + (16 << 20)}"]),
    "virtio:twice-initialize": (["--virtio"], ["first: ret=16 errno=0",
                                               "second: ret=-1 errno=EBUSY"]),
    "virtio:guest-base-elsewhere": (["--virtio"], ["init: ret=-1 errno=EINVAL"]),
    "virtio:pfnlimit-beyond-memory": (["--virtio"], ["init: ret=-1 errno=EINVAL"]),
    "virtio:bad-irq": (["--virtio"], ["init: ret=16 errno=0", "irq: ret=-1 errno=EINVAL"]),
    "virtio:pgdir-outside-memory": (["--virtio"], ["init: ret=16 errno=0",
                                                   "read: ret=-1 errno=ENOENT",
                                                   "reason: bad read address"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_launcher_gets_lguests_errno_beside_a_neighbour(tools, tmp_path, case):
    flags, expected = CASES[case]
    run = Run(tools, tmp_path)
    neighbour = run.neighbour()
    hostile = run.start([str(tools["hostile"]), *flags, case.split(":")[-1]],
                        virtio=bool(flags))
    run.serve()
    out = run.output(hostile)
    assert hostile.returncode == 0, out
    lines = out.splitlines()[:-1]
    assert len(lines) == len(expected), out
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(want), out
    neighbour_finished(run.output(neighbour))
    # Whatever the case did, the Host forgot its Guest when it exited.
    assert run.door.files == {} and run.door.host.lguests == []
    run.close()


def test_a_launcher_killed_mid_run_leaves_the_host_serving_the_others(tools, tmp_path):
    run = Run(tools, tmp_path)
    spinner = run.start([str(tools["neighbour"]), *tools["spin"]])
    # Kill it once its Guest has been running a while (from another thread:
    # this one is the Host's, busy running that very Guest).
    killer = threading.Timer(1.0, lambda: os.kill(spinner.pid, signal.SIGKILL))
    killer.start()
    run.serve(until=lambda: spinner.poll() is not None)
    killer.join()
    assert spinner.returncode == -signal.SIGKILL
    cycles = run.door.host.cpu.cycles
    assert cycles > 1_000_000, "the spinning Guest never ran"
    neighbour = run.neighbour()
    run.serve()
    neighbour_finished(run.output(neighbour))
    assert run.door.host.lguests == [] and run.door.files == {}
    run.close()


def test_a_wakers_break_interrupts_the_launchers_read(tools, tmp_path):
    # The neighbour forks a Waker writing LHREQ_BREAK {1} every 5 ms while it
    # sits in read(); each must end that read with EAGAIN (and the Waker's
    # write waits for the Launcher's BREAK {0}), and the Guest still finishes.
    run = Run(tools, tmp_path)
    spinner = run.start([str(tools["neighbour"]), *tools["spin"], "spin"])
    run.serve(until=lambda: run.door.host.cpu.cycles > 20_000_000 or spinner.poll() is not None)
    assert spinner.poll() is None, run.output(spinner)
    os.kill(spinner.pid, signal.SIGKILL)
    neighbour = run.neighbour("spin")
    run.serve()
    out = run.output(neighbour)
    neighbour_finished(out)
    assert "breaks: some" in out, out
    run.close()


def test_two_native_neighbours_share_the_host(tools, tmp_path):
    run = Run(tools, tmp_path)
    kids = [run.neighbour() for _ in range(3)]
    run.serve()
    for kid in kids:
        neighbour_finished(run.output(kid))
    run.close()


def test_without_the_right_to_map_page_0_one_line_says_so(tools, tmp_path):
    if shutil.which("setpriv") is None:
        pytest.fail("this test drops CAP_SYS_RAWIO with setpriv (util-linux)")
    run = Run(tools, tmp_path)
    kid = run.start(["setpriv", "--bounding-set=-sys_rawio", "--inh-caps=-sys_rawio",
                     str(tools["hostile"]), "bad-irq"])
    run.serve()
    out = run.output(kid)
    said = [line for line in out.splitlines() if line.startswith("lguestsim door:")]
    if int(Path("/proc/sys/vm/mmap_min_addr").read_text()) == 0:
        assert said == [] and kid.returncode == 0, out
    else:
        assert len(said) == 1 and "vm.mmap_min_addr" in said[0], out
        assert kid.returncode == 1, out
    run.close()


def test_a_64_bit_program_is_told_the_door_is_for_i386(tools, tmp_path):
    run = Run(tools, tmp_path)
    kid = run.start([sys.executable, "-c", "open('/dev/lguest')"])
    run.serve()
    out = run.output(kid)
    assert "ELFCLASS" not in out, out          # the dynamic linker had nothing to say
    assert "lguestsim door: /dev/lguest is served to i386 programs only" in out, out
    assert kid.returncode == 1
    run.close()


def test_garbage_on_the_socket_is_dropped_without_harm(tools, tmp_path):
    run = Run(tools, tmp_path)
    neighbour = run.neighbour()
    junk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    junk.connect(run.door.path)
    junk.sendall(b"\xff" * 64)
    run.serve()
    neighbour_finished(run.output(neighbour))
    junk.close()
    assert "dropping a connection" in run.log.getvalue()
    assert "Traceback" not in run.log.getvalue()
    run.door.close()


def test_guest_memory_is_the_same_bytes_on_both_sides(tools, tmp_path):
    # The neighbour's image was mapped privately over its Guest memory: the
    # door copied it into the shared pages, so the Host sees the code there.
    run = Run(tools, tmp_path)
    kid = run.start([str(tools["neighbour"]), *tools["spin"]])
    run.serve(until=lambda: bool(run.door.host.lguests))
    (memory,) = run.door.memories.values()
    code = asm.tiny_guest(SPIN).code
    assert memory.process.read(asm.TINY_LOAD, len(code)) == code
    assert memory.base == 0 and memory.extent == MEM + 4096
    kid.kill()
    run.serve()
    run.close()


def test_the_command_line_refuses_what_it_cannot_run(tmp_path):
    def native(*args: str, env=None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lguestsim", "native", *args],
                              capture_output=True, text=True, timeout=60, env=env)

    for args, says in (((), "name the Launcher after --"),
                       (("--", str(tmp_path / "nothing")), "no such program"),
                       (("--room=0", "--", "/bin/true"), "--room must be"),
                       (("--bogus", "--", "/bin/true"), "unrecognized arguments")):
        done = native(*args)
        assert done.returncode == 2, done
        assert done.stderr.splitlines()[0].startswith("lguest native: ") and says in \
            done.stderr.splitlines()[0], done.stderr
        assert "Traceback" not in done.stderr
    # Without gcc (and no door built yet) one line says what to install.
    env = dict(os.environ, PATH=str(tmp_path), LGUESTSIM_CACHE=str(tmp_path / "cache"))
    done = native("--", "/bin/true", env=env)
    assert done.returncode == 2 and "install gcc and gcc-multilib" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_the_command_runs_a_program_with_the_door_and_gives_its_status(tools, tmp_path):
    done = subprocess.run([sys.executable, "-m", "lguestsim", "native", "--",
                           str(tools["neighbour"]), *tools["good"]],
                          capture_output=True, text=True, timeout=DEADLINE,
                          env=dict(os.environ, LGUESTSIM_CACHE=str(tools["dir"] / "cache")))
    assert done.returncode == 0, done.stderr
    neighbour_finished(done.stdout)
    done = subprocess.run([sys.executable, "-m", "lguestsim", "native", "--", "/bin/sh", "-c",
                           "exit 7"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 7 and done.stderr == "", done.stderr


def test_a_session_can_watch_a_guest_whose_launcher_is_native(tools):
    # NativeWatch runs the C neighbour through the door and stops between two
    # trips into its Guest: the Host's trace, its Guest and the cycle counts
    # are there to look at, as under the Python Launcher.
    from lguestsim.native.watch import NativeWatch
    with NativeWatch([[str(tools["neighbour"]), *tools["good"]]]) as watch:
        first = watch.step_to("hypercall")
        assert first is not None and first.cycle > 0
        lg = watch.lg
        assert lg is not None and lg.guestid == first.data.get("guest", lg.guestid)
        before = watch.cpu.cycles
        dma = watch.step_to("dma")
        assert dma is not None and dma.cycle >= before
        # The neighbour's Guest is paused between trips: its registers page holds
        # a kernel eip (the tiny Guest runs at PAGE_OFFSET + 1 MiB).
        assert lg.regs.eip >= asm.PAGE_OFFSET
        # The views draw it as they draw a Session.
        from lguestsim import views
        timeline = views.TimelineView(watch, launcher=False).html()
        registers = views.RegistersView(watch).html()
        for html in (timeline, registers):
            assert "cannot show this now" not in html, html
        assert "hypercall" in timeline and "dma" in timeline
        assert f"{watch.cpu.cycles} cycles" in registers
        kill = watch.step_to("kill")
        assert kill is not None and "Power down" in kill.data["reason"]
        assert watch.cpu.cycles > before
        assert watch.step_to("hypercall", timeout=10) is None     # it has ended
        assert watch.finished


# The Guest runs the block at `patch` once, sends its byte to the Launcher,
# and runs it again: the Launcher has changed the immediate in between.
PATCHED = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 7, 0x69, stack_top, 1
        xorl %esi, %esi
        jmp patch                          # so that a block starts at patch
1:
patch:  movl $0x41, %eax
        movb %al, text
        HCALL 13, 0, out-PO
        incl %esi
        cmpl $2, %esi
        jne 1b
        HCALL 2, msg-PO
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:                                 # the data on a page of its own, away from the code
msg:    .asciz "Power down"
        .p2align 2
out:    DMA text-PO, 1
text:   .ascii "?"
"""


def test_code_the_launcher_writes_over_runs_anew(tools, tmp_path):
    # The Launcher writes Guest memory behind the CPU's back: the block it
    # patched must be translated again, not run from the old translation.
    program = asm.tiny_guest(PATCHED)
    imm = program.symbols["patch"] - asm.PAGE_OFFSET + 1     # movl $imm32, %eax: b8 imm
    run = Run(tools, tmp_path)
    kid = run.start([str(tools["neighbour"]), *tiny_image(PATCHED, tmp_path / "patched.img"),
                     f"patch={imm:#x}:0x42"])
    run.serve()
    out = run.output(kid)
    assert out.splitlines()[:3] == ["ready to run", "dma A", "dma B"], out
    run.close()


def test_a_peer_that_never_reads_its_answers_is_dropped(tools, tmp_path):
    # Requests by the thousand, no answer read: the Host must not wait on it
    # for ever in send() while the neighbour needs the CPU.
    from lguestsim.native import wire
    run = Run(tools, tmp_path)
    neighbour = run.neighbour()
    flood = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    flood.connect(run.door.path)
    flood.setblocking(False)
    hello = wire.REQUEST.pack(wire.HELLO_MM, 0, 0, 0, 0)
    request = wire.REQUEST.pack(wire.JOIN_MM, 12345, 0, 0, 0)    # each answered EINVAL
    pending = bytearray(hello + request * 60_000)

    def push() -> None:
        while pending:
            try:
                del pending[:flood.send(pending)]
            except BlockingIOError:
                return
            except BrokenPipeError:         # dropped by the Host: what the test wants
                pending.clear()

    def done() -> bool:
        push()
        return neighbour.poll() is not None
    run.serve(until=done)
    run.serve()
    neighbour_finished(run.output(neighbour))
    assert "dropping a connection" in run.log.getvalue()
    flood.close()
    assert "Traceback" not in run.log.getvalue()
    run.door.close()


def test_physical_memory_over_a_file_is_shared_and_gives_pages_back():
    import mmap

    from lguestsim.x86 import PhysicalMemory
    fd = os.memfd_create("test-ram")
    os.ftruncate(fd, 1 << 20)
    mem = PhysicalMemory(1 << 20, fd)
    other = mmap.mmap(fd, 1 << 20)              # another mapping: the Launcher's
    mem.write(0x3000, b"host")
    assert other[0x3000:0x3004] == b"host"
    other[0x5000:0x5008] = b"launcher"
    assert mem.read(0x5000, 8) == b"launcher"
    mem.fill(0x4000, 0x3000)                    # whole pages: handed back (MADV_REMOVE)
    assert mem.read(0x5000, 8) == bytes(8) and other[0x5000:0x5008] == bytes(8)
    assert os.fstat(fd).st_blocks * 512 <= 0x2000, "the pages were not given back"
    other.close()
    os.close(fd)



def test_closing_a_watch_while_it_is_paused_destroys_its_guest(tools):
    from lguestsim.native.watch import NativeWatch
    watch = NativeWatch([[str(tools["neighbour"]), *tools["spin"]]])
    assert watch.step_to("switch") is not None and watch.door.paused is not None
    host = watch.host
    watch.close()
    assert host.lguests == [] and watch.door.conns == {}


def test_another_process_cannot_open_a_neighbours_memory(tools, tmp_path):
    # A raw client that guesses small names for memories and files gets
    # EINVAL: the names are random, known only to their own process.
    from lguestsim.native import wire
    run = Run(tools, tmp_path)
    neighbour = run.neighbour()
    run.serve(until=lambda: bool(run.door.host.lguests))
    answers = []
    for op in (wire.OPEN, wire.JOIN_MM, wire.JOIN_FILE):
        for token in range(1, 40):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.connect(run.door.path)
            probe.sendall(wire.REQUEST.pack(op, token, 0, 0, 0))
            run.serve(until=lambda p=probe: _readable(p), deadline=10)
            answers.append(wire.ANSWER.unpack(probe.recv(wire.ANSWER.size))[:2])
            probe.close()
    assert set(answers) == {(-1, 22)}, set(answers)          # EINVAL, every one
    run.serve()
    neighbour_finished(run.output(neighbour))
    run.close()


def _readable(sock: socket.socket) -> bool:
    import select
    return bool(select.select([sock], [], [], 0)[0])


def test_a_window_given_back_is_not_reachable_through_its_old_file(tools, tmp_path):
    # A Launcher that kept its window's file after leaving (a child could)
    # must not reach the next Guest to be given the same stretch of RAM.
    import array
    import mmap

    from lguestsim.native import wire
    run = Run(tools, tmp_path)
    door = run.door

    def ask(sock, op, a=0, b=0):
        sock.sendall(wire.REQUEST.pack(op, a, b, 0, 0))
        fds = array.array("i")
        data = b""
        while len(data) < wire.ANSWER.size:
            door.step(0.01)
            if _readable(sock):
                msg, anc, _, _ = sock.recvmsg(64, socket.CMSG_SPACE(4))
                data += msg
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(payload[:4])
        ret, err, _ = wire.ANSWER.unpack_from(data)
        return ret, (fds[0] if fds else None)

    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    first.connect(door.path)
    ask(first, wire.HELLO_MM, 1)
    offset, old_fd = ask(first, wire.MAP, 0x10000000, 1 << 20)
    assert offset == 0 and old_fd is not None
    (memory,) = door.memories.values()
    base = memory.process.base
    first.close()                                   # gone; its window is given back
    door.serve(until=lambda: not door.memories, idle=0.01)
    second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    second.connect(door.path)
    ask(second, wire.HELLO_MM, 1)
    _, new_fd = ask(second, wire.MAP, 0x20000000, 1 << 20)
    (memory,) = door.memories.values()
    assert memory.process.base == base              # the same RAM, reused
    stale = mmap.mmap(old_fd, 1 << 20)
    stale[0:5] = b"stale"                           # the old file: written
    assert door.host.mem.read(base, 5) == bytes(5)  # the new Guest's RAM: untouched
    fresh = mmap.mmap(new_fd, 1 << 20)
    fresh[0:5] = b"fresh"
    assert door.host.mem.read(base, 5) == b"fresh"  # and the new file is that RAM
    stale.close()
    fresh.close()
    os.close(old_fd)
    os.close(new_fd)
    second.close()
    door.serve(until=lambda: not door.conns, idle=0.01)
    run.close()


def test_a_spinning_guest_does_not_keep_the_cpu_from_its_neighbour(tools, tmp_path):
    # Two Guests on the one CPU: the Host's time slices end the spinner's
    # turn (an EAGAIN the door keeps from its Launcher) and the neighbour runs;
    # once the neighbour's Guest is dead, its Launcher's read() for the reason
    # still gets the CPU (the door takes it from the spinner).
    run = Run(tools, tmp_path)
    spinner = run.start([str(tools["neighbour"]), *tools["spin"]])
    run.serve(until=lambda: bool(run.door.host.lguests))
    neighbour = run.neighbour()
    run.serve(until=lambda: neighbour.poll() is not None)
    neighbour_finished(run.output(neighbour))
    assert spinner.poll() is None and run.output(spinner) == "ready to run\n(status None)\n"
    spinner.kill()
    run.serve()
    run.close()
