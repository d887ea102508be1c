"""The code cache: translated blocks' compiled code kept on disk across processes.

It sits after translation and before exec: translate.py and regions.py write a
block as Python source, `blocks.compiled()` asks this module for its code
object, and the block's function is made from that.  Python keeps a module's
bytecode in `__pycache__` so that the next process need not compile it; this
does the same for generated blocks, since `compile()` is about a third of a
boot.  A fresh process (a restarted notebook kernel, `make demo`, a replay,
each test process) reads the code of the blocks an earlier one compiled.
Where there is no lasting disk (Pyodide in the live book), or the directory
cannot be made or written, it quietly compiles as before and keeps the code in
memory only: nothing else depends on it.  The folder is trusted as
`__pycache__` is (it is made private to its user): a checksum catches damage,
not a writer who means harm, so do not point it at a folder others can write.

Where (the first compile decides; `use()` points it elsewhere):
``$LGUESTSIM_CODE_CACHE`` if set (``off`` or empty: no disk at all), else
``$LGUESTSIM_CACHE/code`` (the root lguestsim's other caches use), else
``$XDG_CACHE_HOME/lguestsim/code``, else ``~/.cache/lguestsim/code``; inside
it, one folder per interpreter (cache tag, bytecode magic, this format, -O).
"""

from __future__ import annotations

import atexit
import importlib.util
import marshal
import os
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

try:    # hashlib's blake2b itself, without hashlib's loading of OpenSSL (3 ms a start)
    from _blake2 import blake2b
except ImportError:
    from hashlib import blake2b

FORMAT = 1                  # of the pack files below; a new layout takes a new number
MAX_BYTES = 32 << 20        # a folder's packs, merged, keep at most this (~16,000 blocks)
MAX_PACKS = 16              # more packs than this are merged into one when a process flushes
FLUSH_EVERY = 2048          # new blocks a process keeps before writing them out
STALE_TMP_S = 3600          # a temporary file this old was left by a process that died

# A pack: a header, then an index of (key, offset, length, crc32) entries,
# then the marshalled code objects the index points at.
HEADER = struct.Struct("<8sI4sII")      # magic, FORMAT, Python's magic, -O level, entries
ENTRY = struct.Struct("<16sIII")
PACK_MAGIC = b"lgsimcc\n"
PY_MAGIC = importlib.util.MAGIC_NUMBER


@dataclass
class Stats:
    """What the cache has done in this process."""

    compiles: int = 0       # sources compiled: in no pack (nor, before, in memory)
    disk_hits: int = 0      # code objects read from a pack instead
    rejected: int = 0       # packs or entries found damaged, truncated or foreign: ignored
    packs_written: int = 0
    merges: int = 0


stats = Stats()

_UNSET = object()
_dir: Path | None | object = _UNSET    # the folder of packs; None: memory only
_writable = True
_index: dict[bytes, tuple[int, int, int, int]] | None = None   # key -> (fd, offset, length, crc)
_fds: list[int] = []
_pending: dict[bytes, CodeType] = {}    # compiled here, not yet in a pack
_used: set[bytes] = set()               # keys read from packs: kept first when merging
_damaged = False                        # a bad pack or entry was seen: merge it away


def folder_name() -> str | None:
    """This interpreter's folder inside the cache: its code is marshal's to read."""
    tag = sys.implementation.cache_tag
    if tag is None:
        return None
    opt = sys.flags.optimize
    return f"{tag}-{PY_MAGIC.hex()}-f{FORMAT}" + (f"-O{opt}" if opt else "")


def default_root() -> Path | None:
    """The cache's root as the environment names it; None when it is turned off."""
    if sys.platform == "emscripten":        # Pyodide: no disk that outlives the page
        return None
    env = os.environ.get("LGUESTSIM_CODE_CACHE")
    if env is not None:
        return None if env.strip() in ("", "off") else Path(env)
    if os.environ.get("LGUESTSIM_CACHE"):
        return Path(os.environ["LGUESTSIM_CACHE"]) / "code"
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except RuntimeError:                    # no home directory to be found
        return None
    return Path(base) / "lguestsim" / "code"


def use(root: str | os.PathLike | None) -> Path | None:
    """Keep code under ``root`` from now on (None: in memory only); returns the folder.

    What this process compiled is written to the old place first.
    """
    global _dir, _writable, _damaged
    flush()
    _close_packs()
    _writable, _damaged = True, False
    _used.clear()
    _dir = None
    name = folder_name()
    if root is not None and name is not None:
        folder = Path(root) / name
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _dir = folder
        except OSError:
            pass
    return _dir


