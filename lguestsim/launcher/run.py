"""Telling the Host about the Guest, and running it -- one Guest or several.

Once the Guest's memory is laid out, the Launcher opens /dev/lguest and
writes LHREQ_INITIALIZE with four numbers: the top page the Guest may touch,
where its page directory is, where it starts, and its page_offset. From then
on the Launcher's life is one loop: read /dev/lguest, which runs the Guest,
and deal with whatever made the read come back:

* 8 bytes, {dma, key}: the Guest sent DMA to a key only the Launcher serves
  (console output is key 0): hand it to the device watching that key;
* EAGAIN: the Waker broke the Guest out because input is waiting: serve the
  input, then write LHREQ_BREAK 0 to let the Waker go on;
* ENOENT: the Guest is dead; reading once more gives the reason.

Several Guests on one Host
--------------------------
On a real Host every Launcher is a process of its own and Linux's scheduler
shares the CPU between them. lguestsim runs them all in one Python thread,
so the Launchers take turns (``run_many``): one read() each, round and
round, always in the same order, so a run is the same every time. The Host
makes that work by not keeping the CPU for one Guest: read() returns EAGAIN
when the Guest's time slice is over, or when it halts while another Guest
could run. To a Launcher that is just another EAGAIN: serve any input,
release the break, and wait for its next turn.

One more EAGAIN needs the one-thread Launcher's attention. A Guest that
halts with no timer set can only be woken by an interrupt from outside: the
real read() would block until the Waker broke it. Here the Host returns
EAGAIN instead ("the Guest sleeps with no timer set"). When a whole round
passes in which no Guest ran, sent output or took input, every Guest is in
that sleep: the Launchers then do what the blocked read()s would have waited
for -- the Waker's select() on all their input (``waker.wait_for_input``).
Input that no Guest has a buffer for is thrown away then, with the real
Launcher's warning. If no input is left to wait for (standard input has
ended, say) nothing can ever wake them, and each Launcher ends with
``EXIT_ASLEEP`` and says so.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Iterable
from typing import Any

from .abi import LHREQ_INITIALIZE, READ_DMA
from .devices import DeviceList, DevLguest
from .report import (
    EXIT_ASLEEP,
    EXIT_GUEST_DIED,
    EXIT_POWER_DOWN,
    PROG,
    Abort,
    LauncherError,
    Say,
    ptr,
    quiet,
)
from .waker import Waker, wait_for_input

REASON_MAX = 1024  # the real Launcher's buffer for the reason a Guest died

# The Host's reason when a Guest powered itself down (LHCALL_CRASH "Power down").
POWER_DOWN_REASONS = frozenset({"CRASH: Power down"})

# What one turn (one read() and what it asked for) came to.
OUTPUT = "output"      # the Guest sent DMA to the Launcher, which served it
INPUT = "input"        # read() said EAGAIN and input went into the Guest
RAN = "ran"            # read() said EAGAIN after the Guest ran for a while
BROKE = "broke"        # the Waker broke the Guest out, but it had no buffer free
IDLE = "idle"          # read() said EAGAIN and the Guest did nothing: it sleeps
DEAD = "dead"          # the Guest (or its Launcher) is finished


#: L:185 The layout is done; now the Host must hear of it. One write of
# LHREQ_INITIALIZE to /dev/lguest carries four numbers: the page frame limit
# (the Guest may touch nothing above its last device page), the physical
# address of the page directory, the virtual entry point, and page_offset. On
# the Host's side this is initialize() in lguest_user (L:020), which makes the
# Guest's struct lguest from them. `lguest` is the simulated Host's file object,
# and a refusal comes back as an OSError, as a failed write() would.
def tell_kernel(lguest: DevLguest, pfnlimit: int, pgdir: int, start: int, page_offset: int,
                say: Say = quiet) -> None:
    """Write LHREQ_INITIALIZE {pfnlimit, pgdir, start, page_offset}.

    pfnlimit keeps the Guest away from everything above its memory and its
    devices' pages; pgdir (Guest-physical) and start (virtual) are where
    its page tables are and where it begins; page_offset says which virtual
    addresses are the kernel's.
    """
    say(f"Guest: {ptr(0)} - {ptr(pfnlimit * 4096)} ({pfnlimit * 4096:#x})")
    try:
        lguest.write(struct.pack("<5I", LHREQ_INITIALIZE, pfnlimit, pgdir, start, page_offset))
    except OSError as err:
        raise LauncherError(f"Writing to /dev/lguest: {err.strerror or err}") from None


#: L:187 What 2.6.25 changed in telling the kernel: the four numbers are now
# `guest_base` (where the Launcher mapped Guest memory: 0 here, L:080),
# `pfnlimit`, `pgdir` and the physical `start`.  The Guest will tell the Host
# its kernel's address itself.
def tell_kernel_2625(lguest: DevLguest, pfnlimit: int, pgdir: int, start: int,
                     say: Say = quiet) -> None:
    """Write 2.6.25's LHREQ_INITIALIZE {guest_base, pfnlimit, pgdir, start}."""
    say(f"Guest: {ptr(0)} - {ptr(pfnlimit * 4096)} ({pfnlimit * 4096:#x}), virtio")
    try:
        lguest.write(struct.pack("<5I", LHREQ_INITIALIZE, 0, pfnlimit, pgdir, start))
    except OSError as err:
        raise LauncherError(f"Writing to /dev/lguest: {err.strerror or err}") from None


