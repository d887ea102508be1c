#!/usr/bin/env python3
"""The native door against the Python Launcher: the same Guest booted by both.

For each generation the shipped teaching Guest boots (no shell: it runs its
demonstration and powers off) once under the Python Launcher, in-process,
and once under the C Launcher (``launcher-c/``, built here with its
Makefile) through the native door: a Door in this process and the C
Launcher a real process preloaded with the door.  Each run reports its wall
time, its world switches (Host -> Guest entries, counted from the Host's
trace), world switches per second of wall time, and the simulated cycles;
then the door's wall time over the Python Launcher's (the issue's aim: at
most 1.5x).  The boot from the command line (``python -m lguestsim`` and
``python -m lguestsim native -- launcher-c/lguest``) is timed too, as a
user meets it.

Figures are printed and written to benchmarks/out/bench_native.json, never
asserted: run with ``make bench`` or directly (``--runs N`` keeps the best).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT))

from code_cache_env import cache_folder, isolate  # noqa: E402

from lguestsim.launcher.main import (  # noqa: E402
    SHIPPED_GUEST,
    SHIPPED_GUEST_VIRTIO,
    Options,
    start_launchers,
)
from lguestsim.launcher.run import run_many  # noqa: E402
from lguestsim.native.build import build_door  # noqa: E402
from lguestsim.native.command import door_env  # noqa: E402
from lguestsim.native.door import Door  # noqa: E402


class Stream(io.StringIO):
    """A text stream with a binary buffer behind it, like sys.stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()


def counting(trace) -> list[int]:
    """A one-item list counting the trace's entries into a Guest from now on."""
    count = [0]

    def hear(ev) -> None:
        if ev.kind == "switch" and ev.data.get("to") == "guest":
            count[0] += 1

    trace.listeners.append(hear)
    return count


def python_boot(virtio: bool) -> dict:
    [launcher] = start_launchers([Options(virtio=virtio, mem_mb=32, console_out=Stream())])
    host = launcher.lguest.host
    switches = counting(host.trace)
    t0 = time.perf_counter()
    run_many([launcher], wait=0)
    wall = time.perf_counter() - t0
    if "Power down" not in (launcher.reason or ""):
        raise RuntimeError(f"the Python Launcher's Guest did not power down: {launcher.reason}")
    return {"wall": wall, "switches": switches[0], "cycles": host.cpu.cycles}


def c_launcher() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["make", "-s", "-C", str(ROOT / "launcher-c"), f"O={OUT}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building launcher-c failed:\n{done.stderr}")
    return OUT / "lguest"


def door_boot(virtio: bool, launcher: Path, folder: Path) -> dict:
    image = SHIPPED_GUEST_VIRTIO if virtio else SHIPPED_GUEST
    with tempfile.TemporaryDirectory() as tmp:
        door = Door(os.path.join(tmp, "lguest.sock"))
        switches = counting(door.host.trace)
        argv = [str(launcher)] + (["--virtio"] if virtio else []) + ["32", str(image)]
        out = Path(tmp, "out.txt")
        t0 = time.perf_counter()
        with open(out, "w") as f:
            proc = subprocess.Popen(argv, env=door_env(door.path, folder, virtio),
                                    stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        door.serve(until=lambda: proc.poll() is not None, idle=0.05)
        wall = time.perf_counter() - t0
        cycles = door.host.cpu.cycles
        door.close()
        if "Power down" not in out.read_text():
            raise RuntimeError(f"the C Launcher's Guest did not power down:\n"
                               f"{out.read_text()[-500:]}")
    return {"wall": wall, "switches": switches[0], "cycles": cycles}


def command_boot(argv: list[str]) -> float:
    with cache_folder() as env:     # an empty code cache of its own: a cold boot
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "lguestsim", *argv], cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if "Power down" not in done.stdout + done.stderr:
        raise RuntimeError(f"{argv}: no power-down:\n{done.stderr[-500:]}")
    return wall


def fresh(kind: str, virtio: bool) -> dict:
    """One in-process boot, in a fresh Python with an empty code cache (no
    translations cached from another boot): ``kind`` is "python" or "door"."""
    with cache_folder() as env:
        done = subprocess.run([sys.executable, __file__, "--one", kind] +
                              (["--virtio"] if virtio else []),
                              capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the {kind} boot failed:\n{done.stderr[-800:]}")
    return json.loads(done.stdout.splitlines()[-1])


def best(runs: int, kind: str, virtio: bool) -> dict:
    return min((fresh(kind, virtio) for _ in range(runs)), key=lambda r: r["wall"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2, help="boots of each kind; the best is kept")
    ap.add_argument("--one", choices=("python", "door"), help=argparse.SUPPRESS)
    ap.add_argument("--virtio", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    isolate()
    if args.one == "python":
        print(json.dumps(python_boot(args.virtio)))
        return 0
    if args.one == "door":
        print(json.dumps(door_boot(args.virtio, OUT / "lguest", build_door())))
        return 0
    launcher = c_launcher()
    build_door()
    figures: dict = {}
    print("boot of the shipped Guest to power-off (no shell), best of "
          f"{args.runs}, each in a fresh Python:")
    print(f"  {'':16}{'wall s':>9}{'switches':>10}{'switches/s':>12}{'sim cycles':>13}")
    for virtio, gen in ((False, "2.6.23"), (True, "2.6.25")):
        py = best(args.runs, "python", virtio)
        nat = best(args.runs, "door", virtio)
        for name, r in (("Python Launcher", py), ("door, C Launcher", nat)):
            r["switches_per_s"] = r["switches"] / r["wall"]
            print(f"  {gen} {name:16}{r['wall']:9.2f}{r['switches']:10d}"
                  f"{r['switches_per_s']:12.0f}{r['cycles']:13d}")
        ratio = nat["wall"] / py["wall"]
        print(f"  {gen} door / Python: {ratio:.2f}x wall (aim: at most 1.5x)")
        image = str(SHIPPED_GUEST_VIRTIO if virtio else SHIPPED_GUEST)
        v = ["--virtio"] if virtio else []
        cmd_py = min(command_boot([*v, "32", image]) for _ in range(args.runs))
        cmd_nat = min(command_boot(["native", *v, "--", str(launcher), *v, "32", image])
                      for _ in range(args.runs))
        print(f"  {gen} from the command line: python -m lguestsim {cmd_py:.2f} s, "
              f"... native -- launcher-c/lguest {cmd_nat:.2f} s ({cmd_nat / cmd_py:.2f}x)")
        figures[gen] = {"python": py, "door": nat, "ratio": ratio,
                        "command_python_s": cmd_py, "command_door_s": cmd_nat}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_native.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
