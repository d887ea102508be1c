"""The ``lguest`` command: the Launcher from start to finish.

::

    lguest [--verbose] [--block=FILE] [--initrd=FILE] [--tunnet=...] \\
           [MEM_IN_MB [KERNEL_IMAGE [kernel command line...]]]

The steps, in the order the real Launcher takes them:

1. work out how much memory the Guest gets, and put the device descriptor
   page just above it;
2. make the devices the command line asks for, in command-line order, then
   the console, which every Guest has;
3. zero all of the Guest's memory, and load the kernel into it;
4. load the initrd at the top of memory, and say so in the boot header;
5. build the first page tables below the initrd;
6. fill in the rest of the boot header: memory map, command line, and the
   "you are an lguest Guest" subarchitecture;
7. tell the Host about the Guest through /dev/lguest;
8. run it, serving its output, until it dies.

Differences from the original command line: MEM_IN_MB defaults to
``DEFAULT_MEM_MB`` and KERNEL_IMAGE to the teaching Guest shipped with
lguestsim; --block, --tunnet and --sharenet are recognised but not built yet,
and say so; --demo runs the processor demonstration instead of a Guest.

The exit status says how the Guest ended: 0 when it powered down (the Host's
reason is "CRASH: Power down"), 1 when it ended any other way (a crash, the
Host killing it, or the Launcher refusing what it was handed), 2 when it
never ran (a bad command line, an image that will not load, a Host that
refused it). The reason is always printed, as one line on standard error.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from .abi import PAGE_SIZE
from .boot import write_boot_header, write_initrd_fields
from .devices import DeviceList, device_area_size, setup_console
from .loader import Kernel, load_initrd, load_kernel, map_zeroed_pages, read_file
from .memory import GuestMemory
from .pagetables import linear_pages_needed, setup_pagetables
from .report import (
    EXIT_GUEST_DIED,
    EXIT_NOT_STARTED,
    EXIT_POWER_DOWN,
    PROG,
    LauncherError,
    Say,
    make_say,
    quiet,
)
from .run import run_guest, tell_kernel

MIB = 1 << 20
DEFAULT_MEM_MB = 32
# The real Launcher's own code sits at 0xB8000000, and everything below is
# the Guest's: its memory and, above that, the device pages.
MAX_MEM_MB = 0xB8000000 // MIB - 1

SHIPPED_GUEST = Path(__file__).resolve().parent.parent / "guest" / "images" / "guest.elf"

# The Host's reason when a Guest powered itself down (LHCALL_CRASH "Power down").
POWER_DOWN_REASONS = frozenset({"CRASH: Power down"})

# Options that take a value, as the real Launcher's getopt table has them.
VALUE_OPTIONS = ("--block", "--initrd", "--tunnet", "--sharenet")
NOT_BUILT = {
    "block": "block devices",
    "tunnet": "network devices on a tun device",
    "sharenet": "Guest-to-Guest network devices",
}

EPILOG = f"""\
With no KERNEL_IMAGE it boots the teaching Guest shipped with lguestsim
({SHIPPED_GUEST}); with no MEM_IN_MB it gives it {DEFAULT_MEM_MB} MiB.
Everything after KERNEL_IMAGE is the Guest kernel's command line.
The Guest's console is standard output. Exit status: 0 when the Guest powered
down, 1 when it died any other way, 2 when it never ran; the reason is printed
on standard error."""


def mem_in_mb(text: str) -> int:
    """MEM_IN_MB: a whole number of MiB the Guest can have."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of megabytes: {text!r}") from None
    if not 1 <= value <= MAX_MEM_MB:
        raise argparse.ArgumentTypeError(f"{value} MiB: must be between 1 and {MAX_MEM_MB}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Launch a Guest on the simulated lguest Host.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say what the Launcher lays out, as the real one does")
    parser.add_argument("--block", metavar="FILE", action="append", default=[],
                        help="a block device backed by FILE (not built yet)")
    parser.add_argument("--initrd", metavar="FILE", help="load FILE as the initial RAM disk")
    parser.add_argument("--tunnet", metavar="IPADDR|bridge:NAME", action="append", default=[],
                        help="a network device on a tun device (not built yet)")
    parser.add_argument("--sharenet", metavar="FILE", action="append", default=[],
                        help="a network device shared with other Guests (not built yet)")
    parser.add_argument("--demo", action="store_true",
                        help="run the processor demonstration instead (python -m lguestsim.demo)")
    parser.add_argument("mem", metavar="MEM_IN_MB", nargs="?", type=mem_in_mb,
                        help=f"the Guest's memory in MiB (default {DEFAULT_MEM_MB})")
    parser.add_argument("image", metavar="KERNEL_IMAGE", nargs="?",
                        help="a vmlinux (ELF) or bzImage (default: the shipped Guest)")
    return parser


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split the arguments into the Launcher's own and the Guest kernel's.

    Options may come anywhere before KERNEL_IMAGE; every word after it
    belongs to the kernel's command line, even one that starts with "-".
    """
    positionals = 0
    i = 0
    while i < len(argv) and positionals < 2:
        word = argv[i]
        if word == "--":
            return argv[:i + 1 + 2 - positionals], argv[i + 1 + 2 - positionals:]
        if word.startswith("-") and word != "-":
            if word in VALUE_OPTIONS:
                i += 1  # its value is the next word
        else:
            positionals += 1
        i += 1
    return argv[:i], argv[i:]


@dataclass
class Options:
    verbose: bool = False
    initrd: str | None = None
    mem_mb: int = DEFAULT_MEM_MB
    image: str | None = None          # None: the shipped Guest
    cmdline: list[str] = field(default_factory=list)
    demo: bool = False

    @property
    def mem(self) -> int:
        return self.mem_mb * MIB


def parse_args(argv: list[str]) -> Options:
    """The command line, as ``Options``; argparse exits 2 on a bad one.

    Options that are recognised but not built yet raise a ``LauncherError``.
    """
    head, tail = split_argv(argv)
    args = build_parser().parse_args(head)
    for name, what in NOT_BUILT.items():
        if getattr(args, name):
            raise LauncherError(f"--{name}: {what} are not built yet in lguestsim")
    return Options(verbose=args.verbose, initrd=args.initrd,
                   mem_mb=args.mem if args.mem is not None else DEFAULT_MEM_MB,
                   image=args.image, cmdline=list(tail), demo=args.demo)


@dataclass
class GuestLayout:
    """Everything the Launcher laid out for one Guest, before it runs."""

    memory: GuestMemory
    mem: int
    devices: DeviceList
    kernel: Kernel
    initrd_size: int
    pgdir: int
    cmdline: bytes

    @property
    def pfnlimit(self) -> int:
        return self.devices.top // PAGE_SIZE


#: L:100 main: laying out the Guest's memory, in order
def lay_out_guest(memory: GuestMemory, mem: int, image: bytes, image_name: str,
                  initrd: str | None = None, cmdline: list[str] | None = None,
                  say: Say = quiet, console_out: TextIO | None = None) -> GuestLayout:
    """Steps 1 to 6: a complete Guest in ``memory``, ready for the Host.

    ``memory`` must hold the Guest's ``mem`` bytes and its devices' pages
    (``mem + device_area_size(...)``). No Host is needed: notebooks and
    tests can look at the result directly.
    """
    if mem <= 0 or mem % PAGE_SIZE:
        raise LauncherError(f"the Guest's memory must be a whole number of pages, not {mem:#x}")

    # The device descriptor page goes just above Guest memory; the devices
    # asked for on the command line come first (none are built yet), then
    # the console.
    devices = DeviceList(memory, mem, say)
    setup_console(devices, console_out)

    # Zeroed memory everywhere, then the kernel.
    map_zeroed_pages(memory, 0, mem // PAGE_SIZE)
    kernel = load_kernel(memory, image, mem, image_name, say)

    # The initrd goes at the top of memory, and the boot header says where.
    initrd_size = 0
    if initrd is not None:
        initrd_size = load_initrd(memory, initrd, mem, say)
        if mem - initrd_size < kernel.high:
            raise LauncherError(f"the initrd {initrd} ({initrd_size:#x} bytes at the top "
                                f"of memory) would overlap the kernel, which ends at "
                                f"{kernel.high:#x}: give the Guest more memory")
        write_initrd_fields(memory, mem, initrd_size)

    # The page tables go below the initrd, and must not land on the kernel.
    _, linear_pages = linear_pages_needed(mem, kernel.page_offset)
    tables = mem - initrd_size - (linear_pages + 1) * PAGE_SIZE
    if tables < kernel.high:
        raise LauncherError(f"too little memory ({mem:#x} bytes): the initial page tables "
                            f"(from {tables:#x}) would overlap the kernel (up to "
                            f"{kernel.high:#x}): give the Guest more memory")
    pgdir = setup_pagetables(memory, mem, initrd_size, kernel.page_offset, say)

    # The rest of the boot header: memory map, command line, subarchitecture.
    line = write_boot_header(memory, mem, cmdline or [])
    return GuestLayout(memory, mem, devices, kernel, initrd_size, pgdir, line)


def load_host_api() -> Any:
    """The simulated machine and Host, or None if they cannot be imported."""
    try:
        from lguestsim.host import HOST_AREA, Host
        from lguestsim.machine import Machine
    except ImportError:
        return None
    return SimpleNamespace(Machine=Machine, Host=Host, HOST_AREA=HOST_AREA)


def exit_status(reason: str) -> int:
    """0 if the Guest's death reason says it powered down, else 1."""
    return EXIT_POWER_DOWN if reason in POWER_DOWN_REASONS else EXIT_GUEST_DIED


