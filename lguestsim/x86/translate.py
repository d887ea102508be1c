"""Translation: a block of decoded instructions becomes one Python function.

Dense on purpose: this is the code that makes a pure-Python i386 fast enough
to watch a kernel boot.  For each instruction the translator writes a few
lines of Python that do exactly what the instruction does, with

  * the eight registers held in local variables for the whole block,
  * memory reached through the TLB's fast dicts and memoryviews, falling back
    to the CPU's slow path for misses, unaligned or cross-page accesses,
  * flags left lazy (flags.py) and stored to the CPU only by the last
    instruction that sets them, or by the fault handler,
  * a comment opening each instruction, so that when one faults the line it
    faulted on tells the handler which it was, and the handler can write
    back the precise state of that instruction boundary (blocks.py).

This module is the loop: it decodes the run, asks each instruction's family
for its code (moves.py, alu.py, shifts.py, muldiv.py, bits.py, control.py,
flag_control.py, all writing through emitter.py's `Emitter`), compiles the
result and caches it.  Everything else is a Python function in system.py,
strings.py or x87.py; such an instruction ends its block, which first hands
the complete state back to the CPU object.
"""

from __future__ import annotations

import re

from . import (
    alu,
    bits,
    control,
    flag_control,
    moves,
    muldiv,
    opcodes,
    shifts,
    strings,
    system,
    timing,
)
from .blocks import HOT, REGS, Block, assemble, compiled, marks, register, unwind
from .decode import DecodeError, Insn, NeedBytes, decode
from .emitter import M32, MASK, Emitter
from .faults import GP, CPUFault
from .flags import PARITY
from .timing import memory_kind, timing_key

# The families written inline, by the names the opcode table gives them, and
# each inline mnemonic's function that writes its code, found through the
# family the table states (opcodes.FAMILIES).
FAMILIES = {"moves": moves, "alu": alu, "shifts": shifts, "muldiv": muldiv, "bits": bits,
            "control": control, "flag_control": flag_control}
INLINE = {m: FAMILIES[f].EMIT[m] for m, f in opcodes.FAMILY.items()
          if f in FAMILIES and m in FAMILIES[f].EMIT}
# The inline control transfers: each ends its block.
TRANSFERS = {control.emit_jmp, control.emit_jcc, control.emit_call, control.emit_ret,
             control.emit_loop, control.emit_jcxz}
# What a rep prefix leaves alone (the 386 ignores it there), and what takes lock.
REP_IGNORED = {control.emit_jcc, alu.emit_alu, control.emit_ret, moves.emit_nop}
LOCKABLE = {alu.emit_alu, alu.emit_unary, moves.emit_xchg, moves.emit_xadd,
            moves.emit_cmpxchg, bits.emit_bittest}


def ends_block(insn: Insn) -> bool:
    return INLINE.get(insn.mnemonic) in TRANSFERS or uses_helper(insn)


#: P:027 Not every instruction is worth generating inline.  The common
# integer ones are: moves, arithmetic and logic, shifts, multiply and divide,
# bit tests, jumps, calls and returns.  Everything that touches the
# processor's mode or its tables goes to a Python function in system.py
# instead (segment loads, far jumps and calls, `int` and `iret`, `cli` and
# `sti`, `in` and `out`, `lgdt`, moves to control registers, `invlpg`), or
# to strings.py for the rep string instructions and x87.py for the FPU.  Such
# an instruction always ends its block, after the block has written the
# whole state back to the CPU object, so the helper may change anything,
# even the mode the block was compiled for.  Every instruction lguest's
# Guest kernel is denied is among them, so the checks that make those fault
# in ring 1 are all plain Python in system.py (P:032, P:033).
def uses_helper(insn: Insn) -> bool:
    kind = INLINE.get(insn.mnemonic)
    if kind is None or insn.rep is not None and kind not in REP_IGNORED:
        return True
    if insn.lock and kind not in LOCKABLE:
        return True
    if kind is moves.emit_mov:
        dst, src = insn.operands
        return dst[0] in ("s", "c", "d") or src[0] in ("c", "d")
    if kind is moves.emit_push:
        return insn.operands[0][0] == "s"
    if kind is moves.emit_pop:
        return insn.operands[0][0] != "r"
    return False


