"""The ``lguest`` command line (``python -m lguestsim``): the Launcher.

It mirrors the real Launcher::

    lguest [--verbose] [--block=FILE] [--initrd=FILE] [--tunnet=...] \\
           MEM_IN_MB KERNEL_IMAGE [kernel command line...]

With no image named it boots the teaching Guest shipped with lguestsim. The
Launcher itself is ``lguestsim.launcher`` (``main.py`` tells the order of its
steps); the old demonstration program on the bare processor is
``python -m lguestsim.demo`` or ``python -m lguestsim --demo``.
``python -m lguestsim native [--virtio] -- ./my-launcher ARGS...`` runs a
Launcher written in C instead, through the native door (``lguestsim.native``).
"""

from __future__ import annotations

import sys

from lguestsim.launcher.main import main as launcher_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The Launcher; ``native ...`` runs C Launchers through the door instead."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["native"]:
        from lguestsim.native.command import main as native_main
        return native_main(argv[1:])
    return launcher_main(argv)


if __name__ == "__main__":
    sys.exit(main())
