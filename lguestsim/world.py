"""A world: one simulated machine with its Host, Launchers and Guests, and the
rule by which it moves one step at a time.

A ``Session`` (session.py) is what a reader drives; the ``World`` is what it
drives.  A world is built from a tuple of specs -- ``ImageGuest`` (an image
the Launcher loads, by default the shipped teaching Guest) or ``TinyGuest``
(a few lines of assembly) -- and ``World.step()`` moves it by one step:

* a step of the CPU: one instruction (Switcher or Guest), or the delivery of
  one exception or interrupt, exactly ``cpu.step()``;
* a step of the Host: everything the Host (and, when a read() of /dev/lguest
  returns, the Launcher) does in Python between two trips into the Guest,
  done at once, as the real Host does it with the Guest stopped.

The session replays a world from its boot to go back in time, so stepping
must be exact at two speeds.  That needs one rule, which this module owns:
when the Host's clock is looked at while a Guest runs.  The Host's timer
interrupt preempts a Guest only once the clock has passed a deadline; the
world looks at the clock after every ``CHECK_EVERY`` instructions executed in
a trip (once no deliverable interrupt is waiting), never in between.
``run_chunk`` (``cpu.run(n)``) stops at exactly such points, so a replay at
full speed passes through the same states as stepping.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import asm
from .host import LHREQ_INITIALIZE
from .host.core import HOST_RETURN
from .host.io import Dma
from .host.lg import LHREQ_BREAK, Lguest
from .insmod import insmod_lg
from .symbols import Symbols, guest_symbols, program_symbols
from .trace import Event

MIB = 1 << 20
PAGE = 4096
CHECK_EVERY = 1024          # instructions between two looks at the Host's clock in a trip
IF = 0x200
M32 = 0xFFFFFFFF
HOST_STEP, CPU_STEP, FINISHED = "host", "cpu", "finished"


# ---------------------------------------------------------------------------
# What to boot.

@dataclass(frozen=True)
class ImageGuest:
    """A Guest kernel image the Launcher loads (None: the shipped teaching Guest)."""

    image: str | Path | None = None
    mem_mb: int = 32
    cmdline: tuple[str, ...] = ()
    name: str | None = None
    virtio: bool = False              # the 2.6.25 generation (guest-virtio.elf by default)
    block: str | Path | None = None   # a disk image file (kept its size), as --block=FILE


@dataclass(frozen=True)
class TinyGuest:
    """A few lines of assembly run as a Guest kernel (see ``lguestsim.asm.tiny_guest``).

    ``share``: the page just above the Guest's RAM is the machine's shared
    page (as two Launchers mapping one file), so that Guests can send each
    other DMA through a key there: ``SHARED_KEY(mem)``.
    """

    source: str
    mem: int = 8 * MIB
    share: bool = False
    name: str | None = None


def shared_key(mem: int = 8 * MIB) -> int:
    """The DMA key in the shared page of a TinyGuest with ``mem`` bytes of RAM."""
    return mem + 8


class ConsoleLog:
    """Where a Guest's console output goes: text, with the cycle each piece came at."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self.chunks: list[tuple[int, str]] = []

    def write(self, text: str) -> int:
        self.chunks.append((self.clock(), text))
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.chunks)


@dataclass
class Run:
    """One Launcher process and its Guest, inside a world."""

    index: int
    name: str
    spec: ImageGuest | TinyGuest
    process: object
    dev: object
    symbols: Symbols | None
    page_offset: int
    console: ConsoleLog
    layout: object = None              # the Launcher's GuestLayout (image Guests)
    program: asm.Program | None = None  # tiny Guests
    outputs: list[tuple[int, bytes]] = field(default_factory=list)   # (key, bytes) sent out
    reads: int = 0
    ended: str | None = None            # why this Launcher stopped (dead Guest, or it gave up)
    disks: list = field(default_factory=list)   # the Launcher's open disk files (block=)

    @property
    def lg(self) -> Lguest | None:
        return self.dev.lg

    @property
    def guestid(self) -> int:
        return self.lg.guestid

    @property
    def runnable(self) -> bool:
        return self.ended is None


# ---------------------------------------------------------------------------
# A world: machine, Host, Launchers, and the stepping rule.