# Every instruction left to Python, by mnemonic: the system ones, the string
# ones, and the rare members of the inline families.
HELPERS = {**system.HELPERS, **strings.HELPERS,
           **{m: fn for family in FAMILIES.values() for m, fn in family.HELPERS.items()}}

BASE_GLOBALS = {"CPUFault": CPUFault, "PARITY": PARITY, "UNWIND": unwind}


def fetch_bytes(cpu, pa: int) -> bytes:
    """The bytes from ``pa`` to the end of its page (all ones beyond RAM, like a bus)."""
    end = (pa | 0xFFF) + 1
    return bytes(cpu.ram[pa:end]) if pa < cpu.mem.size else b"\xff" * (end - pa)


#: P:023 The heart of the core's speed.  Interpreting in Python one
# instruction at a time would cost a decode, a lookup and a call for every
# instruction executed.  Instead, the first time the CPU reaches a physical
# address, `translate()` decodes the straight run of instructions there, up
# to 48 of them, ending after a jump, call or return, after an instruction
# left to a helper (P:027), or at the end of the page.  It writes one Python
# function for the whole run (P:024), compiles it, and caches it by physical
# address, so every later visit is a dict lookup and a call.  An instruction
# that straddles two pages is fetched from both (which may page-fault) and
# gets a block of its own that is never cached, since the second page's
# mapping may change.  A block that jumps back to its own start becomes a
# loop inside its function, so a busy-wait or a memset does not go back
# through the dispatcher on every iteration.  This file is dense on purpose:
# it is the hot path of the whole project.
def translate(cpu, eip: int, pa: int, limit: int):
    """Decode from ``eip`` (physical ``pa``) and compile the block; see the module docstring."""
    code32 = cpu.code32
    emask = M32 if code32 else 0xFFFF
    page = pa & ~0xFFF
    insns, fault, cross, off = decode_run(cpu, eip, pa, limit)
    em = Emitter(cpu)
    live = ()
    if not cross and fault is None and cpu.rewritten.get(pa, 0) >= REWRITTEN and pa + off <= cpu.mem.size:
        live = live_immediates(em, insns, pa)
    total, helper_insn, eips, cycles_before = emit_run(em, insns)
    n_inline = len(insns) - (1 if helper_insn is not None else 0)
    end = (insns[-1].eip + insns[-1].length) & emask if insns else eip
    if fault is not None:
        eips = [eip]
        cycles_before = [0]
    else:
        eips.append(end)
        cycles_before.append(total)
    # A block whose last instruction jumps back to its own start loops inside
    # its function (bounded by the instruction budget): tight loops then cost
    # no trip through the CPU's dispatcher per iteration.
    loops = bool(helper_insn is None and fault is None and limit > 1 and insns
                 and not em.reads_entry_flags and _targets(insns[-1]) == eip)
    if loops:
        # Every pass but perhaps the last takes the branch back: its cycles are
        # counted once, from the passes made, instead of on each (blocks.py).
        taken = f"tk += {timing.BRANCH_TAKEN}"
        last = max(i for i, ln in enumerate(em.lines) if ln.strip() == taken)
        em.lines[last] = ""
        prune(em)       # worth its cost where the body runs many times
    src, meta = assemble(em, n_inline, eip, total, helper_insn, fault, code32, loops)
    ns = dict(BASE_GLOBALS)
    ns.update(em.consts)
    if helper_insn is not None:
        ns["HELPER"] = HELPERS.get(helper_insn.mnemonic, system.undefined)
        ns["HINSN"] = helper_insn
        ns["HCOST"] = timing.cost(timing_key(helper_insn), memory_kind(helper_insn))
    ns["EIPS"] = tuple(eips)
    ns["META"] = meta + (ns["EIPS"], tuple(cycles_before), marks(src))
    exec(compiled(src, f"<block {eip:#010x}>"), ns)  # noqa: S102 - our own generated source
    blk = Block(ns["block"], eip, max(len(insns), 1), end, page, src)
    if not cross and fault is None:
        cache = cpu.bcache if limit > 1 else cpu.scache
        cache[pa] = blk
        # (A block replacing another at the same address, code reached
        # through two aliases, replaces its entry too.)
        register(cpu, cache, pa, page, ((pa, pa + off, live),))
        cpu.tlb.protect_code_page(page)
        # A plain block that may lead on to others on its page, run often,
        # becomes the entry of a region (regions.py).
        if limit > 1 and helper_insn is None and not loops and not live:
            blk.heat = HOT
            blk.insns, blk.size = tuple(insns), off
    return blk


