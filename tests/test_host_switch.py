"""The first world switch, hypercalls and the death of a Guest, on tiny Guests."""

from __future__ import annotations

from guestenv import boot, run_to_death

HELLO = """
        HCALL 1, lguest_data-PO          # LGUEST_INIT
        HCALL 13, 0, dma-PO             # SEND_DMA to the console key
        HCALL 2, msg-PO                  # CRASH
1:      jmp 1b
        .p2align 2
dma:    DMA hello-PO, 5
hello:  .ascii "hello"
msg:    .asciz "Power down"
"""


def test_a_guest_says_hello_and_powers_down():
    host, dev, lg, proc = boot(HELLO)
    reason, out = run_to_death(dev)
    assert out == [b"hello"]
    assert reason == "CRASH: Power down"
    assert lg.world_switches >= 3
    kinds = [e.kind for e in host.trace.events]
    assert "switch" in kinds and "hypercall" in kinds and "dma" in kinds


def test_first_hypercall_must_be_init():
    host, dev, lg, proc = boot("""
        HCALL 2, msg-PO
msg:    .asciz "too early"
    """)
    reason, _ = run_to_death(dev)
    assert reason == "hypercall 2 before LGUEST_INIT"


def test_bad_hypercall_number_kills():
    host, dev, lg, proc = boot("""
        HCALL 1, lguest_data-PO
        HCALL 99
    """)
    reason, _ = run_to_death(dev)
    assert reason == "Bad hypercall 99"
