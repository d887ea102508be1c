"""The teaching Guest: a small paravirtualized kernel, in C and assembly.

The sources sit beside this file (README.md gives the reading order); build.py
builds them into the two images shipped in ``images/``:

- ``guest.elf``: the kernel as linked, virtual 0xC0100000, loaded at physical
  1 MiB, with its symbol table (for views and traces);
- ``guest.bzImage``: the same kernel gzip'd behind a Linux-style boot sector,
  as the 2.6.23 Launcher loads a bzImage;
- ``guest-virtio.elf``: the 2.6.25 (virtio) generation of the same kernel,
  built with CONFIG_VIRTIO, entered at its physical startup_32.

``python -m lguestsim`` boots ``guest.elf`` when no image is named.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
ELF_IMAGE = IMAGES / "guest.elf"
BZIMAGE = IMAGES / "guest.bzImage"
VIRTIO_IMAGE = IMAGES / "guest-virtio.elf"

__all__ = ["HERE", "IMAGES", "ELF_IMAGE", "BZIMAGE", "VIRTIO_IMAGE"]
