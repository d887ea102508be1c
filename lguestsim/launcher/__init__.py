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
                          (L:101)
``loader``                zeroed memory, the kernel as ELF or bzImage, the
                          initrd (L:130 - L:180)
``pagetables``            the first, linear page tables (L:182)
``boot``                  the Linux boot header at Guest-physical 0 (L:181,
                          L:183, L:184)
``devices``               the device descriptor page, the device table, the
                          console's output, input sources, checking what the
                          Guest hands us (L:186, L:190 - L:192, L:210 -
                          L:214, L:217)
``console``               console input: raw terminal, the Guest's buffer,
                          three ^C (L:193, L:218)
``waker``                 the Waker: noticing input while the Guest runs, and
                          LHREQ_BREAK (L:200 - L:203)
``block``                 --block: the lguest_block_page protocol on a file
                          (L:194, L:215)
``net``                   --sharenet, --tunnet (TAP) and a Launcher-side peer
                          for Python (L:195 - L:199, L:216, L:219)
``virtio``                2.6.25: the vring, the Launcher's half of a
                          virtqueue (L:226 - L:228)
``device_page``           2.6.25: the packed virtio descriptors, NOTIFY
                          sorted out, device reset (L:225, L:229, L:232)
``virtio_devices``        2.6.25: console, block and the --sharenet switch
                          over virtqueues (L:233 - L:237)
``run``                   telling the Host about the Guest, the loop that runs
                          it, and several Launchers taking turns (L:185,
                          L:220, L:221)
``main``                  the command line and the order of it all (L:100,
                          L:222 - L:224)
========================  ===================================================

Several Guests in one process: ``run_many([Options(...), Options(...)])``
starts a Launcher for each on one new Host and runs them in turn until every
Guest has ended; each returned ``Launcher`` has ``status`` and ``reason``.
"""

#: P:100 The Launcher is where every Guest begins, and it is an ordinary user
# program: the only special thing it does is open /dev/lguest. It builds the
# Guest's "physical" memory inside its own address space (the kernel image, the
# first page tables, a boot header, a page describing the virtual devices), tells
# the Host about it with one write, and from then on runs the Guest by reading
# /dev/lguest in a loop, serving whatever output or input each read brings back.
# In lguestsim the Launcher is this Python package and /dev/lguest is an object
# the simulated Host hands out; the Launcher chapter follows it step by step.

from .report import (
    EXIT_ASLEEP,
    EXIT_BROKEN_PIPE,
    EXIT_GUEST_DIED,
    EXIT_INTERRUPTED,
    EXIT_NOT_STARTED,
    EXIT_POWER_DOWN,
    LauncherError,
)


def __getattr__(name: str):
    # run_many, Launcher and Options live in modules that import the whole
    # Launcher; load them on first use.
    if name == "Launcher":
        from . import run
        return getattr(run, name)
    if name in ("Options", "launch", "start_launchers", "run_many"):
        from . import main
        return getattr(main, name)
    raise AttributeError(name)


__all__ = ["LauncherError", "EXIT_POWER_DOWN", "EXIT_GUEST_DIED", "EXIT_NOT_STARTED",
           "EXIT_ASLEEP", "EXIT_INTERRUPTED", "EXIT_BROKEN_PIPE", "run_many", "Launcher",
           "Options", "launch", "start_launchers"]
