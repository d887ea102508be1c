"""Rotates and double shifts: the shift family's less common members.

shl/shr/sar are generated inline with lazy flags (translate.py, flags.py).
These return (result, arithmetic flags) given the value, a non-zero masked
count, the operand size and the flags before the instruction; rotates change
only CF and OF and keep the rest.  Where the SDM leaves OF undefined (counts
above one) they give what P6-family hardware gives.
"""

from __future__ import annotations

CF, OF = 0x1, 0x800
_SZ = {8: 0xFF, 16: 0xFFFF, 32: 0xFFFFFFFF}


def _cf_of(prior: int, cf: int, of: int) -> int:
    return (prior & ~(CF | OF)) | (CF if cf else 0) | (OF if of else 0)


def ROL(a: int, count: int, size: int, prior: int) -> tuple[int, int]:  # noqa: N802
    c = count % size
    mask = _SZ[size]
    r = ((a << c) | (a >> (size - c))) & mask if c else a
    cf = r & 1
    return r, _cf_of(prior, cf, ((r >> (size - 1)) & 1) ^ cf)


def ROR(a: int, count: int, size: int, prior: int) -> tuple[int, int]:  # noqa: N802
    c = count % size
    mask = _SZ[size]
    r = ((a >> c) | (a << (size - c))) & mask if c else a
    msb = (r >> (size - 1)) & 1
    return r, _cf_of(prior, msb, msb ^ ((r >> (size - 2)) & 1))


def RCL(a: int, count: int, size: int, prior: int) -> tuple[int, int]:  # noqa: N802
    c = count % (size + 1)
    cf = prior & 1
    if c == 0:
        return a, _cf_of(prior, cf, ((a >> (size - 1)) & 1) ^ cf)
    x = (cf << size) | a
    x = ((x << c) | (x >> (size + 1 - c))) & ((1 << (size + 1)) - 1)
    r = x & _SZ[size]
    cf = x >> size
    return r, _cf_of(prior, cf, ((r >> (size - 1)) & 1) ^ cf)


def RCR(a: int, count: int, size: int, prior: int) -> tuple[int, int]:  # noqa: N802
    c = count % (size + 1)
    cf = prior & 1
    of = ((a >> (size - 1)) & 1) ^ cf
    if c == 0:
        return a, _cf_of(prior, cf, of)
    x = (cf << size) | a
    x = ((x >> c) | (x << (size + 1 - c))) & ((1 << (size + 1)) - 1)
    r = x & _SZ[size]
    r_msb = (r >> (size - 1)) & 1
    return r, _cf_of(prior, x >> size, r_msb ^ ((r >> (size - 2)) & 1))


def _szp(r: int, size: int) -> int:
    from .flags import PARITY
    return PARITY[r & 0xFF] | (0x40 if r == 0 else 0) | (0x80 if r >> (size - 1) else 0)


def SHLD(a: int, b: int, count: int, size: int, prior: int) -> tuple[int, int]:  # noqa: N802
    mask = _SZ[size]
    # Counts past the operand size (16-bit forms) are undefined; shift through b and a again.
    wide = (a << size) | b
    if size == 16:
        wide = (wide << 16) | a
        total = 48
    else:
        total = 2 * size
    r = (wide << count >> (total - size)) & mask
    cf = (wide << (count - 1) >> (total - 1)) & 1
    of = ((r ^ a) >> (size - 1)) & 1
    return r, _szp(r, size) | (CF if cf else 0) | (OF if of else 0)


def SHRD(a: int, b: int, count: int, size: int, prior: int) -> tuple[int, int]:  # noqa: N802
    mask = _SZ[size]
    wide = (b << size) | a
    if size == 16:
        wide = (a << 32) | wide
    r = (wide >> count) & mask
    cf = (wide >> (count - 1)) & 1
    of = ((r ^ a) >> (size - 1)) & 1
    return r, _szp(r, size) | (CF if cf else 0) | (OF if of else 0)
