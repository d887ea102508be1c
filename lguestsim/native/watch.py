"""Watching a Guest whose Launcher is native: the session's way in to the door.

``Session`` (session.py) builds its own world and replays it to go back in
time; a native Launcher is a real process, which cannot be replayed.  What a
reader can still do is what the Host itself sees, and `NativeWatch` gives
that: it starts a Door and the native Launchers on it, and moves the run on
to the next event of the Host's trace (``step_to("hypercall")``), or until a
condition holds, pausing between two trips into the Guest.  While it is
paused, the Host, the CPU, the trace and the cycle counts are those of the
run, the same as under the Python Launcher, and can be looked at.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from types import SimpleNamespace

from ..trace import Event
from .build import build_door
from .command import door_env
from .door import Door


class NativeWatch:
    """Native Launchers on a Door, run on at the reader's pace."""

    def __init__(self, programs: Iterable[list[str]], *, virtio: bool = False,
                 room: int = 256 << 20, stdout=None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="lguestsim-watch-")
        self.door = Door(os.path.join(self._dir.name, "lguest.sock"), room=room)
        env = door_env(self.door.path, build_door(), virtio)
        self.procs = [subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                       stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                       stderr=subprocess.STDOUT) for argv in programs]
        self._new: list[Event] = []       # the trace's events since the last step_to
        self.host.trace.listeners.append(self._hear)
        self._trips = 0
        self._observers: list[Callable[[NativeWatch], None]] = []

    # -- what there is to look at (the Host's own objects)
    @property
    def host(self):
        return self.door.host

    @property
    def cpu(self):
        return self.door.host.cpu

    @property
    def trace(self):
        return self.door.host.trace

    @property
    def lg(self):
        """The first live Guest, or None."""
        return next((lg for lg in self.host.lguests if lg.dead is None), None)

    # -- what the views ask of a session (they draw a NativeWatch as they draw
    # a Session: the registers, the timeline)
    @property
    def where(self) -> str:
        """Paused between two trips, the machine is always in the Host."""
        return "host"

    in_trip = False
    before = None

    @property
    def steps(self) -> int:
        """Trips into Guests so far (a Session counts steps; a watch, trips)."""
        return self._trips

    @property
    def runs(self) -> list:
        return []

    @property
    def run(self) -> SimpleNamespace:
        """The run being looked at: a native Launcher's Guest has no symbols here."""
        return SimpleNamespace(symbols=None)

    def describe(self, addr: int) -> str:
        return f"{addr:#010x}"

    def observe(self, callback: Callable[[NativeWatch], None]) -> None:
        """Call ``callback(self)`` each time the watch has moved on (a live view's refresh)."""
        self._observers.append(callback)

    @property
    def finished(self) -> bool:
        return all(p.poll() is not None for p in self.procs) and not self.door.conns

    def _hear(self, event: Event) -> None:
        self._new.append(event)
        if event.kind == "switch" and event.data.get("to") == "guest":
            self._trips += 1

    # -- moving on
    def run_until(self, predicate: Callable[[NativeWatch], bool], timeout: float = 120.0) -> bool:
        """Serve the Launchers until ``predicate(self)`` holds, looked at after
        every trip into a Guest; False if they all ended (or ``timeout``
        seconds passed) first."""
        end = time.monotonic() + timeout
        self.door.pause_when = lambda: predicate(self)
        try:
            while not predicate(self):
                if self.finished or time.monotonic() > end:
                    return False
                self.door.step(0.05)
            return True
        finally:
            self.door.pause_when = None
            for callback in self._observers:
                callback(self)

    def step_to(self, kind: str, timeout: float = 120.0) -> Event | None:
        """On to the next event of ``kind`` in the Host's trace (None if none came)."""
        self._new.clear()

        def seen(_: NativeWatch) -> bool:
            return any(e.kind == kind for e in self._new)

        if not self.run_until(seen, timeout):
            return None
        return next(e for e in self._new if e.kind == kind)

    def close(self) -> None:
        """Stop the Launchers and the Host."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.door.close()
        self._dir.cleanup()

    def __enter__(self) -> NativeWatch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
