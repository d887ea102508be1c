#!/usr/bin/env python3
"""Peak resident memory of a Guest's boot, by Guest RAM size (issue 14).

lguest's Launcher maps /dev/zero for the Guest's memory, so the Host pays
only for the pages the Guest touches.  lguestsim's machine RAM is a private
anonymous mmap and the Launcher's "map zeroed pages" hands pages back rather
than writing zeros, so the same should hold here.  For each size this boots
the shipped Guest with `python -m lguestsim MiB` in a child process, to its
shutdown, and reads the child's peak resident set (ru_maxrss from wait4) and
its wall time, printed beside issue 14's goals (512 MiB: <= 400 MB, 2 GiB:
<= 600 MB) and written to benchmarks/out/bench_memory.json.

Figures are printed, never asserted: run with `make bench` or directly.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from code_cache_env import cache_folder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
SIZES = (32, 128, 512, 1024, 2048)
GOALS = {512: 400, 2048: 600}          # MB of peak RSS, issue 14


def boot_rss(mib: int) -> tuple[float, float, int]:
    """Boot a ``mib`` MiB Guest in a child: (peak RSS in MB, wall seconds, exit status)."""
    with cache_folder() as env:     # an empty code cache of its own: a cold boot
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "lguestsim", str(mib)], cwd=ROOT,
                                 env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        took = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)   # so Popen does not wait again
    return usage.ru_maxrss * 1024 / 1e6, took, child.returncode   # Linux: ru_maxrss in KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                        metavar="MiB", help="Guest RAM sizes to boot (default: %(default)s)")
    args = parser.parse_args(argv)
    results = []
    failed = False
    print(f"{'Guest RAM':>10} {'peak RSS':>10} {'wall':>8}  goal")
    for mib in args.sizes:
        rss, took, status = boot_rss(mib)
        goal = GOALS.get(mib)
        verdict = "" if goal is None else f"<= {goal} MB: {'met' if rss <= goal else 'NOT met'}"
        if status != 0:
            verdict += f" (the boot exited {status})"
            failed = True
        print(f"{mib:>6} MiB {rss:>7.0f} MB {took:>7.2f}s  {verdict}")
        results.append({"guest_mib": mib, "peak_rss_mb": round(rss, 1), "wall_s": round(took, 3),
                        "goal_mb": goal, "exit_status": status})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_memory.json").write_text(json.dumps(results, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
