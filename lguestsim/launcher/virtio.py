"""The virtio ring, from the Launcher's side (Linux 2.6.25's virtio_ring.h).

2.6.25 replaced lguest's DMA with virtio: a device has one or more
virtqueues, and each virtqueue is a "vring" in Guest memory that the Guest
and the Launcher share.  A vring of ``num`` entries is three arrays laid one
after another:

* the descriptor table: ``num`` x {u64 addr, u32 len, u16 flags, u16 next},
  each a piece of Guest memory, chained with VRING_DESC_F_NEXT; a piece the
  Launcher may write carries VRING_DESC_F_WRITE;
* the available ring: {u16 flags, u16 idx, u16 ring[num]}: the heads of the
  chains the Guest offers, ``idx`` counting up for ever (mod 2**16);
* after padding to the page, the used ring: {u16 flags, u16 idx,
  {u32 id, u32 len}[num]}: the chains the Launcher has finished with, and how
  many bytes it wrote into each.

The Guest owns a descriptor from add_buf until it sees it in the used ring;
the Launcher owns it from when it reads it from the available ring until it
puts it in the used ring.  Everything the Guest wrote is checked here before
it is used: a bad one ends the Guest (``LauncherError``), as the Launcher's
errx() did, and nothing is touched outside Guest memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .abi import PAGE_SIZE
from .report import EXIT_GUEST_DIED, LauncherError

#: V:010 The Virtio chapter, told on the running machine: the notebook
# boots both generations and runs the same block write and ping on each.
# Where each step of a virtio request lives in the code: the Guest's
# `add_buf` (D:730), its kick (D:740) and NOTIFY (D:780); the Host's NOTIFY
# (H:129) leaving read() (L:238); the Launcher finding the queue
# (`handle_notify`, L:225), taking the chain and serving it (L:226, L:235);
# the used ring and the interrupt back; the Guest's `get_buf` (D:750).  The
# device page is L:225 and D:800; the boot through `hardware_subarch` G:021;
# the restart L:230 and L:231.

VIRTQUEUE_NUM = 128                 # entries in each of the Launcher's vrings
VRING_DESC_F_NEXT = 1               # the chain goes on in "next"
VRING_DESC_F_WRITE = 2              # the Launcher writes this piece (Guest reads it)
VRING_USED_F_NO_NOTIFY = 1          # Launcher to Guest: no need to NOTIFY me
VRING_AVAIL_F_NO_INTERRUPT = 1      # Guest to Launcher: no need to interrupt me

VRING_DESC = struct.Struct("<QIHH")
assert VRING_DESC.size == 16


def vring_size(num: int, align: int = PAGE_SIZE) -> int:
    """Bytes a vring of ``num`` entries takes (2.6.25's vring_size())."""
    avail_end = 16 * num + 2 * (2 + num)
    return ((avail_end + align - 1) & ~(align - 1)) + 4 + 8 * num


@dataclass(frozen=True)
class VringLayout:
    """Where the three parts of a vring at Guest-physical ``base`` lie."""

    base: int
    num: int

    @property
    def desc(self) -> int:
        return self.base

    @property
    def avail(self) -> int:
        return self.base + 16 * self.num

    @property
    def used(self) -> int:
        end = self.avail + 2 * (2 + self.num)
        return (end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)

    @property
    def size(self) -> int:
        return vring_size(self.num)


@dataclass(frozen=True)
class Piece:
    """One descriptor of a chain: ``length`` bytes at Guest-physical ``addr``."""

    addr: int
    length: int
    write: bool           # the Launcher writes it (an "in" piece)


def _fail(why: str) -> LauncherError:
    return LauncherError(why, EXIT_GUEST_DIED)


#: L:226 The Launcher's half of a virtqueue (lguest.c's struct virtqueue): the
# vring in Guest memory, the interrupt to raise, and `last_avail_idx`, how far
# into the Guest's available ring the Launcher has read.  `check` is the
# Launcher's check_pointer(): every address and length the Guest writes into a
# descriptor goes through it before a byte is read or written there.
@dataclass
class Virtqueue:
    memory: object                 # GuestMemory
    ring: VringLayout
    irq: int
    check: object                  # check_pointer(addr, size) -> addr, raises
    last_avail_idx: int = 0
    served: int = field(default=0)     # chains put in the used ring (for the views)
    owner_dev: object = field(default=None, repr=False)   # the device it belongs to
    # Where ring operations are reported (the machine's trace), if anywhere.
    emit: object = field(default=None, repr=False)

    @property
    def num(self) -> int:
        return self.ring.num

    def avail_idx(self) -> int:
        return self.memory.read16(self.ring.avail + 2)

    def avail_flags(self) -> int:
        return self.memory.read16(self.ring.avail)

    def used_idx(self) -> int:
        return self.memory.read16(self.ring.used + 2)

    def descriptor(self, i: int) -> tuple[int, int, int, int]:
        """Descriptor ``i``: (addr, len, flags, next)."""
        return VRING_DESC.unpack(self.memory.read(self.ring.desc + 16 * i, 16))

    #: L:227 get_vq_desc: take the next chain the Guest made available.  First
    # the available index itself: it may only have moved forward, and by no
    # more than the ring holds (16-bit arithmetic, so it may wrap).  Then the
    # head it names must be a descriptor number, and walking the chain must
    # stay within the table: each `next` below `num`, and no more than `num`
    # pieces in all, which is how a loop is caught.  Writable pieces must all
    # come after the readable ones.  Each piece's address and length pass the
    # Launcher's pointer check.  Returns (head, pieces), or None when the
    # Guest has offered nothing new.
    def get_vq_desc(self) -> tuple[int, list[Piece]] | None:
        num = self.num
        idx = self.avail_idx()
        if (idx - self.last_avail_idx) & 0xFFFF > num:
            raise _fail(f"Guest moved used index from {self.last_avail_idx} to {idx}")
        if idx == self.last_avail_idx:
            return None
        head = self.memory.read16(self.ring.avail + 4 + 2 * (self.last_avail_idx % num))
        self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
        if head >= num:
            raise _fail(f"Guest says index {head} is available")
        pieces: list[Piece] = []
        i = head
        while True:
            addr, length, flags, nxt = self.descriptor(i)
            write = bool(flags & VRING_DESC_F_WRITE)
            if not write and any(p.write for p in pieces):
                raise _fail("Descriptor has out after in")
            self.check(addr, length)
            pieces.append(Piece(addr, length, write))
            if len(pieces) > num:
                raise _fail("Looped descriptor")
            if not flags & VRING_DESC_F_NEXT:
                if self.emit is not None:
                    self.emit("vring", op="avail", ring=self.ring.base, head=head,
                              pieces=len(pieces), idx=self.last_avail_idx)
                return head, pieces
            if nxt >= num:
                raise _fail(f"Desc next is {nxt}")
            i = nxt

    #: L:228 add_used: hand a chain back, saying how many bytes the Launcher
    # wrote into its writable pieces.  The entry goes in first and the index
    # moves after it (a write barrier in C), so the Guest never sees an index
    # pointing at an entry not yet written.
    def add_used(self, head: int, length: int) -> None:
        idx = self.used_idx()
        entry = self.ring.used + 4 + 8 * (idx % self.num)
        self.memory.write(entry, struct.pack("<II", head, length & 0xFFFFFFFF))
        self.memory.write16(self.ring.used + 2, (idx + 1) & 0xFFFF)
        self.served += 1
        if self.emit is not None:
            self.emit("vring", op="used", ring=self.ring.base, head=head, len=length,
                      idx=(idx + 1) & 0xFFFF)

    def wants_interrupt(self) -> bool:
        """The Guest has not asked for quiet (VRING_AVAIL_F_NO_INTERRUPT)."""
        return not self.avail_flags() & VRING_AVAIL_F_NO_INTERRUPT

    def reset(self) -> None:
        """The device was reset: forget how far we read (L:232)."""
        self.last_avail_idx = 0

    def read_pieces(self, pieces: list[Piece]) -> bytes:
        """The bytes of the readable ("out") pieces, in order."""
        return b"".join(self.memory.read(p.addr, p.length) for p in pieces if not p.write)

    def write_pieces(self, pieces: list[Piece], data: bytes) -> int:
        """Scatter ``data`` over the writable ("in") pieces; returns the bytes placed."""
        done = 0
        for p in pieces:
            if not p.write or done >= len(data):
                continue
            chunk = data[done:done + p.length]
            self.memory.write(p.addr, chunk)
            done += len(chunk)
        return done