class World:
    """Everything one simulation holds; built afresh for every replay."""

    def __init__(self, specs: tuple, direct_traps: bool = True, seed: int = 0,
                 pgdir_cache: int | None = None) -> None:
        sizes = 0
        for spec in specs:
            if isinstance(spec, ImageGuest):
                sizes += spec.mem_mb * MIB + 2 * MIB
            else:
                sizes += spec.mem + 2 * PAGE
        self.host = insmod_lg(sizes + 2 * MIB, direct_traps=direct_traps, seed=seed)
        self.machine = self.host.machine
        self.cpu = self.machine.cpu
        self.mem = self.machine.mem
        self.shared = None
        if any(isinstance(s, TinyGuest) and s.share for s in specs):
            self.shared = self.host.new_shared_memory(PAGE)
        self.runs: list[Run] = []
        for i, spec in enumerate(specs):
            run = self._make_run(i, spec)
            if pgdir_cache is not None:
                lg = run.lg
                lg.pgdirs = (lg.pgdirs + [None] * pgdir_cache)[:max(1, pgdir_cache)]
            self.runs.append(run)
        self.current = 0
        self.gen = None
        self.steps = 0
        self.next_check = CHECK_EVERY
        self.finished = False
        self.idle_reads = 0
        self.launcher_log: list[tuple[int, int, str]] = []     # (cycle, guest index, what)
        self.events_seen = 0
        self.wanted: frozenset[str] = frozenset()
        self.wanted_guest: int | None = None
        self.wanted_match: Callable[[Event], bool] | None = None
        self.hit: Event | None = None
        self.host.trace.listeners.append(self._on_event)

    # -- building the Guests
    def _make_run(self, index: int, spec) -> Run:
        console = ConsoleLog(lambda: self.cpu.cycles)
        if isinstance(spec, ImageGuest):
            return self._make_image_run(index, spec, console)
        return self._make_tiny_run(index, spec, console)

    def _make_image_run(self, index: int, spec: ImageGuest, console: ConsoleLog) -> Run:
        from .launcher.device_page import DEVICE_PAGES
        from .launcher.devices import device_area_size
        from .launcher.loader import read_file
        from .launcher.main import SHIPPED_GUEST, SHIPPED_GUEST_VIRTIO, lay_out_guest
        from .launcher.memory import GuestMemory
        from .launcher.run import tell_kernel, tell_kernel_2625
        shipped = SHIPPED_GUEST_VIRTIO if spec.virtio else SHIPPED_GUEST
        name = str(spec.image) if spec.image is not None else str(shipped)
        image = read_file(name)
        mem = spec.mem_mb * MIB
        kinds = ["console"] + (["block"] if spec.block is not None else [])
        size = mem + (DEVICE_PAGES * PAGE if spec.virtio else device_area_size(kinds))
        process = self.host.new_process(size)
        memory = GuestMemory(process, size)
        disks: list = []

        def add_disk(devices) -> None:
            # The same set-up as the command line's --block, before the console.
            from .launcher import block, virtio_devices
            setup = virtio_devices.setup_block_file if spec.virtio else block.setup_block_file
            disks.append(setup(devices, str(spec.block)))

        layout = lay_out_guest(memory, mem, image, name, None, list(spec.cmdline),
                               console_out=console, virtio=spec.virtio,
                               add_devices=add_disk if spec.block is not None else None)
        dev = self.host.open(process, virtio=spec.virtio)
        if spec.virtio:
            # What 2.6.25 changed: the other four numbers; ring operations traced.
            tell_kernel_2625(dev, layout.pfnlimit, layout.pgdir, layout.kernel.start)
            for device in layout.devices.devices:
                for vq in device.vqs:
                    vq.emit = self.host.trace.emit
        else:
            tell_kernel(dev, layout.pfnlimit, layout.pgdir, layout.kernel.start,
                        layout.kernel.page_offset)
        symbols = _image_symbols(name, image)
        return Run(index, spec.name or f"guest{index}", spec, process, dev, symbols,
                   layout.kernel.page_offset, console, layout=layout, disks=disks)

    def _make_tiny_run(self, index: int, spec: TinyGuest, console: ConsoleLog) -> Run:
        program = asm.tiny_guest(spec.source)
        mem = spec.mem
        process = self.host.new_process(mem + PAGE)
        if spec.share:
            process.map_shared(mem, self.shared)
        process.write(asm.TINY_LOAD, program.code)
        pgdir = _linear_page_tables(process, mem)
        dev = self.host.open(process)
        dev.write(struct.pack("<5I", LHREQ_INITIALIZE, mem // PAGE + 1, pgdir,
                              asm.PAGE_OFFSET + asm.TINY_LOAD, asm.PAGE_OFFSET))
        return Run(index, spec.name or f"tiny{index}", spec, process, dev,
                   program_symbols(program), asm.PAGE_OFFSET, console, program=program)

    # -- the trace
    def _on_event(self, ev: Event) -> None:
        self.events_seen += 1
        if self.hit is None and ev.kind in self.wanted and (
                self.wanted_guest is None or ev.data.get("guest") == self.wanted_guest) and (
                self.wanted_match is None or self.wanted_match(ev)):
            self.hit = ev

    # -- where we are
    @property
    def in_trip(self) -> bool:
        """Is the CPU running a trip into a Guest (the next step is the CPU's)?"""
        return self.gen is not None and self.cpu.eip != HOST_RETURN

    @property
    def run(self) -> Run:
        return self.runs[self.current]

    def _deliverable(self) -> bool:
        cpu = self.cpu
        return bool(cpu.pending) and bool(cpu.eflags & IF) and not cpu.inhibit

    # -- one step
    def step(self) -> str:
        """One step (see the module's docstring); returns HOST_STEP, CPU_STEP or FINISHED."""
        if self.finished:
            return FINISHED
        cpu = self.cpu
        if self.gen is None or cpu.eip == HOST_RETURN:
            self._host_work()
            return HOST_STEP
        why = cpu.step()
        self.steps += 1
        if cpu.shutdown or (cpu.halted and not self._deliverable()):
            self.host.cpu_stopped(self.run.lg, why or "hlt")
        elif cpu.instructions >= self.next_check and cpu.eip != HOST_RETURN \
                and not self._deliverable():
            self._look_at_clock()
        return CPU_STEP

    def _look_at_clock(self) -> None:
        self.next_check += CHECK_EVERY
        if self.cpu.cycles >= self.machine.next_deadline():
            self.host.host_timer_due()

    def run_chunk(self, max_instructions: int) -> None:
        """Run the CPU at full speed, at most ``max_instructions``, ending exactly where
        stepping would look at the clock.  Used by replays, where the step count
        is not needed until the milestone is reached."""
        cpu = self.cpu
        if cpu.instructions >= self.next_check:
            self.step()
            return
        k = min(self.next_check - cpu.instructions, max_instructions)
        why = cpu.run(k)
        if why in ("hlt", "triple-fault"):
            self.host.cpu_stopped(self.run.lg, why)
        elif why == "limit" and cpu.instructions >= self.next_check:
            self._look_at_clock()

    # -- the Host's and the Launcher's part
    def _read(self, run: Run):
        """/dev/lguest's read(), pausing for each trip (``LguestFile.read_steps``)."""
        return (yield from run.dev.read_steps(8, run.process))

    def _host_work(self) -> None:
        self.steps += 1
        if self.gen is not None:
            try:
                next(self.gen)
                self.idle_reads = 0
                return                   # straight into the next trip
            except StopIteration as done:
                self._read_done(self.run, done.value, None)
            except OSError as err:
                self._read_done(self.run, None, err)
            self.gen = None
            self._schedule()
        while not self.finished:
            if self.idle_reads > 2 * len(self.runs):
                # Every Guest sleeps and nothing can wake one: the end.
                for run in self.runs:
                    if run.runnable:
                        run.ended = "asleep with no timer set, and nothing can wake it"
                        self._log(run, run.ended)
                self.finished = True
                return
            run = self.run
            self.gen = self._read(run)
            try:
                next(self.gen)
                self.idle_reads = 0
                return
            except StopIteration as done:
                self._read_done(run, done.value, None)
            except OSError as err:
                self._read_done(run, None, err)
            self.gen = None
            self._schedule()

    def _schedule(self) -> None:
        """Round robin at read() boundaries, as Launcher processes on one CPU."""
        n = len(self.runs)
        for i in range(1, n + 1):
            j = (self.current + i) % n
            if self.runs[j].runnable:
                self.current = j
                return
        self.finished = True

    def _log(self, run: Run, what: str) -> None:
        self.launcher_log.append((self.cpu.cycles, run.index, what))

    def _read_done(self, run: Run, data: bytes | None, err: OSError | None) -> None:
        run.reads += 1
        if data is not None and len(data) == 4:
            self._launcher_notify(run, struct.unpack("<I", data)[0])
            return
        if err is not None and err.errno == errno.ERESTART:
            run.ended = "the Guest asked to be restarted (a session does not reboot it)"
            self._log(run, run.ended)
            return
        if data is not None and len(data) == 8:
            dma, key = struct.unpack("<II", data)
            self._launcher_output(run, dma, key)
            return
        if data is not None or err.errno == errno.ENOENT:
            raw = data if data is not None else run.dev.read(1023)
            reason = raw.split(b"\0", 1)[0].decode("utf-8", "replace") or "dead"
            run.ended = reason
            self._log(run, f"the Guest died: {reason}")
            return
        if err.errno == errno.EAGAIN:
            # Another Guest's turn, or this one sleeps with no timer: either way
            # the Launcher reads again later (a session types no console input).
            self.idle_reads += 1
            if run.lg.break_out:
                run.dev.write(struct.pack("<2I", LHREQ_BREAK, 0))
            self._log(run, f"read() returned EAGAIN: {err.strerror or err}")
            return
        run.ended = f"the Launcher stopped: {err.strerror or err}"
        self._log(run, run.ended)

    def _launcher_notify(self, run: Run, addr: int) -> None:
        """2.6.25: the Guest NOTIFYed ``addr``; the Launcher's device page serves it."""
        from .launcher.report import LauncherError
        try:
            before = len(run.console.chunks)
            run.layout.devices.handle_notify(run.dev, addr)
            text = "".join(t for _, t in run.console.chunks[before:])
            run.outputs.append((addr, text.encode()))
            self._log(run, f"NOTIFY {addr:#x}: {text!r}")
        except LauncherError as e:
            run.ended = f"the Launcher refused: {e}"
            self._log(run, run.ended)

    def _launcher_output(self, run: Run, dma: int, key: int) -> None:
        if run.layout is not None:
            from .launcher.report import LauncherError
            try:
                before = len(run.console.chunks)
                run.layout.devices.handle_output(run.dev, dma, key)
                text = "".join(t for _, t in run.console.chunks[before:])
                run.outputs.append((key, text.encode()))
                self._log(run, f"output to key {key:#x}: {text!r}")
            except LauncherError as e:
                run.ended = f"the Launcher refused: {e}"
                self._log(run, run.ended)
            return
        proc = run.process
        data = b"".join(proc.read(a, n) for a, n in Dma.read(proc, dma).sections())
        proc.write32(dma, len(data))
        run.outputs.append((key, data))
        run.console.write(data.decode("latin-1"))
        self._log(run, f"output to key {key:#x}: {data!r}")


def _linear_page_tables(proc, mem_bytes: int) -> int:
    """The Launcher's first tables for a tiny Guest: all RAM at PAGE_OFFSET."""
    pages = mem_bytes // PAGE
    pgdir = mem_bytes - PAGE
    linear = pgdir - ((pages + 1023) // 1024) * PAGE
    proc.write(linear, b"".join(struct.pack("<I", (i * PAGE) | 7) for i in range(pages)))
    for i in range(0, pages, 1024):
        proc.write32(pgdir + ((i + asm.PAGE_OFFSET // PAGE) // 1024) * 4, (linear + i * 4) | 7)
    return pgdir


def _image_symbols(name: str, image: bytes) -> Symbols | None:
    from .guest import BZIMAGE, ELF_IMAGE
    try:
        if Path(name).resolve() in (ELF_IMAGE.resolve(), BZIMAGE.resolve()):
            return guest_symbols()
    except OSError:
        pass
    if image[:4] == b"\x7fELF":
        try:
            return Symbols(image)
        except Exception:
            return None
    return None
