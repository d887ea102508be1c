"""/dev/lguest: how a Launcher drives its Guest.

A Launcher opens the device, writes LHREQ_INITIALIZE with four numbers (the
highest page the Guest may touch, its initial page directory, its entry point
and its PAGE_OFFSET), then read()s to run the Guest.  read() returns when the
Guest sends DMA to one of the Launcher's keys (8 bytes: the DMA's address and
the key), fails with EAGAIN when the Waker broke the Guest out, and with
ENOENT once the Guest is dead -- after which a read() gives the reason.
Other writes send an interrupt (IRQ), fetch a bound buffer (GETDMA) or break
the Guest out (BREAK).  Errors are OSError with lguest's errno values.
"""

#: P:200 This file is the Host's side of the character device `/dev/lguest`,
# the only door between a Launcher and the hypervisor.  The Launcher's first
# write() describes the Guest it wants (how much memory, which page tables,
# where to start, where the kernel's virtual addresses begin); every read()
# after that runs the Guest until there is something the Launcher has to deal
# with.  Further writes fetch a receive buffer the Guest has offered, inject an
# interrupt, or pull the Guest out of its run.  In lguestsim the "device" is the
# Python class `LguestFile` and a "system call" is a method call, but the
# requests, their byte layout and their errno values are lguest's own.

from __future__ import annotations

import errno
import struct

from .lg import (
    GUEST_PL,
    KERNEL_CS,
    KERNEL_DS,
    LGUEST_IRQS,
    LHREQ_BREAK,
    LHREQ_GETDMA,
    LHREQ_INITIALIZE,
    LHREQ_IRQ,
    NR_CPUS,
    PAGE_SIZE,
    REGS_OFFSET,
    GuestRegs,
    LgCpu,
    Lguest,
)


def _err(code: int, what: str) -> OSError:
    return OSError(code, f"{errno.errorcode.get(code, code)}: {what}")


#: L:025 What 2.6.24 added: starting one CPU of a Guest (lguest_user.c's
# lg_cpu_start).  Its number must be below NR_CPUS, and it knows its Guest.
# It gets a whole page for its registers (the Switcher maps that page into
# the Guest), with `struct lguest_regs` at its end, and then the registers a
# booting Guest kernel starts with (`lguest_arch_setup_regs` in 2.6.25's x86
# code): the kernel's data segment in ds, es and ss and its code segment in
# cs, all with privilege level 1 (GUEST_PL), since the Guest kernel runs in
# ring 1; eflags 0x202 (bit 1, always set, and IF); eip the entry point;
# %esi 0, where the boot information lies.
def lg_cpu_start(host, lg: Lguest, id: int, start_ip: int) -> LgCpu:
    """CPU ``id`` of ``lg``, with its registers page, ready to start at ``start_ip``."""
    if id >= NR_CPUS:
        raise _err(errno.EINVAL, f"cpu {id}: this Host has {NR_CPUS}")
    regs_page = host.alloc_page()
    if regs_page is None:
        raise _err(errno.ENOMEM, "no memory for the regs page")
    # The canary under the registers, by which recovery tells a failed switch.
    host.recovery.arm(regs_page)
    cpu = LgCpu(id=id, regs_page=regs_page, regs=GuestRegs(host.mem, regs_page + REGS_OFFSET),
                lg=lg)
    lg.cpus.append(cpu)
    lg.nr_cpus += 1
    regs = cpu.regs
    regs.ds = regs.es = regs.ss = KERNEL_DS | GUEST_PL
    regs.cs = KERNEL_CS | GUEST_PL
    regs.eflags = 0x202
    regs.eip = start_ip
    return cpu


