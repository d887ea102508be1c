"""String instructions: movs, stos, lods, cmps, scas, ins, outs, with rep.

Each iteration is one element; ESI/EDI/ECX move after the element is done, so
a fault part-way through a rep leaves the registers at the element that
faulted and the instruction restarts there, as on hardware.  Long runs of
rep movs/stos within a page go as one slice assignment: the result is the
same as element by element, only faster.
"""

from __future__ import annotations

from . import operands as O
from . import timing
from .decode import ES, Insn
from .flags import DF
from .system import check_io

M32 = 0xFFFFFFFF


def _kind(insn: Insn) -> tuple[str, int]:
    m = insn.mnemonic
    size = {"b": 1, "w": 2, "d": 4}[m[-1]]
    return m[:-1], size


SLICE = 1 << 16      # elements one step of a rep instruction may move


def string_op(cpu, insn: Insn) -> bool | None:
    op, size = _kind(insn)
    amask = M32 if insn.addr32 else 0xFFFF
    r = cpu.r
    step = -size if cpu.eflags & DF else size
    src_seg = 3 if insn.seg is None else insn.seg
    rep = insn.rep
    cost = timing.BASE[op]
    if op in ("ins", "outs"):
        check_io(cpu, r[2] & 0xFFFF, size)
    if rep is not None:
        cpu.cycles += timing.REP_SETUP
    budget = SLICE
    while True:
        if rep is not None:
            if r[1] & amask == 0:
                return None
            if budget <= 0:
                # Stop between iterations, as the SDM allows: EIP stays on the
                # instruction and the next step carries on where this one stopped.
                cpu.instructions -= 1
                return True
            before = r[1] & amask
            if op in ("movs", "stos") and step > 0 and _fast_block(cpu, insn, op, size, amask, src_seg):
                budget -= before - (r[1] & amask)
                continue
            budget -= 1
        si = r[6] & amask
        di = r[7] & amask
        if op == "movs":
            v = cpu.read_seg(src_seg, si, size)
            cpu.write_seg(ES, di, v)
            _adv(r, 6, step, amask)
            _adv(r, 7, step, amask)
        elif op == "stos":
            cpu.write_seg(ES, di, (r[0] & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
            _adv(r, 7, step, amask)
        elif op == "lods":
            O.set_reg(cpu, size * 8, 0, int.from_bytes(cpu.read_seg(src_seg, si, size), "little"))
            _adv(r, 6, step, amask)
        elif op in ("cmps", "scas"):
            if op == "cmps":
                a = int.from_bytes(cpu.read_seg(src_seg, si, size), "little")
                b = int.from_bytes(cpu.read_seg(ES, di, size), "little")
                _adv(r, 6, step, amask)
            else:
                a = O.get_reg(cpu, size * 8, 0)
                b = int.from_bytes(cpu.read_seg(ES, di, size), "little")
            _adv(r, 7, step, amask)
            from .flags import SUB, op_code
            bits = size * 8
            cpu.eflags  # noqa: B018 - materialise the old flags before replacing them
            cpu.fo, cpu.fa, cpu.fb, cpu.fr = op_code(SUB, bits), a, b, (a - b) & ((1 << bits) - 1)
        elif op == "ins":
            v = cpu.port_in(r[2] & 0xFFFF, size)
            cpu.write_seg(ES, di, (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
            _adv(r, 7, step, amask)
        elif op == "outs":
            v = int.from_bytes(cpu.read_seg(src_seg, si, size), "little")
            cpu.port_out(r[2] & 0xFFFF, size, v)
            _adv(r, 6, step, amask)
        cpu.cycles += cost
        if rep is None:
            return None
        _adv(r, 1, -1, amask)
        if op in ("cmps", "scas"):
            zf = cpu.fr == 0
            if (rep == "rep" and not zf) or (rep == "repne" and zf):
                return None


def _adv(r: list, i: int, step: int, amask: int) -> None:
    r[i] = (r[i] & ~amask & M32) | ((r[i] + step) & amask)


def _fast_block(cpu, insn: Insn, op: str, size: int, amask: int, src_seg: int) -> bool:
    """Do as many elements as lie within one page of source and destination at once."""
    r = cpu.r
    count = r[1] & amask
    di = r[7] & amask
    si = r[6] & amask
    if count < 4 or di + count * size - 1 > amask or (op == "movs" and si + count * size - 1 > amask):
        return False
    try:
        dla = cpu.seg_lin(ES, di, size, True)
    except Exception:  # the slow path raises the architectural fault itself
        return False
    n = min(count, (0x1000 - (dla & 0xFFF)) // size)
    if op == "movs":
        try:
            sla = cpu.seg_lin(src_seg, si, size, False)
        except Exception:
            return False
        n = min(n, (0x1000 - (sla & 0xFFF)) // size)
    if n < 2:
        return False
    user = cpu.cpl == 3
    # Translate both pages (this may fault: then nothing has been written).
    if op == "movs":
        data = cpu.read_priv(sla, n * size, user)
        if sla < dla < sla + n * size or dla < sla < dla + n * size:
            return False  # overlapping ranges: element by element keeps x86 semantics
    else:
        data = (r[0] & ((1 << (8 * size)) - 1)).to_bytes(size, "little") * n
    cpu.seg_lin(ES, di + (n - 1) * size, size, True)
    cpu.write_priv(dla, data, user)
    if op == "movs":
        _adv(r, 6, n * size, amask)
    _adv(r, 7, n * size, amask)
    _adv(r, 1, -n, amask)
    cpu.cycles += n * timing.BASE[op]
    return True
