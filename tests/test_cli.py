"""The ``lguest`` command line's rough edges (issue 11): how it fails and ends.

A bad command line is two lines, not argparse's five; a run of several
Guests exits non-zero when any Guest did not power down; ``lguest ... |
head`` stops quietly with status 141 instead of a traceback; and an ELF
kernel starts where 2.6.23 started it, with ``--verbose`` saying when the
ELF header's entry point disagrees. (Three ^C in one read are tested with
the console, in test_launcher_devices.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import launcher_images as li
import pytest

from lguestsim.launcher import loader, main
from lguestsim.launcher.memory import GuestMemory
from lguestsim.launcher.report import EXIT_ASLEEP, EXIT_BROKEN_PIPE

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
SHIPPED = main.SHIPPED_GUEST


def lguest(*args: str, stdin: bytes = b"", stdout: int | None = subprocess.PIPE,
           timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lguestsim", *args], cwd=ROOT, input=stdin,
                          stdout=stdout, stderr=subprocess.PIPE, timeout=timeout)


# -- argparse errors ------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--no-such-option"], "lguest: unrecognized arguments: --no-such-option"),
    (["0", "k"], "lguest: argument MEM_IN_MB: 0 MiB: must be between 1 and 2943"),
    (["--guests=x"], "lguest: argument --guests: not a number of Guests: 'x'"),
    (["--initrd"], "lguest: argument --initrd: expected one argument"),
])
def test_a_bad_command_line_is_one_line_and_the_usage_hint(args, message):
    proc = lguest(*args)
    assert proc.returncode == main.EXIT_NOT_STARTED
    assert proc.stderr.decode().splitlines() == [message, main.USAGE_HINT]
    assert proc.stdout == b""


def test_help_still_gives_the_whole_usage():
    proc = lguest("--help")
    assert proc.returncode == 0
    out = proc.stdout.decode()
    assert out.startswith("usage: lguest [-h] [-v] [--block FILE]")
    assert "--guests N" in out and "Exit status: 0" in out


# -- the exit status of several Guests --------------------------------------------------

class Ended:
    def __init__(self, status):
        self.status = status


@pytest.mark.parametrize("statuses, expected", [
    ([0], 0), ([0, 0, 0], 0), ([3], 3), ([0, 3], 3), ([1, 3], 1), ([0, 0, 130], 130),
    ([0, None], 1),
])
def test_the_status_of_a_group_is_its_first_guest_that_did_not_power_down(statuses, expected):
    assert main.group_status([Ended(s) for s in statuses]) == expected


def test_guests_exit_non_zero_while_one_still_sleeps():
    # Guest 0 reads standard input and its shell quits; Guest 1 has no input,
    # so once its shell waits for a line nothing can ever wake it.
    proc = lguest("--guests=2", "32", str(SHIPPED), "shell", stdin=b"quit\n")
    assert proc.returncode == EXIT_ASLEEP, proc.stderr
    assert proc.stderr.decode().splitlines() == [
        "lguest[0]: CRASH: Power down",
        "lguest[1]: the Guest is asleep with no timer set, and nothing can wake it: "
        "it has no input"]


# -- standard output closed (| head) ------------------------------------------------------

def closed_pipe() -> int:
    """The write end of a pipe whose reader has already gone."""
    r, w = os.pipe()
    os.close(r)
    return w


@pytest.mark.parametrize("verbose", [False, True])
def test_a_closed_standard_output_stops_the_launcher_without_a_traceback(verbose):
    w = closed_pipe()
    try:
        proc = lguest(*(["--verbose"] if verbose else []), "32", stdout=w)
    finally:
        os.close(w)
    err = proc.stderr.decode()
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err == "lguest: standard output was closed (broken pipe): the Launcher stops\n"
    assert proc.returncode == EXIT_BROKEN_PIPE


def test_lguest_piped_into_head():
    # The way a user meets it: the Guest's shell answers many commands, and
    # head takes the first three lines and goes.
    commands = "help\n" * 400 + "quit\n"
    proc = subprocess.run(
        f"printf '{commands}' | {sys.executable} -m lguestsim 32 {SHIPPED} shell | head -3",
        shell=True, cwd=ROOT, capture_output=True, timeout=300, executable="/bin/bash")
    assert len(proc.stdout.decode().splitlines()) == 3
    assert "Traceback" not in proc.stderr.decode()


# -- the ELF entry point ----------------------------------------------------------------

def load(image: bytes) -> tuple[loader.Kernel, list[str]]:
    said: list[str] = []
    mem = GuestMemory.plain(4 * MIB + 4096)
    return loader.load_kernel(mem, image, 4 * MIB, "vmlinux", said.append), said


def test_an_elf_kernel_starts_after_the_marker_and_verbose_says_when_e_entry_differs():
    text = b"\x90" * 0x40 + li.MAGIC + b"\xf4"
    marker = 0xC0000000 + 0x100000 + 0x40 + len(li.MAGIC)
    k, said = load(li.elf([(0x100000, text, 0)], entry=0xC0100000))
    assert k.start == marker                       # 2.6.23: the scan, not e_entry
    assert said[-1] == (f"ELF entry point 0xc0100000 is not the \"GenuineLguest\" entry "
                        f"{marker:#x}: starting at {marker:#x}, as 2.6.23's Launcher does")
    k, said = load(li.elf([(0x100000, text, 0)], entry=marker))
    assert k.start == marker and not any("entry" in line for line in said)
    k, said = load(li.elf([(0x100000, text, 0)], entry=0))   # ELF: 0 is "no entry point"
    assert k.start == marker and not any("entry" in line for line in said)


def test_the_shipped_guests_e_entry_is_its_marker():
    k, said = load(SHIPPED.read_bytes())
    assert int.from_bytes(SHIPPED.read_bytes()[24:28], "little") == k.start
    assert not any("entry" in line for line in said)