def decode_run(cpu, eip: int, pa: int, limit: int) -> tuple[list[Insn], tuple | None, bool, int]:
    """Decode up to ``limit`` instructions from ``eip``: (insns, fault, crosses a page, bytes)."""
    code32 = cpu.code32
    emask = M32 if code32 else 0xFFFF
    buf = fetch_bytes(cpu, pa)
    insns: list[Insn] = []
    fault: tuple[int, int | None] | None = None
    cross = False
    off = 0
    cur = eip
    cs = cpu.sregs[1]
    while len(insns) < limit:
        try:
            insn = decode(buf[off:off + 16], cur, code32)
        except NeedBytes:
            if insns:
                break
            # The instruction runs into the next page: fetch it (this may #PF).
            la2 = (cs.base + cur + (len(buf) - off)) & M32
            pa2 = cpu._phys(la2, False, cpu.cpl == 3)
            more = bytes(cpu.mem.read(pa2, 16))
            try:
                insn = decode(buf[off:] + more, cur, code32)
            except DecodeError as d:
                fault = (d.vector, 0 if d.vector == GP else None)
                break
            cross = True
        except DecodeError as d:
            if not insns:
                fault = (d.vector, 0 if d.vector == GP else None)
            break
        if not cpu.cs_flat and cur + insn.length - 1 > cs.limit:
            if not insns:
                fault = (GP, 0)
            break
        insns.append(insn)
        off += insn.length
        cur = (cur + insn.length) & emask
        if ends_block(insn) or cross or off >= len(buf):
            break
    return insns, fault, cross, off


def emit_run(em: Emitter, insns: list[Insn]) -> tuple[int, Insn | None, list[int], list[int]]:
    """Emit the inline instructions: (cycles, the helper ending the run or None,
    each one's EIP, the cycles before each)."""
    eips, cycles_before = [], []
    total = 0
    helper_insn = None
    for i, insn in enumerate(insns):
        em.idx = i
        eips.append(insn.eip)
        cycles_before.append(total)
        if uses_helper(insn):
            helper_insn = insn
            break
        em.starts.append(len(em.lines))
        em.emit(f"# {insn.eip:08x}: {insn.mnemonic}")
        INLINE[insn.mnemonic](em, insn)
        total += timing.cost(timing_key(insn), memory_kind(insn))
    em.starts.append(len(em.lines))
    return total, helper_insn, eips, cycles_before


_DEF = re.compile(r"^( *)([abr]\d+) = (.+)$")
_SIMPLE = re.compile(r"^(eax|ecx|edx|ebx|esp|ebp|esi|edi|0x[0-9a-f]+|\d+)$")
_TEMP = re.compile(r"\b[abr]\d+\b")
_CALL = re.compile(r"[A-Za-z_]\w*\(")
_ASSIGNED = re.compile(r"^ *(?:try: |except KeyError: )?([\w, ]+?) = ", re.M)


def prune(em: Emitter) -> None:
    """Drop the copies a flag producer makes for flags no one will read (in
    loops and regions, whose bodies run many times: elsewhere the saving does
    not repay the looking).

    A producer's operands and result are kept in temporaries (``a3 = eax``)
    only so that its flags can be worked out later.  When a later producer
    overwrites them before anything can read them (no flag test, and no
    instruction that may fault, whose unwinding would store them), the copies
    are dead: the instruction then works on the registers themselves
    (``eax = (eax + ebx) & 0xffffffff``), and a temporary no one reads (the
    carry an ``inc`` keeps for its flags) is not computed at all.
    """
    stores = em.stores
    faults = em.faults
    lines = em.lines
    where: dict[str, list[int]] = {}        # temporary -> the lines naming it
    for i, ln in enumerate(lines):
        for t in _TEMP.findall(ln):
            where.setdefault(t, []).append(i)
    for j in range(len(stores) - 1):
        idx, st = stores[j]
        if st is None or idx + 1 >= len(em.starts):
            continue
        if any(idx < m <= stores[j + 1][0] for m in faults):
            continue
        lo, hi = em.starts[idx], em.starts[idx + 1]
        names = [t for t in st[1:] if t not in ("cfin", "0")]
        if any(not lo <= i < hi for t in names for i in where.get(t, ())):
            continue
        for t in names:
            _propagate(lines, lo, hi, t)
    # The entry flags' carry, fetched for a temporary that is gone.
    cfin = [i for i, ln in enumerate(lines) if ln.strip() == "cfin = cpu.eflags & 1"]
    if cfin and not any(re.search(r"\bcfin\b", ln) for ln in lines if ln.strip() != "cfin = cpu.eflags & 1"):
        for i in cfin:
            lines[i] = ""
    em.reads_entry_flags = any("cpu.eflags" in ln for ln in lines)


