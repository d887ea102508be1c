"""EFLAGS, computed lazily.

Most instructions set the six arithmetic flags (CF PF AF ZF SF OF) and most of
those flags are never read: the next instruction overwrites them.  So the CPU
does not compute them.  It remembers the last flag-setting operation as four
numbers -- the operation ``fo`` (kind and size), its two inputs ``fa`` and
``fb`` and its result ``fr`` -- and works a flag out only when something reads
it (a jcc, pushf, an interrupt).  ``fo == 0`` means the flags are already
stored in ``cpu._ef``.

This module states each flag of each operation once, as a Python expression.
The translator pastes those expressions into the code it generates (so a
``cmp; jl`` pair becomes one signed compare), and the same expressions are
compiled here into ``materialize`` for everyone else.
"""

from __future__ import annotations

CF, PF, AF, ZF, SF, TF, IF, DF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800
IOPL, NT, RF, VM, AC, VIF, VIP, ID = 0x3000, 0x4000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000
ARITH = CF | PF | AF | ZF | SF | OF
# Bits an i486+ lets software change (VM, VIF and VIP are left out: no v8086).
WRITABLE = ARITH | TF | IF | DF | IOPL | NT | RF | AC | ID
FIXED_ONE = 0x2

NAMES = [(CF, "CF"), (PF, "PF"), (AF, "AF"), (ZF, "ZF"), (SF, "SF"), (TF, "TF"),
         (IF, "IF"), (DF, "DF"), (OF, "OF"), (NT, "NT"), (RF, "RF"), (VM, "VM"),
         (AC, "AC"), (ID, "ID")]

# PARITY[b] is PF for a result whose low byte is b (set for an even count of ones).
PARITY = bytes(PF if bin(i).count("1") % 2 == 0 else 0 for i in range(256))

# Lazy operation kinds.  An op code is kind << 2 | size index (0: 8, 1: 16, 2: 32 bit).
# CMP is SUB whose result was never computed (a cmp writes none): its flags
# work the result out from the inputs, and ``r`` is ignored.
ADD, ADC, SUB, SBB, LOGIC, INC, DEC, SHL, SHR, SAR, CMP = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
KIND_NAMES = {ADD: "add", ADC: "adc", SUB: "sub", SBB: "sbb", LOGIC: "logic", INC: "inc",
              DEC: "dec", SHL: "shl", SHR: "shr", SAR: "sar", CMP: "cmp"}
SIZE_INDEX = {8: 0, 16: 1, 32: 2}
SIZES = (8, 16, 32)


def op_code(kind: int, size: int) -> int:
    return kind << 2 | SIZE_INDEX[size]


#: P:026 Lazy flags.  Nearly every arithmetic instruction sets six flags,
# and nearly always the next one overwrites them unread, so computing them
# every time would cost more than the `add` itself.  The CPU keeps only what the
# last flag-setting operation was (`fo`: its kind and size) and its two
# inputs and result (`fa`, `fb`, `fr`), and works a flag out when someone
# reads it.  This function is the one statement of how: for each kind of
# operation, a Python expression per flag over the names `a`, `b` and `r`.
# The translator pastes these expressions into generated code, where
# `cond_from_op()` below makes `cmp eax, ebx; jl` a single signed comparison
# of two locals, and the same text is compiled into `materialize()` for the
# CPU's `eflags` property, which an interrupt reads when it pushes EFLAGS.
# One statement, two uses: the fast path and the slow path cannot disagree.
def flag_exprs(kind: int, size: int, a: str, b: str, r: str) -> dict[str, str]:
    """Python expressions (over the names a, b, r) for each arithmetic flag.

    ADC and SBB mean "with a carry in of one" (a carry in of zero is just ADD
    or SUB); INC and DEC keep the old CF, which they hold in ``b``.
    Each expression is truthy exactly when the flag is set.
    """
    sign = 1 << (size - 1)
    if kind == CMP:
        kind, r = SUB, f"(({a} - {b}) & {(sign << 1) - 1:#x})"
    e = {"ZF": f"{r} == 0", "SF": f"{r} & {sign:#x}", "PF": f"PARITY[{r} & 0xff]"}
    if kind in (ADD, ADC):
        e["CF"] = f"{r} < {a}" if kind == ADD else f"{r} <= {a}"
        e["OF"] = f"({a} ^ {r}) & ({b} ^ {r}) & {sign:#x}"
        e["AF"] = f"({a} ^ {b} ^ {r}) & 0x10"
    elif kind in (SUB, SBB):
        e["CF"] = f"{a} < {b}" if kind == SUB else f"{a} <= {b}"
        e["OF"] = f"({a} ^ {b}) & ({a} ^ {r}) & {sign:#x}"
        e["AF"] = f"({a} ^ {b} ^ {r}) & 0x10"
    elif kind == LOGIC:
        e["CF"] = e["OF"] = e["AF"] = "0"
    elif kind == INC:
        e["CF"] = b
        e["OF"] = f"{r} == {sign:#x}"
        e["AF"] = f"({r} & 0xf) == 0"
    elif kind == DEC:
        e["CF"] = b
        e["OF"] = f"{r} == {sign - 1:#x}"
        e["AF"] = f"({r} & 0xf) == 0xf"
    elif kind == SHL:
        e["CF"] = f"({a} << ({b} - 1)) & {sign:#x}"
        e["OF"] = f"(({a} << ({b} - 1)) ^ {r}) & {sign:#x}"
        e["AF"] = "0"
    elif kind == SHR:
        e["CF"] = f"({a} >> ({b} - 1)) & 1"
        e["OF"] = f"(({a} >> ({b} - 1)) ^ {r}) & {sign:#x}"
        e["AF"] = "0"
    elif kind == SAR:
        e["CF"] = f"({a} >> ({b} - 1)) & 1"
        e["OF"] = "0"
        e["AF"] = "0"
    else:
        raise ValueError(f"unknown lazy flag kind {kind}")
    return e


