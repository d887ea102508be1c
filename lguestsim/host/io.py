"""DMA I/O between Guests and with the Launcher (2.6.23's io.c).

In the DMA generation a Guest reaches devices through two hypercalls only.
BIND_DMA offers an array of receive buffers (struct lguest_dma) under a key;
SEND_DMA sends a buffer list to a key.  A key is an address, but it is not
compared as one: lguest turns it into the identity of the memory it names, the
way futexes do, so that two Guests whose Launchers map the same shared memory
agree on a key even when each maps that memory somewhere else.  A send to a
key in shared memory goes to the first *other* Guest bound to it; a send to a
key in private memory can only be for the Guest's own Launcher, and read() of
/dev/lguest hands it over.

A struct lguest_dma is 100 bytes: used_len (the Host fills it in), then up to
16 sections as Guest-physical addresses and 16-bit lengths (a zero length ends
the list).  Every section is checked before a byte is copied: at most a page,
not crossing a page, below the Guest's pfn_limit.
"""

#: P:300 This is how Guests do I/O in the 2.6.23 generation of lguest, before
# virtio.  There are no emulated devices at all: a Guest driver offers buffers
# to receive into, sends buffers out, and waits for an interrupt, much like a
# driver for a DMA-capable card.  The other end is either the Guest's own
# Launcher (the console, the block device, the network tap) or another Guest
# whose Launcher shares memory with ours.  Two hypercalls, BIND_DMA and
# SEND_DMA, and one request on `/dev/lguest`, LHREQ_GETDMA, are all it takes;
# this file is the Host's half of all three.

from __future__ import annotations

import struct
from dataclasses import dataclass

from .lg import (
    LGUEST_IRQS,
    LGUEST_MAX_DMA,
    PAGE_SIZE,
    Lguest,
    kill_guest,
    lgread,
    lguest_address_ok,
    lgwrite_u32,
)

LGUEST_MAX_DMA_SECTIONS = 16
DMA_SIZE = 100
MAX_DMAS_PER_BINDING = 256      # buffers in one bound array (L:345)
HASH_BUCKETS = 61


#: P:301 `struct lguest_dma`, the unit of every transfer, as the Host reads it
# out of Guest memory: 100 bytes, a `used_len` word, then sixteen Guest-physical
# addresses and sixteen 16-bit lengths.  A list of sections ends at the first
# zero length.  `used_len` is zero while the buffer is free; the Host writes the
# number of bytes it moved there, which is how a driver learns its buffer was
# used (and, on the sending side, how much of it got through).
@dataclass
class Dma:
    """A struct lguest_dma as read from Guest memory."""
    used_len: int
    addr: tuple[int, ...]
    len: tuple[int, ...]

    @classmethod
    def unpack(cls, raw: bytes) -> Dma:
        used = struct.unpack_from("<I", raw, 0)[0]
        return cls(used, struct.unpack_from("<16I", raw, 4), struct.unpack_from("<16H", raw, 68))

    @classmethod
    def read(cls, process, addr: int) -> Dma:
        """The struct lguest_dma at ``addr`` in a Launcher's memory."""
        return cls.unpack(process.read(addr, DMA_SIZE))

    def sections(self) -> list[tuple[int, int]]:
        out = []
        for a, n in zip(self.addr, self.len, strict=True):
            if n == 0:
                break
            out.append((a, n))
        return out


#: P:302 The Host's record of one BIND_DMA (lguest's `struct lguest_dma_info`):
# which Guest, the key, where the array of `struct lguest_dma` is and how long
# it is, which interrupt to raise, and `next_dma`, a cursor so that the search
# for a free buffer starts after the one filled last time.  Each Guest may have
# up to 32 of these (LGUEST_MAX_DMA), kept in `Lguest.dma` and in the hash
# table below.
@dataclass
class DmaInfo:
    """One BIND_DMA: where the array is, under which key, which irq to raise."""
    lg: Lguest
    key: tuple
    dmas: int            # Guest-physical address of the array
    num_dmas: int
    next_dma: int
    interrupt: int


