"""Blocks: the shape of a translated block's function, and its way back from a fault.

translate.py writes the instructions' code; this module wraps it in the
function every block is (set-up, body, write-back), keeps the compiled
result as a `Block`, and holds `unwind()`, the one function every block calls
when an instruction faults, to hand the CPU the precise state of that
instruction's boundary.  Compiled code is shared through `compiled()`: the
same source is compiled once per process, however many CPUs, sessions or
replays translate it, and once across processes through the code cache on
disk (code_cache.py).  Dense on purpose: this is the hot path's frame.
"""

from __future__ import annotations

import sys
from bisect import bisect_right

from . import code_cache
from .flags import materialize
from .timing import BRANCH_TAKEN

M32 = 0xFFFFFFFF
REGS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")


class Block:
    """A translated run of instructions: its compiled function and where it came from."""

    __slots__ = ("fn", "eip", "count", "end", "page", "source", "heat", "insns", "size", "parts",
                 "part")

    def __init__(self, fn, eip: int, count: int, end: int, page: int, source: str) -> None:
        self.fn = fn
        self.heat = 0           # runs left before it becomes a region's entry (0: never)
        self.eip = eip
        self.count = count
        self.end = end          # EIP just past the last instruction
        self.page = page
        self.source = source    # the generated Python, for the curious
        self.insns = ()         # a plain block's instructions, for a region to reuse
        self.size = 0           # and their bytes
        self.parts = None       # a region's: (its blocks' EIPs, their (start, end, live) spans)
        self.part = None        # this block's code as a region's part, once made (regions.py)


MAX_BLOCK = 48          # instructions in one block
# Runs of a plain block before run() makes it the entry of a region (regions.py).
HOT = 256

# Compiled code by source text.  Two CPUs booting the same Guest (a session's
# replay, the next test, a second Guest on the Host) write the same source for
# the same block, and compile() is most of what translating costs.
_CODE: dict[str, object] = {}
_CODE_MAX = 4096        # about seven boots' worth; a few tens of MB at most


def compiled(src: str, name: str):
    """The code object of ``src``: from memory, else from the code cache on disk,
    else compiled (code_cache.py).  ``name`` labels it in tracebacks only: the
    same source under another name shares its code."""
    code = _CODE.get(src)
    if code is None:
        if len(_CODE) >= _CODE_MAX:
            _CODE.clear()
        code = _CODE[src] = code_cache.code(src, name)
    return code


def register(cpu, cache: dict, key: int, page: int, spans) -> None:
    """Note that ``cache[key]`` holds code made from ``spans`` ((start, end,
    live immediates) of physical bytes on ``page``), so that a store over them
    drops it (P:029).  An entry for the same cache and key is replaced, so the
    page's list cannot grow for ever; the page's code span (a store outside it
    need not look at the list) only widens."""
    entries = [e for e in cpu._page_blocks.get(page, ()) if e[0] is not cache or e[1] != key]
    entries.extend((cache, key, start, stop, live) for start, stop, live in spans)
    cpu._page_blocks[page] = entries
    lo, hi = cpu._page_spans.get(page, spans[0][:2])
    cpu._page_spans[page] = (min(lo, *(s[0] for s in spans)), max(hi, *(s[1] for s in spans)))


# What a block's body may use of the CPU, by the local name it uses.
FETCH = (("TRD", "cpu.TRD"), ("TWD", "cpu.TWD"), ("RAM", "cpu.ram"), ("M16", "cpu.mem.m16"),
         ("M32", "cpu.mem.m32"))


