#!/usr/bin/env python3
"""DMA (2.6.23) against virtio (2.6.25): the same block workload and boot on both.

The shipped Guest of each generation boots with a disk and runs the shell's
``blkbench KIB`` command: KIB KiB written from sector 0 in 4 KiB requests,
then read back in 4 KiB requests and compared.  For the command alone the
benchmark counts world switches (Host -> Guest entries), hypercalls and
simulated cycles (1 cycle = 1 ns at 1000 MHz), and divides by the number of
requests; it also gives the Python wall time.  Then it times booting each
shipped Guest to its power-off with ``python -m lguestsim`` (the issue's
target: the virtio boot within 1.5x of the 2.6.23 one).

Figures are printed, never asserted: run with ``make bench`` or directly.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from code_cache_env import cache_folder, isolate  # noqa: E402

from lguestsim.launcher.main import Options, start_launchers  # noqa: E402
from lguestsim.launcher.run import run_many  # noqa: E402


class Stream(io.StringIO):
    """A text stream with a binary buffer behind it, like sys.stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()

    def text(self) -> str:
        return self.buffer.getvalue().decode("latin-1")


def blkbench(virtio: bool, kib: int, cmdline: tuple[str, ...] = ()) -> dict[str, float]:
    """Run the shipped Guest's `blkbench KIB` on a fresh disk: the command's world
    switches, hypercalls, simulated cycles and wall seconds, in all."""
    with tempfile.TemporaryDirectory() as tmp:
        disk = Path(tmp, "disk.img")
        disk.write_bytes(bytes(2 * kib * 1024))
        rfd, wfd = os.pipe()
        out = Stream()
        [launcher] = start_launchers([Options(
            virtio=virtio, mem_mb=32, cmdline=["shell", *cmdline],
            devices=[("block", str(disk))], console_out=out, console_in=rfd)])
        try:
            run_many([launcher], wait=0,
                     until=lambda: "reading commands from the console" in out.text())
            lg, cpu = launcher.lg, launcher.machine.cpu
            before = (lg.world_switches, lg.hypercalls, cpu.cycles, time.perf_counter())
            os.write(wfd, f"blkbench {kib}\n".encode())
            run_many([launcher], wait=0, until=lambda: "blkbench:" in out.text())
            after = (lg.world_switches, lg.hypercalls, cpu.cycles, time.perf_counter())
            if f"blkbench: {kib} KiB written and read back" not in out.text():
                raise RuntimeError(f"the workload failed: {out.text()[-500:]}")
            os.write(wfd, b"quit\n")
        finally:
            os.close(wfd)
            run_many([launcher], wait=5)
            os.close(rfd)
    return dict(zip(("world switches", "hypercalls", "cycles", "wall"),
                    (a - b for a, b in zip(after, before, strict=True)), strict=True))


def block_workload(virtio: bool, kib: int) -> dict[str, float]:
    """Run blkbench on one generation; the command's costs, per request."""
    total = blkbench(virtio, kib)
    requests = kib // 4 * 2
    return {"requests": requests,
            "switches": total["world switches"] / requests,
            "hypercalls": total["hypercalls"] / requests,
            "cycles": total["cycles"] / requests,
            "wall": total["wall"]}


def boot_time(virtio: bool, runs: int) -> float:
    """Best wall time of ``python -m lguestsim [--virtio] 32`` to its power-off,
    each boot with an empty code cache of its own (code_cache_env.py)."""
    best = float("inf")
    args = [sys.executable, "-m", "lguestsim"] + (["--virtio"] if virtio else []) + ["32"]
    for _ in range(runs):
        with cache_folder() as env:
            t0 = time.perf_counter()
            r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
        best = min(best, time.perf_counter() - t0)
        if "Power down" not in r.stderr:
            raise RuntimeError(f"the boot did not end in a power-down: {r.stderr[-300:]}")
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kib", type=int, default=1024, help="KiB written and read back")
    ap.add_argument("--boots", type=int, default=3)
    args = ap.parse_args(argv)
    isolate()
    dma = block_workload(False, args.kib)
    vio = block_workload(True, args.kib)
    print(f"block workload: {args.kib} KiB written and read back in 4 KiB requests "
          f"({dma['requests']} requests), per request:")
    print(f"  {'':22}{'DMA (2.6.23)':>14}{'virtio (2.6.25)':>17}")
    for key, name in (("switches", "world switches"), ("hypercalls", "hypercalls"),
                      ("cycles", "simulated cycles")):
        print(f"  {name:22}{dma[key]:14.1f}{vio[key]:17.1f}")
    print(f"  {'wall time (whole)':22}{dma['wall']:13.2f}s{vio['wall']:16.2f}s")
    t23, t25 = boot_time(False, args.boots), boot_time(True, args.boots)
    print(f"boot of the shipped Guest to power-off, best of {args.boots}:")
    print(f"  2.6.23 {t23:.2f} s, 2.6.25 (virtio) {t25:.2f} s: {t25 / t23:.2f}x "
          f"(target at most 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