def read_reason(lguest: DevLguest) -> str:
    """Why a dead Guest died, on one line."""
    try:
        raw = lguest.read(REASON_MAX - 1)
    except OSError as err:
        return f"the Guest died, and reading why failed: {err.strerror or err}"
    text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    return " ".join(text.split()) or "the Guest died without giving a reason"


def exit_status(reason: str) -> int:
    """0 if the Guest's death reason says it powered down, else 1."""
    return EXIT_POWER_DOWN if reason in POWER_DOWN_REASONS else EXIT_GUEST_DIED


class Launcher:
    """One Guest's Launcher: its /dev/lguest, its devices, its Waker, how it ended.

    ``turn()`` is one pass of the real Launcher's loop. When the Guest or the
    Launcher is finished, ``status`` is the exit status and ``reason`` the
    one line that says why (``error`` is the LauncherError, if the Launcher
    itself gave up). ``resources`` are closed at the end (block files,
    network slots). ``machine`` (the simulated PC) lets the Waker tick and
    tells a Guest that ran from one that slept.
    """

    def __init__(self, lguest: DevLguest, devices: DeviceList, *, name: str = PROG,
                 machine: Any = None, say: Say = quiet, layout: Any = None,
                 resources: Iterable[Any] = (), peers: Iterable[Any] = ()) -> None:
        self.name = name
        self.machine = machine
        self.say = say
        self.status: int | None = None
        self.reason: str | None = None
        self.error: LauncherError | None = None
        self.turns = 0
        self.outputs = 0
        # 2.6.25: the virtio generation, and how to boot the Guest again (L:230).
        self.virtio = False
        self.relaunch: Callable[[], None] | None = None
        self.restarts = 0
        self.attach(lguest, devices, layout=layout, resources=resources, peers=peers)

    def attach(self, lguest: DevLguest, devices: DeviceList, *, layout: Any = None,
               resources: Iterable[Any] = (), peers: Iterable[Any] = ()) -> None:
        """Take over a Guest the Host has been told about (at start, and after a reboot)."""
        self.lguest = lguest
        self.devices = devices
        self.layout = layout
        self.resources = list(resources)
        self.peers = list(peers)            # Launcher-side network peers (NetPeer)
        self.waker = Waker(lguest, devices, self.machine, self.say)
        # The Host's struct lguest, kept for looking at after the Guest is gone.
        self.guest = getattr(lguest, "lg", None)

    @property
    def ended(self) -> bool:
        return self.status is not None

    @property
    def lg(self) -> Any:
        """The Host's struct lguest for this Guest (kept after it is gone)."""
        return getattr(self.lguest, "lg", None) or self.guest

    def _instructions(self) -> int | None:
        return self.machine.cpu.instructions if self.machine is not None else None

    def turn(self) -> str:
        """One read() of /dev/lguest and whatever it asks for; returns what happened.

        A LauncherError from a device (a bad address from the Guest, a block
        request with no reply buffer) ends this Launcher only: its Guest is
        closed, and the other Guests on the Host go on. ``Abort`` (three ^C)
        is for the caller.
        """
        if self.ended:
            return DEAD
        self.turns += 1
        try:
            return self._turn()
        except Abort:
            raise
        except LauncherError as err:
            self.finish(err.status, str(err), err)
            return DEAD

    #: L:220 The heart of the Launcher: a read() of /dev/lguest runs the Guest,
    # and the way it comes back says what to do. Eight bytes, {dma, key}, are
    # output for a device to serve. ENOENT means the Guest is dead, and one
    # more read gives the reason. EAGAIN means the Guest was stopped for us: the
    # Waker broke it out, or (on lguestsim's Host, where Guests share one CPU)
    # its time slice ended, or it sleeps; the Launcher serves any input and
    # then writes LHREQ_BREAK {0}. Anything else is a bug. The C Launcher loops
    # here for ever; lguestsim makes one pass a `turn`, so that several
    # Launchers in one Python thread can take turns (`run_many`).
    def _turn(self) -> str:
        waker = self.waker
        waker.look()          # input already waiting: break out at once
        waker.arm()           # and look again while the Guest runs
        before = self._instructions()
        if self.virtio:
            return self._turn_2625(before)
        try:
            got = self.lguest.read(READ_DMA.size)
        except OSError as err:
            failure = err
        else:
            if len(got) != READ_DMA.size:
                raise LauncherError(f"Running guest failed: read returned {len(got)} "
                                    f"bytes, not {READ_DMA.size}", EXIT_GUEST_DIED)
            dma, key = READ_DMA.unpack(got)
            self.outputs += 1
            self.devices.handle_output(self.lguest, dma, key)
            return OUTPUT

        return self._failed_read(failure, before)

    #: L:238 The same loop in 2.6.25: a read() that succeeds now returns four
    # bytes, the address the Guest NOTIFYed, which the device page sorts out
    # (L:229).  A read failing with ERESTART means the Guest asked to be
    # rebooted (L:230).
    def _turn_2625(self, before: int | None) -> str:
        try:
            got = self.lguest.read(4)
        except OSError as err:
            if err.errno == errno.ERESTART and self.relaunch is not None:
                self.restart()
                return OUTPUT
            return self._failed_read(err, before)
        if len(got) != 4:
            raise LauncherError(f"Running guest failed: read returned {len(got)} bytes, "
                                f"not 4", EXIT_GUEST_DIED)
        (addr,) = struct.unpack("<I", got)
        self.outputs += 1
        self.devices.handle_notify(self.lguest, addr)
        return OUTPUT

    def restart(self) -> None:
        """The Guest asked for a reboot: let everything go and boot it afresh."""
        self.say("Guest: restarting")
        self._let_go()
        self.restarts += 1
        self.relaunch()

    def _failed_read(self, failure: OSError, before: int | None) -> str:
        waker = self.waker
        if failure.errno == errno.ENOENT:
            reason = read_reason(self.lguest)
            self.finish(exit_status(reason), reason)
            return DEAD
        if failure.errno != errno.EAGAIN:
            raise LauncherError(f"Running guest failed: {failure.strerror or failure}",
                                EXIT_GUEST_DIED)
        # The Waker kicked us out, or the Host gave the CPU to another Guest,
        # or this one sleeps: serve what input there is, then release the break.
        broke = waker.broken
        served = self.devices.handle_input(self.lguest)
        waker.release()
        if served:
            return INPUT
        if broke:
            return BROKE
        if before is not None and self._instructions() != before:
            return RAN
        return IDLE

    def serve_asleep(self) -> int:
        """The Guest sleeps and nothing inside can wake it: serve what input there
        is, throwing away what it has no buffer for. Returns how much it took."""
        if self.ended:
            return 0
        try:
            return self.devices.handle_input(self.lguest, asleep=True)
        except Abort:
            raise
        except LauncherError as err:
            self.finish(err.status, str(err), err)
            return 0

    def wakeable(self) -> list[int]:
        """File descriptors whose input could still wake this Guest."""
        return [] if self.ended else self.waker.fds()

    def fall_asleep(self) -> None:
        """End the Launcher: its Guest sleeps and nothing can ever wake it."""
        had_input = any(dev.input is not None for dev in self.devices.devices)
        why = "its input has ended" if had_input else "it has no input"
        message = f"the Guest is asleep with no timer set, and nothing can wake it: {why}"
        self.finish(EXIT_ASLEEP, message, LauncherError(message, EXIT_ASLEEP))

    def finish(self, status: int, reason: str, error: LauncherError | None = None) -> None:
        """Record how it ended, and let go of the Guest and the devices."""
        if self.ended:
            return
        self.status, self.reason, self.error = status, reason, error
        self._let_go()

    def _let_go(self) -> None:
        """Stop the Waker, close the devices and their files, and close /dev/lguest."""
        self.waker.cancel()
        self.devices.close()
        for resource in self.resources:
            try:
                resource.close()
            except OSError:
                pass
        close = getattr(self.lguest, "close", None)
        if close is not None:
            close()


