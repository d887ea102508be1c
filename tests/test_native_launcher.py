"""The C Launcher (launcher-c/) built with gcc and run through the native door.

Acceptance 1 of issue 18, the C Launcher's half: the C Launcher lays the
shipped Guest out byte for byte as the Python Launcher does (both
generations, with a console, a disk and a network), and through the door
(`python -m lguestsim native`) it boots the shipped Guest in both
generations: the shell's `help` and `devices` print what they print under
the Python Launcher, `write` and `read` reach the disk file, the virtio
Guest `reboot`s into a fresh Guest that still sees the disk, and two C
Launchers' Guests ping each other over --sharenet.

gcc with gcc-multilib (for -m32) is needed; without it the tests fail and
say what to install.  2.6.23's Guest memory starts at the Launcher's address
0, which only a process allowed to map page 0 gets (root, as in CI).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lguestsim.launcher.main import (
    SHIPPED_GUEST,
    SHIPPED_GUEST_VIRTIO,
    Options,
    launcher_size,
    lay_out_guest,
    make_devices,
)
from lguestsim.launcher.memory import GuestMemory

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "launcher-c"
TIMEOUT = 120          # seconds for any one thing the Guest is waited for
PROMPT = "guest> "


@pytest.fixture(scope="module")
def c_launcher(tmp_path_factory) -> Path:
    """launcher-c built with its Makefile (gcc -m32) into a fresh directory."""
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.fail("gcc and make are needed: apt-get install gcc gcc-multilib make "
                    "(.ci/run installs them)")
    out = tmp_path_factory.mktemp("launcher-c")
    done = subprocess.run(["make", "-s", "-C", str(SOURCE), f"O={out}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, (f"building launcher-c failed (is gcc-multilib installed? "
                                  f"-m32 needs it):\n{done.stdout}{done.stderr}")
    return out / "lguest"


def make_disk(path: Path, size: int = 64 * 1024) -> Path:
    data = bytearray(size)
    data[1024:1024 + 11] = b"from a test"           # sector 2
    path.write_bytes(data)
    return path


class NoHost:
    """Stands for the Host where a device setup only needs one to key a switch by."""


def python_layout(virtio: bool, devices: list[tuple[str, str]]) -> bytes:
    """The Python Launcher's layout of the shipped Guest: memory up to the device pages' top."""
    opts = Options(virtio=virtio, mem_mb=32, cmdline=["shell"], devices=devices)
    memory = GuestMemory.plain(launcher_size(opts))
    image = (SHIPPED_GUEST_VIRTIO if virtio else SHIPPED_GUEST)
    layout = lay_out_guest(memory, opts.mem, image.read_bytes(), str(image), None, ["shell"],
                           console_out=io.StringIO(), virtio=virtio,
                           add_devices=make_devices(opts, NoHost(), lambda *a: None, [], []))
    for dev in layout.devices.devices:
        if dev.input is not None:
            dev.input.close()
    return bytes(memory.backing.data[:layout.devices.top])


@pytest.mark.parametrize("virtio", [False, True], ids=["2.6.23", "2.6.25"])
def test_layout_is_the_python_launchers_byte_for_byte(c_launcher, tmp_path, virtio):
    disk = make_disk(tmp_path / "disk.img")
    image = SHIPPED_GUEST_VIRTIO if virtio else SHIPPED_GUEST
    dump = tmp_path / "memory"
    # A fresh wire, so the C Launcher's network port is 1, as the Python
    # switch's first Guest's is.
    wire = str(tmp_path / "net")
    args = [str(c_launcher), f"--dump={dump}", f"--block={disk}", f"--sharenet={wire}",
            "32", str(image), "shell"]
    if virtio:
        args.insert(1, "--virtio")
    done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    # 2.6.23: the C Launcher's --sharenet is a Launcher-served network (the
    # device the Python Launcher makes for a Python peer); 2.6.25: a port on
    # a switch, as the Python Launcher's --sharenet.
    net = ("sharenet", wire) if virtio else ("peer", "")
    ours, theirs = dump.read_bytes(), python_layout(virtio, [("block", str(disk)), net])
    assert len(ours) == len(theirs)
    differ = [hex(i) for i in range(0, len(ours), 4096) if ours[i:i + 4096] != theirs[i:i + 4096]]
    assert not differ, f"pages that differ: {differ[:10]}"


def test_bad_command_lines_get_one_line_and_status_2(c_launcher, tmp_path):
    for args, words in [([], "MEM_IN_MB and KERNEL_IMAGE"), (["--frob", "32", "x"], "unknown"),
                        (["0", str(SHIPPED_GUEST)], "MEM_IN_MB"),
                        (["32", str(tmp_path / "none")], "Failed to open"),
                        (["--virtio", f"--dump={tmp_path / 'm'}", "1", str(SHIPPED_GUEST_VIRTIO)],
                         "is outside the Guest's memory"),
                        ([f"--dump={tmp_path / 'm'}", "32", str(ROOT / "README.md")],
                         "not an ELF")]:
        done = subprocess.run([str(c_launcher), *args], capture_output=True, text=True,
                              timeout=TIMEOUT)
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr.splitlines()[0], (args, done.stderr)
        assert "Traceback" not in done.stderr


class Native:
    """One `python -m lguestsim native -- launcher ...` run, driven like a terminal:
    wait for text on its standard output, type a line."""

    def __init__(self, args: list[str], virtio: bool, cwd: Path,
                 more: tuple[list[str], ...] = ()) -> None:
        cmd = [sys.executable, "-m", "lguestsim", "native"]
        cmd += ["--virtio"] if virtio else []
        for program in [args, *more]:
            cmd += ["--", *program]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=cwd, env=env)
        self.out = bytearray()
        self.err = bytearray()
        self.pos = 0
        self.threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                        for s, b in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    @staticmethod
    def _pump(stream, into: bytearray) -> None:
        while chunk := stream.read1(65536):
            into += chunk

    def text(self) -> str:
        return self.out.decode("latin-1")

    def expect(self, what: str, timeout: float = TIMEOUT) -> str:
        """Wait until ``what`` is printed; return everything before it since the last expect."""
        deadline = time.monotonic() + timeout
        while True:
            where = self.text().find(what, self.pos)
            if where >= 0:
                seen = self.text()[self.pos:where]
                self.pos = where + len(what)
                return seen
            if time.monotonic() > deadline or self.proc.poll() is not None and \
                    self.text().find(what, self.pos) < 0 and not self._settling():
                raise AssertionError(f"{what!r} never came; output:\n{self.text()[-3000:]}\n"
                                     f"stderr:\n{self.err.decode('latin-1')[-3000:]}")
            time.sleep(0.02)

    def _settling(self) -> bool:
        # The process has ended: give the pumps a moment to drain its output.
        for t in self.threads:
            t.join(0.5)
        return any(t.is_alive() for t in self.threads)

    def type(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def command(self, line: str) -> str:
        """Type a shell command at the prompt; return what it printed."""
        self.type(line)
        return self.expect(PROMPT).split("\n", 1)[1]

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Wait for the run to end; its exit status."""
        try:
            return self.proc.wait(timeout)
        finally:
            self.stop()

    def stop(self) -> None:
        """End the run if it has not ended (after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self.threads:
            t.join(5)

    def stderr(self) -> str:
        return self.err.decode("latin-1")


def python_shell(virtio: bool, disk: Path, commands: list[str]) -> dict[str, str]:
    """What each command prints under the Python Launcher, the same Guest and disk."""
    image = SHIPPED_GUEST_VIRTIO if virtio else SHIPPED_GUEST
    args = [sys.executable, "-m", "lguestsim", f"--block={disk}", "32", str(image), "shell"]
    if virtio:
        args.insert(3, "--virtio")
    done = subprocess.run(args, input="".join(c + "\n" for c in commands + ["quit"]).encode(),
                          capture_output=True, timeout=TIMEOUT, env=dict(os.environ,
                                                                         PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr.decode()
    parts = done.stdout.decode("latin-1").split(PROMPT)[1:]
    return {c: part.split("\n", 1)[1] for c, part in zip(commands, parts, strict=False)}


def launcher_args(c_launcher: Path, virtio: bool, *extra: str) -> list[str]:
    image = SHIPPED_GUEST_VIRTIO if virtio else SHIPPED_GUEST
    return [str(c_launcher), *(["--virtio"] if virtio else []), *extra, "32", str(image), "shell"]


def boot(c_launcher: Path, tmp_path: Path, virtio: bool, *extra: str) -> Native:
    native = Native(launcher_args(c_launcher, virtio, *extra), virtio, tmp_path)
    native.expect(PROMPT)
    return native


@pytest.mark.parametrize("virtio", [False, True], ids=["2.6.23", "2.6.25"])
def test_console_and_block_through_the_door(c_launcher, tmp_path, virtio):
    disk = make_disk(tmp_path / "disk.img")
    size = disk.stat().st_size
    expected = python_shell(virtio, make_disk(tmp_path / "theirs.img"), ["help", "devices"])
    native = boot(c_launcher, tmp_path, virtio, f"--block={disk}")
    try:
        # The console: the same answers as under the Python Launcher.
        assert native.command("help") == expected["help"]
        assert native.command("devices") == expected["devices"]
        # The disk: what the test wrote is read, what the Guest writes is in the file.
        assert "|from a test.....|" in native.command("read 2")
        assert "wrote" in native.command("write 1 C Launcher")
        data = disk.read_bytes()
        assert data[512:1024] == b"C Launcher".ljust(512, b"\0")
        assert "|C Launcher......|" in native.command("read 1")
        assert len(data) == size
        native.type("quit")
        assert native.finish() == 0, native.stderr()
    finally:
        native.stop()
    assert "lguest: CRASH: Power down" in native.stderr()
    assert "Traceback" not in native.stderr()


def test_reboot_starts_a_fresh_guest_that_sees_the_disk(c_launcher, tmp_path):
    disk = make_disk(tmp_path / "disk.img")
    native = boot(c_launcher, tmp_path, True, f"--block={disk}")
    try:
        native.command("write 1 before reboot")
        native.type("reboot")
        # The Launcher exec()s itself: the Guest boots again from the start.
        native.expect("lguestsim teaching Guest: running on lguest")
        native.expect(PROMPT)
        assert "|before reboot...|" in native.command("read 1")
        native.type("quit")
        assert native.finish() == 0, native.stderr()
    finally:
        native.stop()
    assert "Traceback" not in native.stderr()


def answerers(text: str) -> set[str]:
    """The addresses whose echo replies are in ``text``."""
    return set(re.findall(r"60 bytes from (02:00:[0-9a-f:]+): seq=\d+ time=", text))


def wait_for(native: Native, done, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done(native.text()):
        if time.monotonic() > deadline or native.proc.poll() is not None:
            raise AssertionError(f"{what}; output:\n{native.text()[-3000:]}")
        time.sleep(0.05)


# Two C Launchers on one Host (one `native` run, two programs), their
# Guests on one --sharenet wire.  The door gives the second program
# /dev/null for standard input; a shell in front gives it a FIFO instead,
# so the test can type into both Guests (the shell is a 64-bit program,
# which the i386 door does not enter; it exec()s the C Launcher).  Their
# consoles share one standard output, so whose answer is whose is told by
# the answering address.  Each Guest pings 10 times and must hear the other
# at least once: a Guest waits 10 ms of simulated time for an answer, and
# when every Guest sleeps the door's Host jumps its clock to the next timer,
# so an answer still on its way between the two processes can come too late.
# Each shell's next prompt says its pings are over.
@pytest.mark.parametrize("virtio", [False, True], ids=["2.6.23", "2.6.25"])
def test_two_c_launchers_guests_ping_each_other(c_launcher, tmp_path, virtio):
    wire = str(tmp_path / "net")
    fifo = tmp_path / "second-console"
    os.mkfifo(fifo)
    second_in = os.open(fifo, os.O_RDWR)      # never blocks, and keeps the FIFO open
    second = ["sh", "-c", f'exec "$0" "$@" < {fifo}',
              *launcher_args(c_launcher, virtio, f"--sharenet={wire}")]
    native = Native(launcher_args(c_launcher, virtio, f"--sharenet={wire}"), virtio, tmp_path,
                    more=(second,))
    try:
        native.expect(PROMPT)
        native.expect(PROMPT)                   # both shells are up
        native.type("ping broadcast 10")        # the first Guest pings
        wait_for(native, lambda text: text.count(PROMPT) == 3,
                 "the first Guest's pings never ended")
        first_heard = answerers(native.text())
        os.write(second_in, b"ping broadcast 10\n")  # and the second
        wait_for(native, lambda text: text.count(PROMPT) == 4,
                 "the second Guest's pings never ended")
        assert len(first_heard) == 1, native.text()[-3000:]
        assert len(answerers(native.text())) == 2, native.text()[-3000:]
        native.type("quit")
        os.write(second_in, b"quit\n")
        assert native.finish() == 0, native.stderr()
    finally:
        native.stop()
        os.close(second_in)
    assert native.stderr().count("lguest: CRASH: Power down") == 2, native.stderr()
    assert "Traceback" not in native.stderr()
    assert not list(tmp_path.glob("net.*")), "the Launchers left their ports behind"


def test_a_terminal_goes_raw_and_three_ctrl_c_end_the_launcher(c_launcher, tmp_path):
    """On a terminal the keys reach the Guest as typed (it echoes them), ^C is a
    byte and not a signal, and three of them within a second stop the Launcher."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:        # the child: the run, on the terminal
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "lguestsim", "native", "--virtio", "--",
                                  *launcher_args(c_launcher, True)])
    out = bytearray()

    def read_until(what: bytes, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while what not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    out.extend(os.read(fd, 65536))
                except OSError:
                    break
        assert what in out, out.decode("latin-1")[-2000:]

    try:
        read_until(PROMPT.encode())
        os.write(fd, b"devices\r")           # Enter sends a carriage return
        read_until(b"pfn 0x2003\r\n" + PROMPT.encode())
        for _ in range(3):
            os.write(fd, b"\x03")
            time.sleep(0.1)
        read_until(b"interrupted")
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 130
    assert b"Traceback" not in out
