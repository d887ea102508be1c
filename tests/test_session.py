"""The stepping API: events, breakpoints, watchpoints, and going back exactly.

A session must land on the very event it was asked for (the step that
recorded it, not one later), stop before the instruction a breakpoint names
and after the step that changed a watched byte, and -- going back by replay
-- reproduce every register, every byte of memory, the cycle count and the
trace exactly as stepping forwards produced them.
"""

from __future__ import annotations

import pytest
from asm import need_binutils

from lguestsim.host.core import HOST_RETURN
from lguestsim.host.lg import LD_TIME
from lguestsim.session import (
    MILESTONE_EVERY,
    Session,
    SessionError,
    TinyGuest,
    _stable,
    shared_key,
)
from lguestsim.trace import KINDS

SHIPPED_KINDS = ("switch", "trap", "hypercall", "interrupt", "pagefault", "dma", "kill", "timer")


def events(session) -> list:
    return [(e.kind, e.cycle, _stable(e.data)) for e in session.trace.events]


@pytest.fixture(scope="module")
def whole_boot():
    """The shipped Guest run to its end: the reference every test compares with."""
    s = Session.boot()
    stop = s.finish()
    assert stop.reason == "finished"
    assert s.runs[0].ended == "CRASH: Power down"
    return s


def light_state(s) -> tuple:
    cpu = s.cpu
    return (s.steps, tuple(sorted(cpu.state().items())), cpu.cycles, cpu.instructions,
            len(s.trace.events))


# -- stepping

def test_the_first_step_is_the_hosts_and_ends_at_switch_to_guest():
    s = Session.boot()
    assert s.steps == 0 and s.where == "host"
    stop = s.step()
    assert stop.steps == 1 and s.steps == 1
    assert s.cpu.eip == s.host.switcher.switch_to_guest and s.where == "switcher"
    assert [e.kind for e in s.trace.events] == ["switch"]


def test_a_cpu_step_is_one_instruction():
    s = Session.boot()
    s.run_to("start_kernel")
    before = s.cpu.instructions
    text = s.next_instruction()
    assert text
    s.step()
    assert s.cpu.instructions == before + 1


def test_host_work_between_trips_is_one_step():
    s = Session.boot()
    s.step_to("hypercall")
    s.back(1)
    assert s.cpu.eip == HOST_RETURN and s.where == "host"
    n = len(s.trace.events)
    s.step()
    kinds = [e.kind for e in s.trace.events[n:]]
    assert kinds[0] == "switch" and kinds[-1] == "switch" and "hypercall" in kinds
    assert s.trace.events[n].to == "host" and s.trace.events[-1].to == "guest"
    assert s.where == "switcher"


@pytest.mark.parametrize("kind", SHIPPED_KINDS)
def test_step_to_lands_on_the_first_event_of_its_kind(kind, whole_boot):
    assert set(SHIPPED_KINDS) == set(KINDS)
    first = next(e for e in whole_boot.trace.events if e.kind == kind)
    s = Session.boot()
    stop = s.step_to(kind)
    assert stop.reason == "event"
    assert stop.event.kind == kind
    assert (stop.event.cycle, _stable(stop.event.data)) == (first.cycle, _stable(first.data))
    assert stop.event in s.trace.events
    # ... and not a step later: one step back, it has not happened yet.
    s.back(1)
    assert not s.trace.of(kind)


def test_step_to_with_a_match_and_a_guest(whole_boot):
    s = Session.boot()
    stop = s.step_to("hypercall", guest=0, match=lambda e: e.name == "SET_CLOCKEVENT")
    first = next(e for e in whole_boot.trace.of("hypercall") if e.name == "SET_CLOCKEVENT")
    assert stop.event.cycle == first.cycle
    assert s.step_to("hypercall", guest=7, max_steps=2000).reason == "limit"
    with pytest.raises(SessionError):
        s.step_to("teleport")


def test_a_finished_session_stays_finished(whole_boot):
    assert whole_boot.finished
    assert whole_boot.step().reason == "finished"
    assert whole_boot.step_to("switch").reason == "finished"


# -- breakpoints

