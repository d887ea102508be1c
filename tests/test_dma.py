"""DMA I/O (ABI.md section D): copy_data, key identity, and Guest-to-Guest transfer.

copy_data is checked against a plain reference model: the bytes moved are the
smaller of the two totals, taken from the source sections in order and laid
into the destination sections in order.  Keys name memory, not addresses:
Launchers mapping the same shared memory at different places agree on a key
there, while private memory never matches anyone else's.
"""

from __future__ import annotations

import random
import struct

import pytest
from guestenv import MEM, boot, run_to_death, sym32
from hypothesis import given
from hypothesis import strategies as st

from lguestsim.host.io import IO

PAGE = 4096


@st.composite
def section_lists(draw):
    """Up to 16 (addr, len) sections inside their pages, in a 64 KiB space."""
    n = draw(st.integers(1, 16))
    out = []
    for _ in range(n):
        page = draw(st.integers(0, 15))
        off = draw(st.integers(0, PAGE - 1))
        length = draw(st.integers(1, PAGE - off))
        out.append((page * PAGE + off, length))
    return out


@given(section_lists(), section_lists(), st.integers(0, 2**32))
def test_copy_data_matches_the_reference_model(src, dst, seed):
    src_mem = random.Random(seed).randbytes(PAGE * 16)
    dst_mem = bytearray(PAGE * 16)

    def read(addr, n):
        return src_mem[addr:addr + n]

    def write(addr, data):
        dst_mem[addr:addr + len(data)] = data

    moved = IO.copy_data(src, dst, read, write)
    stream = b"".join(src_mem[a:a + n] for a, n in src)
    total = min(sum(n for _, n in src), sum(n for _, n in dst))
    assert moved == total
    # the reference: lay the first `total` bytes into the destination in order
    expect = bytearray(PAGE * 16)
    pos = 0
    for a, n in dst:
        k = min(n, total - pos)
        if k <= 0:
            break
        expect[a:a + k] = stream[pos:pos + k]
        pos += k
    # only compare where the destination sections lie (later ones may overlap earlier)
    written = bytearray(PAGE * 16)
    pos = 0
    for a, n in dst:
        k = min(n, total - pos)
        if k <= 0:
            break
        written[a:a + k] = dst_mem[a:a + k]
        pos += k
    assert written == expect


# -- key identity: two Launchers sharing one segment at different addresses

def two_launchers():
    from lguestsim.host import HOST_AREA, Host
    from lguestsim.machine import Machine
    host = Host(Machine(HOST_AREA + (8 << 20)))
    a = host.new_process(1 << 20)
    b = host.new_process(1 << 20)
    seg = host.new_shared_memory(2 * PAGE)
    a.map_shared(0x80000, seg)
    b.map_shared(0xC3000, seg)
    return host, a, b, seg


