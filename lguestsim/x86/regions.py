"""Regions: the blocks of a hot loop nest compiled into one function.

After a block (translate.py) has run `HOT` times, `run()` asks this module to
make it the entry of a region: the blocks its jumps, calls and fall-throughs
lead to on the same page, each translated as usual, are pasted one after the
other into a single function that goes from block to block itself, with the
registers staying in its locals, until it reaches an address outside the
region.  Dense on purpose: it is the hot path.
"""

from __future__ import annotations

import re

from . import translate
from .blocks import FETCH, MAX_BLOCK, REGS, Block, compiled, marks, register
from .control import emit_call, emit_jcc, emit_jcxz, emit_jmp, emit_loop, emit_ret
from .emitter import Emitter
from .flags import CARRY, CMP
from .timing import BRANCH_TAKEN
from .translate import (
    BASE_GLOBALS,
    INLINE,
    decode_run,
    emit_run,
    live_immediates,
    prune,
    uses_helper,
)

M32 = 0xFFFFFFFF
FLUSH = "if fo_: cpu.fo = fo_; cpu.fa = fa_; cpu.fb = fb_; cpu.fr = fr_"
CARRY_IN = "(CARRY[fo_](fa_, fb_, fr_) if fo_ else cpu.eflags & 1)"
_CARRY_IN = re.compile(r"cpu\.eflags & (?:1|0x1)\b")
MAX_PARTS = 24          # blocks in one region
MAX_INSNS = 960         # instructions in one region
LEAF = 6                # blocks tested one by one at a leaf of the region's tree
# Cycles one call of a region may run: it counts instructions in the low 32
# bits of `ran_`, and runs no more instructions than cycles.
MAX_CYCLES = (1 << 31) - 1


def successors(insn, end: int) -> list[int]:
    """Where a block ending with ``insn`` (its next EIP ``end``) may go, as far as its bytes say."""
    kind = INLINE.get(insn.mnemonic)
    op = insn.operands[0] if insn.operands else None
    if kind in (emit_jcc, emit_loop, emit_jcxz):
        return [op[2], end]
    if kind in (emit_jmp, emit_call):
        return [op[2]] if op[0] == "j" else []
    if kind is emit_ret:
        return []
    return [end]            # the block stopped at its length or the page's end