#: L:300 Let's see how the Host matches a sender with a receiver.  Both name a
# *key*, a Guest-physical address, but the Host never compares those
# addresses: two Guests would have to agree on an address, and the memory they
# share may sit at a different place in each Launcher.  lguest turned a key into
# a futex key, an identity of the underlying memory that is the same in every
# process mapping it.  lguestsim's `get_key()` asks the Launcher's `Process` for
# the same sort of identity (`key_identity()` in core.py): a page of shared
# memory is named by its segment and offset, a private page by its process and
# address.  Bindings live in `dma_hash`, 61 buckets of `DmaInfo`s, the Python
# version of lguest's array of 61 list heads.
class IO:
    def __init__(self, host) -> None:
        self.host = host
        self.dma_hash: list[list[DmaInfo]] = [[] for _ in range(HASH_BUCKETS)]

    # -- keys
    def get_key(self, lg: Lguest, ukey: int) -> tuple | None:
        """The identity of the memory a key names; None for a bad (unaligned,
        out of range) key, like get_futex_key() failing."""
        if ukey % 4 or not lguest_address_ok(lg, ukey, 4):
            return None
        return lg.launcher.key_identity(ukey)

    #: L:330 Which bucket a key lands in.  lguest fed the futex key's words to
    # the Jenkins hash; a key here is a Python tuple, and Python's own `hash()`
    # of it does the same job.  Only the bucket's list is ever searched, and
    # every search compares whole keys, so collisions cost time, not
    # correctness.  (`shared()` below reads the first element of the key: 1 for
    # memory that other Launchers may map too.)
    @staticmethod
    def hash(key: tuple) -> int:
        return hash(key) % HASH_BUCKETS

    @staticmethod
    def shared(key: tuple) -> bool:
        return key[0] == 1

    # -- binding receive buffers
    #: L:360 Forgetting a binding takes two steps: out of its hash bucket, so
    # no sender finds it any more, and out of the Guest's own list, which frees
    # a slot.  lguest also had to drop the references the futex key held on the
    # memory; Python's garbage collector makes that unnecessary.
    def unlink(self, info: DmaInfo) -> None:
        self.dma_hash[self.hash(info.key)].remove(info)
        info.lg.dma.remove(info)

    #: L:340 BIND_DMA: the Guest offers an array of `numdmas` receive buffers
    # under a key and names the interrupt it wants when one is filled.  The
    # hypercall packs the count and the interrupt into one argument, which
    # `do_hcall()` unpacks.  Drivers do this while setting up, so speed does not
    # matter.  An interrupt out of range just fails (0 in %eax); a bad key is
    # worse, and kills the Guest.
    def bind_dma(self, lg: Lguest, ukey: int, dmas: int, numdmas: int, interrupt: int) -> int:
        """BIND_DMA (interrupt 0 unbinds); returns 1 on success, 0 on failure."""
        if interrupt >= LGUEST_IRQS:
            return 0
        key = self.get_key(lg, ukey)
        if key is None:
            kill_guest(lg, f"bad dma key {ukey:#x}")
            return 0
        #: L:350 Interrupt 0 is not a real binding (irq 0 is the timer), so it
        # means "unbind": drop this Guest's bindings of that array at that key
        # (there could in theory be more than one) and say whether there were
        # any.  Otherwise, if the Guest has a free slot, the binding goes both in
        # its own list and in the hash bucket its key selects, where senders
        # will look.
        if interrupt == 0:
            found = [i for i in lg.dma if i.key == key and i.dmas == dmas]
            for info in found:
                self.unlink(info)
            return 1 if found else 0
        if len(lg.dma) >= LGUEST_MAX_DMA:
            return 0
        #: L:345 A sender to this key will search the array for a free
        # buffer, and its time is its own, not the receiver's to spend: an
        # array of sixteen million entries, or one running out of the
        # receiver's memory, would make every send to it crawl.  lguestsim
        # refuses (0 in %eax) an array of more than 256 buffers or one not
        # wholly inside the Guest's memory, so a send looks at 256 at most.
        if not 0 < numdmas <= MAX_DMAS_PER_BINDING \
                or not lguest_address_ok(lg, dmas, numdmas * DMA_SIZE):
            return 0
        info = DmaInfo(lg, key, dmas, numdmas, 0, interrupt)
        lg.dma.append(info)
        self.dma_hash[self.hash(key)].append(info)
        return 1

    def release_all_dma(self, lg: Lguest) -> None:
        for info in list(lg.dma):
            self.unlink(info)

    # -- sending
    #: L:385 lguest needed special helpers, `lgread_other()` and
    # `lgwrite_other()`, to reach the memory of a Guest other than the one
    # running, because a kernel's user-copy routines only see the current
    # process.  lguestsim's Host is Python and can read every Launcher's
    # `Process` alike, so one helper serves both sides: `read_dma()` reads a
    # `struct lguest_dma` from whichever Guest it is given, the sender's own
    # or the receiver's array.
    def read_dma(self, lg: Lguest, addr: int) -> Dma:
        return Dma.unpack(lgread(lg, self.host.mem, addr, DMA_SIZE))

    def check_dma_list(self, lg: Lguest, dma: Dma) -> bool:
        for addr, length in dma.sections():
            if (not lguest_address_ok(lg, addr, length) or length > PAGE_SIZE
                    or addr % PAGE_SIZE + length > PAGE_SIZE):
                kill_guest(lg, f"bad DMA entry: {length}@{addr:#x}")
                return False
        return True

    #: L:400 The copying engine.  Source and destination are each a list of
    # (address, length) sections, and they need not line up: a 1514-byte packet
    # may arrive in one section and leave in two.  The loop copies as much as
    # fits between the current source and destination sections, then moves on
    # whichever ran out, until one side is used up; what does not fit is
    # dropped.  lguest had to map each destination page into the kernel
    # (kmap) to copy between two processes; here `read` and `write` are the two
    # Launchers' `Process` methods and the copy is plain Python.
    @staticmethod
    def copy_data(src: list[tuple[int, int]], dst: list[tuple[int, int]],
                  read, write) -> int:
        """Copy section by section until either list runs out; returns the bytes moved."""
        total = si = di = srcoff = dstoff = 0
        while si < len(src) and di < len(dst):
            n = min(src[si][1] - srcoff, dst[di][1] - dstoff)
            write(dst[di][0] + dstoff, read(src[si][0] + srcoff, n))
            total += n
            srcoff += n
            dstoff += n
            if srcoff == src[si][1]:
                si, srcoff = si + 1, 0
            if dstoff == dst[di][1]:
                di, dstoff = di + 1, 0
        return total

    #: L:390 One transfer from the sending Guest's `struct lguest_dma` into the
    # receiver's.  Both lists are checked section by section first
    # (`check_dma_list()`: at most a page, within one page, below `pfn_limit`),
    # and a bad section kills the Guest it belongs to.  Then `copy_data()` moves
    # the bytes and returns how many.
    def do_dma(self, srclg: Lguest, src: Dma, dstlg: Lguest, dst: Dma) -> int:
        if not self.check_dma_list(dstlg, dst) or not self.check_dma_list(srclg, src):
            return 0
        return self.copy_data(src.sections(), dst.sections(), srclg.launcher.read,
                              dstlg.launcher.write)

    #: L:380 The sender has found a binding for its key; now to deliver.  The
    # Host reads the sender's `struct lguest_dma`, then searches the receiver's
    # array for a free buffer (`used_len` zero), starting at `next_dma` and
    # wrapping round.  If there is one, it copies, writes the byte count into
    # both `used_len`s (the receiver's last, and only if the copy worked) and
    # advances the cursor.  The receiver then gets its interrupt and is woken
    # if halted, even when it had no free buffer: that is its cue to restock.
    # Only a failure (an array the receiver cannot have, a copy a bad section
    # stopped, whose owner is now dead) ends it quietly, with no interrupt.
    # The return value tells `send_dma()` whether the receiver was full.
    def dma_transfer(self, srclg: Lguest, udma: int, dst: DmaInfo) -> bool:
        """Into the first free buffer of ``dst``; True if it had none."""
        dstlg = dst.lg
        src = self.read_dma(srclg, udma)
        found = None
        for i in range(dst.num_dmas):
            n = (dst.next_dma + i) % dst.num_dmas
            addr = dst.dmas + n * DMA_SIZE
            if not lguest_address_ok(dstlg, addr, DMA_SIZE):
                kill_guest(dstlg, f"bad dma array {dst.dmas:#x}")
                return False
            d = self.read_dma(dstlg, addr)
            if d.used_len == 0:
                found = (addr, d)
                break
        moved = 0
        failed = False
        if found is not None:
            addr, d = found
            moved = self.do_dma(srclg, src, dstlg, d)
            lgwrite_u32(srclg, self.host.mem, udma, moved)
            failed = moved == 0 and src.len[0] != 0
            if not failed:
                lgwrite_u32(dstlg, self.host.mem, addr, moved)
                dst.next_dma += 1
        self.host.charge("dma")
        self.host.trace.emit("dma", guest=srclg.guestid, key=dst.key, to=dstlg.guestid,
                             sections=src.sections(), bytes=moved, irq=dst.interrupt,
                             received=found is not None and not failed)
        if failed:
            return False
        dstlg.irqs_pending |= 1 << dst.interrupt
        if dstlg.halted:
            dstlg.halted = False
        return found is None

    #: L:370 SEND_DMA, the other half of BIND_DMA: deliver a `struct
    # lguest_dma` to whoever is listening on a key.  A key in private memory can
    # only mean the Guest's own Launcher, so the Host notes the DMA and its key
    # and `run_guest` returns them from read().  A key in shared memory goes to
    # the first *other* live Guest bound to it; if that Guest had no free
    # buffer, lguest let go of its locks so the receiver could refill, and
    # tried once more.  If nobody is bound, the data is silently dropped, as a
    # network card's would be with no one on the wire.
    def send_dma(self, lg: Lguest, ukey: int, udma: int) -> None:
        key = self.get_key(lg, ukey)
        if key is None:
            kill_guest(lg, "bad sending DMA key")
            return
        if not self.shared(key):
            # Private memory: only our Launcher can be listening; read() tells it.
            lg.pending_dma, lg.pending_key, lg.dma_is_pending = udma, ukey, True
            self.host.charge("dma")
            sections = self.read_dma(lg, udma).sections() if lguest_address_ok(
                lg, udma, DMA_SIZE) else []
            self.host.trace.emit("dma", guest=lg.guestid, key=ukey, dma=udma, to="launcher",
                                 sections=sections, bytes=sum(n for _, n in sections))
            return
        for attempt in range(2):
            for info in self.dma_hash[self.hash(key)]:
                if info.lg is lg or info.key != key or info.lg.dead is not None:
                    continue
                empty = self.dma_transfer(lg, udma, info)
                break
            else:
                return      # nobody bound there
            if not empty or attempt:
                return
            # The receiver had no free buffer: lguest gives it one chance to
            # restock (it runs its interrupt handler) before trying again.
            self.host.let_run(info.lg)

    #: M:007 On a single CPU the restock retry above cannot work: `let_run()`
    # returns at once, the receiver never runs between the two attempts, and
    # the second attempt finds the same full array.  Try making it real: when
    # the receiver was full, end the sender's trip with EAGAIN so that the
    # Launchers' round-robin runs the receiver first, and redo the SEND_DMA
    # when the sender is next read.  Then count, with two Guests on a shared
    # network, how many packets a busy receiver loses before and after.

    #: L:320 LHREQ_GETDMA's work: find a free buffer that this Guest bound at
    # the key, for its Launcher to fill.  Only the Guest's own bindings count
    # (a Launcher feeds only its own Guest), and the search simply starts at
    # the first entry.  Before returning the buffer's address, the Host writes
    # the binding's interrupt number into `used_len`: the Launcher needs to
    # know which irq to raise once it has filled the buffer, and it will
    # overwrite `used_len` with the length anyway.
    def get_dma(self, lg: Lguest, ukey: int) -> int:
        """LHREQ_GETDMA: the first free buffer the Guest bound at ``ukey``, for its
        Launcher; its used_len is set to the binding's irq, which the Launcher
        raises once it has filled the buffer."""
        import errno
        key = self.get_key(lg, ukey)
        if key is None:
            kill_guest(lg, "bad registered DMA buffer")
            raise OSError(errno.ENOENT, "bad key")
        for info in self.dma_hash[self.hash(key)]:
            if info.lg is not lg or info.key != key:
                continue
            for j in range(info.num_dmas):
                addr = info.dmas + j * DMA_SIZE
                if not lguest_address_ok(lg, addr, DMA_SIZE):
                    break
                if lg.launcher.read32(addr) == 0:
                    lg.launcher.write32(addr, info.interrupt)
                    return addr
            break
        raise OSError(errno.ENOENT, "no free buffer bound at that key")


#: L:410 That finishes the Launcher's story: how it creates and runs a Guest
# through `/dev/lguest`, and how the Host moves its Guest's I/O, to the Launcher
# or straight into another Guest.  Next comes the Host itself, starting where
# `lg.ko` starts, with the `Host` object in core.py (H:000).