#: P:024 The shape of every block, and why.  The function copies the
# registers its body uses out of `cpu.r` into local variables, because a
# Python local is much cheaper than a list item or an attribute, and writes
# back once, at the end, those it assigns; it does the same for the TLB dicts
# and the views of RAM it needs.  The body is the instructions' code in
# order, each opened by a comment naming it (`# 001001d8: inc`).  If one
# faults, `unwind()` below is handed the block's locals, and the line the
# fault came from (Python's traceback knows it) says which instruction it
# was: the comments before that line count the instructions that finished.
# unwind() writes back the registers, the lazy flags of the last instruction
# before the faulting one, and EIP and the cycle count as they stood before
# it: the state the SDM promises, as if the earlier instructions had run one
# by one and the faulting one had never started.  So the common path pays
# nothing for precise faults: no index is kept as it goes.  (Keeping that work
# out of every block's text also makes a block cheaper to compile, which is
# most of what a boot's fresh code costs.)  Cycles are summed while
# translating and added once.  An instruction left to a Python helper runs
# last, after the state has been handed back, and the block then returns True
# to tell `run()` that anything may have changed.  `Block.source` keeps the
# generated text: print one to see all of this in a dozen lines.
def assemble(em, n_inline: int, eip: int, total: int, helper_insn, fault,
             code32: bool, loops: bool) -> tuple[str, tuple]:
    """The block function's source around the emitter's body, and unwind()'s table."""
    if n_inline == 0 and helper_insn is not None and fault is None and not loops:
        # A helper alone (the Switcher is mostly these: segment loads, lgdt,
        # iret): nothing inline can fault or change a register, so the
        # general form's set-up and write-back would do nothing but cost.
        nxt = (helper_insn.eip + helper_insn.length) & (M32 if code32 else 0xFFFF)
        return "\n".join([
            "def block(cpu, budget, cycle_budget):",
            "    cpu.tlb.accesses += 1",
            f"    cpu.eip = {helper_insn.eip:#x}",
            f"    if not HELPER(cpu, HINSN): cpu.eip = {nxt:#x}",
            "    cpu.cycles += HCOST; cpu.instructions += 1",
            "    return True"]) + "\n", ()
    text = "\n".join(em.lines)
    # Only what the body uses is fetched, and only the registers it assigns
    # are written back: a short block's set-up costs as much as its body.
    # (No other name in generated code contains a register's name, and every
    # assignment to one is a line of its own: plain substring tests suffice.)
    used = [r for r in REGS if r in text]
    written = [r for r in REGS if f" {r} = " in text]
    out = ["def block(cpu, budget, cycle_budget):"]
    if used:
        out.append("    R = cpu.r")
        if len(used) > 3:
            out.append("    eax, ecx, edx, ebx, esp, ebp, esi, edi = R")
        else:
            out.append("    " + "; ".join(f"{r} = R[{REGS.index(r)}]" for r in used))
    fetch = [f"{name} = {src}" for name, src in FETCH if name + "[" in text or name + ".get" in text]
    if fetch:
        out.append("    " + "; ".join(fetch))
    out.extend("    " + ln for ln in em.prologue)
    out.append("    tk = 0; it = 0" + ("; sl = 0" if "sl = 1" in text else ""))
    if len(written) > 4:
        writeback = "R[:] = (eax, ecx, edx, ebx, esp, ebp, esi, edi)"
    else:
        writeback = "; ".join(f"R[{REGS.index(r)}] = {r}" for r in written)
    body = [ln for ln in em.lines if ln] + ["        pass"]     # (prune() leaves blanks)
    if loops:
        # Each iteration that carries on took the backward branch, so it cost
        # exactly total + BRANCH_TAKEN cycles: the cycle budget becomes an
        # iteration count, worked out once.  Only a slow-path access can reach
        # a page of code (the fast dicts hold none), so only a body with one
        # needs to watch `code_generation`: its own translation dropped, or
        # cycles a page walk added to the CPU's count behind the budget's
        # back (it then stops, and run() works the budget out again).
        out.append(f"    lim = min(budget // {n_inline}, -(-cycle_budget // {total + BRANCH_TAKEN}))")
        watch = "sl = 1" in text
        if watch:
            out.append("    gen = cpu.code_generation" + ("; lgen = cpu.live_generation" if em.live else ""))
        out.append("    try:")
        out.append("      while True:")
        out.extend("  " + ln for ln in body)
        out.append("          it += 1")
        out.append(f"          if nxt != {eip:#x} or it >= lim"
                   + (" or sl and (cpu.code_generation != gen or cpu.live_generation != lgen)" if watch and em.live
                      else " or sl and cpu.code_generation != gen" if watch else "") + ": break")
    else:
        out.append("    try:")
        out.extend(body)
        if fault is not None:
            out.append("        # fault: the next instruction cannot be fetched or decoded")
            out.append(f"        raise CPUFault({fault[0]}, {fault[1]})")
    out.append("    except CPUFault:")
    out.append("        UNWIND(cpu, locals(), META)")
    out.append("        raise")
    if writeback:
        out.append("    " + writeback)
    if em.stores and em.stores[-1][1] is not None:
        code, a, b, r = em.stores[-1][1]
        if b == "cfin":
            out.append("    cfin = cpu.eflags & 1")
        out.append(f"    cpu.fo = {code}; cpu.fa = {a}; cpu.fb = {b}; cpu.fr = {r}")
    if loops:
        out.append(f"    cpu.cycles += it * {total + BRANCH_TAKEN} - (nxt != {eip:#x}) * {BRANCH_TAKEN};"
                   f" cpu.instructions += it * {n_inline}")
        out.append(f"    cpu.tlb.accesses += it * {em.mem_accesses + 1}")
    else:
        out.append(f"    cpu.cycles += {total} + tk; cpu.instructions += {n_inline}")
        out.append(f"    cpu.tlb.accesses += {em.mem_accesses + 1}")  # + the fetch
    if helper_insn is not None:
        nxt = (helper_insn.eip + helper_insn.length) & (M32 if code32 else 0xFFFF)
        out.append(f"    cpu.eip = {helper_insn.eip:#x}")
        out.append(f"    if not HELPER(cpu, HINSN): cpu.eip = {nxt:#x}")
        out.append("    cpu.cycles += HCOST; cpu.instructions += 1")
        out.append("    return True")
    elif em.end_eip is not None:
        out.append(f"    cpu.eip = {em.end_eip}")
    else:
        out.append("    cpu.eip = EIPS[-1]")
    # (translate() adds the EIPs and cycle counts before each instruction)
    meta = (tuple((REGS.index(r), r) for r in written), tuple(em.stores), loops, total,
            n_inline, em.mem_accesses + 1)
    return "\n".join(out) + "\n", meta


