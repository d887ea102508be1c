"""The ``lguest`` command: the Launcher from start to finish.

::

    lguest [--verbose] [--block=FILE] [--initrd=FILE] [--tunnet=...] \\
           [--sharenet=FILE] [--guests=N] \\
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
8. run it, serving its output and its input (the Waker), until it dies.

Differences from the original command line: MEM_IN_MB defaults to
``DEFAULT_MEM_MB`` and KERNEL_IMAGE to the teaching Guest shipped with
lguestsim; --demo runs the processor demonstration instead of a Guest;
``--guests=N`` runs N Guests with the same options on one Host, each with its
own Launcher, taking turns on the one CPU (the way to put several Guests on
one --sharenet network: they all name the same file). The first Guest's
console reads standard input; every Guest's lines are marked ``[n] ``.

The exit status says how the Guest ended: 0 when it powered down (the Host's
reason is "CRASH: Power down"), 1 when it ended any other way (a crash, the
Host killing it, or the Launcher refusing what it was handed), 2 when it
never ran (a bad command line, an image that will not load, a device that
cannot be set up, a Host that refused it), 3 when it went to sleep with
nothing left to wake it (standard input ended and it waits for more), 130
after three ^C within a second. The reason is always printed, as one line on
standard error. With several Guests each one's end is printed
(``lguest[n]: ...``) and the status is that of the first Guest (in order)
that did not power down, so 0 means that every one of them did. When standard
output is closed under the Launcher (``lguest ... | head``) it stops every
Guest and exits 141, the status a shell shows for a program killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn, TextIO

from . import virtio_devices
from .abi import PAGE_SIZE
from .block import setup_block_file
from .boot import write_boot_header, write_initrd_fields
from .console import PrefixedOutput, attach_console_input
from .device_page import DEVICE_PAGES, VirtioDevices
from .devices import DeviceList, device_area_size, setup_console
from .loader import Kernel, load_initrd, load_kernel, map_zeroed_pages, read_file
from .memory import GuestMemory
from .net import setup_net_file, setup_peer_net, setup_tun_net
from .pagetables import linear_pages_needed, setup_pagetables
from .report import (
    BROKEN_PIPE,
    EXIT_ASLEEP,
    EXIT_BROKEN_PIPE,
    EXIT_GUEST_DIED,
    EXIT_INTERRUPTED,
    EXIT_NOT_STARTED,
    EXIT_POWER_DOWN,
    PROG,
    LauncherError,
    Say,
    make_say,
    quiet,
)
from .run import POWER_DOWN_REASONS, Launcher, exit_status, tell_kernel, tell_kernel_2625
from .run import run_many as run_launchers

MIB = 1 << 20
DEFAULT_MEM_MB = 32
# The real Launcher's own code sits at 0xB8000000, and everything below is
# the Guest's: its memory and, above that, the device pages.
MAX_MEM_MB = 0xB8000000 // MIB - 1

SHIPPED_GUEST = Path(__file__).resolve().parent.parent / "guest" / "images" / "guest.elf"
SHIPPED_GUEST_VIRTIO = SHIPPED_GUEST.with_name("guest-virtio.elf")

# Options that take a value, as the real Launcher's getopt table has them.
VALUE_OPTIONS = ("--block", "--initrd", "--tunnet", "--sharenet", "--guests")
# The Host has room for 16 Guests (2.6.23's fixed table).
MAX_GUESTS = 16

EPILOG = f"""\
With no KERNEL_IMAGE it boots the teaching Guest shipped with lguestsim
({SHIPPED_GUEST}); with no MEM_IN_MB it gives it {DEFAULT_MEM_MB} MiB.
Everything after KERNEL_IMAGE is the Guest kernel's command line.
The Guest's console is standard output and standard input (a terminal goes
into raw mode; three ^C within a second stop the Launcher). Exit status: 0
when the Guest powered down, 1 when it died any other way, 2 when it never
ran, 3 when it sleeps with nothing left to wake it (its input ended), 130
after three ^C, 141 when standard output was closed; the reason is printed
on standard error. With --guests=N the status is that of the first Guest
that did not power down."""

# What a bad command line gets instead of argparse's full usage (five lines):
# one line for the error, and this.
USAGE_HINT = (f"usage: {PROG} [options] [MEM_IN_MB [KERNEL_IMAGE [kernel command line...]]]"
              f" (see {PROG} --help)")


class LauncherParser(argparse.ArgumentParser):
    """argparse, but an error is two lines: what is wrong, and the usage hint."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_NOT_STARTED, f"{PROG}: {message}\n{USAGE_HINT}\n")