def _close_packs() -> None:
    """Forget the packs' index (the next lookup reads it again) and close them."""
    global _index
    _index = None
    for fd in _fds:
        os.close(fd)
    _fds.clear()


def folder() -> Path | None:
    """The folder of packs in use (resolved from the environment at first use)."""
    if _dir is _UNSET:
        use(default_root())
    return _dir


#: P:060 Compiled code outlives the process.  A block's source is
# translated afresh in every process, but the code object `compile()` makes
# of it is the same each time, and compiling is a third of a boot.  So,
# as Python keeps a module's bytecode in `__pycache__`, the code of each
# block goes to disk, `marshal`led, under a hash of its source: the next
# process finds it there and compiles nothing.  A process writes its new
# blocks as one pack file (a header, an index, the code objects), to a
# temporary name first and then renamed into place, so another process sees
# a whole pack or none; when packs pile up, a process merges them into one,
# its own blocks first, up to a bound.  Nothing read back is trusted: a pack
# of another format or Python, an index pointing past the end, a checksum
# that fails, or bytes that do not unmarshal into code are set aside, the
# source is compiled as if nothing were there, and the next merge drops them.
# The folder is named by the interpreter's bytecode magic, because marshal's
# format and the bytecode change from one Python to the next.
def code(src: str, name: str) -> CodeType:
    """The code object of a block's source: read from the cache, or compiled (and kept)."""
    index = _index if _index is not None else _load_index()
    if _dir is None:                        # no disk: compile, as without the cache
        stats.compiles += 1
        return compile(src, name, "exec", dont_inherit=True)
    key = blake2b(src.encode(), digest_size=16).digest()
    entry = index.get(key)
    if entry is not None:
        found = _read(key, entry)
        if found is not None:
            stats.disk_hits += 1
            _used.add(key)
            return found
    stats.compiles += 1
    compiled = compile(src, name, "exec", dont_inherit=True)
    if _writable:
        _pending[key] = compiled
        if len(_pending) >= FLUSH_EVERY:
            flush()
    return compiled


def _load_index() -> dict:
    global _index
    where = folder()            # (resolving it resets the index)
    _index = {}
    if where is not None:
        try:
            names = sorted(n for n in os.listdir(where) if n.endswith(".pack"))
        except OSError:
            names = []
        for n in names[-2 * MAX_PACKS:]:    # the newest, if merging has fallen behind
            _open_pack(where / n)
    return _index


def _reject(path: Path | None = None) -> None:
    global _damaged
    stats.rejected += 1
    _damaged = True
    if path is not None:
        try:
            path.unlink()
        except OSError:
            pass


def _parse(head: bytes, size: int) -> int | None:
    """The entry count of a pack whose header is ``head``, or None if it is not ours."""
    if len(head) < HEADER.size:
        return None
    magic, fmt, py, opt, count = HEADER.unpack_from(head)
    if (magic, fmt, py, opt) != (PACK_MAGIC, FORMAT, PY_MAGIC, sys.flags.optimize):
        return None
    return count if HEADER.size + count * ENTRY.size <= size else None


