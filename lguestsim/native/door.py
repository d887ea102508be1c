"""The Host's end of the native door: /dev/lguest served to C Launchers.

`Door` owns a simulated machine whose RAM is a memfd, the Host loaded in it,
and a Unix socket.  Native Launchers (real i386 processes with door.c
preloaded) connect to it; each open of /dev/lguest becomes the Host's own
/dev/lguest object (`host.open()`, an `LguestFile`), and each request is
passed to it as the Python Launcher passes its own.  The door itself adds
only what a real kernel would add around a character device: Guest memory
shared with the Launcher (the memfd), tasks (the Launcher and its Waker),
blocking (a read() waits for its answer; a Waker's BREAK {1} waits for
BREAK {0}) and the scheduling of several Launchers' reads on one CPU.

Everything here runs in one thread: the select loop takes requests, and a
read() runs its Guest trip by trip, looking at the sockets between trips so a
Waker's BREAK reaches the Guest it must interrupt.
"""

from __future__ import annotations

import errno
import os
import secrets
import select
import socket
import struct
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field

from ..host import HOST_AREA, LHREQ_BREAK, LHREQ_INITIALIZE, LHREQ_IRQ, Host
from ..machine import Machine
from . import ram, wire

PAGE_SIZE = 4096

#: L:500 lguest's /dev/lguest is a character device in the Host kernel, and
# the Launcher reaches it with system calls.  lguestsim's Host is Python, so
# for a Launcher written in C there is a door instead: a small library
# preloaded into the Launcher (door.c) turns its open(), read(), write() and
# close() of /dev/lguest into messages on a Unix socket, and this module turns
# them back into calls on the Host's own /dev/lguest object, the one the
# Python Launcher uses.  So the Host cannot tell the two kinds of Launcher
# apart: the same checks, the same errno values, the same trace.  What the
# door must supply is what Linux supplied around lguest: a Launcher's memory
# that the Host can read (L:550), tasks that the Host can tell apart (L:540),
# system calls that block, and a scheduler for the one CPU (L:560).

# Room the Host keeps above a Launcher's first mapping of Guest memory, for
# more of it (2.6.23's device pages go just above the Guest's RAM).
ROOM_ABOVE = 16 << 20
# The machine's RAM is one memfd; the door hands out offsets into it as
# signed 32-bit numbers, so it stays under 2 GiB.
MAX_ROOM = (2 << 30) - HOST_AREA - (1 << 20)
# How often (wall-clock seconds) a running Guest's read looks at the sockets,
# and the longest trip into a Guest (in cycles) before it looks anyway.
POLL_EVERY = 0.002
POLL_CYCLES = 10_000_000
SEND_TIMEOUT = 2.0
# Cycles a read may run while another Launcher's read waits (the Host's own
# time slice, x86_core.TIME_SLICE, is as long).
DOOR_SLICE = 2_000_000
# A door asks one thing at a time; a peer with more than this many requests
# waiting is not a door, and is dropped before it fills the Host's memory.
QUEUE_MAX = 256


# How long (wall-clock seconds) the Launchers must have been quiet before a
# halted Guest's clock may jump to its next timer (L:580).
QUIET = 0.05


def _nothing() -> None:
    """The door's alarm: firing is all it is for (it ends the trip)."""


#: L:580 Two clocks.  The simulated machine keeps its own time in cycles, and
# a Guest that halts with nothing to do makes it jump straight to its next
# timer (P:013).  A native Launcher lives in real time, in another process:
# when one Guest's ping has gone out through its Launcher, the frame may
# still be on its way through a socket to the other Launcher's Waker when
# the sender halts to wait for the answer.  If the clock jumped then, the
# answer would come "too late" in simulated time, though no time at all has
# passed in the Guests' world.  So the door's machine lets a halted Guest's
# clock jump only once every Launcher has been quiet for a moment of real
# time (QUIET); anything a Launcher sends meanwhile is served first, and the
# Host looks again at what its Guests can do.  A Launcher alone on the Host
# has nobody to wait for, and its Guest's clock jumps at once, as under the
# Python Launcher.
class DoorMachine(Machine):
    """The machine behind the door: idling waits for the Launchers to be quiet."""

    def __init__(self, ram_bytes: int, ram_fd: int, door: Door) -> None:
        super().__init__(ram_bytes, ram_fd)
        self.door = door

    def idle_until_next_timer(self) -> bool:
        # One Launcher alone has nobody to wait for.
        if self._timers and len(self.door.files) > 1 and self.door.settle():
            return True             # a Launcher had something: look again before idling
        return super().idle_until_next_timer()