#: L:000 The Launcher's journey starts at the Host's front door.  lguest
# registered a misc character device whose `file_operations` wired up three
# routines, `write`, `read` and `close`; here one open `/dev/lguest` is an
# `LguestFile`, made by `Host.open()` for the Launcher `process` that opened it,
# and its `write()`, `read()` and `close()` methods play those three roles.
# Until the first write it holds no Guest (`self.lg` is `None`).  Remember
# while reading on that, from the Host's point of view, the Launcher process
# *is* the Guest: its memory holds the Guest's memory, and only it may run it.
class LguestFile:
    """One open /dev/lguest, belonging to the Launcher process that opened it."""

    def __init__(self, host, process, virtio: bool = False) -> None:
        self.host = host
        self.process = process
        self.virtio = virtio
        self.lg = None
        self.closed = False

    def _words(self, data: bytes, n: int) -> tuple[int, ...]:
        if len(data) < 4 * n:
            raise _err(errno.EFAULT, "short write")
        return struct.unpack_from(f"<{n}I", data)

    #: L:010 Every write starts with a 32-bit request number, followed by that
    # request's arguments as more 32-bit words.  The very first write has to be
    # LHREQ_INITIALIZE; anything else before it is EINVAL, and once the Guest
    # is dead every write gets ENOENT (only a read() still works, to learn why).
    # Only the Launcher that opened the file may drive it (EPERM otherwise),
    # except for LHREQ_BREAK, which the Waker sends from outside.  The `task`
    # argument stands in for the kernel's `current`.
    #: L:011 What 2.6.24 changed: the file offset of a write (or read) names
    # the CPU it is about (`offset`, the `*off` of lguest's write()), the
    # beginnings of SMP Guests.  A CPU the Guest does not have is EINVAL; an
    # interrupt or a break goes to that CPU's `struct lg_cpu`.
    def write(self, data: bytes, task=None, offset: int = 0) -> int:
        if self.closed:
            raise _err(errno.EBADF, "closed")
        (req,) = self._words(data, 1)
        lg = self.lg
        if req != LHREQ_INITIALIZE and lg is None:
            raise _err(errno.EINVAL, "write LHREQ_INITIALIZE first")
        if lg is not None and not 0 <= offset < lg.nr_cpus:
            raise _err(errno.EINVAL, f"cpu {offset}: the Guest has {lg.nr_cpus}")
        if lg is not None and lg.dead is not None:
            raise _err(errno.ENOENT, "the Guest is dead")
        if task is not None and task is not self.process and req != LHREQ_BREAK:
            raise _err(errno.EPERM, "not the Launcher")
        if req == LHREQ_INITIALIZE:
            return self.initialize(data[4:])
        #: L:310 The Launcher cannot reach into the Guest's DMA arrays on its
        # own: it does not know which buffers are free.  LHREQ_GETDMA with a key
        # asks the Host to find one (see `IO.get_dma()` in io.py); the answer is
        # the Guest-physical address of a free `struct lguest_dma`, returned as
        # write()'s result, with the interrupt the Guest wants afterwards stashed
        # in its `used_len`.  The Launcher fills the buffer and raises that irq.
        if req == LHREQ_GETDMA:
            if lg.virtio:
                raise _err(errno.EINVAL, "LHREQ_GETDMA is no longer used (2.6.25)")
            (ukey,) = self._words(data[4:], 1)
            return self.host.io.get_dma(lg, ukey)
        #: L:050 LHREQ_IRQ and an interrupt number is how the Launcher
        # interrupts its Guest, say after filling a receive buffer.  The Host
        # only sets the bit in `irqs_pending`; nothing is delivered now.  The
        # next time `run_guest` goes round its loop, `maybe_do_interrupt()`
        # decides whether the Guest can take it yet.
        if req == LHREQ_IRQ:
            (irq,) = self._words(data[4:], 1)
            if irq >= LGUEST_IRQS:
                raise _err(errno.EINVAL, f"irq {irq}")
            lg.cpus[offset].irqs_pending |= 1 << irq
            return 0
        #: L:315 LHREQ_BREAK is the Waker's lever.  While the Launcher sits in
        # read(), the Guest runs; when input arrives for one of its devices, the
        # Waker writes BREAK {1}, `run_guest` sees `break_out` and read() fails
        # with EAGAIN, and the Launcher serves the input and writes BREAK {0}.
        # In lguest the Waker's write sleeps until that {0} arrives; lguestsim
        # has a single Python thread, so the flag is simply set and cleared
        # (launcher/waker.py explains when the Waker gets to run at all).
        if req == LHREQ_BREAK:
            (on,) = self._words(data[4:], 1)
            # The real BREAK {1} blocks the Waker until the Launcher answers
            # with BREAK {0}; one thread of Python needs no blocking.
            lg.cpus[offset].break_out = bool(on)
            return 0
        raise _err(errno.EINVAL, f"unknown request {req}")

    #: L:020 LHREQ_INITIALIZE carries four words: `pfnlimit`, the number of
    # Guest-physical pages the Guest may touch (the Launcher's own code and data
    # lie above them, out of reach); `pgdir`, the Guest-physical address of the
    # page directory the Launcher built for booting; `start`, the virtual
    # address of the first instruction; and `page_offset`, where the Guest
    # kernel maps physical memory (0xC0000000 normally), which lets the Host
    # turn a kernel virtual address into a physical one by subtraction.  A
    # second initialize is EBUSY, and we refuse a `page_offset` that would
    # overlap the Switcher's top 4 MiB and a Guest bigger than the Launcher's
    # memory.  The work of building a Guest is `Host.new_guest()` in core.py.
    def initialize(self, data: bytes) -> int:
        if self.lg is not None:
            raise _err(errno.EBUSY, "already initialized")
        if self.virtio:
            return self.initialize_2625(data)
        pfnlimit, pgdir, start, page_offset = self._words(data, 4)
        if page_offset >> 22 >= 1023:
            raise _err(errno.EINVAL, f"page_offset {page_offset:#x} overlaps the Switcher")
        # The Host reaches Guest memory through the Launcher's: it can be no bigger.
        if pfnlimit * PAGE_SIZE > self.process.size:
            raise _err(errno.EINVAL, f"pfnlimit {pfnlimit} is beyond the Launcher's memory")
        self.lg = self.host.new_guest(self.process, pfnlimit, pgdir, start, page_offset)
        return 16

    #: L:021 2.6.25's LHREQ_INITIALIZE also carries four words, but other ones:
    # `guest_base`, the Launcher address where Guest memory starts (lguest
    # reads the Guest at mem_base + address from then on), `pfnlimit`, `pgdir`
    # and the *physical* `start`.  There is no page_offset: the Guest says
    # where its kernel lives itself, at LGUEST_INIT (H:131).  lguestsim's
    # Launcher process keeps Guest memory at its address 0 (L:080), so a
    # guest_base other than 0 is refused.  Which of the two forms a file
    # speaks was fixed when it was opened (`Host.open(..., virtio=True)`):
    # the two generations' Launchers were built against their own kernels.
    def initialize_2625(self, data: bytes) -> int:
        guest_base, pfnlimit, pgdir, start = self._words(data, 4)
        if guest_base != 0:
            raise _err(errno.EINVAL, f"guest_base {guest_base:#x}: this Host maps Guest "
                                     "memory at the bottom of the Launcher")
        if pfnlimit * PAGE_SIZE > self.process.size:
            raise _err(errno.EINVAL, f"pfnlimit {pfnlimit} is beyond the Launcher's memory")
        # No kernel_address until LGUEST_INIT: until then nothing is the kernel's.
        lg = self.host.new_guest(self.process, pfnlimit, pgdir, start, 0)
        lg.virtio = True
        self.lg = lg
        return 16

    #: L:040 With the Guest set up, each read() runs it: `run_guest()` returns
    # when there is something for the Launcher.  If the Guest is already dead,
    # the read instead hands back the reason it died, as a NUL-terminated string
    # cut to the reader's buffer.  `dma_is_pending` is cleared first: if the
    # last read() returned because the Guest sent DMA to the Launcher, the
    # Launcher has dealt with it by now.
    def read(self, size: int, task=None, offset: int = 0) -> bytes:
        return self.host.run_guest(self.lg, self.read_steps(size, task, offset))

    def read_steps(self, size: int, task=None, offset: int = 0):
        """read() as a generator that pauses (yields) before each trip into the
        Guest, so a debugger can single-step the trip; its value is read()'s."""
        lg = self.lg
        if lg is None:
            raise _err(errno.EINVAL, "write LHREQ_INITIALIZE first")
        if not 0 <= offset < lg.nr_cpus:
            raise _err(errno.EINVAL, f"cpu {offset}: the Guest has {lg.nr_cpus}")
        if task is not None and task is not self.process:
            raise _err(errno.EPERM, "not the Launcher")
        if lg.dead is not None:
            if lg.restart:
                raise _err(errno.ERESTART, "the Guest asked to be restarted")
            reason = lg.dead.encode() + b"\0"
            return reason[:size]
        if lg.dma_is_pending:
            lg.dma_is_pending = False
        # 2.6.25: the last read() returned a NOTIFY; the Launcher has served it.
        lg.cpus[offset].pending_notify = 0
        return (yield from self.host.guest_steps(lg))

    #: L:060 Closing the file undoes initialize.  It is also what happens when
    # a Launcher exits, so it must always work: it returns nothing and cannot
    # fail.  The Guest's timer, DMA bindings, shadow page tables and regs page
    # all go back in `Host.destroy_guest()`; the Guest's memory needs no freeing
    # here, because it always belonged to the Launcher.
    def close(self) -> None:
        if self.lg is not None:
            self.host.destroy_guest(self.lg)
            self.lg = None
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