#: P:058 Regions.  The dispatcher's work between two blocks (find the block,
# call it, and the block's own set-up and write-back) costs about as much as a
# few simple instructions, and compiled C code is made of short blocks.  So
# once a block has run `HOT` times, `form_region()` gathers the blocks it can
# lead to on its own page that have run already (up to 24, with loops and
# rewritten code among them), and two kinds that are about to (where a call
# returns, and a loop's head inside a block taken already), translates each
# as usual, and strings them into one function: a loop that finds the block
# whose address `nxt` holds by a few comparisons (a tree over the blocks'
# addresses), runs it, keeps its lazy flags in locals (handed to the CPU
# before a block that reads them as if entered afresh; a block that wants
# only the carry takes it from the locals), and counts its instructions and
# cycles.  A block that jumps back to its own start loops where it is, its
# passes counted when it is left.  It leaves for the dispatcher when `nxt`
# is outside the region, when the next block might not fit the instruction
# budget, when the cycle deadline is reached, at `exit_eip`, with
# breakpoints set, or after a slow access if a store has thrown translations
# away or a page walk has added cycles.  A fault in one of its blocks is
# unwound with that block's table (P:024), plus what the region ran before
# it.  Nothing a program can see changes: the blocks run the instructions
# they would have run, one after the other, with the same cycles, and stop
# where plain blocks stop.  (Forming a region compiles its blocks again, so
# only code run `HOT` times earns one.  On the gcc workload six regions take
# the dispatcher's calls from about 290,000 to 6,000.)
def form_region(cpu, blk: Block, pa: int) -> Block:
    """The region entered at ``blk`` (cached in its place), or ``blk`` if none is worth it."""
    page = pa & ~0xFFF
    base = cpu.sregs[1].base
    # A region already holding this block is entered here as well: its
    # function starts from cpu.eip, so nothing is translated or compiled again.
    for cache, key, start, _, _ in cpu._page_blocks.get(page, ()):
        if cache is cpu.bcache and start == pa and key != pa:
            region = cache.get(key)
            if region is not None and region.parts is not None and blk.eip in region.parts[0]:
                return _enter_at(cpu, region, blk, pa)
    lpage = (base + blk.eip) & M32 & ~0xFFF
    emask = M32 if cpu.code32 else 0xFFFF
    parts = []              # (eip, Emitter, insns, total, eips, cycles before, end, bytes, live)
    queue = [blk.eip]
    seen = set()
    unrun = []              # where the blocks lead that has not run yet
    returns = set()         # where the region's calls return to
    n_insns = 0

    def about_to_run(e: int) -> bool:
        return e in returns or any(p[0] < e < p[6] for p in parts)

    while len(parts) < MAX_PARTS:
        if not queue:
            # Code that has not run yet is most often an error path, not
            # worth compiling; but two kinds are about to run: the place a
            # call returns to, and a loop's head in the middle of a block
            # taken already.  Left out, each would soon make a region of its
            # own, holding most of this one's blocks again.
            queue = [e for e in unrun if about_to_run(e)]
            unrun = []
            if not queue:
                break
            seen.difference_update(queue)
        eip = queue.pop(0)
        if eip in seen:
            continue
        seen.add(eip)
        la = (base + eip) & M32
        if la & ~0xFFF != lpage or eip == cpu.exit_eip:
            continue
        ppa = page | (la & 0xFFF)
        rewrites = cpu.rewritten.get(ppa, 0)
        if 0 < rewrites < translate.REWRITTEN:
            continue        # code being written over: wait and see
        known = cpu.bcache.get(ppa)
        if known is None or known.eip != eip:
            if not about_to_run(eip):
                unrun.append(eip)
                continue
            part = _part(cpu, None, eip, ppa, rewrites, emask)
        else:
            if known.part is None:
                known.part = _part(cpu, known, eip, ppa, rewrites, emask)
            part = known.part
        if not part:
            continue
        if n_insns + len(part[2]) > MAX_INSNS:
            break
        parts.append(part[:-1])
        n_insns += len(part[2])
        queue.extend(part[-1])
        if part[2][-1].mnemonic == "call":
            returns.add(part[6])
            queue.append(part[6])
    if len(parts) < 2 or parts[0][0] != blk.eip:
        blk.heat = 0
        return blk
    src, metas, consts = _assemble_region(parts)
    ns = dict(BASE_GLOBALS)
    ns.update(consts)
    ns["METAS"] = metas
    ns["CARRY"] = CARRY
    exec(compiled(src, f"<region {blk.eip:#010x}>"), ns)  # noqa: S102 - our own generated source
    region = Block(ns["block"], blk.eip, blk.count, blk.end, page, src)
    spans = []
    for eip, *_, off, live in parts:
        start = page | ((base + eip) & 0xFFF)
        spans.append((start, start + off, live))
    region.parts = (frozenset(p[0] for p in parts), tuple(spans))
    return _enter_at(cpu, region, blk, pa)


def _part(cpu, known: Block | None, eip: int, ppa: int, rewrites: int, emask: int) -> tuple:
    """The block at ``eip`` as a region's part, kept on its Block for every
    region it joins (the Block stands for its bytes: a store over them drops
    it): (eip, Emitter, insns, cycles, EIPs, cycles before each, end, bytes,
    live immediates, where it leads), or () if it cannot join one."""
    if known is not None and known.insns:     # translated already: no need to decode them again
        insns, fault, cross, off = known.insns, None, False, known.size
    else:
        insns, fault, cross, off = decode_run(cpu, eip, ppa, MAX_BLOCK)
    if fault is not None or cross or not insns or any(uses_helper(i) for i in insns):
        return ()
    end = (insns[-1].eip + insns[-1].length) & emask
    em = Emitter(cpu)
    em.ind = 4
    # Code rewritten often reads its immediates live (P:059), at the start
    # of each pass through its block here.
    live = live_immediates(em, insns, ppa) if rewrites and ppa + off <= cpu.mem.size else ()
    total, _, eips, cycles = emit_run(em, insns)
    if total < len(insns):
        return ()       # (none such: but the budget test between blocks relies on it)
    prune(em)
    # (A block looping on itself joins too: the region's loop runs its passes
    # about as cheaply as its own would, and entering and leaving it costs no
    # trips through the dispatcher.)
    return (eip, em, insns, total, eips + [end], cycles + [total], end, off, live,
            successors(insns[-1], end))


