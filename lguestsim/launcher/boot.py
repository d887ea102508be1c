"""The boot header: what the Guest kernel learns about its machine at address 0.

A Linux kernel booted by a boot loader finds a block of parameters (the "zero
page") at a known place; an lguest Guest finds it at Guest-physical 0, and
the Launcher fills in the few fields that matter:

======  ====================  ================================================
offset  field                 value
======  ====================  ================================================
0x1e8   E820 entry count      1 (one byte)
0x210   type_of_loader        0xFF, "unknown" (only with an initrd)
0x218   ramdisk_image         where the initrd starts (only with an initrd)
0x21c   ramdisk_size          its page-aligned size (only with an initrd)
0x228   cmd_line_ptr          0x1000: the command line is in the next page
0x23c   hardware_subarch      1: this kernel runs under lguest
0x2d0   E820 map              one entry {u64 0, u64 mem, u32 1 = RAM}
======  ====================  ================================================

It is the last step of laying the Guest out (``lay_out_guest`` in main.py,
after the kernel, the initrd and the first page tables); the teaching Guest's
boot.c copies it away before anything can overwrite it.
"""

from __future__ import annotations

import os
import struct

from .abi import PAGE_SIZE
from .memory import GuestMemory
from .report import LauncherError

# Offsets in the boot header (Guest-physical, from 0).
E820NR = 0x1E8
TYPE_OF_LOADER = 0x210
RAMDISK_IMAGE = 0x218
RAMDISK_SIZE = 0x21C
CMD_LINE_PTR = 0x228
HARDWARE_SUBARCH = 0x23C
E820MAP = 0x2D0

E820_RAM = 1
E820_ENTRY = struct.Struct("<QQI")  # struct e820entry: addr, size, type
LOADER_UNKNOWN = 0xFF
SUBARCH_LGUEST = 1

# The command line lives in the page after the boot header.
COMMAND_LINE = 0x1000
COMMAND_LINE_MAX = PAGE_SIZE  # bytes, with its terminating NUL


#: L:183 Whatever follows the kernel image on the Launcher's command line is
# the Guest kernel's own command line. Like the 2.6.23 Launcher, `concat` puts a
# space after every word (so a line ends with a space the kernel does not mind)
# and a NUL at the end. The words go back to the bytes they were typed as, so a
# file name in any encoding reaches the Guest unchanged.
def concat(words: list[str]) -> bytes:
    """The kernel command line from the words left on the Launcher's command line.

    The 2.6.23 Launcher copies each word followed by one space (so a
    non-empty line ends in a space; the kernel does not mind), then a NUL.
    Words are turned back into the bytes they were given as.
    """
    return b"".join(os.fsencode(word) + b" " for word in words) + b"\0"


#: L:181 The Guest learns about its initrd the way any Linux kernel does: from
# the boot header at physical address 0, which a boot loader would fill in. The
# start goes at offset 0x218, the page-aligned size at 0x21c, and the type of
# loader at 0x210 is set to 0xFF, "unknown", which the kernel accepts. These
# three fields are only written when there is an initrd.
def write_initrd_fields(memory: GuestMemory, mem: int, initrd_size: int) -> None:
    """Tell the kernel about an initrd of ``initrd_size`` bytes at the top of memory."""
    memory.write32(RAMDISK_IMAGE, mem - initrd_size)
    memory.write32(RAMDISK_SIZE, initrd_size)
    memory.write8(TYPE_OF_LOADER, LOADER_UNKNOWN)


#: L:184 The rest of the boot header. The E820 memory map holds a single
# region: all of the Guest's memory, as RAM. The command line goes into the page
# after the header, at 0x1000, with a pointer to it at offset 0x228; a line too
# long for that page is refused rather than cut short. Last, hardware_subarch at
# 0x23c is set to 1: that is what sends a paravirtualized kernel down the lguest
# path at boot, instead of probing for hardware it does not have.
def write_boot_header(memory: GuestMemory, mem: int, words: list[str]) -> bytes:
    """Fill in the memory map, the command line and the subarchitecture.

    Returns the command line as written (with its NUL).
    """
    # The memory map: one region, all RAM.
    memory.write8(E820NR, 1)
    memory.write(E820MAP, E820_ENTRY.pack(0, mem, E820_RAM))

    # The command line pointer, and the command line itself.
    line = concat(words)
    if len(line) > COMMAND_LINE_MAX:
        raise LauncherError(f"the kernel command line is {len(line) - 1} bytes long; "
                            f"at most {COMMAND_LINE_MAX - 1} fit in its page")
    memory.write32(CMD_LINE_PTR, COMMAND_LINE)
    memory.write(COMMAND_LINE, line)

    # hardware_subarch 1 is what tells the kernel it is an lguest Guest.
    memory.write32(HARDWARE_SUBARCH, SUBARCH_LGUEST)
    return line
