"""The Waker: noticing input while the Guest runs.

A read() of /dev/lguest runs the Guest until it has output for the Launcher
or dies; while it runs, the Launcher is stuck inside that read(). So who
notices that the user typed something? The real Launcher forks a second
process, the Waker, which sits in select() on all the devices' input file
descriptors and, when one is ready, writes LHREQ_BREAK {1} to /dev/lguest.
The Host then stops running the Guest and the Launcher's read() fails with
EAGAIN; the Launcher serves the input (handle_input) and writes LHREQ_BREAK
{0}, which lets the Waker go back to its select().

lguestsim has one thread for everything, so the Waker cannot sit in a
select() of its own. It runs at the moments a second process would get the
processor on a one-CPU Host:

* just before each read(), with a zero timeout (input already waiting);
* on a timer tick of the simulated machine every ``WAKER_PERIOD`` cycles
  while the Guest runs -- the Host's timer interrupt takes the CPU from the
  Guest, the tick looks with a zero timeout, and if input is ready writes
  LHREQ_BREAK {1} exactly as the real Waker does;
* when every Guest sleeps with no timer set, where the real Launcher would
  be blocked in read() and only the Waker could end it: then it waits in
  select() with a timeout (``wait``).

The tick only exists while it can matter: when the Launcher has input to
watch, and while the CPU is busy or some other timer is pending. A Guest
that sleeps with no timer of its own lets the last tick pass without a new
one, so the Host can say so (EAGAIN, "sleeps with no timer set") and the
Launcher can wait for input instead of letting simulated time race ahead.
"""

from __future__ import annotations

import errno
import select
import struct
from typing import Any

from .abi import LHREQ_BREAK
from .devices import DeviceList, DevLguest
from .report import EXIT_GUEST_DIED, LauncherError, Say, quiet

# Cycles of simulated time between two looks at the input while a Guest runs
# (200 microseconds at lguestsim's 1000 MHz).
WAKER_PERIOD = 200_000
NO_TIMER = 1 << 62      # Machine.next_deadline() when no timer is pending


class Waker:
    """Watches ``devices``' input for the Guest behind ``lguest``.

    ``machine`` (the simulated PC: its clock, timers and instruction count)
    is what the tick needs; without one the Waker only looks before each
    read() and when the Guest sleeps.
    """

    def __init__(self, lguest: DevLguest, devices: DeviceList, machine: Any = None,
                 say: Say = quiet, period: int = WAKER_PERIOD) -> None:
        self.lguest = lguest
        self.devices = devices
        self.machine = machine
        self.say = say
        self.period = period
        self.broken = False          # we wrote BREAK {1} and not yet BREAK {0}
        self.timer: int | None = None
        self.last_instructions = -1
        self.breaks = 0              # how many times it broke the Guest out
        self.ticks = 0

    # -- looking
    def ready(self) -> bool:
        """Is any watched file descriptor ready now? (select(), zero timeout)."""
        return bool(self.devices.ready(fds_only=True))

    def fds(self) -> list[int]:
        """Every file descriptor still watched, throttled or not (for waiting)."""
        return self.devices.input_fds()

    # -- LHREQ_BREAK
    #: L:202 The break is the same request the real Waker writes: LHREQ_BREAK
    # with the argument 1. On the Host's side it sets a flag that the run loop
    # checks each time round, before it would enter the Guest again, so read()
    # returns EAGAIN. If the write fails the Guest is already dead, and the next
    # read() will say why.
    def break_guest(self) -> None:
        """LHREQ_BREAK {1}: the Host stops the Guest and read() returns EAGAIN."""
        if self.broken:
            return
        try:
            self.lguest.write(struct.pack("<2I", LHREQ_BREAK, 1))
        except OSError:
            return                   # the Guest is dead: read() will say so
        self.broken = True
        self.breaks += 1

    #: L:203 Once the input is served the Launcher writes LHREQ_BREAK {0}. For
    # the real Waker that is what releases it: its own BREAK {1} write waits in
    # the Host until the break is cleared. Here nothing waits, so the write just
    # clears the flag and lets the next read() run the Guest again. A Guest that
    # died in the meantime is no error at this point: the next read() reports it.
    def release(self) -> None:
        """LHREQ_BREAK {0}: the input is served; the Guest may run again."""
        self.broken = False
        try:
            self.lguest.write(struct.pack("<2I", LHREQ_BREAK, 0))
        except OSError as err:
            if err.errno == errno.ENOENT:
                return               # it died meanwhile: the next read() says why
            raise LauncherError(f"Resetting break: {err.strerror or err}",
                                EXIT_GUEST_DIED) from None

    def look(self) -> None:
        """The look before a read(): break the Guest out if input is waiting."""
        if self.ready():
            self.break_guest()

    # -- the tick
    #: L:201 The tick is armed before every read(), and only if some device
    # still has input to watch: a Guest with nothing to listen to never pays for
    # a Waker. It notes the instruction count, so that the tick can tell whether
    # the Guest ran in between.
    def arm(self) -> None:
        """Make sure a tick is due, if there is input to watch (before each read())."""
        if self.machine is None or self.timer is not None or not self.fds():
            return
        cpu = self.machine.cpu
        self.last_instructions = cpu.instructions
        self.timer = self.machine.add_timer(cpu.cycles + self.period, self._tick)

    def cancel(self) -> None:
        if self.timer is not None and self.machine is not None:
            self.machine.cancel_timer(self.timer)
        self.timer = None

    #: L:200 The Waker. While the Guest runs, the Launcher is stuck inside
    # read(), yet someone has to notice when the user types. The C Launcher
    # forks a second process that sits in select() on every input descriptor
    # and, when one is readable, writes LHREQ_BREAK {1} to /dev/lguest: the Host
    # stops the Guest, and the Launcher's read() fails with EAGAIN. lguestsim has
    # a single thread, so its Waker is a timer on the simulated machine instead:
    # every `period` cycles the tick takes a zero-timeout look at the input and
    # breaks the Guest out if something is there. It re-arms itself only while
    # that can matter (the CPU is busy, or another timer is due), so a Guest
    # asleep with no timer lets the Launcher truly wait for input.
    def _tick(self) -> None:
        """Called by the machine's timer, inside the Host's run loop."""
        self.timer = None
        self.ticks += 1
        cpu = self.machine.cpu
        busy = cpu.instructions != self.last_instructions
        # A source the Guest had no buffer for gets another chance once per
        # tick -- if the Guest has run since, and so may have freed one.
        if busy:
            for dev in self.devices.devices:
                if dev.input is not None:
                    dev.input.throttled = False
        if self.ready():
            self.break_guest()
        if self.broken or not self.fds():
            return
        # Our own timer has just been taken off: next_deadline() is someone else's.
        if busy or self.machine.next_deadline() < NO_TIMER:
            self.last_instructions = cpu.instructions
            self.timer = self.machine.add_timer(cpu.cycles + self.period, self._tick)


def wait_for_input(fds: list[int], timeout: float | None) -> bool:
    """Sleep in select() until one of ``fds`` is readable, or ``timeout`` seconds.

    This is the real Waker's select(), for when every Guest sleeps with no
    timer set. Returns True if something is ready.
    """
    if not fds:
        return False
    return bool(select.select(fds, [], [], timeout)[0])
