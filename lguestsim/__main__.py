"""The ``lguest`` command line (``python -m lguestsim``): the Launcher.

It mirrors the real Launcher::

    lguest [--verbose] [--block=FILE] [--initrd=FILE] [--tunnet=...] \\
           MEM_IN_MB KERNEL_IMAGE [kernel command line...]

With no image named it boots the teaching Guest shipped with lguestsim. The
Launcher itself is ``lguestsim.launcher`` (``main.py`` tells the order of its
steps); the old demonstration program on the bare processor is
``python -m lguestsim.demo`` or ``python -m lguestsim --demo``.
"""

from __future__ import annotations

import sys

from lguestsim.launcher.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