def _propagate(lines: list[str], lo: int, hi: int, t: str) -> None:
    """Within lines[lo:hi], replace temporary ``t`` by what it was given, if safe."""
    head = t + " = "
    defs = [i for i in range(lo, hi) if lines[i].lstrip().startswith(head)]
    if len(defs) != 1:
        return
    d = defs[0]
    indent, _, value = _DEF.match(lines[d]).groups()
    if len(indent) != len(lines[lo]) - len(lines[lo].lstrip()):
        return              # inside an if of the instruction's own: leave it be
    uses = [i for i in range(d + 1, hi) if t in lines[i] and t in _TEMP.findall(lines[i])]
    if not uses:
        if "cpu" in value or " = " in value or _CALL.search(value):
            return          # it may do more than give a value
    elif _SIMPLE.match(value):
        # a register may not change between the copy and its last use
        between = "\n".join(lines[d + 1:uses[-1]])
        if any(value in {n.strip() for n in m.split(",")} for m in _ASSIGNED.findall(between)):
            return
        for i in uses:
            lines[i] = _TEMP.sub(lambda m: value if m.group() == t else m.group(), lines[i])
    elif len(uses) == 1 and uses[0] == d + 1 and lines[d + 1] in {f"{indent}{r} = {t}" for r in REGS}:
        # the result goes straight into its register (r3 = ...; eax = r3)
        lines[d + 1] = lines[d + 1][:-len(t)] + value
    else:
        return
    del lines[d]
    lines.insert(d, "")         # keep the instruction ranges where they were


REWRITTEN = 2
LIVE = ("mov", "add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test", "push", "imul")
SIGN_EXTENDED_IMM8 = (0x83, 0x6A, 0x6B)


#: P:059 Code that rewrites itself mostly rewrites data kept in its own
# instructions: a constant in a `mov`, a `cmp` or a `push`.  Translating the
# block again after every such store costs a `compile()`, a thousand times
# what the store does.  So a block that writes have thrown away `REWRITTEN`
# times is translated once more with its immediates live: they are read from
# RAM, into locals, each time the block is entered (so within one run of it the
# block still sees the bytes it started with, as a prefetch queue would), and
# a later store that lands wholly inside one of them leaves the block in place
# (`CPU._memory_written`).  Only immediates the translator pastes in as they
# are qualify (moves, arithmetic, `test`, `push`, `imul`); a store to an
# opcode, a displacement, a shift count or a jump still drops the block.
def live_immediates(em: Emitter, insns: list[Insn], pa: int) -> tuple:
    """Read the block's immediates from RAM at entry; returns their byte ranges."""
    ranges = []
    at = pa
    for i, insn in enumerate(insns):
        ops = insn.operands
        if (insn.mnemonic in LIVE and ops and ops[-1][0] == "i"
                and sum(o[0] == "i" for o in ops) == 1 and not uses_helper(insn)):
            size = ops[-1][1]
            k = 1 if insn.opcode in SIGN_EXTENDED_IMM8 else size // 8
            start = at + insn.length - k
            name = em.live[i] = f"I{i}"
            value = f'int.from_bytes(cpu.ram[{start:#x}:{start + k:#x}], "little")'
            if k == 1 and size > 8:
                value = f"(({value} ^ 0x80) - 0x80) & {MASK[size]}"
            em.prologue.append(f"{name} = {value}")
            ranges.append((start, start + k))
        at += insn.length
    return tuple(ranges)


JUMPS = {control.emit_jmp, control.emit_jcc, control.emit_loop, control.emit_jcxz}


def _targets(insn: Insn) -> int | None:
    if INLINE.get(insn.mnemonic) in JUMPS and insn.operands[0][0] == "j":
        return insn.operands[0][2]
    return None
