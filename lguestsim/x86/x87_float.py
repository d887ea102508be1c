"""The 387's 80-bit arithmetic: extended real values as Python integers.

A register of the 387 holds an extended real: a sign, a 15-bit biased
exponent and a 64-bit significand whose top bit (the integer bit) is
explicit.  Here such a value is one Python int of 80 bits, laid out as in
memory (sign << 79 | exponent << 64 | significand), and every operation
works on the exact value it stands for (significand times a power of two,
as integers), then rounds once, the way the 387 does: to the precision the
control word's PC field asks for (24, 53 or 64 bits), in the direction its RC
field asks for, inside the exponent range of the destination.  The exception
flags an operation raises, and whether it rounded up (the 387 reports that in
C1), are gathered in a `Rounding` context; x87.py decides what the masks
make of them.  This module knows nothing of the stack or of memory: x87.py is
the FPU, this file is its arithmetic unit, x87_transcendental.py its
function unit.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from math import isqrt

M64 = (1 << 64) - 1
SIGN = 1 << 79
JBIT = 1 << 63           # the explicit integer bit
QBIT = 1 << 62           # the quiet bit of a NaN
BIAS = 16383
EXP_MAX = 0x7FFF
EMIN = 1 - BIAS          # the exponent of the smallest normal extended value
EMAX = BIAS
INDEFINITE = SIGN | (EXP_MAX << 64) | JBIT | QBIT   # the real indefinite, a QNaN
INF = (EXP_MAX << 64) | JBIT
ONE = (BIAS << 64) | JBIT

# Exception flags, in the status word's order; SF (stack fault) rides with IE.
IE, DE, ZE, OE, UE, PE, SF = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
# The 387's wrap-around of the exponent when an overflow or underflow
# exception is unmasked: the handler gets the result scaled into range.
BIAS_ADJUST = 24576

# Value classes, as FXAM sees them.
ZERO, NORMAL, DENORMAL, INFINITY, QNAN, SNAN, UNSUPPORTED = range(7)

# Rounding control (the control word's RC field) and precision control (PC).
NEAREST, DOWN, UP, CHOP = range(4)
# PC = 01 is reserved: Intel does not say what it does; here (as in QEMU) it
# leaves results at the full 64 bits.
PC_BITS = (24, 64, 53, 64)

#: (precision, smallest normal exponent, largest exponent, exponent bits)
SINGLE = (24, -126, 127, 8)
DOUBLE = (53, -1022, 1023, 11)


@dataclass
class Rounding:
    """The context of one operation: RC, PC and masks in, flags and C1 out."""
    rc: int = NEAREST
    bits: int = 64       # significand precision of the destination
    masks: int = 0x3F    # the control word's exception masks
    flags: int = 0       # exceptions raised
    up: bool = False     # the result was rounded up in magnitude (C1)


def rounding(cw: int, pc: bool = False) -> Rounding:
    """A context for control word ``cw``; ``pc`` applies its precision field."""
    return Rounding(rc=(cw >> 10) & 3, bits=PC_BITS[(cw >> 8) & 3] if pc else 64,
                    masks=cw & 0x3F)


def pack(sign: int, exp: int, mant: int) -> int:
    return (sign << 79) | (exp << 64) | mant


def kind(x: int) -> int:
    """The class of an extended value (pseudo-denormals count as denormals,
    unnormals, pseudo-infinities and pseudo-NaNs as unsupported)."""
    e = (x >> 64) & EXP_MAX
    m = x & M64
    if e == 0:
        return ZERO if m == 0 else DENORMAL
    if not m & JBIT:
        return UNSUPPORTED
    if e == EXP_MAX:
        if m == JBIT:
            return INFINITY
        return QNAN if m & QBIT else SNAN
    return NORMAL


def is_nan(k: int) -> bool:
    return k in (QNAN, SNAN)


def exact(x: int) -> tuple[int, int, int]:
    """(sign, significand, exponent): a finite value is significand * 2**exponent."""
    e = (x >> 64) & EXP_MAX
    return x >> 79, x & M64, (e or 1) - BIAS - 63


#: P:047 Every arithmetic instruction of the 387 ends in the same step:
# the exact result is rounded once.  Here the exact result is a sign, an
# integer significand and a power of two; `round_pack` finds where the last
# kept bit falls (the precision control's 24, 53 or 64 bits below the
# leading one, but never below the smallest denormal's last bit), rounds
# there as RC says (to nearest even, down, up or toward zero), and notes
# whether it rounded up, which the 387 reports in C1.  A result too large
# becomes an infinity or the largest finite value, again as RC says, with OE;
# one too small becomes a denormal or zero, with UE if that lost bits.  With
# those exceptions unmasked the 387 hands the handler the result with its
# exponent wrapped by 24576 instead, and so does this code.
def round_pack(s: int, sig: int, e: int, c: Rounding, fmt: tuple | None = None) -> int:
    """Round the exact value (-1)**s * sig * 2**e to the destination and encode it.

    ``fmt`` is SINGLE or DOUBLE for a memory format (returns that format's
    bits), None for an extended register (precision from ``c.bits``).  The
    significand may carry a sticky bit of its own below the rounding point.
    """
    if fmt is None:
        p, emin, emax, ebits = c.bits, EMIN, EMAX, 15
    else:
        p, emin, emax, ebits = fmt
    if sig == 0:
        return _encode(s, 0, 0, p, emin, ebits, fmt)
    msb = sig.bit_length() - 1 + e
    tiny = msb < emin
    wrap_under = tiny and fmt is None and not c.masks & UE
    lsb = (msb if wrap_under else max(msb, emin)) - (p - 1)
    q, inexact = round_int(s, sig, lsb - e, c)
    if q >> p:
        q >>= 1
        lsb += 1
    top = q.bit_length() - 1 + lsb
    if tiny and (inexact or not c.masks & UE):
        c.flags |= UE
    if top > emax:
        c.flags |= OE
        if fmt is None and not c.masks & OE:
            # unmasked: the 387 delivers the result with its exponent wrapped
            c.flags |= PE if inexact else 0
            return pack(s, top - BIAS_ADJUST + BIAS, q << (64 - p))
        c.flags |= PE
        to_inf = c.rc == NEAREST or (c.rc == UP and not s) or (c.rc == DOWN and s)
        c.up = to_inf
        if to_inf:
            return _encode(s, -1, 0, p, emin, ebits, fmt)
        return _encode(s, emax, (1 << p) - 1, p, emin, ebits, fmt)
    if inexact:
        c.flags |= PE
    if wrap_under:
        return pack(s, top + BIAS_ADJUST + BIAS, q << (64 - p))
    if q >> (p - 1):
        return _encode(s, top, q, p, emin, ebits, fmt)
    return _encode(s, None, q, p, emin, ebits, fmt)


def round_int(s: int, sig: int, shift: int, c: Rounding) -> tuple[int, bool]:
    """sig >> shift (of sign s) rounded per RC; sets c.up.  Returns (quotient,
    inexact)."""
    c.up = False
    if shift <= 0:
        return sig << -shift, False
    q = sig >> shift
    rem = sig - (q << shift)
    if not rem:
        return q, False
    half = 1 << (shift - 1)
    rc = c.rc
    if rc == NEAREST:
        up = rem > half or (rem == half and q & 1)
    elif rc == CHOP:
        up = False
    else:
        up = (rc == UP) != bool(s)
    if up:
        q += 1
        c.up = True
    return q, True


def _encode(s: int, top: int | None, q: int, p: int, emin: int, ebits: int,
            fmt: tuple | None) -> int:
    """Encode a rounded value: ``top`` is the exponent of its leading bit (None
    for a denormal, -1 with q=0 for infinity, and q=0 alone for zero)."""
    emask = (1 << ebits) - 1
    bias = emask >> 1
    if fmt is None:
        if top == -1 and q == 0:
            return pack(s, EXP_MAX, JBIT)
        if q == 0:
            return pack(s, 0, 0)
        return pack(s, 0 if top is None else top + BIAS, q << (64 - p))
    width = 1 + ebits + p - 1
    frac_mask = (1 << (p - 1)) - 1
    if top == -1 and q == 0:
        field = emask
    elif q == 0 or top is None:
        field = 0
    else:
        field = top + bias
    return (s << (width - 1)) | (field << (p - 1)) | (q & frac_mask)


# ------------------------------------------------------------------ NaNs

def quiet(x: int) -> int:
    return x | QBIT


def propagate(a: int, b: int, c: Rounding) -> int:
    """The NaN an operation on ``a`` and ``b`` returns (at least one is a NaN):
    an SNaN raises IE and is quietened; of two NaNs of the same kind the one
    with the larger significand wins (on a tie, the positive one); a QNaN
    beats an SNaN."""
    ka, kb = kind(a), kind(b)
    if SNAN in (ka, kb):
        c.flags |= IE
    if not is_nan(kb):
        return quiet(a)
    if not is_nan(ka):
        return quiet(b)
    if ka != kb:
        return quiet(a if ka == QNAN else b)
    ma, mb = a & M64, b & M64
    if ma != mb:
        return quiet(a if ma > mb else b)
    return quiet(a if not a >> 79 else b)


def operands(c: Rounding, *xs: int) -> int | None:
    """The common checks of an arithmetic operation: unsupported formats are
    invalid (the indefinite), NaNs propagate, denormals raise DE.  Returns the
    result when the checks decide it, else None."""
    ks = [kind(x) for x in xs]
    if UNSUPPORTED in ks:
        c.flags |= IE
        return INDEFINITE
    nans = [x for x, k in zip(xs, ks, strict=True) if is_nan(k)]
    if nans:
        if len(xs) == 1:
            if ks[0] == SNAN:
                c.flags |= IE
            return quiet(xs[0])
        return propagate(xs[0], xs[1], c)
    if DENORMAL in ks:
        c.flags |= DE
    return None


def invalid(c: Rounding) -> int:
    c.flags |= IE
    return INDEFINITE


# ------------------------------------------------------------ arithmetic

def add(a: int, b: int, c: Rounding) -> int:
    """a + b (subtraction is addition of the operand with its sign flipped)."""
    r = operands(c, a, b)
    if r is not None:
        return r
    ka, kb = kind(a), kind(b)
    if ka == INFINITY or kb == INFINITY:
        if ka == kb and (a ^ b) >> 79:
            return invalid(c)
        return a if ka == INFINITY else b
    sa, ma, ea = exact(a)
    sb, mb, eb = exact(b)
    e = min(ea, eb)
    va = (ma << (ea - e)) * (-1 if sa else 1)
    vb = (mb << (eb - e)) * (-1 if sb else 1)
    v = va + vb
    if v == 0:
        if ka == ZERO and kb == ZERO and sa == sb:
            return pack(sa, 0, 0)
        return pack(1 if c.rc == DOWN else 0, 0, 0)
    return round_pack(1 if v < 0 else 0, abs(v), e, c)


def neg(x: int) -> int:
    return x ^ SIGN


def sub(a: int, b: int, c: Rounding) -> int:
    if is_nan(kind(b)) or kind(b) == UNSUPPORTED:
        return add(a, b, c)   # a NaN keeps its sign when propagated
    return add(a, neg(b), c)


def mul(a: int, b: int, c: Rounding) -> int:
    r = operands(c, a, b)
    if r is not None:
        return r
    ka, kb = kind(a), kind(b)
    s = (a ^ b) >> 79
    if ka == INFINITY or kb == INFINITY:
        if ZERO in (ka, kb):
            return invalid(c)
        return pack(s, EXP_MAX, JBIT)
    _, ma, ea = exact(a)
    _, mb, eb = exact(b)
    return round_pack(s, ma * mb, ea + eb, c)


def div(a: int, b: int, c: Rounding) -> int:
    r = operands(c, a, b)
    if r is not None:
        return r
    ka, kb = kind(a), kind(b)
    s = (a ^ b) >> 79
    if ka == INFINITY:
        return invalid(c) if kb == INFINITY else pack(s, EXP_MAX, JBIT)
    if kb == INFINITY:
        return pack(s, 0, 0)
    if kb == ZERO:
        if ka == ZERO:
            return invalid(c)
        c.flags |= ZE
        return pack(s, EXP_MAX, JBIT)
    if ka == ZERO:
        return pack(s, 0, 0)
    _, ma, ea = exact(a)
    _, mb, eb = exact(b)
    k = max(0, mb.bit_length() - ma.bit_length()) + c.bits + 3
    q, rem = divmod(ma << k, mb)
    return round_pack(s, (q << 1) | (rem != 0), ea - eb - k - 1, c)


def sqrt(x: int, c: Rounding) -> int:
    r = operands(c, x)
    if r is not None:
        return r
    k = kind(x)
    if k == ZERO:
        return x
    if x >> 79:
        return invalid(c)
    if k == INFINITY:
        return x
    _, m, e = exact(x)
    shift = max(0, 2 * c.bits + 4 - m.bit_length())
    shift += (e - shift) & 1
    m <<= shift
    e -= shift
    root = isqrt(m)
    return round_pack(0, (root << 1) | (root * root != m), e // 2 - 1, c)


def compare(a: int, b: int, c: Rounding, quiet_nans: bool) -> int:
    """-1, 0, 1 for a < b, a == b, a > b, or 2 for unordered.  Any NaN is
    invalid for FCOM; only an SNaN for FUCOM (``quiet_nans``)."""
    ka, kb = kind(a), kind(b)
    if UNSUPPORTED in (ka, kb):
        c.flags |= IE
        return 2
    if is_nan(ka) or is_nan(kb):
        if not quiet_nans or SNAN in (ka, kb):
            c.flags |= IE
        return 2
    if DENORMAL in (ka, kb):
        c.flags |= DE
    va, vb = _ordered(a, ka), _ordered(b, kb)
    return (va > vb) - (va < vb)


def _ordered(x: int, k: int) -> tuple:
    """A key that orders values as the reals do (both zeros equal)."""
    if k == ZERO:
        return (0, 0)
    if k == INFINITY:
        return (-2, 0) if x >> 79 else (2, 0)
    s, m, e = exact(x)
    top = m.bit_length() - 1 + e
    # the significand, scaled to a common 64-bit width, breaks ties in exponent
    key = (top, m << (64 - m.bit_length()))
    return (-1, tuple(-v for v in key)) if s else (1, key)


# ----------------------------------------------------------- conversions

def from_int(v: int) -> int:
    """An integer as an extended real (always exact: at most 64 bits)."""
    if v == 0:
        return 0
    s = 1 if v < 0 else 0
    m = abs(v)
    n = m.bit_length()
    return pack(s, n - 1 + BIAS, m << (64 - n))


def to_int(x: int, c: Rounding, bits: int) -> int | None:
    """ST0 rounded per RC to a signed integer of ``bits`` bits; None if it
    does not fit (or is a NaN, an infinity, unsupported): invalid."""
    k = kind(x)
    if k in (QNAN, SNAN, INFINITY, UNSUPPORTED):
        c.flags |= IE
        return None
    if k == ZERO:
        return 0
    s, m, e = exact(x)                # (a denormal source raises no DE here)
    q, inexact = round_int(s, m, -e, c)
    v = -q if s else q
    if not -(1 << (bits - 1)) <= v < (1 << (bits - 1)):
        c.flags |= IE
        c.up = False
        return None
    if inexact:
        c.flags |= PE
    return v


def round_to_int(x: int, c: Rounding) -> int:
    """FRNDINT: round to an integral value per RC."""
    r = operands(c, x)
    if r is not None:
        return r
    k = kind(x)
    if k in (ZERO, INFINITY):
        return x
    s, m, e = exact(x)
    if e >= 0:
        return x
    q, inexact = round_int(s, m, -e, c)
    if inexact:
        c.flags |= PE
    if q == 0:
        return pack(s, 0, 0)
    return from_int(q) | (s << 79)


def from_memory(bits: int, fmt: tuple, c: Rounding, keep_snan: bool = False) -> int:
    """A single or double real from memory, widened (exact; a denormal raises
    DE).  FLD quietens an SNaN with IE; an arithmetic operand stays an SNaN
    (``keep_snan``) so that the NaN rules see what it was."""
    p, emin, _, ebits = fmt
    width = ebits + p
    s = bits >> (width - 1)
    field = (bits >> (p - 1)) & ((1 << ebits) - 1)
    frac = bits & ((1 << (p - 1)) - 1)
    if field == (1 << ebits) - 1:
        if frac == 0:
            return pack(s, EXP_MAX, JBIT)
        if not frac >> (p - 2):
            if keep_snan:
                return pack(s, EXP_MAX, JBIT | (frac << (64 - p)))
            c.flags |= IE
        return pack(s, EXP_MAX, JBIT | QBIT | (frac << (64 - p)))
    if field == 0:
        if frac == 0:
            return pack(s, 0, 0)
        c.flags |= DE
        return round_pack(s, frac, emin - (p - 1), Rounding())
    return pack(s, field - ((1 << (ebits - 1)) - 1) + BIAS, (frac | (1 << (p - 1))) << (64 - p))


def to_memory(x: int, fmt: tuple, c: Rounding) -> int:
    """An extended value narrowed to single or double: rounded per RC (not PC),
    NaNs keep the top of their payload, unsupported formats are invalid."""
    p, _, _, ebits = fmt
    width = ebits + p
    emask = (1 << ebits) - 1
    k = kind(x)
    s = x >> 79
    if k == UNSUPPORTED:
        c.flags |= IE
        x, k, s = INDEFINITE, QNAN, 1
    if k in (QNAN, SNAN):
        if k == SNAN:
            c.flags |= IE
        frac = ((x & M64) >> (64 - p)) | (1 << (p - 2))
        return (s << (width - 1)) | (emask << (p - 1)) | (frac & ((1 << (p - 1)) - 1))
    if k == INFINITY:
        return (s << (width - 1)) | (emask << (p - 1))
    if k == ZERO:
        return s << (width - 1)
    _, m, e = exact(x)
    return round_pack(s, m, e, c, fmt)


def scale(a: int, b: int, c: Rounding) -> int:
    """FSCALE: ST0 * 2**trunc(ST1)."""
    r = operands(c, a, b)
    if r is not None:
        return r
    ka, kb = kind(a), kind(b)
    if kb == INFINITY:
        if b >> 79:
            return invalid(c) if ka == INFINITY else (a if ka == INFINITY else pack(a >> 79, 0, 0))
        return invalid(c) if ka == ZERO else pack(a >> 79, EXP_MAX, JBIT)
    if ka in (ZERO, INFINITY):
        return a
    sb, mb, eb = exact(b)
    n = mb >> -eb if eb < 0 else min(mb << eb, 1 << 20)
    n = min(n, 1 << 20)
    s, m, e = exact(a)
    return round_pack(s, m, e + (-n if sb else n), c)


def xtract(x: int, c: Rounding) -> tuple[int, int]:
    """FXTRACT: (exponent, significand) of ST0, both as extended reals."""
    r = operands(c, x)
    if r is not None:
        return r, r
    k = kind(x)
    if k == ZERO:
        c.flags |= ZE
        return pack(1, EXP_MAX, JBIT), x
    if k == INFINITY:
        return INF, x
    s, m, e = exact(x)
    top = m.bit_length() - 1 + e
    return from_int(top), pack(s, BIAS, m << (64 - m.bit_length()))


def remainder(a: int, b: int, c: Rounding, nearest: bool) -> tuple[int, int | None]:
    """FPREM (truncating quotient) and FPREM1 (IEEE, nearest quotient):
    (new ST0, quotient's low bits or None when the reduction is partial)."""
    r = operands(c, a, b)
    if r is not None:
        return r, 0
    ka, kb = kind(a), kind(b)
    if ka == INFINITY or kb == ZERO:
        return invalid(c), 0
    if kb == INFINITY or ka == ZERO:
        return a, 0
    sa, ma, ea = exact(a)
    _, mb, eb = exact(b)
    d = (ma.bit_length() + ea) - (mb.bit_length() + eb)
    if d >= 64:
        # partial: take off a multiple of b * 2**(d - n); the 387 picks n
        # between 32 and 63, this core the figure AMD documents
        shift = d - (32 + d % 32)
        e = min(ea, eb + shift)
        na, nb = ma << (ea - e), mb << (eb + shift - e)
        q = na // nb
        return round_pack(sa, na - q * nb, e, c), None
    e = min(ea, eb)
    na, nb = ma << (ea - e), mb << (eb - e)
    q, rem = divmod(na, nb)
    s = sa
    if nearest and (2 * rem > nb or (2 * rem == nb and q & 1)):
        q += 1
        rem = nb - rem
        s ^= 1
    if rem == 0:
        return pack(sa, 0, 0), q & 7
    return round_pack(s, rem, e, c), q & 7


def to_float(x: int) -> float:
    """The value as a Python float (for display and for the tests; NaN for
    unsupported formats)."""
    k = kind(x)
    s = -1.0 if x >> 79 else 1.0
    if k == ZERO:
        return math.copysign(0.0, s)
    if k == INFINITY:
        return s * math.inf
    if k in (QNAN, SNAN, UNSUPPORTED):
        return math.nan
    _, m, e = exact(x)
    try:
        return s * math.ldexp(m, e)
    except OverflowError:
        return s * math.inf


def from_float(v: float) -> int:
    """A Python float as an extended value (exact)."""
    return from_memory(struct.unpack("<Q", struct.pack("<d", v))[0], DOUBLE, Rounding())
