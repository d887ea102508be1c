"""Console input: what the user types, into the Guest's one input buffer.

The console's output half is in ``devices`` (the Guest sends DMA to key 0,
the Launcher writes it to standard output). Its input half is here. The
Guest's console driver binds one buffer at key 0; when the Waker sees that
standard input has something, the Launcher asks the Host for that buffer
(LHREQ_GETDMA on key 0, which hands back the buffer and the interrupt to
raise in its used_len), reads straight into it, writes the length into
used_len and raises the interrupt.

Three details come from the real Launcher:

* a terminal is put into raw mode (no echo, no line editing, ^C is just a
  byte), so every key reaches the Guest as it is pressed and the Guest does
  its own echoing; the old settings come back when the Launcher ends,
  however it ends;
* three ^C within about a second end the Launcher (the Guest cannot be
  told to stop, and ^C no longer sends a signal); the real one counts only
  reads of a lone ^C, lguestsim also the ^C that arrive together in one read;
* input that arrives when the Guest has no buffer bound is thrown away with
  a warning ("console: no dma buffer!").

And two are lguestsim's own, for a Launcher that shares one thread with the
Guest and is fed by pipes as often as by people: input the Guest has no free
buffer for *yet* (it is still booting, or has not taken the last lot) stays
in the pipe until it has, and is only thrown away, with the real Launcher's
warning, once the Guest has gone to sleep with no buffer to take it. The end
of the input is passed on as the real Launcher does (an empty buffer and the
interrupt), so a Guest that reads the console learns its input has ended.

``PrefixedOutput`` is for several Guests sharing one standard output: it
starts each line with the Guest's name.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from .abi import LGUEST_CONSOLE_DMA_KEY
from .devices import (
    BUSY,
    DISCARDED,
    NOTHING,
    SERVED,
    Device,
    DeviceList,
    DevLguest,
    InputSource,
    Section,
)
from .report import Abort, Say, quiet, warn

# The real Launcher's discard buffer: input nobody can take is read away in
# pieces of this size.
DISCARD_SIZE = 1024
CTRL_C = 3


class Terminal:
    """A terminal on ``fd``, put into raw mode until ``restore()``.

    Raw here means what the real Launcher turns off: ISIG (^C and ^Z send
    no signal), ICANON (no line editing: bytes come as typed) and ECHO (the
    Guest echoes). If ``fd`` is not a terminal nothing changes.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list | None = None

    #: L:193 When the console reads a terminal, the Launcher puts it in raw
    # mode. It turns off ISIG (^C becomes a byte for the Guest, not a signal for
    # the Launcher), ICANON (no line editing: keys arrive as they are pressed)
    # and ECHO (the Guest echoes for itself). The old settings are saved first
    # and put back when the Launcher ends, however it ends, so the user's shell
    # is not left unusable. Input that is not a terminal, such as the pipe a
    # test feeds, is left as it is.
    def make_raw(self) -> bool:
        """Save the settings and go raw; False if ``fd`` is not a terminal."""
        try:
            import termios
            if not os.isatty(self.fd):
                return False
            self.saved = termios.tcgetattr(self.fd)
            raw = termios.tcgetattr(self.fd)
            raw[3] &= ~(termios.ISIG | termios.ICANON | termios.ECHO)
            termios.tcsetattr(self.fd, termios.TCSANOW, raw)
        except (ImportError, OSError):
            self.saved = None
            return False
        return True

    def restore(self) -> None:
        """Put the saved settings back (once; harmless if never raw)."""
        if self.saved is None:
            return
        saved, self.saved = self.saved, None
        try:
            import termios
            termios.tcsetattr(self.fd, termios.TCSANOW, saved)
        except (ImportError, OSError):
            pass

    def __enter__(self) -> Terminal:
        self.make_raw()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


