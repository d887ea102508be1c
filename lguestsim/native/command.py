"""``python -m lguestsim native``: run C Launchers through the door.

::

    python -m lguestsim native [--virtio] [--room=MB] -- PROGRAM [ARGS...] [-- PROGRAM ...]

starts the simulated Host (a `Door` on a socket in a fresh temporary
directory), builds the door library if need be, and runs each PROGRAM with
it preloaded (LD_PRELOAD) and the socket's address in LGUESTSIM_DOOR.  They
all share the one Host, each with its own Guest, as several lguest Launchers
did.  The first program has the terminal (its Guest's console is the
Launcher's: standard input and output); the others' standard input is
/dev/null.  The exit status is the first program's, or 128 + its signal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .build import BuildError, build_door, preload
from .door import MAX_ROOM, Door

PROG = "lguest native"
USAGE = f"{PROG} [--virtio] [--room=MB] -- PROGRAM [ARGS...] [-- PROGRAM [ARGS...]]..."


class CommandError(Exception):
    """A bad command line: one line, then the usage."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise CommandError(message)


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[list[str]]]:
    """The options, and each program's argv (split at ``--``)."""
    if "--" not in argv:
        raise CommandError("name the Launcher after --: " + USAGE)
    cut = argv.index("--")
    parser = _Parser(prog=PROG, usage=USAGE, add_help=False)
    parser.add_argument("--virtio", action="store_true",
                        help="the 2.6.25 /dev/lguest (guest_base, NOTIFY, restart)")
    parser.add_argument("--room", type=int, default=512, metavar="MB",
                        help="machine RAM for all the Launchers' Guests, in MiB")
    opts = parser.parse_args(argv[:cut])
    if not 1 <= opts.room <= MAX_ROOM >> 20:
        raise CommandError(f"--room must be 1 to {MAX_ROOM >> 20} (MiB)")
    programs: list[list[str]] = [[]]
    for word in argv[cut + 1:]:
        if word == "--":
            programs.append([])
        else:
            programs[-1].append(word)
    for prog in programs:
        if not prog:
            raise CommandError("an empty program after --")
        path = prog[0]
        found = shutil.which(path) if os.sep not in path else path
        if found is None or not os.path.isfile(found):
            raise CommandError(f"{path}: no such program")
        if not os.access(found, os.X_OK):
            raise CommandError(f"{path}: not executable")
    return opts, programs


def door_env(socket_path: str, folder: Path, virtio: bool,
             base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a native Launcher runs in (``folder``: build_door()'s)."""
    env = dict(os.environ if base is None else base)
    others = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = f"{preload(folder)} {others}".strip()
    env["LGUESTSIM_DOOR"] = socket_path
    env["LGUESTSIM_DOOR_VIRTIO"] = "1" if virtio else "0"
    return env


def run(opts: argparse.Namespace, programs: list[list[str]]) -> int:
    library = build_door()
    with tempfile.TemporaryDirectory(prefix="lguestsim-door-") as tmp:
        path = os.path.join(tmp, "lguest.sock")
        door = Door(path, room=opts.room << 20)
        env = door_env(path, library, opts.virtio)
        children = []
        try:
            for i, prog in enumerate(programs):
                stdin = None if i == 0 else subprocess.DEVNULL
                children.append(subprocess.Popen(prog, env=env, stdin=stdin))
            # ^C belongs to the Launcher (its terminal is raw, or it ends by it).
            old = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                door.serve(until=lambda: all(c.poll() is not None for c in children),
                           idle=0.1)
            finally:
                signal.signal(signal.SIGINT, old)
        finally:
            for c in children:
                if c.poll() is None:
                    c.kill()
                    c.wait()
            door.close()
    code = children[0].returncode
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    try:
        opts, programs = parse(argv)
        return run(opts, programs)
    except CommandError as e:
        print(f"{PROG}: {e}\nusage: {USAGE}", file=sys.stderr)
        return 2
    except (BuildError, OSError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