def marks(src: str) -> tuple[int, ...]:
    """The line numbers of ``src``'s comments, each opening an instruction (P:024)."""
    return tuple(i for i, ln in enumerate(src.split("\n"), 1) if ln.lstrip().startswith("#"))


def unwind(cpu, L: dict, meta: tuple) -> None:
    """A block's instruction faulted: leave the CPU at that boundary.

    Called from the block's ``except``: the exception being handled says on
    which line of the block it was raised, and the instruction comments
    before that line (``marks``) give the index ``n`` of the instruction that
    faulted.  ``L`` is the block's locals, ``meta`` what assemble() knew of
    it: the registers it assigns, its flag producers ``(index, (op code, a, b,
    r))`` (``None`` for one that stored EFLAGS itself), whether it loops, its
    cycles and instructions per pass, its memory accesses (with the fetch),
    the EIP and cycles so far before each of its instructions, and the marks.
    A region (regions.py) passes ``(metas, first lines)``: its part is found
    by the line first.
    """
    line = sys.exc_info()[2].tb_lineno
    if "cyc_" in L:     # a region's blocks before this one, and their flags (regions.py)
        metas, first = meta
        meta = metas[bisect_right(first, line) - 1]
        if L["fo_"]:
            cpu.fo, cpu.fa, cpu.fb, cpu.fr = L["fo_"], L["fa_"], L["fb_"], L["fr_"]
        cpu.instructions += L["ran_"] & 0xFFFFFFFF
        cpu.cycles += L["cyc_"]
        cpu.tlb.accesses += L["ran_"] >> 32
    written, stores, loops, total, n_inline, accesses, eips, cycles, lines = meta
    n = bisect_right(lines, line) - 1
    R = cpu.r
    for i, name in written:
        R[i] = L[name]
    it, tk = L["it"], L["tk"]
    if loops:           # each pass before this one took the branch back (translate.py)
        tk = it * BRANCH_TAKEN
    # The flags are those of the last producer before instruction n; in a
    # loop past its first pass with none yet, the previous pass's last one.
    chosen, entry = None, True
    for idx, st in reversed(stores):
        if n > idx:
            chosen, entry = st, False
            break
    else:
        if loops and it and stores:
            chosen = stores[-1][1]
    if chosen is not None:
        code, a, b, r = chosen
        if b == "cfin":
            # INC/DEC keep the carry they found: the block's entry flags, or
            # in a later pass of a loop the carry its last producer left.
            last = stores[-1][1]
            if entry or not it or last is None or last[2] == "cfin":
                fb = cpu.eflags & 1
            else:
                fb = materialize(last[0], *(_value(L, t) for t in last[1:])) & 1
        else:
            fb = _value(L, b)
        cpu.fo = code
        cpu.fa = _value(L, a)
        cpu.fb = fb
        cpu.fr = _value(L, r)
    cpu.eip = eips[n]
    cpu.cycles += cycles[n] + it * total + tk
    cpu.instructions += n + it * n_inline
    cpu.tlb.accesses += accesses * (it + 1)


def _value(L: dict, name: str) -> int:
    """A flag input as the block held it: a local, or "0" (a cmp keeps no
    result, and a zeroed register's flags are constants)."""
    return 0 if name == "0" else L[name]