#: L:221 On a real Host each Launcher is a process, and Linux shares the CPU
# among them. lguestsim's Launchers live in one Python thread, so `run_many`
# gives each a turn in a fixed order, round after round, which makes every run
# repeatable. When a whole round passes in which no Guest did anything, they
# all sleep with no timer set: the Launchers serve what input there is, then
# wait in select() on all their input, the real Waker's job. If no input is
# left that could ever wake them, each ends with EXIT_ASLEEP rather than hang.
def run_many(launchers: Iterable[Launcher], *, wait: float | None = None,
             until: Callable[[], bool] | None = None,
             max_rounds: int | None = None) -> list[Launcher]:
    """Run Launchers in turn, round robin, until every one has ended.

    ``launchers`` are started ``Launcher`` objects (``main.run_many`` takes
    ``Options`` too, and starts them first). Returns the Launchers; a
    finished one has ``status`` and ``reason``.

    It returns early when ``until()`` is true (checked after every turn),
    after ``max_rounds`` rounds, or when every Guest sleeps and no input
    came within ``wait`` seconds (None: wait as long as it takes; 0: do not
    wait -- a test or a notebook then feeds input and calls again with the
    same Launchers).
    """
    group = list(launchers)
    for item in group:
        if not isinstance(item, Launcher):
            raise TypeError(f"run.run_many() runs started Launchers, not {type(item).__name__}: "
                            "lguestsim.launcher.run_many() starts Options first")
    rounds = 0
    try:
        while True:
            live = [launcher for launcher in group if not launcher.ended]
            if not live or (until is not None and until()):
                return group
            if max_rounds is not None and rounds >= max_rounds:
                return group
            rounds += 1
            progress = False
            for launcher in live:
                if launcher.turn() in (OUTPUT, INPUT, RAN, BROKE):
                    progress = True
                if until is not None and until():
                    return group
            if progress:
                continue
            # Every Guest sleeps with no timer set. Serve what input there is
            # (or throw away what nobody can take); if none woke a Guest, wait.
            live = [launcher for launcher in group if not launcher.ended]
            if sum(launcher.serve_asleep() for launcher in live):
                continue
            fds = sorted({fd for launcher in live for fd in launcher.wakeable()})
            if not fds:
                for launcher in live:
                    launcher.fall_asleep()
                return group
            if wait == 0 or not wait_for_input(fds, wait):
                if wait is not None:
                    return group
    except Abort as abort:
        for launcher in group:
            launcher.finish(abort.status, str(abort), abort)
        return group


def run_guest(lguest: DevLguest, devices: DeviceList, machine: Any = None,
              wait: float | None = None) -> str:
    """Run one Guest until it dies; return the reason it gave.

    A Launcher that has to give up (the Guest handed it something it must
    refuse, or sleeps with nothing left to wake it) ends the run with that
    ``LauncherError``.
    """
    launcher = Launcher(lguest, devices, machine=machine)
    run_many([launcher], wait=wait)
    if launcher.error is not None:
        raise launcher.error
    if launcher.reason is None:
        raise LauncherError("the Guest is asleep, and no input came", EXIT_ASLEEP)
    return launcher.reason