def eflags_expr(kind: int, size: int, a: str, b: str, r: str) -> str:
    """One expression giving all six arithmetic flag bits as an int."""
    e = flag_exprs(kind, size, a, b, r)
    bits = {"CF": CF, "ZF": ZF, "SF": SF, "OF": OF, "AF": AF}
    parts = [e["PF"]]
    for name, bit in bits.items():
        if e[name] != "0":
            parts.append(f"({bit:#x} if {e[name]} else 0)")
    return " | ".join(parts)


# Condition codes as the low nibble of jcc/setcc/cmovcc opcodes.
CC_NAMES = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"]


def cond_from_flags(cc: int, ef: str) -> str:
    """Condition ``cc`` as an expression over a materialised EFLAGS value."""
    base = {
        0: f"{ef} & {OF:#x}",
        1: f"{ef} & {CF:#x}",
        2: f"{ef} & {ZF:#x}",
        3: f"{ef} & {CF | ZF:#x}",
        4: f"{ef} & {SF:#x}",
        5: f"{ef} & {PF:#x}",
        6: f"(({ef} >> 7) ^ ({ef} >> 11)) & 1",
        7: f"({ef} & {ZF:#x}) or ((({ef} >> 7) ^ ({ef} >> 11)) & 1)",
    }[cc >> 1]
    return f"not ({base})" if cc & 1 else f"({base})"


def cond_from_op(cc: int, kind: int, size: int, a: str, b: str, r: str) -> str:
    """Condition ``cc`` straight from a known producer, without building EFLAGS.

    A compare followed by a branch is the commonest pair there is; here it
    becomes a single Python comparison.
    """
    sign = 1 << (size - 1)
    neg = cc & 1
    base = cc & ~1
    direct = None
    if kind in (SUB, CMP):
        direct = {2: f"{a} < {b}", 4: f"{r} == 0" if kind == SUB else f"{a} == {b}", 6: f"{a} <= {b}",
                  12: f"({a} ^ {sign:#x}) < ({b} ^ {sign:#x})",
                  14: f"({a} ^ {sign:#x}) <= ({b} ^ {sign:#x})"}.get(base)
    elif kind == LOGIC:
        direct = {0: "False", 2: "False", 4: f"{r} == 0", 6: f"{r} == 0",
                  8: f"{r} & {sign:#x}", 12: f"{r} & {sign:#x}",
                  14: f"{r} == 0 or {r} & {sign:#x}"}.get(base)
    if direct is None:
        e = flag_exprs(kind, size, a, b, r)
        direct = {
            0: e["OF"], 2: e["CF"], 4: e["ZF"], 6: f"({e['CF']}) or {e['ZF']}",
            8: e["SF"], 10: e["PF"],
            12: f"(not ({e['SF']})) != (not ({e['OF']}))",
            14: f"{e['ZF']} or ((not ({e['SF']})) != (not ({e['OF']})))",
        }[base]
    return f"not ({direct})" if neg else f"({direct})"


def _build_materializers(carry_only: bool = False) -> dict[int, object]:
    table = {}
    for kind in KIND_NAMES:
        for size in SIZES:
            expr = (f"1 if {flag_exprs(kind, size, 'a', 'b', 'r')['CF']} else 0" if carry_only
                    else eflags_expr(kind, size, "a", "b", "r"))
            table[op_code(kind, size)] = eval(f"lambda a, b, r: {expr}", {"PARITY": PARITY})  # noqa: S307
    return table


MATERIALIZE = _build_materializers()
# The carry alone, for code that keeps the lazy flags in locals of its own
# and needs only CF (an inc or dec keeps the carry it found: regions.py).
CARRY = _build_materializers(carry_only=True)


def materialize(fo: int, fa: int, fb: int, fr: int) -> int:
    """The arithmetic flag bits of the lazy operation (fo, fa, fb, fr)."""
    return MATERIALIZE[fo](fa, fb, fr)


def describe(eflags: int) -> str:
    """EFLAGS as the names of its set bits, plus IOPL: for views and dumps."""
    names = [name for bit, name in NAMES if eflags & bit]
    names.append(f"IOPL={(eflags >> 12) & 3}")
    return " ".join(names)
