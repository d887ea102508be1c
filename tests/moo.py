"""A reader of MOO files, the format of the SingleStepTests CPU test suites.

A MOO file (Machine Opcode Operation, by Daniel Balsom; format 1.1 covers the
80386) is a chain of chunks, each a four-character id, a little-endian uint32
payload length and the payload.  The file opens with a ``MOO `` header (format
version, test count, CPU id such as ``386E``), may carry a ``META`` chunk and a
file-wide register mask (``RMSK``/``RM32``: bits that are undefined for every
test, such as flags an instruction leaves undefined), then one ``TEST`` chunk
per test.  A test holds its name, its instruction bytes, the initial and final
states (``INIT``/``FINA``: registers in ``REGS`` or ``RG32``, a bitmask saying
which are present, and ``RAM `` as (address, byte) pairs), the bus cycles, an
optional ``EXCP`` (the exception the instruction raised) and a SHA-1 ``HASH``
that names the test in revocation lists.  Unknown chunks are skipped by their
length, as the format asks.  Files may be gzip-compressed (``*.MOO.gz``).

Only what a functional (not cycle-exact) test needs is kept: the bus cycles
and the prefetch queue are skipped.
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from pathlib import Path

#: Register order of an RG32/RM32 bitmask, from bit 0 up.
RG32_NAMES = ("cr0", "cr3", "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp",
              "cs", "ds", "es", "fs", "gs", "ss", "eip", "eflags", "dr6", "dr7")
#: Register order of a 16-bit REGS/RMSK bitmask.
REGS_NAMES = ("ax", "bx", "cx", "dx", "cs", "ss", "ds", "es", "sp", "bp", "si", "di",
              "ip", "flags")
#: A REGS name as the 32-bit register it is the low half of.
REGS_AS_32 = {"ax": "eax", "bx": "ebx", "cx": "ecx", "dx": "edx", "sp": "esp", "bp": "ebp",
              "si": "esi", "di": "edi", "ip": "eip", "flags": "eflags"}


class MooError(ValueError):
    """The file is not a well-formed MOO file."""


@dataclasses.dataclass
class State:
    """Registers (by RG32 name; only those present) and RAM bytes (address -> value)."""

    regs: dict[str, int]
    ram: dict[int, int]
    mask: dict[str, int]          # per-test masks of defined bits (RM32 in FINA), if any


@dataclasses.dataclass
class MooTest:
    index: int
    name: str
    code: bytes
    init: State
    final: State
    exception: tuple[int, int] | None   # (vector, address of the flags pushed)
    hash: str                           # hex SHA-1, as revocation lists spell it


@dataclasses.dataclass
class MooFile:
    version: tuple[int, int]
    cpu: str
    mask: dict[str, int]                # file-wide masks of defined bits
    tests: list[MooTest]


def _chunks(data: bytes | memoryview, where: str):
    """Yield (id, payload) for each chunk of ``data``."""
    off = 0
    while off < len(data):
        if off + 8 > len(data):
            raise MooError(f"{where}: truncated chunk header at offset {off}")
        cid = bytes(data[off:off + 4]).decode("ascii", "replace")
        (length,) = struct.unpack_from("<I", data, off + 4)
        end = off + 8 + length
        if end > len(data):
            raise MooError(f"{where}: chunk {cid!r} at offset {off} runs past the end "
                           f"({length} bytes, {len(data) - off - 8} left)")
        yield cid, data[off + 8:end]
        off = end


def _registers(cid: str, payload, where: str) -> dict[str, int]:
    if cid in ("RG32", "RM32"):
        fmt, names, width = "<I", RG32_NAMES, 4
    else:
        fmt, names, width = "<H", REGS_NAMES, 2
    (bits,) = struct.unpack_from(fmt, payload, 0)
    out: dict[str, int] = {}
    off = width
    for i, name in enumerate(names):
        if bits >> i & 1:
            if off + width > len(payload):
                raise MooError(f"{where}: {cid} is shorter than its bitmask says")
            (v,) = struct.unpack_from(fmt, payload, off)
            out[name if width == 4 else REGS_AS_32.get(name, name)] = v
            off += width
    if bits >> len(names):
        raise MooError(f"{where}: {cid} bitmask {bits:#x} names unknown registers")
    return out


def _state(payload, where: str) -> State:
    regs: dict[str, int] = {}
    ram: dict[int, int] = {}
    mask: dict[str, int] = {}
    for cid, p in _chunks(payload, where):
        if cid in ("REGS", "RG32"):
            regs.update(_registers(cid, p, where))
        elif cid in ("RMSK", "RM32"):
            mask.update(_registers(cid, p, where))
        elif cid == "RAM ":
            (count,) = struct.unpack_from("<I", p, 0)
            if 4 + 5 * count > len(p):
                raise MooError(f"{where}: RAM chunk holds fewer than {count} entries")
            for i in range(count):
                addr, value = struct.unpack_from("<IB", p, 4 + 5 * i)
                ram[addr] = value
    return State(regs, ram, mask)


def _test(payload, where: str) -> MooTest:
    (index,) = struct.unpack_from("<I", payload, 0)
    where = f"{where} test {index}"
    name, code, digest = "", b"", ""
    init = final = None
    exc = None
    for cid, p in _chunks(payload[4:], where):
        if cid == "NAME":
            (n,) = struct.unpack_from("<I", p, 0)
            name = bytes(p[4:4 + n]).decode("ascii", "replace")
        elif cid == "BYTS":
            (n,) = struct.unpack_from("<I", p, 0)
            code = bytes(p[4:4 + n])
        elif cid == "INIT":
            init = _state(p, where)
        elif cid == "FINA":
            final = _state(p, where)
        elif cid == "EXCP":
            exc = struct.unpack_from("<BI", p, 0)
        elif cid == "HASH":
            digest = bytes(p[:20]).hex()
    if init is None or final is None:
        raise MooError(f"{where}: no INIT or FINA state")
    return MooTest(index, name, code, init, final, exc, digest)


def parse(data: bytes, where: str = "<moo>") -> MooFile:
    """Parse the bytes of a MOO file (already decompressed)."""
    view = memoryview(data)
    chunks = _chunks(view, where)
    first = next(chunks, None)
    if first is None or first[0] != "MOO " or len(first[1]) < 12:
        raise MooError(f"{where}: not a MOO file (no 'MOO ' header chunk)")
    head = first[1]
    major, minor = head[0], head[1]
    (count,) = struct.unpack_from("<I", head, 4)
    cpu = bytes(head[8:12]).decode("ascii", "replace")
    mask: dict[str, int] = {}
    tests = []
    for cid, p in chunks:
        if cid in ("RMSK", "RM32"):
            mask = _registers(cid, p, where)
        elif cid == "TEST":
            tests.append(_test(p, where))
    if len(tests) != count:
        raise MooError(f"{where}: the header says {count} tests, the file holds {len(tests)}")
    return MooFile((major, minor), cpu, mask, tests)


def load(path: Path) -> MooFile:
    """Read a ``.MOO`` file, or a ``.MOO.gz`` one."""
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        raw = gzip.decompress(raw)
    return parse(raw, path.name)


def revoked(directory: Path) -> set[str]:
    """The hashes of ``revocation_list.txt`` (lower-case hex), if the file is there."""
    f = directory / "revocation_list.txt"
    if not f.exists():
        return set()
    return {ln.strip().lower() for ln in f.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")}
