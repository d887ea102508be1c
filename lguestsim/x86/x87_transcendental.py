"""The 387's function unit: F2XM1, FYL2X, FYL2XP1, FPTAN, FPATAN, FSIN, FCOS, FSINCOS.

The 387 computes these with CORDIC-style algorithms to about one unit in the
last place of an extended real.  Here each is computed in fixed point on
Python integers, with a few hundred bits more than the result needs (more
still for tiny arguments), and rounded once per RC by x87_float: so the
results are the correctly rounded ones, which a real 387 gets right nearly
always and misses by one unit now and then.  Argument reduction for
FSIN/FCOS/FPTAN uses pi to as many bits as needed, where the 387 uses a
66-bit pi; for arguments near a multiple of pi/2 a real 387 therefore
differs in the low bits.  Operands beyond 2**63 are out of range for the
trigonometric instructions: C2 is set and ST0 is left as it was.
"""

from __future__ import annotations

from functools import lru_cache
from math import isqrt

from . import x87_float as F

GUARD = 200          # bits of fixed point beyond the result's own scale
LIMIT = 63           # |x| < 2**63 for FPTAN, FSIN, FCOS, FSINCOS


def _atan_inv(n: int, frac: int) -> int:
    """atan(1/n) in fixed point."""
    one = 1 << frac
    x = one // n
    total, k, n2, term = x, 1, n * n, x
    while term:
        x //= n2
        term = x // (2 * k + 1)
        total += -term if k & 1 else term
        k += 1
    return total


@lru_cache(maxsize=16)
def _pi(frac: int) -> int:
    extra = frac + 16
    return (16 * _atan_inv(5, extra) - 4 * _atan_inv(239, extra)) >> 16


