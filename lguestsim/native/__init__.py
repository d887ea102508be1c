"""The native door: /dev/lguest for Launchers written in C.

door.c is preloaded into a native i386 Launcher and carries its /dev/lguest
calls to a socket; door.py serves them with the simulated Host's own
/dev/lguest; wire.py is the messages between the two; ram.py gives each
Launcher its own window of the machine's RAM; build.py builds the
library; command.py is ``python -m lguestsim native``; watch.py lets a
Session look at a Guest whose Launcher is native.
"""
