"""A session: one simulated machine that a reader steps through, forwards and back.

This is how the notebooks (and an instructor at a projector) drive lguestsim.
A ``Session`` boots one or more Guests on a fresh Host -- the shipped teaching
Guest, any image the Launcher can load, or a few lines of assembly -- and then
moves through their life one *step* at a time:

a step of the CPU (one instruction, or one exception or interrupt delivered)
or a step of the Host (all it does in Python between two trips into the
Guest); lguestsim.world owns the machine and that stepping rule.

On top of stepping: ``step_to(kind)`` for the next trace event of a kind
(world switch, trap, hypercall, interrupt, page fault, DMA, kill, timer),
``run_to(where)`` for an address (virtual, Guest-physical or host-physical),
a Guest symbol or a source line, watchpoints on memory, and ``back(n)``.

Going back works by replay.  The whole simulation is deterministic (the Host's
randomness is seeded, time is counted in cycles), so the state after step N is
simply what N steps from the boot produce.  ``back(n)`` builds the world
afresh and runs it forward to step N - n: at full speed (``cpu.run``) to the
last *milestone* before it -- a step whose instruction count and cycle count
were recorded on the way forward -- then one step at a time.  Nothing is
copied, so Python generators (the Host's ``guest_steps``) are no obstacle.

The replay is exact because the world steps by one rule at both speeds
(see lguestsim.world).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .host import Host
from .host.core import HOST_IRQ_HANDLER, HOST_RETURN, SWITCHER_ADDR
from .host.lg import Lguest
from .machine import Machine
from .pagewalk import guest_walk, read_code, walk_both
from .symbols import Symbols, switcher_symbols
from .trace import KINDS, Event, Trace
from .world import (  # noqa: F401  (re-exported: what to boot, and the world's parts)
    CHECK_EVERY,
    FINISHED,
    MIB,
    PAGE,
    ConsoleLog,
    ImageGuest,
    Run,
    TinyGuest,
    World,
    shared_key,
)
from .x86 import CPU, PhysicalMemory
from .x86.disasm import disassemble

MILESTONE_EVERY = 2048      # steps between two recorded milestones
M32 = 0xFFFFFFFF


class SessionError(RuntimeError):
    """Something a session cannot do (a bad target, a replay that diverged)."""



# ---------------------------------------------------------------------------
# Stops, breakpoints, watchpoints.

@dataclass
class Stop:
    """Why a motion ended: reason, and the event, address or watchpoint behind it."""

    reason: str                  # "event", "breakpoint", "watchpoint", "limit", "finished", "steps"
    steps: int                   # steps taken by this motion
    event: Event | None = None
    address: int | None = None
    watch: Watchpoint | None = None

    def __repr__(self) -> str:
        extra = ""
        if self.event is not None:
            extra = f" {self.event.kind} {self.event.data}"
        elif self.address is not None:
            extra = f" at {self.address:#010x}"
        elif self.watch is not None:
            extra = f" {self.watch}"
        return f"<Stop {self.reason} after {self.steps} steps{extra}>"


@dataclass
class Watchpoint:
    """Stop after a step that changed any byte of [start, start+length) of host RAM."""

    start: int                   # host-physical
    length: int
    label: str
    before: bytes = b""
    hits: int = 0

    def __repr__(self) -> str:
        return f"<watch {self.label}: {self.length} bytes at host {self.start:#x}>"


@dataclass
class Breakpoint:
    label: str
    linear: frozenset[int] = frozenset()     # stop before an instruction at one of these
    guest_phys: int | None = None            # ... or at this Guest-physical address
    host_phys: int | None = None             # ... or at this host-physical address
    guest: int | None = None                 # only in this Guest (run index)


# Where to stop: a virtual address, a symbol, "file.c:LINE", {"guest_phys": a},
# {"host_phys": a}, or a Breakpoint.
Where = int | str | dict | Breakpoint


# ---------------------------------------------------------------------------
# The session.

class Session:
    """A machine a reader can step through, forwards and back.

    ``Session.boot()`` boots the shipped Guest; ``Session.tiny(source)`` a few
    lines of assembly; ``Session(specs)`` any mixture (several Guests share one
    Host and take turns at read() boundaries).
    """

    def __init__(self, specs: Iterable = (ImageGuest(),), *, direct_traps: bool = True,
                 seed: int = 0, pgdir_cache: int | None = None) -> None:
        self.specs = tuple(specs)
        if not self.specs:
            raise SessionError("a session needs at least one Guest")
        self.options = dict(direct_traps=direct_traps, seed=seed, pgdir_cache=pgdir_cache)
        self.world = World(self.specs, **self.options)
        self.milestones: dict[int, tuple[int, int]] = {}   # step -> (instructions, cycles)
        self.breakpoints: list[Breakpoint] = []
        self.watchpoints: list[Watchpoint] = []
        self.observers: list[Callable[[Session], None]] = []
        self.before: dict = cpu_snapshot(self)
        self.last_stop: Stop | None = None
        self.replays = 0

    # -- constructors
    @classmethod
    def boot(cls, image: str | Path | None = None, mem_mb: int = 32, cmdline: Iterable[str] = (),
             virtio: bool = False, block: str | Path | None = None, **options) -> Session:
        """The shipped teaching Guest (or ``image``), ready for its first step;
        ``virtio``: the 2.6.25 generation (guest-virtio.elf unless ``image``);
        ``block``: a disk image file the Guest gets as its first disk."""
        return cls((ImageGuest(image, mem_mb, tuple(cmdline), virtio=virtio, block=block),),
                   **options)

    @classmethod
    def tiny(cls, source: str, mem: int = 8 * MIB, **options) -> Session:
        """A Guest made of ``source`` (assembly; see ``lguestsim.asm.tiny_guest``)."""
        return cls((TinyGuest(source, mem),), **options)

    # -- what there is to look at
    @property
    def machine(self) -> Machine:
        return self.world.machine

    @property
    def cpu(self) -> CPU:
        return self.world.cpu

    @property
    def host(self) -> Host:
        return self.world.host

    @property
    def mem(self) -> PhysicalMemory:
        return self.world.mem

    @property
    def trace(self) -> Trace:
        return self.world.host.trace

    @property
    def runs(self) -> list[Run]:
        return self.world.runs

    @property
    def run(self) -> Run:
        """The Launcher and Guest whose turn it is."""
        return self.world.run

    @property
    def lg(self) -> Lguest | None:
        """The current Guest's struct lguest."""
        return self.world.run.lg

    @property
    def steps(self) -> int:
        """Steps taken since the boot: the session's position in time."""
        return self.world.steps

    @property
    def finished(self) -> bool:
        return self.world.finished

    @property
    def in_trip(self) -> bool:
        return self.world.in_trip

    @property
    def where(self) -> str:
        """Where the machine is: "host", "switcher", "guest" (kernel) or "user"."""
        if not self.world.in_trip:
            return "host"
        cpu = self.cpu
        if (cpu.segs["cs"].base + cpu.eip) & M32 >= SWITCHER_ADDR:
            return "switcher"
        if cpu.cpl == 0:
            return "host"          # the Host's own interrupt handler, in x86
        return "user" if cpu.cpl == 3 else "guest"

    @property
    def console(self) -> str:
        """Everything the current Guest wrote to its console so far."""
        return self.run.console.text

    def symbols_for(self, addr: int) -> Symbols | None:
        """The symbol table that covers linear ``addr`` now."""
        if addr >= SWITCHER_ADDR:
            return switcher_symbols()
        return self.run.symbols

    def describe(self, addr: int) -> str:
        """``symbol+offset`` (and the source line when known) for a code address."""
        if addr == HOST_IRQ_HANDLER:
            return "the Host's interrupt handler"
        if addr == HOST_RETURN:
            return "the Host's return address"
        syms = self.symbols_for(addr)
        if syms is None:
            return f"{addr:#010x}"
        text = syms.describe(addr)
        if addr >= SWITCHER_ADDR:
            stubs = syms.symbols.get("trap_stubs")
            if stubs is not None and stubs.address <= addr < stubs.address + 256 * 16:
                text = f"trap stub {(addr - stubs.address) // 16}"
        line = syms.line(addr)
        return f"{text} ({line[0]}:{line[1]})" if line else text

    def next_instruction(self) -> str:
        """The instruction the CPU executes next (AT&T syntax), or "" in the Host."""
        if not self.world.in_trip:
            return ""
        la = (self.cpu.segs["cs"].base + self.cpu.eip) & M32
        raw = read_code(self, la, 16)
        found = disassemble(raw, la, att=True)[:1] if raw else []
        return found[0][2] if found else "(undecodable)"

    def translate(self, vaddr: int, guest: int | None = None) -> dict:
        """Guest virtual -> Guest physical (its own tables) -> host physical (shadow)."""
        return walk_both(self, vaddr, guest)

    # -- observers
    def observe(self, callback: Callable[[Session], None]) -> None:
        """Call ``callback(session)`` after every step, motion and replay."""
        if callback not in self.observers:
            self.observers.append(callback)

    def unobserve(self, callback: Callable[[Session], None]) -> None:
        if callback in self.observers:
            self.observers.remove(callback)

    def _notify(self) -> None:
        for cb in list(self.observers):
            cb(self)

    # -- breakpoints and watchpoints
    def resolve(self, where: Where, guest: int | None = None) -> Breakpoint:
        """A breakpoint for ``where``: an int (virtual address), a symbol name,
        ``"file.c:LINE"``, or a dict ``{"guest_phys": a}`` / ``{"host_phys": a}``."""
        run = self.runs[guest if guest is not None else self.world.current]
        if isinstance(where, Breakpoint):
            return where
        if isinstance(where, dict):
            if "guest_phys" in where:
                return Breakpoint(f"guest-physical {where['guest_phys']:#x}",
                                  guest_phys=where["guest_phys"], guest=run.index)
            if "host_phys" in where:
                return Breakpoint(f"host-physical {where['host_phys']:#x}",
                                  host_phys=where["host_phys"], guest=guest)
            raise SessionError(f"cannot stop at {where!r}")
        if isinstance(where, int):
            return Breakpoint(f"{where:#010x}", frozenset({where & M32}), guest=guest)
        text = str(where)
        syms = run.symbols
        if ":" in text and text.rsplit(":", 1)[1].isdigit():
            file, line = text.rsplit(":", 1)
            if file == "switcher.S":
                syms = switcher_symbols()
            if syms is None or not syms.has_lines:
                raise SessionError(f"no line information to find {text}")
            try:
                found, addrs = syms.line_addresses(file, int(line))
            except KeyError as e:
                raise SessionError(str(e)) from None
            return Breakpoint(f"{file}:{found}", frozenset(addrs),
                              guest=None if file == "switcher.S" else run.index)
        for table in (syms, switcher_symbols()):
            if table is not None and text in table:
                return Breakpoint(text, frozenset({table.address(text)}),
                                  guest=run.index if table is syms else None)
        raise SessionError(f"no symbol called {text!r}")

    def break_at(self, where: Where, guest: int | None = None) -> Breakpoint:
        """Stop every motion (but ``step``) before the instruction at ``where``."""
        bp = self.resolve(where, guest)
        self.breakpoints.append(bp)
        return bp

    def clear_breakpoints(self) -> None:
        self.breakpoints.clear()

    def watch(self, addr: int, length: int = 4, space: str = "guest",
              guest: int | None = None, label: str | None = None) -> Watchpoint:
        """Stop after any step that changes these bytes.

        ``space``: "guest" (Guest-physical, of the current or given Guest),
        "virtual" (a Guest-virtual address, through the Guest's own page
        tables as they are now) or "host" (host-physical).  A write of the
        same value changes nothing and is not seen."""
        run = self.runs[guest if guest is not None else self.world.current]
        if space == "virtual":
            gpa = guest_walk(self, run, addr)["guest_phys"]
            if gpa is None:
                raise SessionError(f"{addr:#x} is not mapped in the Guest's page tables")
            addr, space = gpa, "guest"
        if space == "guest":
            if (addr % PAGE) + length > PAGE:
                raise SessionError("a watchpoint must stay within one page")
            start = run.process.phys(addr)
            what = label or f"guest-physical {addr:#x}"
        elif space == "host":
            start = addr
            what = label or f"host-physical {addr:#x}"
        else:
            raise SessionError(f"unknown address space {space!r}")
        wp = Watchpoint(start, length, what, bytes(self.mem.ram[start:start + length]))
        self.watchpoints.append(wp)
        return wp

    def unwatch(self, wp: Watchpoint | None = None) -> None:
        if wp is None:
            self.watchpoints.clear()
        elif wp in self.watchpoints:
            self.watchpoints.remove(wp)

    def _refresh_watches(self) -> None:
        ram = self.mem.ram
        for wp in self.watchpoints:
            wp.before = bytes(ram[wp.start:wp.start + wp.length])

    # -- motion
    def _go(self, max_steps: int, kinds: Iterable[str] = (), guest: int | None = None,
            targets: list[Breakpoint] | None = None, stops: bool = True,
            match: Callable[[Event], bool] | None = None) -> Stop:
        """The one loop every motion uses: step until something says stop."""
        w = self.world
        self.before = cpu_snapshot(self)
        bps = list(targets or [])
        if stops:
            bps += self.breakpoints
        linear: dict[int, list[Breakpoint]] = {}
        physical = []
        for bp in bps:
            for a in bp.linear:
                linear.setdefault(a, []).append(bp)
            if bp.guest_phys is not None or bp.host_phys is not None:
                physical.append(bp)
        watches = self.watchpoints if stops else []
        ram = self.mem.ram
        w.wanted = frozenset(kinds)
        w.wanted_guest = guest
        w.wanted_match = match
        w.hit = None
        cpu = w.cpu
        taken = 0
        stop = None
        try:
            while taken < max_steps:
                kind = w.step()
                if kind == FINISHED:
                    stop = Stop("finished", taken)
                    break
                taken += 1
                if w.steps % MILESTONE_EVERY == 0:
                    self.milestones[w.steps] = (cpu.instructions, cpu.cycles)
                if w.hit is not None:
                    stop = Stop("event", taken, event=w.hit)
                    break
                if watches:
                    hit = None
                    for wp in watches:
                        now = bytes(ram[wp.start:wp.start + wp.length])
                        if now != wp.before:
                            wp.before = now
                            wp.hits += 1
                            hit = hit or wp
                    if hit is not None:
                        stop = Stop("watchpoint", taken, watch=hit)
                        break
                if (linear or physical) and w.in_trip:
                    la = (cpu.segs["cs"].base + cpu.eip) & M32
                    for bp in linear.get(la, ()):
                        if bp.guest is None or bp.guest == w.current:
                            stop = Stop("breakpoint", taken, address=la)
                            break
                    if stop is None and physical:
                        stop = self._physical_hit(physical, la, taken)
                    if stop is not None:
                        break
                if w.finished:
                    stop = Stop("finished", taken)
                    break
            else:
                stop = Stop("limit" if (kinds or bps or watches) else "steps", taken)
        finally:
            w.wanted = frozenset()
            w.wanted_match = None
            self.last_stop = stop
            self._notify()
        return stop

    def _physical_hit(self, physical: list[Breakpoint], la: int, taken: int) -> Stop | None:
        from .x86 import paging
        hpa, _ = paging.probe(self.cpu, la)
        if hpa is None:
            return None
        for bp in physical:
            if bp.host_phys is not None and hpa == bp.host_phys:
                return Stop("breakpoint", taken, address=la)
            if bp.guest_phys is not None and bp.guest == self.world.current:
                proc = self.run.process
                if proc.phys(bp.guest_phys) == hpa:
                    return Stop("breakpoint", taken, address=la)
        return None

    def step(self, n: int = 1) -> Stop:
        """Exactly ``n`` steps (fewer only if every Guest has ended)."""
        return self._go(n, stops=False)

    def step_to(self, kind: str | tuple[str, ...], guest: int | None = None,
                max_steps: int = 5_000_000, stops: bool = False,
                match: Callable[[Event], bool] | None = None) -> Stop:
        """Step until the trace records an event of ``kind`` (in ``guest``, by id;
        for which ``match(event)`` holds, if given).

        Kinds: "switch", "trap", "hypercall", "interrupt", "pagefault", "dma",
        "kill", "timer" (see lguestsim.trace).  The session stops right after
        the step that produced the event: for the Host's events, the step of
        Host work that did it.  With ``stops=True`` breakpoints and
        watchpoints stop it too."""
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        for k in kinds:
            if k not in KINDS:
                raise SessionError(f"unknown event kind {k!r}; kinds are {', '.join(KINDS)}")
        return self._go(max_steps, kinds=kinds, guest=guest, stops=stops, match=match)

    def run_to(self, where: Where, guest: int | None = None,
               max_steps: int = 5_000_000) -> Stop:
        """Step until the CPU is about to execute ``where`` (see ``resolve``),
        or a breakpoint or watchpoint stops it first."""
        bp = self.resolve(where, guest)
        return self._go(max_steps, targets=[bp])

    def to_guest(self, max_steps: int = 5_000_000) -> Stop:
        """Step to the next world switch into a Guest: stop before the first
        instruction of ``switch_to_guest``, the Host's registers still loaded."""
        syms = switcher_symbols()
        bp = Breakpoint("switch_to_guest", frozenset({syms.address("switch_to_guest")}))
        return self._go(max_steps, targets=[bp])

    def to_host(self, max_steps: int = 5_000_000) -> Stop:
        """Step to the next world switch back to the Host: stop before the first
        instruction of the Switcher's trap stub the processor entered, so the
        whole way back (``return_to_host`` or ``deliver_to_host``) lies ahead.

        (A ``step_to("switch")`` cannot show that way: the Host records the
        switch to the Host in the same step of Host work that re-enters the
        Guest, so the CPU is already at ``switch_to_guest`` again.)"""
        stubs = switcher_symbols().address("trap_stubs")
        bp = Breakpoint("the Switcher's trap stubs",
                        frozenset(stubs + 16 * vector for vector in range(256)))
        return self._go(max_steps, targets=[bp])

    def cont(self, max_steps: int = 5_000_000) -> Stop:
        """Run until a breakpoint, a watchpoint, or the end of every Guest."""
        return self._go(max_steps)

    def finish(self, max_steps: int = 50_000_000) -> Stop:
        """Run until every Guest has ended, ignoring breakpoints and watchpoints."""
        return self._go(max_steps, stops=False)

    def step_until(self, predicate: Callable[[Session], bool], max_steps: int = 1_000_000) -> Stop:
        """Step until ``predicate(session)`` holds after a step (slow: a call per step)."""
        taken = 0
        self.before = cpu_snapshot(self)
        while taken < max_steps and not self.finished:
            self.world.step()
            taken += 1
            if self.world.steps % MILESTONE_EVERY == 0:
                self.milestones[self.world.steps] = (self.cpu.instructions, self.cpu.cycles)
            if predicate(self):
                stop = Stop("predicate", taken)
                break
        else:
            stop = Stop("finished" if self.finished else "limit", taken)
        self.last_stop = stop
        self._notify()
        return stop

    # -- going back
    def back(self, n: int = 1) -> Stop:
        """Go back ``n`` steps (by replaying the boot to step N - n)."""
        return self.goto(max(0, self.steps - n))

    def goto(self, target: int) -> Stop:
        """Be at step ``target``: forwards by stepping, backwards by replay."""
        if target >= self.steps:
            return self.step(target - self.steps)
        before = cpu_snapshot(self)
        self.world = self._replay(target)
        self.replays += 1
        self._refresh_watches()
        self.before = before
        stop = Stop("steps", target - self.steps)
        self.last_stop = stop
        self._notify()
        return stop

    def _replay(self, target: int) -> World:
        w = World(self.specs, **self.options)
        marks = [s for s in self.milestones if s <= target]
        if marks:
            best = max(marks)
            self._fast_forward(w, best, *self.milestones[best])
        while w.steps < target:
            if w.step() == FINISHED:
                raise SessionError(f"the replay ended at step {w.steps}, before {target}")
        return w

    # What going back costs in memory.  lguest has no such thing; a
    # simulator that offers "back" usually keeps copies of the machine, and a
    # 32 MiB Guest copied every few thousand steps would soon cost more than
    # the Guest.  Replay needs none: the only history is the milestones, two
    # counters every MILESTONE_EVERY steps, and a replay's fresh world pays,
    # like the first, only for the pages its Guest touches (the old world is
    # dropped as it is replaced).  This is that history's size in bytes.
    def snapshot_bytes(self) -> int:
        """Bytes of history kept for going back (the milestones; no memory is copied)."""
        import sys
        total = sys.getsizeof(self.milestones)
        for step, (instructions, cycles) in self.milestones.items():
            total += (sys.getsizeof(step) + sys.getsizeof((instructions, cycles))
                      + sys.getsizeof(instructions) + sys.getsizeof(cycles))
        return total

    @staticmethod
    def _fast_forward(w: World, step: int, instructions: int, cycles: int) -> None:
        """Bring a fresh world to a milestone at full speed, then exactly onto it."""
        cpu = w.cpu
        while True:
            if w.finished or cpu.cycles > cycles:
                raise SessionError("the replay diverged from the recorded milestone")
            if not w.in_trip:
                w.step()
                continue
            left = instructions - 1 - cpu.instructions
            if left <= 0:
                break
            w.run_chunk(left)
        while cpu.cycles < cycles:
            if w.step() == FINISHED:
                break
        if (cpu.cycles, cpu.instructions) != (cycles, instructions):
            raise SessionError(f"the replay missed the milestone at step {step}: "
                               f"{cpu.instructions} instructions, {cpu.cycles} cycles, "
                               f"expected {instructions}, {cycles}")
        w.steps = step

    # -- a fingerprint of the state, for tests and for the curious
    def fingerprint(self) -> dict:
        """Registers, counters, a digest of RAM and of the trace: equal iff the states are."""
        import hashlib
        cpu = self.cpu
        state = cpu.state()
        state.update(cycles=cpu.cycles, instructions=cpu.instructions, steps=self.steps,
                     ram=hashlib.sha1(self.mem.ram).hexdigest(),
                     trace=hashlib.sha1(repr([(e.kind, e.cycle, _stable(e.data))
                                              for e in self.trace.events]).encode()).hexdigest())
        return state

    def __repr__(self) -> str:
        cpu = self.cpu
        return (f"<Session step {self.steps}, {self.where}, eip={cpu.eip:#010x} "
                f"({self.describe(cpu.eip) if self.in_trip else 'Host'}), "
                f"{cpu.instructions} instructions, {cpu.cycles} cycles>")


def cpu_snapshot(session: Session) -> dict:
    """The registers a reader sees (segment caches and the Guest's saved
    registers included), to tell what the last step changed."""
    cpu = session.cpu
    d = cpu.state()
    for name in ("es", "cs", "ss", "ds", "fs", "gs"):
        c = cpu.segs[name]
        d[f"{name}.cache"] = (c.base, c.limit, c.access, c.valid)
    d.update(gdtr=cpu.gdtr, idtr=cpu.idtr, tr=cpu.tr, ldtr=cpu.ldtr, cycles=cpu.cycles)
    lg = session.world.run.lg
    if lg is not None:
        for k, v in lg.regs.as_dict().items():
            d[f"guest.{k}"] = v
    return d


def _stable(data: dict) -> dict:
    """Event data without the one thing that differs between replays: object ids
    inside DMA keys (the Host names memory by (kind, id(object), offset))."""
    if "key" in data and isinstance(data["key"], tuple) and len(data["key"]) == 3:
        d = dict(data)
        d["key"] = (data["key"][0], data["key"][2])
        return d
    return data