def _enter_at(cpu, region: Block, blk: Block, pa: int) -> Block:
    """Cache ``region`` in place of plain block ``blk``, entered at its EIP.

    The entry is registered over every block of the region, so a store to any
    of them drops it, as it drops the region itself (P:029)."""
    entry = region if region.eip == blk.eip else \
        Block(region.fn, blk.eip, blk.count, blk.end, region.page, region.source)
    entry.parts = region.parts
    cpu.bcache[pa] = entry
    register(cpu, cpu.bcache, pa, pa & ~0xFFF, region.parts[1])
    return entry


TAKEN = f"tk += {BRANCH_TAKEN}"      # how a block's lines count a taken branch


def _taken(lines: list[str]) -> list[int]:
    """Where ``lines`` count a taken branch."""
    return [i for i, ln in enumerate(lines) if ln.strip() == TAKEN]


def _count_cycles(lines: list[str], total: int) -> tuple[list[str], str]:
    """A block's lines with its cycles counted where its branch is decided,
    and what is left to count at its end."""
    at = _taken(lines)
    if len(at) == 1:
        i = at[0]
        depth = len(lines[i]) - len(lines[i].lstrip())
        if depth == 0:              # always taken (jmp, call, ret)
            return lines[:i] + lines[i + 1:], f"cyc_ += {total + BRANCH_TAKEN}; "
        if depth == 4 and i + 3 == len(lines) and lines[i + 1] == "else:" \
                and lines[i + 2].startswith("    nxt = "):   # a closing jcc's two arms
            return (lines[:i] + [f"    cyc_ += {total + BRANCH_TAKEN}"] + lines[i + 1:]
                    + [f"    cyc_ += {total}"]), ""
    return [ln.replace(TAKEN, f"cyc_ += {BRANCH_TAKEN}") for ln in lines], f"cyc_ += {total}; "


def _loops_back(lines: list[str], eip: int) -> int | None:
    """The line counting the taken branch of a block that jumps back to its
    own start at ``eip`` (the branch that loops), or None if it does not."""
    at = _taken(lines)
    if len(at) != 1 or at[0] == 0:
        return None
    i = at[0]
    ind = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
    return i if lines[i - 1] == f"{ind}nxt = {eip:#x}" else None


def _closing_jump(lines: list[str], eip: int) -> tuple[str, str] | None:
    """For a looping block's lines (its taken branch's count gone) that end
    in a conditional jump back to ``eip`` and nothing after it: the jump's
    test line and its other arm's line."""
    if len(lines) >= 4 and lines[-4].startswith("if ") and lines[-4].endswith(":") \
            and lines[-3] == f"    nxt = {eip:#x}" and lines[-2] == "else:" \
            and lines[-1].startswith("    nxt = "):
        return lines[-4], lines[-1].strip()
    return None


