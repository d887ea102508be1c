"""Build the door: door.c -> an i386 library to preload.

The C source ships with the package; the library is built on first use with
``gcc -m32 -shared -fPIC`` into a cache directory (``LGUESTSIM_CACHE``, else
``$XDG_CACHE_HOME/lguestsim``, else ``~/.cache/lguestsim``), in a folder
named by a hash of the source and the command, so a changed door.c is
rebuilt and an unchanged one never is.  The folder holds ``i686/door.so``
(and ``i386/``, the same) and a 64-bit ``x86_64/door.so`` that only refuses
/dev/lguest, so that LD_PRELOAD can name ``<folder>/$PLATFORM/door.so``: the
dynamic linker picks the one that fits each program, and a 64-bit program
started under the door (a shell, a tool) loads quietly.
``python -m lguestsim.native.build`` prints what LD_PRELOAD gets.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "door.c"
CFLAGS = ("-m32", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror")
LIBS = ("-ldl",)


class BuildError(RuntimeError):
    """gcc (with gcc-multilib, for -m32) is missing or the build failed."""


def cache_dir() -> Path:
    if os.environ.get("LGUESTSIM_CACHE"):
        return Path(os.environ["LGUESTSIM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "lguestsim"


def build_door(cache: Path | None = None) -> Path:
    """The door's folder (holding ``<platform>/door.so``), built now if this
    source has not been yet."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join(CFLAGS + LIBS).encode()).hexdigest()[:16]
    cache = cache_dir() if cache is None else cache
    out = cache / f"door-{key}"
    if (out / "i686" / "door.so").exists():
        return out
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("the native door is built with gcc: install gcc and gcc-multilib "
                         "(apt-get install gcc gcc-multilib)")
    cache.mkdir(parents=True, exist_ok=True)
    # Built in a folder of its own and renamed, so that two builds at once
    # cannot leave half a library behind.
    tmp = Path(tempfile.mkdtemp(prefix="door-", dir=cache))
    try:
        for platform, bits in (("i686", "-m32"), ("x86_64", "-m64")):
            (tmp / platform).mkdir()
            flags = tuple(bits if f == "-m32" else f for f in CFLAGS)
            done = subprocess.run([gcc, *flags, "-o", str(tmp / platform / "door.so"),
                                   str(SOURCE), *LIBS], capture_output=True, text=True)
            if done.returncode != 0 and bits == "-m32":
                first = (done.stderr.strip().splitlines() or ["(no message)"])[0]
                raise BuildError(f"building the native door failed: {first} (gcc -m32 "
                                 "needs gcc-multilib: apt-get install gcc-multilib)")
        (tmp / "i386").symlink_to("i686")
        try:
            tmp.rename(out)
        except OSError:
            if not (out / "i686" / "door.so").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def preload(folder: Path) -> str:
    """What LD_PRELOAD names: the library that fits each program."""
    return str(folder / "$PLATFORM" / "door.so")


if __name__ == "__main__":
    try:
        print(preload(build_door()))
    except BuildError as e:
        sys.exit(f"lguestsim: {e}")
