"""One trace stream for the whole boot: every kind of event, stamped in cycles."""

from __future__ import annotations

from test_guest_boot import boot

from lguestsim import guest
from lguestsim.trace import KINDS


def test_boot_records_every_kind_of_event_in_cycle_order():
    status, _console, host = boot(guest.ELF_IMAGE)
    events = host.trace.events
    kinds = {e.kind for e in events}
    assert {"switch", "trap", "hypercall", "interrupt", "pagefault", "dma"} <= kinds
    assert kinds <= set(KINDS)
    cycles = [e.cycle for e in events]
    assert cycles == sorted(cycles) and cycles[0] > 0
    assert cycles[-1] <= host.machine.cpu.cycles
    # World switches pair up: into the Guest, back to the Host.
    switches = [e.to for e in host.trace.of("switch")]
    assert switches[::2] == ["guest"] * len(switches[::2])
    assert switches[1::2] == ["host"] * len(switches[1::2])
    # Every DMA the console sent is on the stream with its key.
    assert all(e.key == 0 for e in host.trace.of("dma"))
    assert host.trace.of("kill")[-1].reason == "CRASH: Power down"
