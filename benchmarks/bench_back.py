#!/usr/bin/env python3
"""back(n): how long a session takes to go back 10,000 steps, anywhere in a boot (issue 14).

A session goes back by replay (lguestsim/session.py): it builds the world
afresh and runs it at full speed to the last milestone before the target,
then steps onto it.  Nothing of the machine is copied, so the only memory
going back costs is the milestones' history, which ``Session.snapshot_bytes()``
reports.  For each generation of the shipped Guest this boots a session to
the Guest's power-off, then from seeded random points of that boot (and its
very end, the worst case: the longest replay) times ``back(N)`` (N = 10,000
by default), beside issue 14's goal of 1 s, in this process's CPU time (the
verdict: on a shared machine it is what the replay costs) and in wall time.
It also reads the process's resident set before and after the replays, to
show that a replay's new world replaces the old one rather than adding to
it.  Figures go to stdout and benchmarks/out/bench_back.json; they are
reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(ROOT))

from code_cache_env import isolate  # noqa: E402

from lguestsim.session import Session  # noqa: E402

GOAL_S = 1.0


def rss_mb() -> float:
    """This process's resident set now, in MB (Linux's /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def measure(virtio: bool, n: int, points: int, seed: int) -> dict:
    s = Session.boot(virtio=virtio)
    start = time.perf_counter()
    stop = s.finish()
    forward = time.perf_counter() - start
    if stop.reason != "finished":
        raise RuntimeError(f"the boot did not finish: {stop}")
    end = s.steps
    rng = random.Random(seed)
    where = sorted(rng.randrange(n, end) for _ in range(points)) + [end]
    s.goto(end - 1)                       # one replay first: imports, the translation cache
    rss_before = rss_mb()
    times, cpu = [], []
    for p in where:
        s.goto(p)
        t0, c0 = time.perf_counter(), time.process_time()
        s.back(n)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if s.steps != p - n:
            raise RuntimeError(f"back({n}) from {p} landed at {s.steps}")
    return {"generation": "2.6.25 (virtio)" if virtio else "2.6.23", "boot_steps": end,
            "forward_s": round(forward, 3), "n": n, "from_steps": where,
            "seconds": [round(t, 3) for t in times], "worst_s": round(max(times), 3),
            "median_s": round(statistics.median(times), 3), "goal_s": GOAL_S,
            "cpu_seconds": [round(t, 3) for t in cpu], "worst_cpu_s": round(max(cpu), 3),
            "median_cpu_s": round(statistics.median(cpu), 3),
            "snapshot_bytes": s.snapshot_bytes(), "milestones": len(s.milestones),
            "rss_mb_before": round(rss_before, 1), "rss_mb_after": round(rss_mb(), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10_000, help="steps to go back (10000)")
    ap.add_argument("--points", type=int, default=6,
                    help="random points of the boot to go back from, besides its end (6)")
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args(argv)
    isolate()
    print(f"back({args.n}) in a session of the shipped Guest's boot; goal: within {GOAL_S:.0f} s")
    results = []
    for virtio in (False, True):
        r = measure(virtio, args.n, args.points, args.seed)
        results.append(r)
        verdict = "met" if r["worst_cpu_s"] <= GOAL_S else "NOT met"
        print(f"  {r['generation']:16} boot {r['boot_steps']:,} steps; back({args.n}) from "
              f"{len(r['seconds'])} points: worst {r['worst_cpu_s']:.3f} s CPU "
              f"({r['worst_s']:.3f} s wall), median {r['median_cpu_s']:.3f} s CPU "
              f"({verdict})")
        print(f"  {'':16} history kept: {r['snapshot_bytes']:,} bytes ({r['milestones']} "
              f"milestones); resident {r['rss_mb_before']:.0f} MB before the replays, "
              f"{r['rss_mb_after']:.0f} MB after")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak resident set of this process: {peak:.0f} MB")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_back.json").write_text(json.dumps(
        {"results": results, "peak_rss_mb": round(peak, 1)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
