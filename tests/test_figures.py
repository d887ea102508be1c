"""lguest's published figures as experiments (benchmarks/bench_figures.py): each
switch changes the very thing it names, counted (exits, reloads, faults), not timed."""

from __future__ import annotations

import sys
from pathlib import Path

from asm import need_binutils

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_figures  # noqa: E402


def test_without_the_changed_flags_every_entry_copies_the_gdt_and_idt():
    need_binutils()
    f = bench_figures.changed_flags(switches=20)
    c = f.counts
    # 20 switches, each two hypercalls: 40 trips, plus the set-up's few.
    assert c["world switches"] >= 40
    assert c["IDT copies without"] == c["GDT copies without"] == c["world switches"]
    assert c["IDT copies with"] == c["GDT copies with"] == 1     # the first entry only
    assert f.without > f.with_


def test_without_set_pte_at_once_every_fresh_page_takes_a_shadow_fault():
    need_binutils()
    f = bench_figures.set_pte_at_once(pages=16)
    c = f.counts
    assert c["shadow faults with"] == 0
    assert c["shadow faults without"] == 16
    assert c["world switches without"] == c["world switches with"] + 16
    assert f.without > f.with_


def test_without_direct_traps_every_system_call_goes_through_the_host():
    need_binutils()
    f = bench_figures.direct_traps(calls=20)
    assert f.counts["world switches with"] <= 1
    assert f.counts["world switches without"] >= 20
    assert f.ratio > 1


def test_the_boot_breakdown_accounts_for_every_cycle_and_exit():
    b = bench_figures.boot_breakdown()
    assert b["total_cycles"] == b["cycles_to"] - b["cycles_from"]
    assert b["exits"] == b["world_switches"] > 0
    reasons = {r["reason"]: r for r in b["by_reason"]}
    assert reasons["page fault: shadow filled"]["exits"] > 0
    assert sum(r["exits"] for r in b["by_reason"]) == b["exits"]
    share, top = bench_figures.page_fault_summary(b)
    assert 0 < share < 1 and top in reasons


def test_with_its_ports_reserved_the_guest_probes_none_and_without_it_traps_on_each():
    f, reserved, probed = bench_figures.reserved_ports()
    assert f.counts["in/out traps with"] == 0
    assert f.counts["in/out traps without"] > 100
    assert f.counts["exits without"] >= f.counts["exits with"] + f.counts["in/out traps without"]
    assert f.without > f.with_
    assert probed["cmdline"] == ["noioreserve"] and reserved["cmdline"] == []


def test_ending_one_piece_at_a_time_sends_a_request_crossing_a_page_twice():
    need_binutils()
    f = bench_figures.whole_requests(kib=8)
    c = f.counts
    # blkbench's buffer crosses a page boundary: each 4 KiB request is two
    # pieces, and each goes out twice (one SEND_DMA each time).
    requests = 8 // 4 * 2
    assert c["hypercalls without"] - c["hypercalls with"] == requests
    assert f.without > f.with_