def _assemble_region(parts: list) -> tuple[str, tuple, dict]:
    # The blocks in address order, found by a tree of comparisons (P:058).
    parts = sorted(parts, key=lambda p: p[0])
    text = "\n".join(ln for p in parts for ln in p[1].lines)
    used = [r for r in REGS if r in text]
    written = [r for r in REGS if f" {r} = " in text]
    watch = "sl = 1" in text
    most = max(len(p[2]) for p in parts)
    out = ["def block(cpu, budget, cycle_budget):"]
    if used:
        out.append("    R = cpu.r")
        out.append("    eax, ecx, edx, ebx, esp, ebp, esi, edi = R")
    fetch = [f"{name} = {src}" for name, src in FETCH if name + "[" in text or name + ".get" in text]
    if fetch:
        out.append("    " + "; ".join(fetch))
    # fo_..fr_: the last block's lazy flags, kept in locals until a block that
    # reads or sets the CPU's own flags, a fault, or the way out (fo_ = 0:
    # the CPU holds them).  ran_ counts instructions (low 32 bits) and memory
    # accesses (above) in one addition per block; cycles are counted apart,
    # for the budget.
    out.append("    tk = 0; it = 0; cyc_ = 0; fo_ = fa_ = fb_ = fr_ = 0; sl = 0; ran_ = 0")
    # One test after each block: every inline instruction costs at least a
    # cycle, so instructions <= cyc_, and stopping once cyc_ + most > budget
    # also stops before the instruction budget could be overrun.  With
    # breakpoints set, or the way out at one of the region's blocks, it stops
    # after each.  After a slow-path access it stops if `code_generation`
    # moved: its code was dropped, or a page walk added cycles the budget
    # does not know of.
    starts = tuple(p[0] for p in parts)
    out.append(f"    cb = budget - {most - 1}")
    out.append("    if cycle_budget < cb: cb = cycle_budget")
    out.append(f"    if cb > {MAX_CYCLES:#x}: cb = {MAX_CYCLES:#x}")
    out.append(f"    if cpu.breakpoints or cpu.exit_eip in {set(starts)!r}: cb = 0")
    if watch:
        out.append("    gen = cpu.code_generation")
    moved = "sl and cpu.code_generation != gen"       # (after a slow access only)
    changed, unchanged = (f" or {moved}", f" and not ({moved})") if watch else ("", "")
    stop = f"if cyc_ >= cb{changed}: break"
    out.append("    nxt = cpu.eip")     # (any of its blocks may be where it is entered)
    out.append("    try:")
    out.append("        while True:")
    consts: dict[str, object] = {}
    metas = []
    first = []              # each block's first line (its `if nxt ==`), for unwind()

    def block_lines(k: int, part: tuple, ind: str, then: int | None) -> None:
        eip, em, insns, total, eips, cycles, end, _, _ = part
        # Each block's constants get names of their own in the shared namespace.
        body = "\n".join(ln[16:] for ln in em.lines if ln)
        for name, value in em.consts.items():
            new = f"{name}_{k}"
            body = body.replace(name + "(", new + "(")
            consts[new] = value
        out.append(f"{ind}if nxt == {eip:#x}:")
        first.append(len(out))
        ind += "    "
        lines = body.split("\n")
        back = _loops_back(lines, eip)
        if back is not None:
            # A block that jumps back to its own start loops where it is, its
            # passes counted as a plain looping block counts them
            # (blocks.py): the cycle budget becomes a number of passes.
            del lines[back]
            out.append(f"{ind}lim_ = -((cyc_ - cb) // {total + BRANCH_TAKEN})")
            out.append(f"{ind}while True:")
            outer, ind = ind, ind + "    "
        last = em.stores[-1][1] if em.stores else None
        # A block that reads no more of the flags it was entered with than
        # their carry (an inc or dec keeps it) takes it from the locals.
        carry_only = "cpu._ef" not in body and "cpu.fo" not in body and "(cpu" not in body \
            and "cpu.eflags" not in _CARRY_IN.sub("", body)
        if carry_only and "cpu.eflags" in body:
            lines = [_CARRY_IN.sub(CARRY_IN, ln) for ln in lines]
        flush = not carry_only
        if flush:
            out.append(ind + FLUSH + "; fo_ = 0")
        out.extend(ind + ln for ln in em.prologue)     # live immediates
        flags = []
        if last is not None:
            code, a, b, r = last
            if b == "cfin":
                flags.append(f"cfin = {CARRY_IN if carry_only else 'cpu.eflags & 1'}")
            # (a cmp's flags ignore fr: the result is worked out from a and b)
            flags.append(f"fo_ = {code}; fa_ = {a}; fb_ = {b}"
                         + ("" if code >> 2 == CMP else f"; fr_ = {r}"))
        elif em.stores:
            flags.append("fo_ = 0")
        ran = len(insns) | (em.mem_accesses + 1) << 32
        if back is None:
            # A taken branch ends its block, so nothing can fault after it: its
            # cycles, and the block's, go straight to the region's count, in
            # each arm of a closing conditional jump.
            lines, count = _count_cycles(lines, total)
            out.extend(ind + ln for ln in lines)
            if em.end_eip is None:
                out.append(f"{ind}nxt = {end:#x}")
            out.extend(ind + ln for ln in flags)
            out.append(f"{ind}{count}ran_ += {ran:#x}")
        else:
            closing = _closing_jump(lines, eip)
            if closing is None:
                out.extend(ind + ln for ln in lines + flags)
                out.append(f"{ind}it += 1")
                out.append(f"{ind}if nxt != {eip:#x} or it >= lim_{changed}: break")
            else:
                # The jump that loops goes straight round; its flags need
                # only be kept once the loop is left (a fault on a later pass
                # finds them in the block's temporaries, as a looping block's
                # does), unless the block reads the flags it was entered with.
                cond, other = closing
                out.extend(ind + ln for ln in lines[:-4] + (flags if flush else []))
                out.append(f"{ind}{cond}")
                out.append(f"{ind}    it += 1")
                out.append(f"{ind}    if it < lim_{unchanged}: continue")
                out.append(f"{ind}    nxt = {eip:#x}")
                out.append(f"{ind}else:")
                out.append(f"{ind}    it += 1")
                out.append(f"{ind}    {other}")
                out.append(f"{ind}break")
                if not flush:
                    out.extend(outer + ln for ln in flags)
            ind = outer
            out.append(f"{ind}cyc_ += it * {total + BRANCH_TAKEN} - (nxt != {eip:#x}) * {BRANCH_TAKEN};"
                       f" ran_ += it * {ran:#x}; it = 0")
        out.append(f"{ind}{stop}")
        # Straight on to the next block of the leaf if that is where it leads
        # (a fall-through, often), else back to the top of the tree.
        out.append(f"{ind}if nxt != {then:#x}: continue" if then is not None else f"{ind}continue")
        metas.append((tuple((REGS.index(r), r) for r in written), tuple(em.stores), back is not None, total,
                      len(insns), em.mem_accesses + 1, tuple(eips), tuple(cycles)))

    def tree(lo: int, hi: int, ind: str) -> None:
        # parts[lo:hi]: a few tested one by one, more split at the middle address.
        if hi - lo <= LEAF:
            for k in range(lo, hi):
                block_lines(k, parts[k], ind, parts[k + 1][0] if k + 1 < hi else None)
            out.append(f"{ind}break")
            return
        mid = (lo + hi) // 2
        out.append(f"{ind}if nxt < {parts[mid][0]:#x}:")
        tree(lo, mid, ind + "    ")
        tree(mid, hi, ind)

    tree(0, len(parts), " " * 12)
    out.append("    except CPUFault:")
    out.append("        UNWIND(cpu, locals(), METAS)")
    out.append("        raise")
    if written:
        out.append("    " + "; ".join(f"R[{REGS.index(r)}] = {r}" for r in written))
    out.append("    " + FLUSH)
    out.append("    cpu.cycles += cyc_; cpu.instructions += ran_ & 0xffffffff; "
               "cpu.tlb.accesses += ran_ >> 32")
    out.append("    cpu.eip = nxt")
    src = "\n".join(out) + "\n"
    # Each block's instruction comments, for unwind() to count (P:024).
    lines = marks(src)
    bounds = first[1:] + [len(out) + 1]
    metas = [m + (tuple(ln for ln in lines if lo < ln < hi),)
             for m, lo, hi in zip(metas, first, bounds, strict=True)]
    return src, (tuple(metas), tuple(first)), consts
