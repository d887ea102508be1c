#!/usr/bin/env python3
"""Scaling: wall time and peak resident memory as Guests and Guest RAM grow (issue 14).

Three tables, each row one `python -m lguestsim` in a child process, its wall
time to the last Guest's power-off, its CPU time (user and system, from
wait4: what the run costs on a machine shared with others) and its peak
resident set (ru_maxrss):

- the boot of the shipped Guest alone, 32 MiB, both generations (2.6.23 and
  --virtio), best of --boots, beside issue 14's goal of under 0.6 s: each
  boot cold, its code cache (lguestsim/x86/code_cache.py) a fresh empty
  folder, as the goal was met without one; then best of --boots again with
  the cache warm (filled by one boot before them), reported beside it;
- 1, 2, 4 and 8 Guests of 32 MiB on one Host (--guests=N), sharing a network
  (--sharenet), so that each Guest boots and runs its demonstration
  (devices, read 0, net, ping broadcast) and powers off;
- one Guest from 32 MiB to 2 GiB of RAM, booting to its power-off.

Every other child starts with an empty code cache too.  Figures go to stdout
and benchmarks/out/bench_scaling.json; they are reported, never asserted (a
child that does not end with status 0 makes the exit status 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from code_cache_env import cache_folder, cache_size

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
GUESTS = (1, 2, 4, 8)
SIZES = (32, 128, 512, 1024, 2048)
BOOT_GOAL_S = 0.6


def child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, float]:
    """Run ``python -m lguestsim ARGS``: (wall seconds, peak RSS in MB, exit status,
    CPU seconds).  Without ``env``, with a code cache of its own, empty."""
    if env is None:
        with cache_folder() as env:
            return child(args, env)
    env = dict(env, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lguestsim", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)    # so Popen does not wait again
    return (took, usage.ru_maxrss * 1024 / 1e6,                # Linux: ru_maxrss in KiB
            proc.returncode, usage.ru_utime + usage.ru_stime)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=3, help="boots per generation; best kept (3)")
    ap.add_argument("--guests", type=int, nargs="+", default=list(GUESTS), metavar="N")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), metavar="MiB")
    args = ap.parse_args(argv)
    failed = []
    result: dict[str, list] = {"boot": [], "guests": [], "ram": []}

    print(f"boot of the shipped Guest, 32 MiB, best of {args.boots} (goal < {BOOT_GOAL_S} s):")
    for generation, flags in (("2.6.23", []), ("2.6.25 (virtio)", ["--virtio"])):
        runs = [child([*flags, "32"]) for _ in range(args.boots)]
        failed += [generation for _, _, status, _ in runs if status != 0]
        best = min(t for t, _, _, _ in runs)
        best_cpu = min(c for _, _, _, c in runs)
        with cache_folder() as env:
            _, _, status, _ = child([*flags, "32"], env)        # fills the cache
            failed += [f"{generation}, filling the cache"] if status else []
            cached = cache_size(env)
            warm = [child([*flags, "32"], env) for _ in range(args.boots)]
        failed += [f"{generation}, warm" for _, _, status, _ in warm if status != 0]
        warm_best, warm_cpu = min(t for t, _, _, _ in warm), min(c for _, _, _, c in warm)
        result["boot"].append({"generation": generation,
                               "seconds": [round(t, 3) for t, _, _, _ in runs],
                               "best_s": round(best, 3), "best_cpu_s": round(best_cpu, 3),
                               "peak_rss_mb": round(max(r for _, r, _, _ in runs), 1),
                               "goal_s": BOOT_GOAL_S,
                               "warm_seconds": [round(t, 3) for t, _, _, _ in warm],
                               "warm_best_s": round(warm_best, 3),
                               "warm_best_cpu_s": round(warm_cpu, 3),
                               "code_cache_kib": round(cached / 1024)})
        verdict = "met" if best < BOOT_GOAL_S else "NOT met"
        print(f"  {generation:16} cold: best {best:.2f} s wall ({best_cpu:.2f} s CPU), worst "
              f"{max(t for t, _, _, _ in runs):.2f} s  ({verdict})")
        print(f"  {'':16} code cache warm: best {warm_best:.2f} s wall ({warm_cpu:.2f} s CPU),"
              f" worst {max(t for t, _, _, _ in warm):.2f} s; {cached / 1024:.0f} KiB cached")

    print("Guests of 32 MiB on one Host, on one network, each running its demonstration:")
    print(f"  {'Guests':>6} {'wall':>8} {'CPU':>8} {'peak RSS':>9} {'CPU/Guest':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.guests:
            net = Path(tmp) / f"net{n}"
            took, rss, status, cpu = child([f"--guests={n}", f"--sharenet={net}", "32"])
            if status != 0:
                failed.append(f"{n} Guests")
            result["guests"].append({"guests": n, "guest_mib": 32, "wall_s": round(took, 3),
                                     "cpu_s": round(cpu, 3), "peak_rss_mb": round(rss, 1),
                                     "exit_status": status})
            print(f"  {n:>6} {took:>7.2f}s {cpu:>7.2f}s {rss:>6.0f} MB {cpu / n:>9.2f}s"
                  f"{'' if status == 0 else f'  (exit status {status})'}")

    print("one Guest, by its RAM, booting to its power-off:")
    print(f"  {'Guest RAM':>9} {'wall':>8} {'CPU':>8} {'peak RSS':>9}")
    for mib in args.sizes:
        took, rss, status, cpu = child([str(mib)])
        if status != 0:
            failed.append(f"{mib} MiB")
        result["ram"].append({"guest_mib": mib, "wall_s": round(took, 3), "cpu_s": round(cpu, 3),
                              "peak_rss_mb": round(rss, 1), "exit_status": status})
        print(f"  {mib:>5} MiB {took:>7.2f}s {cpu:>7.2f}s {rss:>6.0f} MB"
              f"{'' if status == 0 else f'  (exit status {status})'}")

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    if failed:
        print(f"did not end with status 0: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