def test_run_to_a_symbol_a_line_and_addresses():
    s = Session.boot()
    syms = s.run.symbols
    start = syms.address("start_kernel")
    assert s.run_to("start_kernel").reason == "breakpoint"
    assert s.cpu.eip == start and s.where == "guest" and s.cpu.cpl == 1
    if syms.has_lines:
        file, line = syms.line(syms.address("paging_init"))
        stop = s.run_to(f"{file}:{line}")
        assert stop.reason == "breakpoint"
        assert syms.line(s.cpu.eip) == (file, line)
    target = syms.address("do_page_fault")
    s.run_to(target)
    assert s.cpu.eip == target
    s.goto(0)
    s.run_to({"guest_phys": target - s.run.page_offset})
    assert s.cpu.eip == target
    s.goto(0)
    s.run_to({"host_phys": s.run.process.phys(target - s.run.page_offset)})
    assert s.cpu.eip == target


def test_run_to_the_switcher_and_persistent_breakpoints():
    s = Session.boot()
    s.run_to("return_to_host")
    assert s.where == "switcher" and s.cpu.eip == s.host.switcher.return_to_host
    s.goto(0)
    s.break_at("lguest_init")
    s.break_at("start_kernel")
    hits = [s.cont().address for _ in range(2)]
    syms = s.run.symbols
    assert hits == [syms.address("lguest_init"), syms.address("start_kernel")]
    # A step never stops at breakpoints; run_to leaves the CPU before the instruction.
    s.clear_breakpoints()
    with pytest.raises(SessionError):
        s.run_to("no_such_symbol")


# -- watchpoints

def test_a_watchpoint_stops_after_the_guest_writes():
    s = Session.boot()
    jiffies = s.run.symbols.address("jiffies") - s.run.page_offset
    wp = s.watch(jiffies, 4)
    old = s.run.process.read32(jiffies)
    stop = s.cont()
    assert stop.reason == "watchpoint" and stop.watch is wp
    new = s.run.process.read32(jiffies)
    assert new != old and s.where == "guest"
    s.back(1)
    assert s.run.process.read32(jiffies) == old


def test_a_watchpoint_sees_the_host_write_too():
    s = Session.boot()
    lguest_data = s.run.symbols.address("lguest_data") - s.run.page_offset
    s.watch(lguest_data + LD_TIME, 8, label="lguest_data.time")
    stop = s.cont()
    assert stop.reason == "watchpoint"
    assert any(e.kind == "hypercall" and e.name == "LGUEST_INIT" for e in s.trace.events)
    s.back(1)
    assert s.where == "host"          # the write was the Host's step


def test_a_watchpoint_on_a_virtual_address():
    s = Session.boot()
    s.run_to("start_kernel")
    jiffies = s.run.symbols.address("jiffies")
    wp = s.watch(jiffies, 4, space="virtual")
    assert wp.start == s.run.process.phys(jiffies - s.run.page_offset)
    assert s.cont().reason == "watchpoint"


# -- going back

def test_back_10000_steps_matches_stepping_forwards():
    s = Session.boot()
    s.step(20_000)
    start = s.steps
    states = {}
    for _ in range(12_000):
        s.step()
        states[s.steps] = light_state(s)
    end = s.steps
    full_end = s.fingerprint()
    trace_end = events(s)
    s.goto(end - 10_000)
    target = end - 10_000
    assert s.steps == target
    assert light_state(s) == states[target]
    # Forward again, one step at a time, through the same states.
    for _ in range(10_000):
        s.step()
        assert light_state(s) == states[s.steps]
    assert s.fingerprint() == full_end
    assert events(s) == trace_end
    assert start < target


def test_back_matches_the_full_state_at_milestones_and_between():
    s = Session.boot()
    marks = [0, 1, 2, MILESTONE_EVERY - 1, MILESTONE_EVERY, MILESTONE_EVERY + 1,
             3 * MILESTONE_EVERY + 17, 40_000, 90_001]
    seen = {}
    for m in marks:
        s.step(m - s.steps)
        seen[m] = (s.fingerprint(), events(s))
    for m in reversed(marks):
        s.goto(m)
        assert (s.fingerprint(), events(s)) == seen[m], f"step {m}"
    assert s.replays == len(marks) - 1


