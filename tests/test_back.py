"""Going back without copies: back(n) lands exactly, in both generations, and what
it keeps is a few counters per milestone, never a copy of the Guest's memory.

(tests/test_session.py shows back(10,000) retracing the 2.6.23 boot step by
step; benchmarks/bench_back.py times it.)
"""

from __future__ import annotations

import gc
import tracemalloc

from lguestsim.session import MILESTONE_EVERY, Session

MIB = 1 << 20


def test_back_in_the_virtio_generation_lands_on_the_same_state_with_no_copy():
    s = Session.boot(virtio=True)
    s.step(30_000)
    here = s.fingerprint()               # registers, cycles, a digest of RAM and of the trace
    s.step(5_000)
    later = s.fingerprint()
    assert later != here
    gc.collect()
    tracemalloc.start()
    try:
        s.back(5_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert s.steps == 30_000
    assert s.fingerprint() == here
    # A copy of the 32 MiB Guest, or of any large part of it, would show here:
    # the replay's own Python objects are a couple of MiB.
    assert peak < 8 * MIB, f"going back allocated {peak} bytes"
    # Forward again: the same state as the first time through.
    s.step(5_000)
    assert s.fingerprint() == later


def test_the_history_kept_for_going_back_is_the_milestones_alone():
    s = Session.boot()
    assert s.snapshot_bytes() < 1024 and not s.milestones
    s.step(5 * MILESTONE_EVERY + 7)
    assert sorted(s.milestones) == [MILESTONE_EVERY * k for k in range(1, 6)]
    per_milestone = (s.snapshot_bytes() - Session.boot().snapshot_bytes()) / 5
    assert 0 < per_milestone < 400
    # Each milestone is where the machine was: its instruction and cycle counts.
    s.goto(3 * MILESTONE_EVERY)
    assert s.milestones[3 * MILESTONE_EVERY] == (s.cpu.instructions, s.cpu.cycles)