@dataclass(eq=False)
class Memory:
    """One Launcher process's Guest memory (its mm), shared with the Host."""

    token: int
    virtio: bool
    process: object | None = None   # the Host's Process: Launcher memory from ``base`` up
    base: int | None = None         # the Launcher address of Guest memory
    capacity: int = 0               # how far above ``base`` the window reaches
    extent: int = 0                 # how much of it is mapped
    holders: int = 0                # connections holding it (the process and its children)
    fd: int | None = None           # the window's own memfd (ram.py), shared with the Launcher
    files: int = 0                  # open /dev/lguest files over it


@dataclass(eq=False)
class DoorFile:
    """One open /dev/lguest: the Host's LguestFile, and who may use it."""

    token: int
    dev: object                     # the Host's LguestFile
    memory: Memory
    owner: Conn
    conns: int = 1                  # connections referring to it (the owner and children)
    pending: tuple | None = None    # (conn, size, offset): a read() waiting to run
    asleep: bool = False            # its Guest cannot run until something happens to it
    launcher_break: bool = False    # the Waker's BREAK {1} is in force
    door_break: bool = False        # the door's own break, to take the CPU back
    owner_gone: bool = False        # the task that opened it has closed it (or died)
    break_waiters: list = field(default_factory=list)   # Wakers blocked in BREAK {1}
    steps: object | None = None     # the running read()'s generator (read_steps)
    code_copy: dict = field(default_factory=dict)   # page -> bytes: its code pages (L:590)
    trips: int = 0                  # trips into the Guest in this turn


@dataclass(eq=False)
class Conn:
    """One connection from a door: a process's memory, or one task's file."""

    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    queue: deque = field(default_factory=deque)
    busy: bool = False              # a request of it awaits its answer
    eof: bool = False
    memory: Memory | None = None
    file: DoorFile | None = None
    task: object | None = None      # who the Host sees: the Launcher's process, or a child


