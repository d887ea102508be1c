"""Shifts and rotates: shl, shr, sar, rol, ror, rcl, rcr, shld and shrd.

The 386 manual's shift and rotate instructions, written inline into their
block by translate.py.  shl, shr and sar leave their flags lazy (flags.py);
the rotates and double shifts call the functions below from the generated
code, which return (result, arithmetic flags) given the value, a non-zero
masked count, the operand size and the flags before the instruction; rotates
change only CF and OF and keep the rest.  Where the SDM leaves OF undefined
(counts above one) they give what P6-family hardware gives.
"""

from __future__ import annotations

from . import flags as F
from .decode import Insn
from .emitter import MASK, SIGN, Emitter

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


def emit_shift(e: Emitter, insn: Insn) -> None:
    m = insn.mnemonic
    dst, cnt = insn.operands
    size = dst[1]
    a, b, r = e.tmp("a"), e.tmp("b"), e.tmp("r")
    la = e.read(insn, dst, a, write=True)
    if cnt[0] == "i":
        count = cnt[2] & 0x1F
        if count == 0:
            return
        e.emit(f"{b} = {count}")
        known = True
    else:
        e.emit(f"{b} = ecx & 0x1f")
        known = False
        e.emit(f"if {b}:")
        e.ind += 1
    mask = MASK[size]
    if m in ("shl", "shr", "sar"):
        if m == "shl":
            e.emit(f"{r} = ({a} << {b}) & {mask}")
        elif m == "shr":
            e.emit(f"{r} = {a} >> {b}")
        else:
            s = SIGN[size]
            e.emit(f"{a} = {a} - {2 * s:#x} if {a} & {s:#x} else {a}")
            e.emit(f"{r} = ({a} >> {b}) & {mask}")
        e.write(insn, dst, r, la)
        kind = {"shl": F.SHL, "shr": F.SHR, "sar": F.SAR}[m]
        if known:
            e.lazy(kind, size, a, b, r)
        else:
            e.emit(f"cpu.fo = {F.op_code(kind, size)}; cpu.fa = {a}; cpu.fb = {b}; cpu.fr = {r}")
    else:
        fn = e.const(ROTATES[m], "S")
        fl = e.tmp("f")
        e.emit(f"{r}, {fl} = {fn}({a}, {b}, {size}, {e.arith_flags()})")
        e.write(insn, dst, r, la)
        e.store_flags(fl)
    if not known:
        e.ind -= 1
        e.else_flags_unchanged()     # count 0: flags unchanged, but now in the CPU
        e.flags_stored()
    elif m not in ("shl", "shr", "sar"):
        e.flags_stored()


def emit_shd(e: Emitter, insn: Insn) -> None:
    dst, src, cnt = insn.operands
    size = dst[1]
    a, b, r = e.tmp("a"), e.tmp("b"), e.tmp("r")
    la = e.read(insn, dst, a, write=True)
    c = e.tmp("c")
    e.emit(f"{c} = {cnt[2] & 0x1f if cnt[0] == 'i' else 'ecx & 0x1f'}")
    e.emit(f"{b} = {e.get_reg(size, src[2])}")
    e.emit(f"if {c}:")
    e.ind += 1
    fn = e.const(SHLD if insn.mnemonic == "shld" else SHRD, "S")
    fl = e.tmp("f")
    e.emit(f"{r}, {fl} = {fn}({a}, {b}, {c}, {size}, {e.arith_flags()})")
    e.write(insn, dst, r, la)
    e.store_flags(fl)
    e.ind -= 1
    e.else_flags_unchanged()
    e.flags_stored()


ROTATES = {"rol": ROL, "ror": ROR, "rcl": RCL, "rcr": RCR}
EMIT = {m: emit_shift for m in ("shl", "shr", "sar", "rol", "ror", "rcl", "rcr")}
EMIT.update({"shld": emit_shd, "shrd": emit_shd})

# Every member is written inline: no helper ends a block for this family.
HELPERS: dict = {}