class DeviceOption(argparse.Action):
    """--block, --sharenet and --tunnet, kept in command-line order: the Guest
    finds its devices in that order (the first --block is its first disk)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        devices = list(getattr(namespace, "devices", None) or [])
        devices.append((self.dest, values))
        namespace.devices = devices


def guest_count(text: str) -> int:
    """--guests=N: how many Guests (each with its own Launcher) on the one Host."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of Guests: {text!r}") from None
    if not 1 <= value <= MAX_GUESTS:
        raise argparse.ArgumentTypeError(f"{value} Guests: must be between 1 and {MAX_GUESTS}")
    return value


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
    parser = LauncherParser(
        prog=PROG, allow_abbrev=False, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Launch a Guest on the simulated lguest Host.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say what the Launcher lays out, as the real one does")
    parser.add_argument("--block", metavar="FILE", action=DeviceOption,
                        help="a block device backed by FILE (its size stays as it is)")
    parser.add_argument("--initrd", metavar="FILE", help="load FILE as the initial RAM disk")
    parser.add_argument("--tunnet", metavar="IPADDR|bridge:NAME", action=DeviceOption,
                        help="a network device to the Host, through a TAP device "
                             "(needs /dev/net/tun and the right to configure it)")
    parser.add_argument("--sharenet", metavar="FILE", action=DeviceOption,
                        help="a network device shared with the other Guests naming FILE "
                             "(with --guests, all of them)")
    parser.add_argument("--guests", metavar="N", type=guest_count, default=1,
                        help="run N Guests, each with its own Launcher, on one Host")
    parser.add_argument("--virtio", action="store_true",
                        help="boot the 2.6.25 (virtio) generation: the Guest boots through "
                             "the boot protocol and its devices are virtio devices "
                             "(console, --block, --sharenet; not --tunnet), NOTIFY does "
                             "its I/O, and it can reboot; the default image is "
                             "guest-virtio.elf (ELF images only)")
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
    """One Launcher's options: the command line's, and a few only Python can give.

    ``devices`` lists (kind, argument) in bus order: ("block", FILE),
    ("sharenet", FILE), ("tunnet", IPADDR or bridge:NAME), and ("peer", MAC
    in hex or "") for a Launcher-side network peer a program drives (see
    ``net.NetPeer``; the Launcher's ``peers``). ``console_in`` is a file
    descriptor the console reads (None: no console input); ``console_out``
    a stream for its output (None: standard output).
    """

    verbose: bool = False
    initrd: str | None = None
    mem_mb: int = DEFAULT_MEM_MB
    image: str | None = None          # None: the shipped Guest
    cmdline: list[str] = field(default_factory=list)
    demo: bool = False
    devices: list[tuple[str, str]] = field(default_factory=list)
    guests: int = 1
    virtio: bool = False              # the 2.6.25 generation
    console_in: int | None = field(default=None, compare=False)
    console_out: TextIO | None = field(default=None, compare=False, repr=False)

    @property
    def mem(self) -> int:
        return self.mem_mb * MIB


def parse_args(argv: list[str]) -> Options:
    """The command line, as ``Options``; argparse exits 2 on a bad one."""
    head, tail = split_argv(argv)
    args = build_parser().parse_args(head)
    return Options(verbose=args.verbose, initrd=args.initrd,
                   mem_mb=args.mem if args.mem is not None else DEFAULT_MEM_MB,
                   image=args.image, cmdline=list(tail), demo=args.demo,
                   devices=list(getattr(args, "devices", None) or []), guests=args.guests,
                   virtio=args.virtio)


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


#: L:100 Unlike the Host, the Launcher is a user program, and its central trick
# is about memory. The C Launcher is linked high (at 0xB8000000), leaving
# everything below free to become the Guest's "physical" memory, so that the
# Guest's physical address 0x1000, say, is simply the Launcher's address 0x1000.
# No address the Guest hands over ever needs converting, only checking. The C
# main() does all its work in one function; lguestsim splits it, and
# `lay_out_guest` is the middle part, the layout, step by step in the original's
# order: the descriptor page and the devices, zeroed memory and the kernel, the
# initrd, the first page tables, the boot header. `start_launcher` (L:222) adds
# the Host's part, and `main` (L:224) the command line.
def lay_out_guest(memory: GuestMemory, mem: int, image: bytes, image_name: str,
                  initrd: str | None = None, cmdline: list[str] | None = None,
                  say: Say = quiet, console_out: TextIO | None = None,
                  add_devices: Callable[[DeviceList], None] | None = None,
                  virtio: bool = False) -> GuestLayout:
    """Steps 1 to 6: a complete Guest in ``memory``, ready for the Host.

    ``memory`` must hold the Guest's ``mem`` bytes and its devices' pages
    (``mem + device_area_size(...)``). ``add_devices`` makes the devices
    the command line asks for, before the console. No Host is needed
    unless a device needs one: notebooks and tests can look at the result
    directly.
    """
    if mem <= 0 or mem % PAGE_SIZE:
        raise LauncherError(f"the Guest's memory must be a whole number of pages, not {mem:#x}")

    # The device descriptor page goes just above Guest memory; the devices
    # asked for on the command line come first, then the console.
    # What 2.6.25 changed (virtio): the page holds virtio descriptors, the
    # console comes first, and the kernel starts at its physical entry point.
    devices = VirtioDevices(memory, mem, say) if virtio else DeviceList(memory, mem, say)
    if virtio:
        virtio_devices.setup_console(devices, console_out)
    if add_devices is not None:
        add_devices(devices)
    if not virtio:
        setup_console(devices, console_out)

    # Zeroed memory everywhere, then the kernel.
    map_zeroed_pages(memory, 0, mem // PAGE_SIZE)
    kernel = load_kernel(memory, image, mem, image_name, say, virtio)

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
    # 2.6.25's first page tables map memory at virtual = physical only: the
    # Guest copies the entries up to its PAGE_OFFSET itself (G:022).
    map_offset = 0 if virtio else kernel.page_offset
    _, linear_pages = linear_pages_needed(mem, map_offset)
    tables = mem - initrd_size - (linear_pages + 1) * PAGE_SIZE
    if tables < kernel.high:
        raise LauncherError(f"too little memory ({mem:#x} bytes): the initial page tables "
                            f"(from {tables:#x}) would overlap the kernel (up to "
                            f"{kernel.high:#x}): give the Guest more memory")
    pgdir = setup_pagetables(memory, mem, initrd_size, map_offset, say)

    # The rest of the boot header: memory map, command line, subarchitecture.
    line = write_boot_header(memory, mem, cmdline or [])
    return GuestLayout(memory, mem, devices, kernel, initrd_size, pgdir, line)


def load_host_api() -> Any:
    """The simulated machine and Host the Launcher runs on."""
    from lguestsim.host import HOST_AREA, Host
    from lguestsim.machine import Machine
    return SimpleNamespace(Machine=Machine, Host=Host, HOST_AREA=HOST_AREA)


def image_of(opts: Options) -> tuple[bytes, str]:
    """The kernel image the options name (or the shipped Guest), and its name."""
    if opts.image is None:
        shipped = SHIPPED_GUEST_VIRTIO if opts.virtio else SHIPPED_GUEST
        if not shipped.is_file():
            raise LauncherError(f"no KERNEL_IMAGE named, and the shipped Guest "
                                f"({shipped}) is not built yet: name an image")
        image_name = str(shipped)
    else:
        image_name = opts.image
    return read_file(image_name), image_name


def launcher_size(opts: Options) -> int:
    """The Launcher's address space: Guest memory, the descriptor page, device pages."""
    if opts.virtio:
        return opts.mem + DEVICE_PAGES * PAGE_SIZE
    return opts.mem + device_area_size(["console"] + [kind for kind, _ in opts.devices])


def new_host(sizes: list[int], host_api: Any = None) -> Any:
    """A fresh machine and Host with room for Launchers of these sizes."""
    room = sum(-(-size // MIB) * MIB for size in sizes) + MIB    # + shared network pages
    try:
        if host_api is None:
            from lguestsim.insmod import insmod_lg
            return insmod_lg(room)
        return host_api.Host(host_api.Machine(host_api.HOST_AREA + room))
    except MemoryError:
        raise LauncherError(f"not enough memory here to simulate "
                            f"{sum(sizes) // MIB} MiB of Guests") from None


def make_devices(opts: Options, host: Any, say: Say, resources: list[Any],
                 peers: list[Any]) -> Callable[[DeviceList], None]:
    """What lay_out_guest() calls to make the devices ``opts`` asks for, in order."""

    def add_devices(devices: DeviceList) -> None:
        for kind, arg in opts.devices:
            if opts.virtio:
                if kind == "block":
                    resources.append(virtio_devices.setup_block_file(devices, arg, say))
                elif kind == "sharenet":
                    resources.append(virtio_devices.setup_net_file(devices, arg, host, say))
                else:
                    raise LauncherError(f"--{kind} is not offered to virtio Guests in "
                                        f"lguestsim (only --block and --sharenet)")
            elif kind == "block":
                resources.append(setup_block_file(devices, arg, say))
            elif kind == "sharenet":
                resources.append(setup_net_file(devices, arg, host, say))
            elif kind == "tunnet":
                resources.append(setup_tun_net(devices, arg, say))
            elif kind == "peer":
                mac = bytes.fromhex(arg.replace(":", "")) if arg else None
                peer = setup_peer_net(devices, mac, say) if mac else setup_peer_net(
                    devices, say=say)
                peers.append(peer)
            else:
                raise LauncherError(f"unknown kind of device {kind!r}")

    return add_devices


#: L:222 From options to a Launcher ready to run one Guest: read the image, ask
# the Host for a process big enough for the Guest's memory and its device
# pages, lay the Guest out there (`lay_out_guest`), attach the console's input,
# open /dev/lguest and tell the Host. If anything fails along the way,
# whatever was already opened (files, network slots, the Guest itself) is
# closed before the error goes up, so a Launcher that cannot start leaves
# nothing behind on the Host.
def start_launcher(opts: Options, host: Any, name: str = PROG,
                   console_out: TextIO | None = None,
                   console_in: int | None = None) -> Launcher:
    """Steps 1 to 7 for one Guest on ``host``: a Launcher ready to run it.

    ``console_out`` and ``console_in`` default to the options' own.
    """
    say = make_say(opts.verbose)
    image_of(opts)          # an image that cannot be read stops us before anything is made
    size = launcher_size(opts)
    try:
        process = host.new_process(size)
    except MemoryError:
        raise LauncherError(f"not enough memory here to simulate a Guest of "
                            f"{opts.mem_mb} MiB") from None
    launcher = Launcher(None, None, name=name, machine=host.machine, say=say)
    launcher.virtio = opts.virtio
    if opts.virtio:
        launcher.relaunch = lambda: boot_guest(launcher, opts, host, process, say,
                                               console_out, console_in)
    boot_guest(launcher, opts, host, process, say, console_out, console_in)
    return launcher


#: L:230 What 2.6.25 added: reboot.  The C Launcher closes every file it has
# (which also closes /dev/lguest, so the Host forgets the Guest) and exec()s
# itself with its own arguments.  lguestsim's Launcher does the same without
# the exec: `boot_guest` lays the Guest out afresh, from the same options, in
# the same Launcher memory (zeroed again, so nothing of the old Guest is
# left), reopens its devices and tells the Host, and the `Launcher` object
# carries on with the new /dev/lguest.  The first boot is the same routine.
def boot_guest(launcher: Launcher, opts: Options, host: Any, process: Any, say: Say,
               console_out: TextIO | None, console_in: int | None) -> None:
    """Lay a Guest out in ``process`` and hand it to the Host; ``launcher`` runs it."""
    image, image_name = image_of(opts)
    size = launcher_size(opts)
    memory = GuestMemory(process, size)
    resources: list[Any] = []
    peers: list[Any] = []
    out = console_out if console_out is not None else opts.console_out
    fd = console_in if console_in is not None else opts.console_in
    lguest = None
    try:
        guest = lay_out_guest(memory, opts.mem, image, image_name, opts.initrd, opts.cmdline,
                              say, out, make_devices(opts, host, say, resources, peers),
                              opts.virtio)
        if fd is not None:
            console = next(dev for dev in guest.devices.devices if dev.name == "console")
            if opts.virtio:
                virtio_devices.attach_console_input(console, fd, say)
            else:
                attach_console_input(console, fd, say)
        lguest = host.open(process, virtio=True) if opts.virtio else host.open(process)
        if opts.virtio:
            tell_kernel_2625(lguest, guest.pfnlimit, guest.pgdir, guest.kernel.start, say)
            # The ring operations go into the machine's event stream too.
            trace = getattr(host, "trace", None)
            for dev in guest.devices.devices:
                for vq in dev.vqs:
                    vq.emit = trace.emit if trace is not None else None
        else:
            tell_kernel(lguest, guest.pfnlimit, guest.pgdir, guest.kernel.start,
                        guest.kernel.page_offset, say)
    except BaseException:
        for resource in resources:
            resource.close()
        if "guest" in locals():
            guest.devices.close()
        if lguest is not None:
            lguest.close()
        raise
    launcher.attach(lguest, guest.devices, layout=guest, resources=resources, peers=peers)


def start_launchers(items: list[Any], host: Any = None, host_api: Any = None) -> list[Launcher]:
    """Launchers for ``items`` (Options, or Launchers already started) on one Host.

    With no ``host`` a new one is made, big enough for all of them. If one
    cannot start, those already started are finished and the error raised.
    """
    if host is None:
        host = new_host([launcher_size(item) for item in items
                         if not isinstance(item, Launcher)], host_api)
    group: list[Launcher] = []
    try:
        for i, item in enumerate(items):
            if isinstance(item, Launcher):
                group.append(item)
            else:
                name = PROG if len(items) == 1 else f"{PROG}[{i}]"
                group.append(start_launcher(item, host, name))
    except BaseException:
        for launcher in group:
            launcher.finish(EXIT_NOT_STARTED, "another Launcher could not start")
        raise
    return group


def run_many(items: Iterable[Any], host: Any = None, *, wait: float | None = None,
             until: Callable[[], bool] | None = None,
             max_rounds: int | None = None) -> list[Launcher]:
    """``run.run_many`` for ``Options`` as well as started Launchers.

    Options are started first on ``host`` (a new machine and Host big enough
    for them all when ``host`` is None); then all take turns until every
    one has ended, or ``wait``, ``until`` or ``max_rounds`` says stop.
    """
    group = list(items)
    if any(not isinstance(item, Launcher) for item in group):
        group = start_launchers(group, host)
    return run_launchers(group, wait=wait, until=until, max_rounds=max_rounds)


#: L:223 `launch` is what the `lguest` command does with its options: make a
# simulated machine and Host with room for the Guests, start a Launcher for
# each (with `--guests=N` there are N, each console line labelled with its
# Guest's number and only the first reading standard input), run them until
# all have ended, and print each one's reason. The exit status is the first
# Guest's that did not power down (`group_status`): a run of several Guests
# where one still sleeps, or died, must not look like a success.
def launch(opts: Options, host_api: Any = None, console_out: TextIO | None = None,
           console_in: int | None = None) -> int:
    """Lay out the Guest(s), hand them to the Host, and run them; return the exit status.

    ``host_api`` provides ``Machine``, ``Host`` and ``HOST_AREA`` (by default
    lguestsim's own). ``console_in`` is the file descriptor the (first)
    Guest's console reads (``main`` gives standard input; None: no input).
    Raises ``LauncherError`` when the Launcher cannot start.
    """
    if host_api is None:
        host_api = load_host_api()
    count = opts.guests
    if count == 1:
        host = new_host([launcher_size(opts)], host_api)
        group = [start_launcher(opts, host, PROG, console_out, console_in)]
    else:
        host = new_host([launcher_size(opts)] * count, host_api)
        group = []
        try:
            for i in range(count):
                out = PrefixedOutput(f"[{i}] ", console_out)
                group.append(start_launcher(opts, host, f"{PROG}[{i}]", out,
                                            console_in if i == 0 else None))
        except BaseException:
            for launcher in group:
                launcher.finish(EXIT_NOT_STARTED, "another Launcher could not start")
            raise
    try:
        run_many(group, wait=None)
    finally:
        for launcher in group:
            launcher.finish(EXIT_INTERRUPTED, "interrupted")
    for launcher in group:
        print(f"{launcher.name}: {launcher.reason}", file=sys.stderr, flush=True)
    return group_status(group)


def group_status(group: list[Launcher]) -> int:
    """The exit status of a run: the first that is not a power down, else 0."""
    for launcher in group:
        if launcher.status != EXIT_POWER_DOWN:
            return EXIT_GUEST_DIED if launcher.status is None else launcher.status
    return EXIT_POWER_DOWN


def silence_stdout() -> None:
    """Standard output went away (``lguest ... | head``): point it at /dev/null.

    Python would otherwise complain once more when it flushes standard
    output on the way out (the Python manual's advice for SIGPIPE).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


#: L:240 The end of the Launcher's story.  It is a plain user program: it
# laid out the Guest's memory, told the Host about it, and from then on
# only ran round read() serving devices, until the Guest powered off, crashed
# or (in 2.6.25) asked to be started again.  Everything else -- switching
# worlds, shadow page tables, trapping and reflecting interrupts -- is the
# Host's, the harder half of the journey, which comes next.

#: L:224 And `main` itself, short because the work is elsewhere: parse the
# command line, run the processor demonstration if `--demo` asked for it, and
# otherwise launch. A `LauncherError` becomes one line on standard error and
# its exit status, and a KeyboardInterrupt the 130 a shell gives an
# interrupted program, so every end the Launcher foresees is a tidy one.
def main(argv: list[str] | None = None) -> int:
    """The ``lguest`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        opts = parse_args(argv)
        if opts.demo:
            from lguestsim.demo import run_demo
            return run_demo(verbose=opts.verbose)
        status = launch(opts, console_in=sys.stdin.fileno() if sys.stdin is not None else None)
        if status == EXIT_BROKEN_PIPE:
            silence_stdout()
        return status
    except LauncherError as err:
        print(f"{PROG}: {err}", file=sys.stderr, flush=True)
        return err.status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        # Closed while the Launcher itself spoke (--verbose), not the Guest.
        silence_stdout()
        print(f"{PROG}: {BROKEN_PIPE}", file=sys.stderr, flush=True)
        return EXIT_BROKEN_PIPE


#: M:999 That is the whole Launcher, from the command line to the last read().
# There is plenty left to try. The 2.6.25 Launcher can reboot its Guest by
# closing everything and exec()ing itself afresh: give this one a restart,
# and think about what the Host must forget. `--sharenet` only joins Launchers
# in one Python process; make it work between processes, with a real shared
# file. Replace the Waker's tick with a thread that blocks in select(), and
# see what LHREQ_BREAK must then do on the Host's side. Or serve block
# requests asynchronously, and measure whether the Guest notices.

__all__ = ["main", "launch", "lay_out_guest", "parse_args", "Options", "GuestLayout",
           "start_launcher", "start_launchers", "run_many", "exit_status",
           "POWER_DOWN_REASONS", "EXIT_POWER_DOWN", "EXIT_GUEST_DIED", "EXIT_NOT_STARTED",
           "EXIT_ASLEEP", "EXIT_INTERRUPTED"]