class Door:
    """The simulated Host behind a Unix socket at ``path``."""

    def __init__(self, path: str, room: int = 512 << 20, *, seed: int = 0,
                 quiet: float = QUIET, log=None) -> None:
        if not 0 < room <= MAX_ROOM:
            raise ValueError(f"room for Launchers must be 1 to {MAX_ROOM >> 20} MiB")
        self.log = log if log is not None else sys.stderr
        size = HOST_AREA + room
        self.memfd = os.memfd_create("lguestsim-ram", os.MFD_CLOEXEC)
        os.ftruncate(self.memfd, size)
        self.quiet = quiet
        self.last_heard = 0.0
        self.host = Host(DoorMachine(size, self.memfd, self), seed=seed)
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.conns: dict[int, Conn] = {}
        self.memories: dict[int, Memory] = {}
        self.files: dict[int, DoorFile] = {}
        self.order: deque[DoorFile] = deque()     # files in round-robin order
        self.free_windows: list[tuple[object, int]] = []
        self.current: DoorFile | None = None
        # Asked after every trip into a Guest: True stops the turn there, so
        # that whoever drives the door (watch.py) can look at the machine.
        self.pause_when = None
        self.paused: DoorFile | None = None
        self.next_poll = 0.0

    # -- the loop
    def serve(self, until=lambda: False, idle: float | None = None) -> None:
        """Serve until ``until()`` is true: it is asked between reads, at least
        every ``idle`` seconds when nothing runs, and every POLL_EVERY seconds
        inside a read that goes on (which then pauses, to go on at the next
        step: a Guest alone on the CPU may never end its read by itself)."""
        last = [time.monotonic()]

        def now_and_then() -> bool:
            if time.monotonic() - last[0] < POLL_EVERY:
                return False
            last[0] = time.monotonic()
            return until()

        before, self.pause_when = self.pause_when, now_and_then
        try:
            while not until():
                self.step(idle)
        finally:
            self.pause_when = before

    def step(self, idle: float | None = None) -> None:
        """Take what the sockets have, then run one read() for one turn (or
        go on with the turn ``pause_when`` stopped)."""
        if self.paused is not None:
            self._turn(self.paused)
            self._drain()
            return
        runnable = [f for f in self.order if f.pending is not None and not f.asleep]
        self._poll(0 if runnable else idle)
        self._drain()
        for _ in range(len(self.order)):
            f = self.order[0]
            self.order.rotate(-1)
            if f.pending is not None and not f.asleep:
                self._turn(f)
                self._drain()
                return

    def close(self) -> None:
        """Hang up on every Launcher (their Guests are destroyed) and stop."""
        if self.paused is not None:          # a read stopped between trips: abandon it
            self.paused.steps.close()
            self.paused.steps = None
            self.paused.pending = None
        self.current = self.paused = None
        for conn in list(self.conns.values()):
            conn.eof = True
        self._drain()
        self.listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.memfd)

    def _poll(self, timeout: float | None) -> None:
        socks = [self.listener] + [c.sock for c in self.conns.values() if not c.eof]
        try:
            ready, _, _ = select.select(socks, [], [], timeout)
        except InterruptedError:
            return
        for s in ready:
            if s is self.listener:
                self._accept()
                continue
            conn = self.conns[s.fileno()]
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                conn.eof = True
                if self.current is not None and self.current.owner is conn:
                    self._preempt()
                continue
            conn.buf += data
            self.last_heard = time.monotonic()
            try:
                while (req := wire.parse(conn.buf)) is not None:
                    conn.queue.append(req)
                if len(conn.queue) > QUEUE_MAX:
                    raise wire.WireError(f"{len(conn.queue)} requests unanswered")
            except wire.WireError as e:
                self._say(f"dropping a connection: {e}")
                conn.queue.clear()
                conn.eof = True
        if self.current is not None:
            self._drain()

    def settle(self) -> bool:
        """Wait until the Launchers have been quiet for ``quiet`` seconds;
        True if one sent something meanwhile (and it was served)."""
        heard = self.last_heard
        while True:
            left = heard + self.quiet - time.monotonic()
            if left <= 0:
                return False
            self._poll(left)
            if self.last_heard != heard:
                return True

    def _accept(self) -> None:
        while True:
            try:
                s, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            # Answers are small and a door reads each at once; a peer that
            # stops reading them is dropped after SEND_TIMEOUT rather than
            # stopping the Host, and every other Guest, in send().
            s.settimeout(SEND_TIMEOUT)
            self.conns[s.fileno()] = Conn(s)

    #: L:560 One CPU, several Launchers.  A real Host runs each Launcher's
    # read() in its own task, and Linux shares the CPUs between them; the
    # Python Launchers take turns in one thread instead, reading again
    # whenever the Host ends a read with EAGAIN because another Guest should
    # have the CPU (H:700).  Through the door that EAGAIN never reaches the C
    # Launcher, which would not know what to do with it: its read() simply
    # stays blocked, and the door runs it again at its next turn, as Linux
    # would schedule the task.  Only the EAGAIN of a break the Launcher's own
    # Waker asked for is answered.  The Host shares the CPU only between
    # Guests that can run, so the door adds what Linux would: a Launcher whose
    # read() is waiting gets the CPU when it asks, or after DOOR_SLICE cycles
    # of another's read, even if its Guest is dead or asleep.  A Guest that
    # could not run at all (asleep with nothing to wake it) waits until
    # something happens to it: a request on its file, or another Guest
    # running, which may have sent it something.
    def _turn(self, f: DoorFile) -> None:
        conn, size, offset = f.pending
        if f.steps is None:
            self._launcher_wrote(f)
            f.steps, f.trips = f.dev.read_steps(size, conn.task, offset), 0
        self.current, self.paused = f, None
        result: bytes | None = None
        err: OSError | None = None
        machine = self.host.machine
        began = self.host.cpu.cycles
        try:
            while True:
                next(f.steps)
                f.trips += 1
                # The Host ends a turn when another *Guest* could run; a
                # Launcher waiting in read() whose Guest cannot (it is dead,
                # or asleep until this read) gets the CPU after a slice too.
                if self.host.cpu.cycles - began >= DOOR_SLICE and any(
                        o is not f and o.pending is not None and not o.asleep
                        for o in self.order):
                    self._preempt()
                    began = self.host.cpu.cycles
                # A Guest that neither traps nor sets a timer would keep the
                # CPU for ever: a timer of the door's own ends any trip after
                # POLL_CYCLES, so the sockets are looked at.  It is taken away
                # again between trips, where a halted Guest must not idle
                # towards it.
                alarm = machine.add_timer(self.host.cpu.cycles + POLL_CYCLES, _nothing)
                self.host.run_cpu_until_exit(f.dev.lg)
                machine.cancel_timer(alarm)
                if time.monotonic() >= self.next_poll:
                    self.next_poll = time.monotonic() + POLL_EVERY
                    self._poll(0)
                if self.pause_when is not None and self.pause_when():
                    self.paused = f          # between two trips: step() goes on from here
                    return
        except StopIteration as done:
            result = done.value
        except OSError as e:
            err = e
        except Exception:       # a fault of the Host's: say so, and keep serving the others
            self._say("the Host failed running a Guest:\n" + traceback.format_exc())
            err = OSError(errno.EIO, "the Host failed")
        self.current = None
        trips, f.steps = f.trips, None
        self._snapshot_code(f)
        if f.door_break:
            f.door_break = False
            if not f.launcher_break and not self._break(f, 0) and err is not None \
                    and err.errno == errno.EAGAIN:
                # The Guest died just as the door's break came (the Host looks
                # at a break before it sees a death): lguest, with no break,
                # would have said ENOENT, and so does the door.
                err = OSError(errno.ENOENT, "the Guest is dead")
        if err is not None and err.errno == errno.EAGAIN and not f.launcher_break:
            f.asleep = trips == 0      # scheduling: the read stays blocked
        else:
            f.pending = None
            if err is None:
                self._answer(conn, len(result), data=result)
            else:
                self._answer(conn, -1, err.errno)
        if trips:
            for other in self.order:
                if other is not f:
                    other.asleep = False

    #: L:590 The Launcher writes Guest memory behind the CPU's back, with no
    # `PhysicalMemory.write()` to tell the CPU, so translated code it wrote
    # over could go on running (P:029).  Telling the CPU that the whole of
    # Guest memory changed at every read() would throw every translation
    # away; instead, at the end of each turn the door keeps a copy of the
    # Guest's pages that hold translated code (the CPU lists them in
    # `tlb.code_pages`), and before the next turn tells the CPU of those
    # whose bytes are no longer the same.  Few pages hold code, so the copy
    # is small, and a Launcher that only ever writes data costs nothing.
    def _launcher_wrote(self, f: DoorFile) -> None:
        ram = self.host.mem.ram
        for page, before in f.code_copy.items():
            if ram[page:page + PAGE_SIZE] != before:
                self.host.mem.written(page, PAGE_SIZE)

    def _snapshot_code(self, f: DoorFile) -> None:
        memory = f.memory
        if memory.process is None:
            return
        lo = memory.process.base
        hi = lo + memory.extent
        ram = self.host.mem.ram
        f.code_copy = {p: ram[p:p + PAGE_SIZE] for p in self.host.cpu.tlb.code_pages
                       if lo <= p < hi}

    def _preempt(self) -> None:
        """Take the CPU back from the running read at its next trip, by a break
        of the door's own (the Launcher never sees its EAGAIN)."""
        f = self.current
        if f is not None and not f.door_break:
            f.door_break = True
            if not f.launcher_break:
                self._break(f, 1)

    def _break(self, f: DoorFile, on: int) -> bool:
        """Write BREAK {on} for the door; False if the Guest is dead (ENOENT)."""
        offset = f.pending[2] if f.pending is not None else 0
        try:
            f.dev.write(struct.pack("<II", LHREQ_BREAK, on), None, offset)
        except OSError as e:
            return e.errno != errno.ENOENT
        return True

    # -- requests
    def _drain(self) -> None:
        """Serve every connection's queued requests that may be served now.
        While a read() is running, only those that cannot disturb it are
        (interrupts, breaks, bookkeeping); any other asks for the CPU back."""
        for conn in list(self.conns.values()):
            while conn.queue and not conn.busy and not conn.eof:
                req = conn.queue[0]
                if self.current is not None and not self._harmless(conn, req):
                    self._preempt()
                    break
                conn.queue.popleft()
                conn.busy = True
                try:
                    self._serve(conn, req)
                except OSError as e:
                    self._answer(conn, -1, e.errno or errno.EIO)
                except Exception:
                    self._say(f"the Host failed serving {wire.NAMES[req.op]}:\n"
                              + traceback.format_exc())
                    self._answer(conn, -1, errno.EIO)
            if conn.eof:
                if self.current is not None:
                    self._preempt()          # hang up between reads, not inside one
                    continue
                # Whatever it was waiting for, nobody is left to be answered.
                conn.queue.clear()
                self._hang_up(conn)

    def _harmless(self, conn: Conn, req: wire.Request) -> bool:
        if req.op in (wire.HELLO_MM, wire.JOIN_MM, wire.OPEN, wire.JOIN_FILE, wire.READ):
            return True
        if req.op == wire.WRITE and len(req.data) >= 4:
            return struct.unpack_from("<I", req.data)[0] in (LHREQ_IRQ, LHREQ_BREAK)
        return False

    def _serve(self, conn: Conn, req: wire.Request) -> None:
        op = req.op
        if op == wire.HELLO_MM:
            memory = Memory(self._token(), bool(req.a))
            self.memories[memory.token] = memory
            self._hold(conn, memory)
            self._answer(conn, memory.token)
        elif op == wire.JOIN_MM:
            memory = self.memories.get(req.a)
            if memory is None or conn.memory is not None or conn.file is not None:
                raise OSError(errno.EINVAL, "no such memory")
            self._hold(conn, memory)
            self._answer(conn, 0)
        elif op == wire.OPEN:
            memory = self.memories.get(req.a)
            if memory is None or conn.memory is not None or conn.file is not None:
                raise OSError(errno.EINVAL, "open: no such process")
            if memory.process is None:
                self._window(memory, 0)
            dev = self.host.open(memory.process, virtio=bool(req.b))
            f = DoorFile(self._token(), dev, memory, conn)
            memory.files += 1
            self.files[f.token] = f
            self.order.append(f)
            conn.file, conn.task = f, memory.process
            self._answer(conn, f.token)
        elif op == wire.JOIN_FILE:
            f = self.files.get(req.a)
            if f is None or conn.memory is not None or conn.file is not None:
                raise OSError(errno.EINVAL, "no such file")
            f.conns += 1
            conn.file, conn.task = f, object()     # another task: the Waker
            self._answer(conn, 0)
        elif op == wire.MAP:
            self._map(conn, req.a, req.b)
        elif op == wire.WRITE:
            self._write(conn, req)
        elif op == wire.READ:
            f = self._file_of(conn)
            f.pending = (conn, req.a, req.b)
            f.asleep = False               # keep conn busy: the answer comes at the end
            if self.current is not None and self.current is not f:
                # Another Launcher wants the CPU.  The Host's time slices share
                # it only between Guests that can run, and a read may need none
                # (a dead Guest's reason, a Guest given an interrupt): so the
                # running read gives way at its next trip, as Linux would
                # schedule the reader.
                self._preempt()

    def _file_of(self, conn: Conn) -> DoorFile:
        if conn.file is None:
            raise OSError(errno.EBADF, "not an open /dev/lguest")
        return conn.file

    def _token(self) -> int:
        """A new name for a memory or a file.  Only the process it was given
        to (and the children it forks) knows it, as only they share its mm or
        its open file: so it is drawn at random, not counted, and another
        Launcher cannot guess its way into a neighbour's memory."""
        while True:
            token = secrets.randbelow(0x7FFFFFFE) + 1
            if token not in self.memories and token not in self.files:
                return token

    def _hold(self, conn: Conn, memory: Memory) -> None:
        conn.memory = memory
        memory.holders += 1

    #: L:570 A write is passed to the Host's /dev/lguest as it came, with two
    # exceptions the door must make.  2.6.25's INITIALIZE names guest_base,
    # the Launcher address of Guest memory; the Host keeps that memory as a
    # `Process` starting at its own 0, so the door gives it guest_base less
    # where the Launcher really has it: 0 when they agree, and anything else
    # is what the Host refuses (EINVAL), as it refuses a pfnlimit beyond
    # the memory the Launcher has mapped.  And a Waker's BREAK {1} blocks until
    # the Launcher's BREAK {0}, as lguest's does.
    def _write(self, conn: Conn, req: wire.Request) -> None:
        f = self._file_of(conn)
        data = req.data
        (kind,) = struct.unpack_from("<I", data) if len(data) >= 4 else (None,)
        memory = f.memory
        # (Only a first INITIALIZE from the Launcher itself: any other gets the
        # Host's own answer, EBUSY or EPERM.)
        if kind == LHREQ_INITIALIZE and len(data) >= 20 and f.dev.lg is None \
                and conn.task is memory.process:
            words = list(struct.unpack_from("<5I", data))
            if f.dev.virtio:
                base = memory.base or 0
                words[1] = (words[1] - base) & 0xFFFFFFFF
            elif memory.base not in (None, 0):
                raise OSError(errno.EINVAL, "2.6.23's Guest memory must start at the "
                                            "Launcher's address 0")
            data = struct.pack("<5I", *words) + data[20:]
            if memory.extent:
                self.host.mem.written(memory.process.base, memory.extent)
        if kind == LHREQ_BREAK and f.owner_gone:
            # Nobody is left to answer with BREAK {0}: a Waker whose Launcher
            # has died would wait for ever.
            raise OSError(errno.ENOENT, "the Launcher has gone")
        ret = f.dev.write(data, conn.task, req.a)
        if kind == LHREQ_BREAK and len(data) >= 8:
            on = struct.unpack_from("<I", data, 4)[0]
            f.asleep = False
            if on:
                f.launcher_break = True
                f.break_waiters.append(conn)       # answered at BREAK {0}
                return
            f.launcher_break = False
            self._release_wakers(f, 0)
            if f.door_break:
                self._break(f, 1)
        elif kind == LHREQ_IRQ:
            f.asleep = False
        self._answer(conn, ret)

    def _release_wakers(self, f: DoorFile, err: int) -> None:
        for waiter in f.break_waiters:
            waiter.busy = False
            if not waiter.eof:
                self._answer(waiter, -1 if err else 0, err)
        f.break_waiters.clear()

    def _map(self, conn: Conn, addr: int, length: int) -> None:
        memory = conn.memory
        if memory is None:
            raise OSError(errno.EBADF, "not a process's memory connection")
        if length == 0 or length % PAGE_SIZE or addr % PAGE_SIZE:
            raise OSError(errno.EINVAL, "mappings are whole pages")
        if memory.process is None:
            self._window(memory, length)
        if memory.base is None:
            memory.base = addr
        start = addr - memory.base
        if start < 0 or start + length > memory.capacity:
            raise OSError(errno.ENOMEM, "Guest memory must be one run of the Launcher's "
                                        "addresses")
        process = memory.process
        memory.extent = max(memory.extent, start + length)
        process.size = memory.extent
        process.zero(start, length)       # a fresh mapping of /dev/zero reads zeros
        # The offset is into the window's own file, which rides along: the
        # Launcher can reach its own Guest's memory and nothing else (ram.py).
        self._answer(conn, start, data=struct.pack("<I", memory.capacity), fd=memory.fd)

    def _window(self, memory: Memory, length: int) -> None:
        """Machine RAM for one Launcher: ``length`` bytes and room above."""
        want = length + ROOM_ABOVE
        fits = [w for w in self.free_windows if w[1] >= want]
        if fits:
            process, capacity = min(fits, key=lambda w: w[1])
            self.free_windows.remove((process, capacity))
        else:
            try:
                process = self.host.new_process(want)
            except MemoryError as e:
                raise OSError(errno.ENOMEM, str(e)) from None
            capacity = want
        process.size = 0
        memory.fd = ram.open_window(self.host.mem, process.base, capacity)
        memory.process, memory.capacity = process, capacity

    # -- the end of connections
    def _hang_up(self, conn: Conn) -> None:
        del self.conns[conn.sock.fileno()]
        conn.sock.close()
        f = conn.file
        if f is not None:
            if f.owner is conn:
                f.owner_gone = True
                self._release_wakers(f, errno.ENOENT)
            if f.pending is not None and f.pending[0] is conn:
                f.pending = None
            if conn in f.break_waiters:
                f.break_waiters.remove(conn)
            f.conns -= 1
            if f.conns == 0:
                # The last reference: lguest's close(), which cannot fail.
                f.dev.close()
                del self.files[f.token]
                self.order.remove(f)
                f.memory.files -= 1
                self._maybe_free(f.memory)
        if conn.memory is not None:
            conn.memory.holders -= 1
            self._maybe_free(conn.memory)

    def _maybe_free(self, memory: Memory) -> None:
        if memory.holders or memory.files or memory.token not in self.memories:
            return
        del self.memories[memory.token]
        if memory.process is not None:
            process = memory.process
            ram.close_window(self.host.mem, self.memfd, process.base, memory.capacity,
                             memory.fd)
            process.size = 0
            self.free_windows.append((process, memory.capacity))

    def _answer(self, conn: Conn, ret: int, err: int = 0, data: bytes = b"",
                fd: int | None = None) -> None:
        conn.busy = False
        try:
            wire.answer(conn.sock, ret, err, data, fd)
        except OSError as e:        # gone, or not reading its answers (a timeout)
            if isinstance(e, TimeoutError):
                self._say("dropping a connection that does not read its answers")
            conn.eof = True

    def _say(self, text: str) -> None:
        print(f"lguestsim door: {text}", file=self.log, flush=True)
