"""lguestsim: a cycle-level teaching simulator of the lguest hypervisor.

lguest is the small paravirtualising hypervisor of Linux 2.6.23 to 2.6.25.
This package simulates it end to end on an interpreted i386 (``lguestsim.x86``):
the Host, the Switcher, the Launcher and a Guest, with every instruction of a
world switch executed and visible. See ``docs/DESIGN.md`` for the map.
"""

__version__ = "0.1.0"
