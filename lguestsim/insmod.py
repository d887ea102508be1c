"""``insmod lg``: a simulated machine with the lguest Host module loaded into it.

On a real computer the Host is a kernel that has loaded lguest's module
before any Launcher opens /dev/lguest.  In lguestsim both are made here, in
one place that the command line (launcher/main.py) and the Session share:
the PC (``Machine``) with room for the Host's own 16 MiB and the Launchers'
memory above it, and the ``Host`` set up in it (its tables, the Switcher
mapped at 0xFFC00000).  Launchers then reach the Host only through
``host.open()``, their /dev/lguest.
"""

from __future__ import annotations

from .host import HOST_AREA, Host
from .machine import Machine


def insmod_lg(room: int, *, direct_traps: bool = True, seed: int = 0) -> Host:
    """A machine with ``room`` bytes for Launchers above the Host's area, and the
    Host loaded in it.  Raises MemoryError when the machine cannot be had."""
    return Host(Machine(HOST_AREA + room), direct_traps=direct_traps, seed=seed)