@given(st.integers(0, 2 * PAGE // 4 - 1), st.integers(0, (1 << 20) // 4 - 1))
def test_keys_in_shared_memory_match_and_private_ones_do_not(word, private_word):
    host, a, b, seg = two_launchers()
    off = word * 4
    assert a.key_identity(0x80000 + off) == b.key_identity(0xC3000 + off)
    assert a.phys(0x80000 + off) == b.phys(0xC3000 + off) == seg.base + off
    addr = private_word * 4
    if a.shared.get(addr // PAGE) is None and b.shared.get(addr // PAGE) is None:
        assert a.key_identity(addr) != b.key_identity(addr)
        assert a.phys(addr) != b.phys(addr)
    # a write through one mapping is seen through the other
    a.write(0x80000 + off, b"\x12\x34\x56\x78")
    assert b.read(0xC3000 + off, 4) == b"\x12\x34\x56\x78"
    # the same set-up again names the same memory the same way (a replay's keys)
    _, a2, b2, _ = two_launchers()
    assert a2.key_identity(addr) == a.key_identity(addr)
    assert b2.key_identity(0xC3000 + off) == b.key_identity(0xC3000 + off)


# -- Guest to Guest, through a page both Launchers share

RECEIVER = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 12, {key}, rx-PO, 0x0203     # BIND_DMA: 2 buffers, irq 3
        HCALL 13, 0, hello-PO              # to our Launcher: bound
        HCALL 2, msg-PO
msg:    .asciz "receiver done"
        .p2align 2
hello:  DMA msg-PO, 1
rx:     DMA rxbuf-PO, 16
        DMA rxbuf2-PO, 16
rxbuf:  .fill 16, 1, 0
rxbuf2: .fill 16, 1, 0
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""

SENDER = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 13, {key}, tx-PO             # SEND_DMA to the shared key
        movl tx, %eax
        movl %eax, sent
        HCALL 2, msg-PO
msg:    .asciz "sender done"
        .p2align 2
tx:     .long 0, txbuf1-PO, txbuf2-PO
        .fill 14, 4, 0
        .short 5, 7
        .fill 14, 2, 0
txbuf1: .ascii "hello"
txbuf2: .ascii ", world"
sent:   .long 0
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""


def test_guest_to_guest_dma_through_shared_memory():
    from lguestsim.host import HOST_AREA, Host
    from lguestsim.machine import Machine
    key = MEM + 8
    host = Host(Machine(HOST_AREA + 3 * (MEM + PAGE) + (1 << 20)))
    seg = host.new_shared_memory(PAGE)
    _, rdev, rlg, rproc = boot(RECEIVER.format(key=key), host=host, share=seg)
    dma, _ = struct.unpack("<II", rdev.read(8))          # the receiver has bound its buffers
    _, sdev, slg, sproc = boot(SENDER.format(key=key), host=host, share=seg)
    reason, _ = run_to_death(sdev)
    assert reason == "CRASH: sender done"
    assert sym32(sproc, "sent") == 12                    # used_len on the sender's side
    assert rproc.read(rproc.symbols["rxbuf"] - 0xC0000000, 16) == b"hello, world\0\0\0\0"
    assert sym32(rproc, "rx") == 12                      # and on the receiver's
    assert rlg.irqs_pending & (1 << 3)                   # its interrupt is raised
    ev = host.trace.of("dma")[-1]
    assert (ev.guest, ev.to, ev.bytes, ev.irq) == (slg.guestid, rlg.guestid, 12, 3)
    assert ev.sections == [(sproc.symbols["txbuf1"] - 0xC0000000, 5),
                           (sproc.symbols["txbuf2"] - 0xC0000000, 7)]
    reason, _ = run_to_death(rdev)
    assert reason == "CRASH: receiver done"


def test_private_memory_keys_never_reach_another_guest():
    from lguestsim.host import HOST_AREA, Host
    from lguestsim.machine import Machine
    key = MEM + 8
    host = Host(Machine(HOST_AREA + 3 * (MEM + PAGE) + (1 << 20)))
    _, rdev, rlg, rproc = boot(RECEIVER.format(key=key), host=host)
    rdev.read(8)
    _, sdev, slg, sproc = boot(SENDER.format(key=key), host=host)
    dma, got_key = struct.unpack("<II", sdev.read(8))    # it went to the sender's Launcher
    assert got_key == key
    assert rproc.read(rproc.symbols["rxbuf"] - 0xC0000000, 5) == b"\0" * 5
    assert not rlg.irqs_pending & (1 << 3)


HOSTILE_SENDER = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 13, {key}, tx-PO
        HCALL 2, msg-PO
msg:    .asciz "survived"
        .p2align 2
tx:     DMA {addr}, {length}
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""

BAD_SECTIONS = {
    "longer_than_a_page": (0x200000, 4097, "bad DMA entry: 4097@0x200000"),
    "crossing_a_page": (0x200ff0, 32, "bad DMA entry: 32@0x200ff0"),
    "past_pfn_limit": (MEM + 2 * PAGE, 16, f"bad DMA entry: 16@{MEM + 2 * PAGE:#x}"),
}


def _pair(sender_source):
    from lguestsim.host import HOST_AREA, Host
    from lguestsim.machine import Machine
    key = MEM + 8
    host = Host(Machine(HOST_AREA + 3 * (MEM + PAGE) + (1 << 20)))
    seg = host.new_shared_memory(PAGE)
    _, rdev, rlg, rproc = boot(RECEIVER.format(key=key), host=host, share=seg)
    rdev.read(8)
    _, sdev, slg, sproc = boot(sender_source.format(key=key), host=host, share=seg)
    return host, (rdev, rlg, rproc), (sdev, slg, sproc)


@pytest.mark.parametrize("name", sorted(BAD_SECTIONS))
def test_bad_dma_sections_kill_the_sender_only(name):
    addr, length, reason = BAD_SECTIONS[name]
    host, (rdev, rlg, rproc), (sdev, slg, sproc) = _pair(
        HOSTILE_SENDER.replace("{addr}", hex(addr)).replace("{length}", str(length)))
    before = rproc.read(0, MEM)
    died, _ = run_to_death(sdev)
    assert died == reason
    assert rproc.read(0, MEM) == before
    assert not rlg.irqs_pending & (1 << 3)          # a failed transfer raises no interrupt
    died, _ = run_to_death(rdev)
    assert died == "CRASH: receiver done"


def test_sending_where_nobody_is_bound_moves_nothing():
    from lguestsim.host import HOST_AREA, Host
    from lguestsim.machine import Machine
    host = Host(Machine(HOST_AREA + 3 * (MEM + PAGE) + (1 << 20)))
    seg = host.new_shared_memory(PAGE)
    _, sdev, slg, sproc = boot(SENDER.format(key=MEM + 8), host=host, share=seg)
    died, _ = run_to_death(sdev)
    assert died == "CRASH: sender done"
    assert sym32(sproc, "sent") == 0                     # used_len untouched
    assert not host.trace.of("dma")


def test_at_most_32_bound_arrays():
    binds = "\n".join(f"HCALL 12, {0x10000 + 4 * i}, rx-PO, 0x0101\nmovl %eax, results+{4 * i}"
                      for i in range(33))
    host, dev, lg, proc = boot(f"""
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
{binds}
        HCALL 2, msg-PO
msg:    .asciz "bound"
        .p2align 2
rx:     .fill 100, 1, 0
results: .fill 33 * 4, 1, 0
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
""")
    died, _ = run_to_death(dev)
    assert died == "CRASH: bound"
    assert [sym32(proc, "results", i) for i in range(33)] == [1] * 32 + [0]
