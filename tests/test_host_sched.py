"""Several Guests on one CPU: time slices and halting hand the CPU over."""

from __future__ import annotations

import errno

import pytest
from guestenv import MEM, boot, sym32

BUSY = """
        HCALL 1, lguest_data-PO
1:      incl counter
        jmp 1b
        .p2align 2
counter: .long 0
"""


def test_busy_guests_share_the_cpu_in_time_slices():
    from lguestsim.host import HOST_AREA, Host
    from lguestsim.machine import Machine
    host = Host(Machine(HOST_AREA + 3 * (MEM + 4096) + (1 << 20)))
    host.time_slice = 200_000
    guests = [boot(BUSY, host=host) for _ in range(2)]
    for _ in range(3):
        for _, dev, _lg, _proc in guests:
            with pytest.raises(OSError) as e:
                dev.read(8)
            assert e.value.errno == errno.EAGAIN            # its slice is over
    counts = [sym32(proc, "counter") for _, _, _, proc in guests]
    assert all(c > 10_000 for c in counts), counts
    assert max(counts) < 2 * min(counts)                   # fairly shared


def test_one_guest_alone_is_never_preempted_for_nobody():
    host, dev, lg, proc = boot("""
        HCALL 1, lguest_data-PO
        movl $3000000, %ecx
1:      loop 1b
        HCALL 2, msg-PO
msg:    .asciz "done"
    """)
    with pytest.raises(OSError) as e:
        dev.read(8)
    assert e.value.errno == errno.ENOENT
    assert dev.read(100).rstrip(b"\0") == b"CRASH: done"