class ConsoleInput(InputSource):
    """Standard input (or any file descriptor) feeding the console's buffer."""

    def __init__(self, fd: int, terminal: Terminal | None = None, say: Say = quiet,
                 clock: Callable[[], float] = time.time) -> None:
        self.fd = fd
        self.terminal = terminal
        self.say = say
        self.clock = clock
        # The ^C hack: how many in a row, and when the first came.
        self.abort_count = 0
        self.abort_start = 0.0

    def close(self) -> None:
        super().close()
        if self.terminal is not None:
            self.terminal.restore()

    def _read(self, n: int) -> bytes:
        try:
            return os.read(self.fd, n)
        except OSError as err:
            warn(f"Failed to get console input, ignoring console: {err.strerror or err}")
            return b""

    #: L:218 Console input: fetch the buffer the Guest's console driver bound at
    # key 0, read from standard input straight into it, put the length in
    # used_len and raise the interrupt. A read of 0 bytes means the input has
    # ended; the Guest is told all the same, with an empty buffer, and the
    # source is closed. `check_abort` keeps the real Launcher's escape hatch:
    # since ^C no longer sends a signal, three of them within about a second
    # stop the Launcher. With no buffer free, the input stays in the pipe
    # (BUSY) unless the Guest sleeps with nothing else to wake it, when it is
    # read and thrown away with a warning.
    def serve(self, lguest: DevLguest, devices: DeviceList, dev: Device,
              asleep: bool) -> str:
        # The buffer the Guest bound at key 0 (the console's "dev->mem").
        got = devices.get_dma_buffer(lguest, LGUEST_CONSOLE_DMA_KEY)
        if got is None:
            if not asleep:
                return BUSY            # keep it: the Guest may bind or free one soon
            data = self._read(DISCARD_SIZE)
            self.check_abort(data)
            if not data:
                self.say("console: input ended, and the Guest has no buffer to hear it")
                self.close()
                return NOTHING
            warn(f"console: no dma buffer! ({len(data)} bytes of input discarded)")
            return DISCARDED
        iov, used_len, irq = got
        data = self._read(sum(s.length for s in iov))
        scatter(devices, iov, data)
        # The length goes into used_len (0 tells the Guest the input ended),
        # and the interrupt the Host stashed there tells the Guest to look.
        devices.memory.write32(used_len, len(data))
        devices.trigger_irq(lguest, irq)
        if not data:
            self.say("console: input ended")
            self.close()
        self.check_abort(data)
        return SERVED

    def check_abort(self, data: bytes) -> None:
        """Three ^C within about a second: stop the Launcher.

        The real Launcher counts reads that are a single ^C. Here every ^C
        of a read made only of ^C counts, so three that arrive together in
        one read (keys pressed faster than the Launcher reads, or a pipe)
        stop it too; any other byte starts the count again. As in the real
        Launcher, "about a second" counts whole seconds of the clock: the
        third ^C must come in the same second as the first or the next one.
        """
        if not data or data.strip(bytes([CTRL_C])):
            self.abort_count = 0
            return
        now = self.clock()
        if self.abort_count and int(now) > int(self.abort_start) + 1:
            self.abort_count = 0            # the earlier ones came too long ago
        if self.abort_count == 0:
            self.abort_start = now
        self.abort_count += len(data)
        if self.abort_count >= 3:
            self.close()
            raise Abort("three ^C within a second: the Launcher stops")


def scatter(devices: DeviceList, iov: list[Section], data: bytes) -> int:
    """Lay ``data`` into the sections of a Guest buffer in order; return the bytes placed."""
    done = 0
    for section in iov:
        if done >= len(data):
            break
        piece = data[done:done + section.length]
        devices.memory.write(section.addr, piece)
        done += len(piece)
    return done


def attach_console_input(dev: Device, fd: int, say: Say = quiet,
                         raw: bool = True) -> ConsoleInput:
    """Feed the console ``dev`` from ``fd``; a terminal there goes raw (if ``raw``)."""
    terminal = Terminal(fd)
    if raw and terminal.make_raw():
        say("console: the terminal is in raw mode until the Launcher ends")
    source = ConsoleInput(fd, terminal, say)
    dev.input = source
    return source


class PrefixedOutput:
    """One Guest's console on a standard output shared with other Guests.

    Each line starts with ``prefix``. A line another Guest had started is
    ended first, so two Guests never share a line.
    """

    # Who wrote last, per underlying stream, and whether its line is open.
    _open_line: dict[int, PrefixedOutput | None] = {}

    def __init__(self, prefix: str, stream: TextIO | None = None) -> None:
        self.prefix = prefix
        self.stream = stream

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def write(self, text: str) -> int:
        out = self._out()
        key = id(out)
        owner = PrefixedOutput._open_line.get(key)
        for piece in text.splitlines(keepends=True):
            if owner is not self:
                if owner is not None:
                    out.write("\n")
                out.write(self.prefix)
            out.write(piece)
            owner = None if piece.endswith("\n") else self
        PrefixedOutput._open_line[key] = owner
        return len(text)

    def flush(self) -> None:
        self._out().flush()
