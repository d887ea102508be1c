"""The virtio ring between a Guest and the Launcher, property-tested.

The Launcher's side is the real one (launcher/virtio.py).  The Guest's side is
``GuestRing`` below, a line-for-line Python reading of guest/virtio_ring.c
(add_buf, kick, get_buf and its free list), working on the same bytes of
Guest memory.  Hypothesis interleaves the two at random, starting the 16-bit
indices just below their wrap, and checks that no buffer is lost, duplicated
or reordered, that each comes back with the pieces it went out with, and
that descriptors are neither leaked nor shared.  Then the Launcher's checks:
every hostile shape of ring is refused with a reason, never followed.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lguestsim.launcher.devices import DeviceList
from lguestsim.launcher.memory import GuestMemory
from lguestsim.launcher.report import LauncherError
from lguestsim.launcher.virtio import (
    VRING_AVAIL_F_NO_INTERRUPT,
    VRING_DESC,
    VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
    Virtqueue,
    VringLayout,
    vring_size,
)

TOP = 1 << 20
RING = 0x10000


class GuestRing:
    """guest/virtio_ring.c in Python, on Guest memory ``mem`` (the Guest's view)."""

    def __init__(self, mem: GuestMemory, base: int, num: int, start_idx: int = 0) -> None:
        self.mem, self.ring, self.num = mem, VringLayout(base, num), num
        self.free_head, self.num_free, self.num_added = 0, num, 0
        self.last_used_idx = start_idx
        self.data: list[object | None] = [None] * num
        for i in range(num):
            self._set_desc(i, next_=i + 1)
        mem.write16(self.ring.avail + 2, start_idx)
        mem.write16(self.ring.used + 2, start_idx)

    def _desc(self, i: int) -> tuple[int, int, int, int]:
        return VRING_DESC.unpack(self.mem.read(self.ring.desc + 16 * i, 16))

    def _set_desc(self, i: int, addr=None, len_=None, flags=None, next_=None) -> None:
        a, n, f, x = self._desc(i)
        self.mem.write(self.ring.desc + 16 * i, VRING_DESC.pack(
            a if addr is None else addr, n if len_ is None else len_,
            f if flags is None else flags, x if next_ is None else next_ & 0xFFFF))

    def add_buf(self, pieces: list[tuple[int, int, bool]], token: object) -> bool:
        if self.num_free < len(pieces):
            return False
        self.num_free -= len(pieces)
        head = i = self.free_head
        prev = i
        for addr, length, write in pieces:
            self._set_desc(i, addr, length, VRING_DESC_F_NEXT | (VRING_DESC_F_WRITE if write
                                                                 else 0))
            prev = i
            i = self._desc(i)[3]
        a, n, f, x = self._desc(prev)
        self._set_desc(prev, flags=f & ~VRING_DESC_F_NEXT)
        self.free_head = i
        self.data[head] = token
        avail_idx = self.mem.read16(self.ring.avail + 2)
        slot = (avail_idx + self.num_added) % self.num
        self.mem.write16(self.ring.avail + 4 + 2 * slot, head)
        self.num_added += 1
        return True

    def kick(self) -> None:
        idx = self.mem.read16(self.ring.avail + 2)
        self.mem.write16(self.ring.avail + 2, (idx + self.num_added) & 0xFFFF)
        self.num_added = 0

    def get_buf(self) -> tuple[object, int] | None:
        if self.last_used_idx == self.mem.read16(self.ring.used + 2):
            return None
        at = self.ring.used + 4 + 8 * (self.last_used_idx % self.num)
        head, length = struct.unpack("<II", self.mem.read(at, 8))
        assert head < self.num and self.data[head] is not None, "the Launcher returned junk"
        token = self.data[head]
        self.data[head] = None
        i = head
        while self._desc(i)[2] & VRING_DESC_F_NEXT:
            i = self._desc(i)[3]
            self.num_free += 1
        self._set_desc(i, next_=self.free_head)
        self.free_head = head
        self.num_free += 1
        self.last_used_idx = (self.last_used_idx + 1) & 0xFFFF
        return token, length


def pair(num: int, start_idx: int) -> tuple[GuestMemory, GuestRing, Virtqueue]:
    """A Guest's ring and the Launcher's, with the Launcher's own pointer check
    (the Guest's memory and device page end at TOP)."""
    mem = GuestMemory.plain(TOP)
    devices = DeviceList(mem, TOP - 4096)
    g = GuestRing(mem, RING, num, start_idx)
    vq = Virtqueue(mem, VringLayout(RING, num), irq=1, check=devices.check_pointer,
                   last_avail_idx=start_idx)
    return mem, g, vq


piece = st.tuples(st.integers(0x20000, 0x80000), st.integers(1, 4096))
buffer = st.tuples(st.lists(piece, min_size=0, max_size=3),
                   st.lists(piece, min_size=0, max_size=3)).filter(lambda b: b[0] or b[1])
op = st.one_of(st.tuples(st.just("add"), buffer), st.just(("kick",)),
               st.just(("consume",)), st.just(("reap",)))


@settings(max_examples=150, deadline=None)
@given(num=st.sampled_from([4, 8, 16]), start=st.integers(0xFFF0, 0xFFFF),
       ops=st.lists(op, max_size=120))
def test_random_interleavings_lose_duplicate_and_reorder_nothing(num, start, ops):
    mem, g, vq = pair(num, start % 0x10000)
    added: list[tuple[int, list[tuple[int, int, bool]]]] = []   # offered, in order
    kicked = 0                         # how many of `added` the Launcher may see
    consumed: list[int] = []           # tokens the Launcher took, in order
    returned: list[int] = []           # tokens the Guest got back, in order
    next_token = 0
    pending_kick = 0

    def consume() -> bool:
        nonlocal kicked
        got = vq.get_vq_desc()
        if got is None:
            assert len(consumed) == kicked
            return False
        head, pieces = got
        token = added[len(consumed)][0]
        want = added[len(consumed)][1]
        assert [(p.addr, p.length, p.write) for p in pieces] == want
        consumed.append(token)
        vq.add_used(head, sum(p.length for p in pieces if p.write))
        return True

    def reap() -> bool:
        got = g.get_buf()
        if got is None:
            return False
        token, length = got
        returned.append(token)
        want = dict(added)[token]
        assert length == sum(n for _, n, w in want if w)
        return True

    for o in ops:
        if o[0] == "add":
            outs, ins = o[1]
            pieces = [(a, n, False) for a, n in outs] + [(a, n, True) for a, n in ins]
            if g.add_buf(pieces, next_token):
                added.append((next_token, pieces))
                next_token += 1
                pending_kick += 1
        elif o[0] == "kick":
            g.kick()
            kicked += pending_kick
            pending_kick = 0
        elif o[0] == "consume":
            consume()
        else:
            reap()
        # Descriptors are never shared nor leaked: free + out = num.
        outstanding = sum(len(p) for t, p in added if t not in returned)
        assert g.num_free + outstanding == num
    g.kick()
    kicked += pending_kick
    while consume():
        pass
    while reap():
        pass
    assert consumed == [t for t, _ in added]      # in order, each once
    assert returned == consumed                    # back in the order used
    assert g.num_free == num


def offer(mem: GuestMemory, g: GuestRing, descs: list[tuple[int, int, int, int]],
          head: int = 0) -> None:
    """Write raw descriptors and make ``head`` available, as a hostile Guest would."""
    for i, d in enumerate(descs):
        mem.write(RING + 16 * i, VRING_DESC.pack(*d))
    idx = mem.read16(g.ring.avail + 2)
    mem.write16(g.ring.avail + 4 + 2 * (idx % g.num), head)
    mem.write16(g.ring.avail + 2, (idx + 1) & 0xFFFF)


HOSTILE = {
    "loop": ([(0x20000, 8, VRING_DESC_F_NEXT, 1), (0x20000, 8, VRING_DESC_F_NEXT, 0)], 0,
             "Looped descriptor"),
    "head_out_of_range": ([(0x20000, 8, 0, 0)], 200, "Guest says index 200 is available"),
    "next_out_of_range": ([(0x20000, 8, VRING_DESC_F_NEXT, 99)], 0, "Desc next is 99"),
    "past_memory": ([(TOP + 0x1000, 8, 0, 0)], 0, "invalid address"),
    "length_overflows": ([(0x20000, 0xFFFFFFFF, 0, 0)], 0, "invalid address"),
    "address_wraps": ([(0xFFFFFFFFFFFFF000, 0x2000, 0, 0)], 0, "invalid address"),
    "out_after_in": ([(0x20000, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1),
                      (0x20000, 8, 0, 0)], 0, "Descriptor has out after in"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_rings_are_refused_with_a_reason(name):
    descs, head, reason = HOSTILE[name]
    mem, g, vq = pair(8, 0)
    offer(mem, g, descs, head)
    before = mem.read(0, TOP)
    with pytest.raises(LauncherError) as err:
        vq.get_vq_desc()
    assert reason in str(err.value)
    assert mem.read(0, TOP) == before          # nothing written anywhere


def test_avail_index_running_ahead_is_refused():
    mem, g, vq = pair(8, 0)
    mem.write16(g.ring.avail + 2, 9)
    with pytest.raises(LauncherError, match="Guest moved used index from 0 to 9"):
        vq.get_vq_desc()


def test_the_layout_is_virtio_25s():
    # 128 entries: 2048 bytes of descriptors, 260 of available ring, then the
    # used ring on the next page: two pages in all.
    layout = VringLayout(0x5000, 128)
    assert (layout.avail, layout.used) == (0x5000 + 2048, 0x6000)
    assert vring_size(128) == 4096 + 4 + 8 * 128
    mem, g, vq = pair(8, 0)
    mem.write16(g.ring.avail, VRING_AVAIL_F_NO_INTERRUPT)
    assert not vq.wants_interrupt()
