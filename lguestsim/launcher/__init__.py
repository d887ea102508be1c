"""The Launcher: the ordinary program that makes a Guest and runs it.

In lguest the Host is a kernel module, but it does not start Guests by
itself. A user program, the Launcher, lays out the Guest's "physical" memory
inside its own address space (the kernel image, the first page tables, the
boot header and the device descriptors), hands the Host four numbers through
/dev/lguest, and then reads that file over and over: each read runs the Guest
until it has output for a device, or input is waiting, or it has died.

Guest-physical address N is simply Launcher address N. Nothing here ever
translates an address the Guest gives us: it is already the Launcher's own.

The modules follow the order in which the story tells the Launcher:

========================  ===================================================
``abi``                   the shared header: request numbers, device and DMA
                          layouts, the kernel-style sizes (L:110)
``report``                how the Launcher talks to its user: verbose lines,
                          warnings, fatal errors, exit statuses (L:120)
``memory``                the Launcher's address space = Guest-physical memory
``loader``                zeroed memory, the kernel as ELF or bzImage, the
                          initrd (L:130 - L:180)
``pagetables``            the first, linear page tables (L:180)
``boot``                  the Linux boot header at Guest-physical 0 (L:100)
``devices``               the device descriptor page, the device table, the
                          console, checking what the Guest hands us (L:120,
                          L:190, L:210)
``run``                   telling the Host about the Guest, and the loop that
                          runs it (L:180, L:220)
``main``                  the command line and the order of it all (L:100)
========================  ===================================================

The Waker (L:200), console input and the block and network devices are still
to come; ``devices`` has the callbacks they will plug into.
"""

from .report import EXIT_GUEST_DIED, EXIT_NOT_STARTED, EXIT_POWER_DOWN, LauncherError

__all__ = ["LauncherError", "EXIT_POWER_DOWN", "EXIT_GUEST_DIED", "EXIT_NOT_STARTED"]
