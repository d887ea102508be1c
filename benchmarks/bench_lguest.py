#!/usr/bin/env python3
"""lguest figures: a system call with and without direct traps, and the boot's wall time.

lguest's interrupts_and_traps.c reports that letting the Guest's system call
trap go straight into the Guest (a "direct trap") took a system call from
1750 ns to 270 ns, 6.5 times faster.  This benchmark runs the same experiment
on lguestsim: a Guest makes N system calls (int $0x80 from ring 1 into its own
trap gate), once with direct traps and once with the Host option that turns
them off (every system call then goes Guest -> Switcher -> Host -> Guest), and
reports cycles (1 cycle = 1 ns at the simulated 1000 MHz) per call and the
ratio beside lguest's.  It also times `python -m lguestsim` and
`python -m lguestsim --virtio` booting the shipped Guest to its shutdown, wall
and CPU time with Python's start-up (issue 14's target: under 0.6 s wall):
cold, each boot's code cache (lguestsim/x86/code_cache.py) an empty folder of
its own, and warm, reading the code an earlier boot left in its folder.

Figures are printed, never asserted: run with `make bench` or directly.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from code_cache_env import cache_folder, isolate  # noqa: E402

CALLS = 1000


# A tiny Guest marks where its measured part starts and ends with a DMA send
# (LHCALL_SEND_DMA, 13) the benchmark watches for, and ends with a CRASH (2);
# bench_figures.py's Guests do the same.
MARK = "HCALL 13, 0, dma-PO"
TAIL = """
        HCALL 2, msg-PO
msg:    .asciz "done"
        .p2align 2
dma:    .long 0, msg-PO
        .fill 15, 4, 0
        .short 1
        .fill 15, 2, 0
"""


def syscall_guest(calls: int) -> str:
    return f"""
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 7, 0x69, stack_top, 1
        movl $syscall, %ebx
        andl $0xffff, %ebx
        orl $0x00600000, %ebx
        movl $syscall, %ecx
        andl $0xffff0000, %ecx
        orl $0xef00, %ecx                  # present, DPL 3, trap gate
        HCALL_REGS 6, 0x80
        {MARK}                # start of the measured part
        movl ${calls}, %esi
1:      int $0x80
        decl %esi
        jnz 1b
        {MARK}                # end of it
{TAIL}
syscall:
        iret
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""


def measure(direct: bool, calls: int) -> tuple[float, int]:
    import guestenv
    guestenv.PRELUDE += """
.macro HCALL_REGS n, a
        movl $\\n, %eax
        movl $\\a, %edx
        int $0x1f
.endm
""" if "HCALL_REGS" not in guestenv.PRELUDE else ""
    host, dev, lg, proc = guestenv.boot(syscall_guest(calls), direct_traps=direct)
    cpu = host.cpu
    dev.read(8)
    c0, s0 = cpu.cycles, lg.world_switches
    dev.read(8)
    cycles = cpu.cycles - c0
    return cycles / calls, lg.world_switches - s0


def boot_time(runs: int, virtio: bool = False, bytecode: bool | None = None,
              warm: bool = False) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of `python -m lguestsim [--virtio] 32` to the Guest's
    power-off, start-up included, for each of ``runs`` boots.  ``bytecode``
    False or True runs Python with or without PYTHONDONTWRITEBYTECODE (None:
    as this process was started).  Each boot's code cache is an empty folder
    of its own, or with ``warm`` one folder that a boot before them filled."""
    if not warm:
        return [t for _ in range(runs) for t in _boots(1, virtio, bytecode, warm=False)]
    return _boots(runs, virtio, bytecode, warm=True)


def _boots(runs: int, virtio: bool, bytecode: bool | None, warm: bool
           ) -> list[tuple[float, float]]:
    filling = 1 if warm else 0      # a first boot fills the cache; it is not counted
    with cache_folder() as env:
        return _timed(filling + runs, virtio, bytecode, env)[filling:]


def _timed(runs: int, virtio: bool, bytecode: bool | None, env: dict[str, str]
           ) -> list[tuple[float, float]]:
    env = dict(env)
    if bytecode is True:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    elif bytecode is False:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "-m", "lguestsim", *(["--virtio"] if virtio else []), "32"]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        times.append((time.perf_counter() - t0, usage.ru_utime + usage.ru_stime))
        if "Power down" not in err:
            raise RuntimeError(f"the boot did not end in a power-down: {err[-300:]}")
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=CALLS)
    ap.add_argument("--boots", type=int, default=3)
    args = ap.parse_args(argv)
    isolate()
    direct, switches_d = measure(True, args.calls)
    host, switches_h = measure(False, args.calls)
    print(f"system call, {args.calls} calls (1 cycle = 1 ns):")
    print(f"  direct trap          {direct:10.1f} cycles/call   world switches: {switches_d}")
    print(f"  through the Host     {host:10.1f} cycles/call   world switches: {switches_h}")
    print(f"  ratio                {host / direct:10.1f}x   (lguest: 1750 ns -> 270 ns, 6.5x)")
    print(f"boot of the shipped Guest to its power-off, Python's start-up included, "
          f"best of {args.boots} (issue 14: < 0.6 s wall):")
    ways = [(None, "")]
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # Set here, every start compiles the package's modules again (~0.2 s);
        # an installed package, or Python left to its defaults, reads __pycache__.
        boot_time(1, bytecode=True)          # writes __pycache__
        ways = [(None, " (PYTHONDONTWRITEBYTECODE set: no .pyc)"),
                (True, " (with .pyc, as Python's default)")]
    for virtio in (False, True):
        for bytecode, note in ways:
            for warm in (False, True):
                times = boot_time(args.boots, virtio, bytecode, warm)
                print(f"  {'2.6.25 --virtio' if virtio else '2.6.23':16} "
                      f"{'code cache warm' if warm else 'cold':15} wall best "
                      f"{min(w for w, _ in times):.2f} s, worst "
                      f"{max(w for w, _ in times):.2f} s; CPU best "
                      f"{min(c for _, c in times):.2f} s{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