@lru_cache(maxsize=16)
def _ln2(frac: int) -> int:
    return _atanh_series((1 << (frac + 16)) // 3, frac + 16) * 2 >> 16


def _atanh_series(z: int, frac: int) -> int:
    """atanh(z) for fixed-point z, |z| well below 1 (an odd function: the
    series runs on |z|, so that truncation ends it)."""
    if z < 0:
        return -_atanh_series(-z, frac)
    total, term, z2, k = z, z, (z * z) >> frac, 1
    while term:
        term = (term * z2) >> frac
        total += term // (2 * k + 1)
        k += 1
    return total


def _fixed(x: int, frac: int) -> int:
    """|x| (a finite extended value) in fixed point with ``frac`` bits."""
    _, m, e = F.exact(x)
    return m << (e + frac) if e + frac >= 0 else m >> -(e + frac)


def _top(x: int) -> int:
    """The exponent of the leading bit of a finite nonzero value."""
    _, m, e = F.exact(x)
    return m.bit_length() - 1 + e


def _result(s: int, v: int, frac: int, c: F.Rounding) -> int:
    """Round a fixed-point approximation; its error is far below the last place,
    so a sticky bit stands for everything beyond it."""
    if v < 0:
        s, v = s ^ 1, -v
    return F.round_pack(s, (v << 1) | 1, -frac - 1, c)


def _log2(m: int, e: int, frac: int) -> int:
    """log2(m * 2**e) in fixed point (m > 0)."""
    n = m.bit_length() - 1
    k = n + e
    one = 1 << frac
    mm = m << (frac - n) if frac >= n else m >> (n - frac)      # in [1, 2)
    z = ((mm - one) << frac) // (mm + one)
    ln = 2 * _atanh_series(z, frac)
    return (k << frac) + (ln << frac) // _ln2(frac)


def f2xm1(x: int, c: F.Rounding):
    r = F.operands(c, x)
    if r is not None:
        return (r,)
    k = F.kind(x)
    if k == F.ZERO:
        return (x,)
    if k == F.INFINITY:
        return (F.pack(1, F.BIAS, F.JBIT) if x >> 79 else x,)
    s = x >> 79
    if x & ~F.SIGN == F.ONE:            # 2**1 - 1 and 2**-1 - 1 are exact
        return (F.pack(1, F.BIAS - 1, F.JBIT) if s else F.ONE,)
    top = _top(x)
    if top >= 15:                       # far outside the 387's domain of [-1, 1]
        if s:
            return (F.round_pack(1, (1 << GUARD) - 1, -GUARD, c),)
        return (F.round_pack(0, 1, 1 << 16, c),)
    frac = GUARD + max(0, -top)
    xf = _fixed(x, frac)
    n, fpart = xf >> frac, xf & ((1 << frac) - 1)
    if s:
        n, fpart = -n - (1 if fpart else 0), ((1 << frac) - fpart) & ((1 << frac) - 1)
    y = (fpart * _ln2(frac)) >> frac     # 2**fpart = e**y
    term, total, k = y, y, 2
    while term:
        term = (term * y >> frac) // k
        total += term
        k += 1
    one = 1 << frac
    v = (one + total << n if n >= 0 else (one + total) >> -n) - one
    return (_result(0, v, frac, c),)


def _ylog(y: int, lf: int, frac: int, c: F.Rounding) -> int:
    """y * log value (fixed point) rounded once."""
    if lf == 0:
        return F.pack(y >> 79, 0, 0)
    sy, my, ey = F.exact(y)
    s = sy ^ (1 if lf < 0 else 0)
    return F.round_pack(s, (my * abs(lf)) << 1 | 1, ey - frac - 1, c)


def fyl2x(x: int, y: int, c: F.Rounding):
    """ST1 * log2(ST0): (x, y) = (ST0, ST1)."""
    r = F.operands(c, x, y)
    if r is not None:
        return (r,)
    kx, ky = F.kind(x), F.kind(y)
    sx, sy = x >> 79, y >> 79
    if sx and kx != F.ZERO:
        return (F.invalid(c),)
    if kx == F.ZERO:
        if ky == F.ZERO:
            return (F.invalid(c),)
        if ky != F.INFINITY:
            c.flags |= F.ZE
        return (F.pack(sy ^ 1, F.EXP_MAX, F.JBIT),)
    if kx == F.INFINITY:
        if ky == F.ZERO:
            return (F.invalid(c),)
        return (F.pack(sy, F.EXP_MAX, F.JBIT),)
    _, m, e = F.exact(x)
    if m & (m - 1) == 0:                # a power of two: the logarithm is exact
        lg = m.bit_length() - 1 + e
        if ky == F.INFINITY:
            return (F.invalid(c),) if lg == 0 else (F.pack(sy ^ (lg < 0), F.EXP_MAX, F.JBIT),)
        if lg == 0:
            return (F.pack(sy, 0, 0),)
        return (F.mul(y, F.from_int(lg), c),)
    if ky == F.INFINITY:
        return (F.pack(sy ^ (_top(x) < 0), F.EXP_MAX, F.JBIT),)
    if ky == F.ZERO:
        return (F.pack(sy ^ (_top(x) < 0), 0, 0),)
    frac = GUARD + 64
    return (_ylog(y, _log2(m, e, frac), frac, c),)


def fyl2xp1(x: int, y: int, c: F.Rounding):
    """ST1 * log2(ST0 + 1), for ST0 near zero."""
    r = F.operands(c, x, y)
    if r is not None:
        return (r,)
    kx, ky = F.kind(x), F.kind(y)
    sy = y >> 79
    if kx == F.ZERO:
        if ky == F.INFINITY:
            return (F.invalid(c),)
        return (F.pack(sy ^ (x >> 79), 0, 0),)
    if kx == F.INFINITY:
        if x >> 79 or ky == F.ZERO:
            return (F.invalid(c),)
        return (F.pack(sy, F.EXP_MAX, F.JBIT),)
    sx, m, e = F.exact(x)
    top = _top(x)
    if sx and top >= 0:                 # x <= -1: log2 of zero or less
        return (F.invalid(c),)
    if ky == F.INFINITY:
        return (F.pack(sy ^ sx, F.EXP_MAX, F.JBIT),)
    if ky == F.ZERO:
        return (F.pack(sy ^ sx, 0, 0),)
    frac = GUARD + 64 + max(0, -top)
    if top >= -2:
        lo = min(e, 0)
        one_plus = (1 << -lo) + (-(m << (e - lo)) if sx else m << (e - lo))
        return (_ylog(y, _log2(one_plus, lo, frac), frac, c),)
    xf = _fixed(x, frac)
    xf = -xf if sx else xf
    z = (xf << frac) // ((2 << frac) + xf)
    ln = 2 * _atanh_series(z, frac)
    return (_ylog(y, (ln << frac) // _ln2(frac), frac, c),)


def _sincos(x: int, frac: int) -> tuple[int, int]:
    """sin and cos of |x| in fixed point, after reduction by pi/2."""
    wide = frac + 96
    xf = _fixed(x, wide)
    half_pi = _pi(wide) >> 1
    k = (xf + (half_pi >> 1)) // half_pi
    r = (xf - k * half_pi) >> 96
    one = 1 << frac
    r2 = (r * r) >> frac
    s, term, n = r, r, 1
    while term:
        term = -(term * r2 >> frac) // ((n + 1) * (n + 2))
        s += term
        n += 2
    co, term, n = one, one, 0
    while term:
        term = -(term * r2 >> frac) // ((n + 1) * (n + 2))
        co += term
        n += 2
    return ((s, co), (co, -s), (-s, -co), (-co, s))[k & 3]


def _trig(x: int, c: F.Rounding):
    """Common checks: a result tuple to return, None when out of range, or
    the fixed-point scale to compute at."""
    r = F.operands(c, x)
    if r is not None:
        return ("done", r)
    k = F.kind(x)
    if k == F.INFINITY:
        return ("done", F.invalid(c))
    if k == F.ZERO:
        return ("zero", x)
    if _top(x) >= LIMIT:
        return ("range", None)
    return ("go", GUARD + max(0, -_top(x)))


def fsin(x: int, c: F.Rounding):
    how, v = _trig(x, c)
    if how == "range":
        return None
    if how != "go":
        return (v,)
    sn, _ = _sincos(x, v)
    return (_result(x >> 79, sn, v, c),)


def fcos(x: int, c: F.Rounding):
    how, v = _trig(x, c)
    if how == "range":
        return None
    if how == "zero":
        return (F.ONE,)
    if how != "go":
        return (v,)
    _, co = _sincos(x, v)
    return (_result(0, co, v, c),)


def fsincos(x: int, c: F.Rounding):
    """(sin, cos): sin replaces ST0, then cos is pushed."""
    how, v = _trig(x, c)
    if how == "range":
        return None
    if how == "zero":
        return (v, F.ONE)
    if how != "go":
        return (v, v)
    sn, co = _sincos(x, v)
    s = _result(x >> 79, sn, v, c)
    up = c.up
    co = _result(0, co, v, c)
    c.up = c.up or up
    return (s, co)


def fptan(x: int, c: F.Rounding):
    """(tan, 1.0): tan replaces ST0, then 1.0 is pushed."""
    how, v = _trig(x, c)
    if how == "range":
        return None
    if how == "zero":
        return (v, F.ONE)
    if how != "go":
        return (v, v)
    sn, co = _sincos(x, v)
    s = (x >> 79) ^ ((sn < 0) != (co < 0))
    q = (abs(sn) << (v + 64)) // abs(co)
    return (_result(s, q, v + 64, c), F.ONE)


def fpatan(x: int, y: int, c: F.Rounding):
    """atan(ST1 / ST0) in the quadrant of the point (ST0, ST1)."""
    r = F.operands(c, x, y)
    if r is not None:
        return (r,)
    kx, ky = F.kind(x), F.kind(y)
    sx, sy = x >> 79, y >> 79
    frac = GUARD
    pi = _pi(frac)
    if ky == F.ZERO or (kx == F.INFINITY and ky != F.INFINITY):
        if sx:
            return (_result(sy, pi, frac, c),)
        return (F.pack(sy, 0, 0),)
    if kx == F.ZERO or (ky == F.INFINITY and kx != F.INFINITY):
        return (_result(sy, pi >> 1, frac, c),)
    if kx == F.INFINITY:                  # both infinite
        return (_result(sy, 3 * pi >> 2 if sx else pi >> 2, frac, c),)
    shift = _top(y) - _top(x)
    frac = GUARD + max(0, -shift)
    _, my, ey = F.exact(y)
    _, mx, ex = F.exact(x)
    swap = shift > 0 or (shift == 0 and my << (64 - my.bit_length()) > mx << (64 - mx.bit_length()))
    a, ea, b, eb = (mx, ex, my, ey) if swap else (my, ey, mx, ex)
    sh = ea - eb + frac
    t = (a << sh) // b if sh >= 0 else a // (b << -sh)
    one = 1 << frac
    for _ in range(2):                      # atan(t) = 2 atan(t / (1 + sqrt(1 + t*t)))
        t = (t << frac) // (one + isqrt((one << frac) + t * t))
    t2 = (t * t) >> frac
    total, term, n = t, t, 1
    while term:
        term = -(term * t2 >> frac)
        n += 2
        total += term // n
    angle = 4 * total
    pi = _pi(frac)
    if swap:
        angle = (pi >> 1) - angle
    if sx:
        angle = pi - angle
    return (_result(sy, angle, frac, c),)


FUNCTIONS = {"f2xm1": f2xm1, "fyl2x": fyl2x, "fyl2xp1": fyl2xp1, "fptan": fptan,
             "fpatan": fpatan, "fsin": fsin, "fcos": fcos, "fsincos": fsincos}
