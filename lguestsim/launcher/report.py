"""How the Launcher talks to its user.

The Launcher has three ways to say something. With ``--verbose`` it narrates
what it lays out (printed on standard output, the same stream as the Guest's
console, as the real one does). A warning goes to standard error and the
Launcher carries on. A fatal error is a ``LauncherError``: ``main`` prints its
one-line message on standard error and exits with the status it carries.

The exit status says how things ended:

* ``EXIT_POWER_DOWN`` (0): the Guest ran and powered itself down;
* ``EXIT_GUEST_DIED`` (1): the Guest ran and ended any other way: it
  crashed, the Host killed it, or it handed the Launcher something the
  Launcher had to refuse;
* ``EXIT_NOT_STARTED`` (2): the Guest never ran: a bad command line, an
  image or initrd that cannot be read or loaded, a device that cannot be
  set up, a Host that refused it;
* ``EXIT_ASLEEP`` (3): the Guest went to sleep with no timer set and nothing
  can ever wake it (its input has ended);
* ``EXIT_INTERRUPTED`` (130): three ^C within a second on the console;
* ``EXIT_BROKEN_PIPE`` (141): standard output was closed (``| head``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

PROG = "lguest"

EXIT_POWER_DOWN = 0
EXIT_GUEST_DIED = 1
EXIT_NOT_STARTED = 2


class LauncherError(Exception):
    """The Launcher cannot go on. ``str(err)`` is one line saying why."""

    def __init__(self, message: str, status: int = EXIT_NOT_STARTED) -> None:
        super().__init__(message)
        self.status = status


def ptr(addr: int) -> str:
    """An address the way the C library's ``%p`` prints it.

    The real Launcher's verbose lines print Guest-physical addresses as
    pointers, and glibc prints a null pointer as ``(nil)``.
    """
    return f"{addr:#x}" if addr else "(nil)"


Say = Callable[[str], None]


def quiet(message: str) -> None:
    """The ``Say`` to use when nobody asked for ``--verbose``."""


#: L:120 `--verbose` makes the Launcher narrate what it lays out: each segment
# it loads, where the initrd and the page tables went, each device it makes. The
# C Launcher keeps a global flag and a macro of the same name that prints only
# when the flag is set. lguestsim has no such global: `make_say()` turns the
# flag into a function once, either one that prints to standard output or
# `quiet`, which does nothing, and that function is handed to every step as its
# `say` argument. So several Launchers in one process can differ, one verbose
# and another not.
def make_say(verbose: bool) -> Say:
    """A ``Say`` that prints each line on standard output when ``verbose``."""
    if not verbose:
        return quiet

    def say(message: str) -> None:
        print(message, file=sys.stdout, flush=True)

    return say


def warn(message: str) -> None:
    """A warning on standard error; the Launcher carries on."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# Two more ways for a run to end, which the Waker brings (see ``waker``):
#
# * ``EXIT_ASLEEP`` (3): the Guest went to sleep with no timer set, waiting
#   for input that can never come (its input ended, or it never had any);
#   the real Launcher would block in read() for ever;
# * ``EXIT_INTERRUPTED`` (130): three ^C within a second on the console, or
#   an interrupt of the Launcher itself. The real Launcher exits 2 on the
#   three ^C; here 2 already means "never ran", so this takes the status a
#   shell gives a program stopped by ^C;
# * ``EXIT_BROKEN_PIPE`` (141): standard output was closed under the Launcher
#   (``lguest ... | head``). The real Launcher dies of SIGPIPE, which a
#   shell shows as 128 + 13; Python ignores the signal, so the Launcher
#   stops itself and exits with that status.
EXIT_ASLEEP = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
BROKEN_PIPE = "standard output was closed (broken pipe): the Launcher stops"


class Abort(LauncherError):
    """Stop every Launcher in this process (the console's three ^C)."""

    def __init__(self, message: str, status: int = EXIT_INTERRUPTED) -> None:
        super().__init__(message, status)