def test_back_one_step_at_a_time():
    s = Session.boot()
    s.step(5000)
    history = {}
    for _ in range(6):
        s.step()
        history[s.steps] = s.fingerprint()
    for _ in range(5):
        s.back(1)
        assert s.fingerprint() == history[s.steps]


def test_observers_hear_every_motion():
    s = Session.boot()
    heard = []
    s.observe(lambda sess: heard.append(sess.steps))
    s.step()
    s.step_to("hypercall")
    s.back(2)
    assert heard == [1, heard[1], heard[1] - 2]


# -- tiny Guests (GNU as)

BAD_HYPERCALL = """
        HCALL 1, lguest_data-PO
        HCALL 99
        HCALL 2, msg-PO
msg:    .asciz "not reached"
"""


def test_a_tiny_guest_is_killed_for_a_bad_hypercall():
    need_binutils()
    s = Session.tiny(BAD_HYPERCALL)
    stop = s.step_to("kill")
    assert stop.event.reason == "Bad hypercall 99"
    s.finish()
    assert s.runs[0].ended == "Bad hypercall 99"
    # The snippet's first line is empty: its first instruction is line 2 of guest.s.
    assert s.run.symbols.line(s.run.program.symbols["_start"]) == ("guest.s", 2)


RECEIVER = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 12, {key}, rx-PO, 0x0103     # BIND_DMA: 1 buffer, irq 3
        HCALL 13, 0, hello-PO              # tell our Launcher
        HCALL 2, msg-PO
msg:    .asciz "receiver done"
        .p2align 2
hello:  DMA msg-PO, 1
rx:     DMA rxbuf-PO, 16
rxbuf:  .fill 16, 1, 0
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""

SENDER = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 13, {key}, tx-PO
        HCALL 2, msg-PO
msg:    .asciz "sender done"
        .p2align 2
tx:     DMA txbuf-PO, 11
txbuf:  .ascii "hello again"
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""


def two_guests():
    key = shared_key()
    return Session([TinyGuest(RECEIVER.format(key=key), share=True, name="rx"),
                    TinyGuest(SENDER.format(key=key), share=True, name="tx")])


def test_step_to_dma_between_two_guests_and_back():
    need_binutils()
    s = two_guests()
    stop = s.step_to("dma", guest=1)
    assert stop.event.to == 0 and stop.event.bytes == 11 and stop.event.irq == 3
    rx = s.runs[0]
    buf = rx.program.symbols["rxbuf"] - rx.page_offset
    assert rx.process.read(buf, 11) == b"hello again"
    mark = (s.steps, s.fingerprint(), events(s))
    s.finish()
    assert [r.ended for r in s.runs] == ["CRASH: receiver done", "CRASH: sender done"]
    s.goto(mark[0])
    assert (s.steps, s.fingerprint(), events(s)) == mark
    s.back(1)
    assert rx.process is not s.runs[0].process        # a new world, replayed
    assert s.runs[0].process.read(buf, 11) == bytes(11)


def test_the_session_knows_nothing_of_screens():
    """Views import the session, never the other way round (issue 11)."""
    import subprocess
    import sys
    code = ("import sys, lguestsim.session, lguestsim.world, lguestsim.pagewalk; "
            "print(sorted(m for m in sys.modules if m.startswith('lguestsim.views')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_trace_events_show_addresses_and_register_values_in_hex():
    import re
    s = Session.boot()
    s.finish()
    kinds = set()
    for e in s.trace.events:
        text = repr(e)
        hexes = r"'(eip|vaddr|gpte|errcode|trapnum|dma|key|cr2)': (?!0x)\d"
        assert not re.search(hexes, text), text
        assert not re.search(r"'args': \((?!0x)\d", text), text
        kinds.add(e.kind)
    assert {"switch", "hypercall", "pagefault", "trap", "interrupt", "dma"} <= kinds
    fault = s.trace.of("pagefault")[0]
    assert repr(fault.data).count("0x") >= 3 and f"{fault.vaddr:#x}" in repr(fault)
    assert type(fault.vaddr + 0) is int and fault.vaddr == int(fault.vaddr)   # still a number
