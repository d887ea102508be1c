"""Build the door: door.c -> door-<hash>.so, an i386 library to preload.

The C source ships with the package; the library is built on first use with
``gcc -m32 -shared -fPIC`` into a cache directory (``LGUESTSIM_CACHE``, else
``$XDG_CACHE_HOME/lguestsim``, else ``~/.cache/lguestsim``), named by a hash
of the source and the command, so a changed door.c is rebuilt and an
unchanged one never is.  ``python -m lguestsim.native.build`` prints its path.
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
    """The door library's path, built now if this source has not been yet."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join(CFLAGS + LIBS).encode()).hexdigest()[:16]
    cache = cache_dir() if cache is None else cache
    out = cache / f"door-{key}.so"
    if out.exists():
        return out
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("the native door is built with gcc: install gcc and gcc-multilib "
                         "(apt-get install gcc gcc-multilib)")
    cache.mkdir(parents=True, exist_ok=True)
    # Built beside its final name and renamed, so two builds at once cannot
    # leave half a library behind.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    try:
        done = subprocess.run([gcc, *CFLAGS, "-o", tmp, str(SOURCE), *LIBS],
                              capture_output=True, text=True)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["(no message)"])[0]
            hint = (" (is gcc-multilib installed? -m32 needs it)"
                    if "-m32" in done.stderr or "bits/" in done.stderr
                    or "gnu/stubs" in done.stderr else "")
            raise BuildError(f"building the native door failed: {first}{hint}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


if __name__ == "__main__":
    try:
        print(build_door())
    except BuildError as e:
        sys.exit(f"lguestsim: {e}")