def _open_pack(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:                         # merged away since the listing
        return
    try:
        size = os.fstat(fd).st_size
        count = _parse(os.pread(fd, HEADER.size, 0), size)
        table = b"" if count is None else os.pread(fd, count * ENTRY.size, HEADER.size)
    except OSError:
        count = None
    if count is None or len(table) != count * ENTRY.size:
        os.close(fd)
        _reject(path)
        return
    _fds.append(fd)
    for key, offset, length, crc in ENTRY.iter_unpack(table):
        if offset + length <= size:
            _index[key] = (fd, offset, length, crc)
        else:
            _reject()


def _read(key: bytes, entry: tuple[int, int, int, int]) -> CodeType | None:
    fd, offset, length, crc = entry
    try:
        data = os.pread(fd, length, offset)
        if len(data) == length and zlib.crc32(data) == crc:
            found = marshal.loads(data)
            if isinstance(found, CodeType):
                return found
    except Exception:   # whatever a damaged entry makes marshal raise
        pass
    _index.pop(key, None)
    _reject()
    return None


def _pack(entries: list[tuple[bytes, bytes]]) -> bytes:
    offset = HEADER.size + len(entries) * ENTRY.size
    table = []
    for key, data in entries:
        table.append(ENTRY.pack(key, offset, len(data), zlib.crc32(data)))
        offset += len(data)
    head = HEADER.pack(PACK_MAGIC, FORMAT, PY_MAGIC, sys.flags.optimize, len(entries))
    return b"".join([head, *table, *(data for _, data in entries)])


def _write(where: Path, entries: list[tuple[bytes, bytes]]) -> Path:
    """A new pack, whole or not at all: written under a temporary name, then renamed."""
    token = f"{time.time_ns():016x}-{os.getpid()}-{os.urandom(4).hex()}"
    tmp = where / f".{token}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(_pack(entries))
        path = where / f"{token}.pack"
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    stats.packs_written += 1
    return path


def flush() -> None:
    """Write the code compiled here since the last flush as a pack (at exit, too)."""
    global _pending, _writable
    if not _pending:
        return
    todo, _pending = _pending, {}
    where = _dir
    if where is None or not _writable or where is _UNSET:
        return
    entries = [(key, marshal.dumps(c)) for key, c in todo.items()]
    try:
        path = _write(where, entries)
        packs = _packs(where)
        if _damaged or len(packs) > MAX_PACKS or sum(packs.values()) > MAX_BYTES:
            merge(first={key for key, _ in entries} | _used)
            _close_packs()              # the merged pack replaces them all
        elif _index is not None:
            _open_pack(path)
    except OSError:                         # read-only, full, gone: memory only from now
        _writable = False


def _entries(path: Path) -> list[tuple[bytes, bytes]] | None:
    """A pack's entries whose checksums hold, or None if it is gone or not a pack."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    count = _parse(data, len(data))
    if count is None:
        _reject(path)
        return []
    good = []
    for key, offset, length, crc in ENTRY.iter_unpack(data[HEADER.size:][:count * ENTRY.size]):
        payload = data[offset:offset + length]
        if len(payload) == length and zlib.crc32(payload) == crc:
            good.append((key, payload))
        else:
            stats.rejected += 1
    return good


def merge(first: set[bytes] = frozenset()) -> None:
    """Merge the folder's packs into one of at most MAX_BYTES.

    The blocks named in ``first`` (this process's own) go in first, then the
    others, newest pack first.  Past MAX_BYTES, only three quarters of it are
    kept and the rest dropped, so that a folder at its bound is not merged
    again at every flush.  Only the packs
    read here are removed, so a pack another process writes meanwhile stays;
    two processes merging at once leave two packs with the same code, merged
    next time.
    """
    global _damaged
    where = folder()
    if where is None:
        return
    now = time.time()
    merged, keep, total = [], {}, 0
    read = []
    for name in sorted(os.listdir(where), reverse=True):
        path = where / name
        if name.endswith(".tmp"):
            try:
                if now - path.stat().st_mtime > STALE_TMP_S:
                    path.unlink()
            except OSError:
                pass
        elif name.endswith(".pack"):
            entries = _entries(path)
            if entries is not None:
                read.append(path)
                merged.extend(entries)
    found = {key: len(payload) for key, payload in merged}
    bound = MAX_BYTES if sum(found.values()) <= MAX_BYTES else MAX_BYTES * 3 // 4
    for want_first in (True, False):
        for key, payload in merged:
            if ((key in first) == want_first and key not in keep
                    and total + len(payload) <= bound):
                keep[key] = payload
                total += len(payload)
    if keep:
        _write(where, list(keep.items()))
    for path in read:
        path.unlink(missing_ok=True)
    stats.merges += 1
    _damaged = False


def _packs(where: Path) -> dict[Path, int]:
    sizes = {}
    for name in os.listdir(where):
        if name.endswith(".pack"):
            try:
                sizes[where / name] = (where / name).stat().st_size
            except OSError:                 # merged away meanwhile
                pass
    return sizes


def size() -> int:
    """The bytes of the packs in the folder in use (0 with none)."""
    where = folder()
    return 0 if where is None else sum(_packs(where).values())


def _forget_pending() -> None:
    # A forked child's pending code is its parent's to write.
    _pending.clear()


atexit.register(flush)
if hasattr(os, "register_at_fork"):         # not on every platform Python runs on
    os.register_at_fork(after_in_child=_forget_pending)