def launch(opts: Options, host_api: Any = None, console_out: TextIO | None = None) -> int:
    """Lay out the Guest, hand it to the Host, and run it; return the exit status.

    ``host_api`` provides ``Machine``, ``Host`` and ``HOST_AREA`` (by default
    lguestsim's own). Raises ``LauncherError`` when the Launcher cannot go on.
    """
    say = make_say(opts.verbose)
    if opts.image is None:
        if not SHIPPED_GUEST.is_file():
            raise LauncherError(f"no KERNEL_IMAGE named, and the shipped Guest "
                                f"({SHIPPED_GUEST}) is not built yet: name an image")
        image_name = str(SHIPPED_GUEST)
    else:
        image_name = opts.image
    image = read_file(image_name)
    if host_api is None:
        host_api = load_host_api()

    # The Launcher's address space: Guest memory, the descriptor page, and
    # the console's pages (none).
    size = opts.mem + device_area_size(["console"])
    try:
        if host_api is not None:
            machine = host_api.Machine(host_api.HOST_AREA + -(-size // MIB) * MIB)
            host = host_api.Host(machine)
            process = host.new_process(size)
            memory = GuestMemory(process, size)
        else:
            memory = GuestMemory.plain(size)
    except MemoryError:
        raise LauncherError(f"not enough memory here to simulate a Guest of "
                            f"{opts.mem_mb} MiB") from None

    guest = lay_out_guest(memory, opts.mem, image, image_name, opts.initrd, opts.cmdline,
                          say, console_out)
    if host_api is None:
        raise LauncherError("cannot run the Guest: the simulated Host (lguestsim.host) "
                            "is not available")

    # Tell the Host, and run the Guest until it dies.
    lguest = host.open(process)
    try:
        tell_kernel(lguest, guest.pfnlimit, guest.pgdir, guest.kernel.start,
                    guest.kernel.page_offset, say)
        reason = run_guest(lguest, guest.devices)
    finally:
        lguest.close()
    print(f"{PROG}: {reason}", file=sys.stderr, flush=True)
    return exit_status(reason)


def main(argv: list[str] | None = None) -> int:
    """The ``lguest`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        opts = parse_args(argv)
        if opts.demo:
            from lguestsim.demo import run_demo
            return run_demo(verbose=opts.verbose)
        return launch(opts)
    except LauncherError as err:
        print(f"{PROG}: {err}", file=sys.stderr, flush=True)
        return err.status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return 130


__all__ = ["main", "launch", "lay_out_guest", "parse_args", "Options", "GuestLayout",
           "EXIT_POWER_DOWN", "EXIT_GUEST_DIED", "EXIT_NOT_STARTED"]
