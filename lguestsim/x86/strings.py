"""String instructions: movs, stos, lods, cmps, scas, ins, outs, with rep.

Part of the core's hot path, so parts of it are dense.  Each iteration is one
element; ESI/EDI/ECX move after the element is done, so a fault part-way
through a rep leaves the registers at the element that faulted and EIP on the
instruction (with its prefixes), and the handler's iret restarts it there, as
on hardware.  A rep instruction is also interruptible between iterations, as
a 386 is: it stops, EIP still on itself and ECX/ESI/EDI saying how far it
got, when an external interrupt is waiting and IF lets it in, when the trap
flag asks for a #DB after the iteration, when `cpu.run()` reaches its cycle
deadline, and on its own after 64Ki iterations, so that a step is bounded.  Long runs of rep movs, stos, lods, scas and cmps go a page at a time as
slice operations on the RAM bytearray, with exactly the result, flags,
faults, accessed/dirty bits, cycle count and stopping points of going
element by element; ins and outs go element by element, for their ports.
"""

from __future__ import annotations

from . import operands as O
from . import timing
from .decode import ES, Insn
from .flags import DF, IF, SUB, TF, op_code
from .system import check_io
from .timing import memory_kind, timing_key

M32 = 0xFFFFFFFF
NEVER = 1 << 62
#: Iterations one execution may do before it stops on its own, so that
#: step() and run(n) come back in bounded time whatever ECX holds.
REP_CAP = 1 << 16
SIZE = {"b": 1, "w": 2, "d": 4}


#: P:049 A rep string instruction can run for a long time: `rep stosb` with
# ECX at four billion is one instruction.  A 386 does not make the machine
# wait for it.  Between two iterations it looks for a pending interrupt, and
# if IF lets one in it stops with EIP still on the instruction and ECX, ESI
# and EDI saying how far it got; the interrupt is delivered as after any
# instruction, and the handler's `iret` comes back to the rep, which carries
# on where it stopped.  The core does the same, and also stops where only a
# simulator needs to: at the cycle deadline of `cpu.run()` (the Host's timer,
# which is how a Guest's long `rep stosb` still gets preempted), and on its
# own every 64Ki iterations, so that `step()` comes back soon whatever ECX
# holds (such a partial execution counts toward `run(n)`'s limit like an
# instruction, so `run(n)` comes back soon too).  A stop changes no count:
# the instruction's own cost and the rep set-up are charged once, when it
# completes, and `cpu.instructions` counts it once, then.  (A real 386 pays
# the set-up again when it resumes; the core leaves that out, so a run that
# stops a rep in ten places costs exactly what it costs in one go.)
def string_op(cpu, insn: Insn) -> bool | None:
    """Run a string instruction; True if a rep stopped between iterations."""
    op = insn.mnemonic[:-1]
    size = SIZE[insn.mnemonic[-1]]
    amask = M32 if insn.addr32 else 0xFFFF
    r = cpu.r
    cost = timing.BASE[op]
    src_seg = 3 if insn.seg is None else insn.seg
    step = -size if cpu._ef & DF else size
    if insn.rep is None:
        _element(cpu, op, size, step, amask, src_seg)
        cpu.cycles += cost
        return None
    if r[1] & amask == 0:
        cpu.cycles += timing.REP_SETUP       # no iteration, so no I/O permission check
        return None
    compare = op in ("cmps", "scas")
    until_zf = insn.rep == "rep"          # repe/repz: stop once ZF = 0
    # Element by element where every iteration must be looked at: alignment
    # checks, the trap flag, an interrupt already waiting (after sti).
    bulk = (op not in ("ins", "outs") and not cpu.align_check and not cpu._ef & TF
            and not (cpu.pending and cpu._ef & IF))
    deadline = cpu.stop_cycles
    done = 0
    while True:
        n = 0
        if bulk:
            n = _bulk(cpu, op, size, step, amask, src_seg, REP_CAP - done, deadline, cost,
                      until_zf)
        if n == 0:
            _element(cpu, op, size, step, amask, src_seg)
            cpu.cycles += cost
            r[1] = (r[1] & ~amask & M32) | ((r[1] - 1) & amask)
            n = 1
        done += n
        if r[1] & amask == 0 or (compare and (cpu.fr == 0) != until_zf):
            cpu.cycles += timing.REP_SETUP
            return None
        # Between two iterations: does anything ask the instruction to stop?
        if (cpu.pending and cpu._ef & IF) or cpu._ef & TF or cpu.cycles >= deadline \
                or done >= REP_CAP:
            break
    # Stopped: EIP stays on the instruction, which is not counted (nor its
    # cost, which the block adds after this helper) until it completes.
    cpu.instructions -= 1
    cpu.partial_reps += 1
    cpu.cycles -= timing.cost(timing_key(insn), memory_kind(insn))
    return True


def _adv(r: list, i: int, step: int, amask: int) -> None:
    r[i] = (r[i] & ~amask & M32) | ((r[i] + step) & amask)


def _element(cpu, op: str, size: int, step: int, amask: int, src_seg: int) -> None:
    """One iteration, through the CPU's checked slow paths (ECX is the caller's)."""
    r = cpu.r
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
        bits = size * 8
        cpu.eflags  # noqa: B018 - materialise the old flags before replacing them
        cpu.fo, cpu.fa, cpu.fb, cpu.fr = op_code(SUB, bits), a, b, (a - b) & ((1 << bits) - 1)
    elif op == "ins":
        check_io(cpu, r[2] & 0xFFFF, size)      # every iteration, as the manual's loop
        v = cpu.port_in(r[2] & 0xFFFF, size)
        cpu.write_seg(ES, di, (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
        _adv(r, 7, step, amask)
    else:  # outs
        check_io(cpu, r[2] & 0xFFFF, size)
        v = int.from_bytes(cpu.read_seg(src_seg, si, size), "little")
        cpu.port_out(r[2] & 0xFFFF, size, v)
        _adv(r, 6, step, amask)


def _room(off: int, la: int, size: int, step: int, amask: int) -> int:
    """Elements from offset ``off`` (linear ``la``) that stay inside its page
    and do not wrap the address size: 0 if the first one already straddles."""
    if step > 0:
        return min((0x1000 - (la & 0xFFF)) // size, (amask - off) // size + 1)
    if (la & 0xFFF) + size > 0x1000:
        return 0
    return min((la & 0xFFF) // size + 1, off // size + 1)


def _seg_ok(cpu, sreg: int, off: int, size: int, write: bool) -> bool:
    try:
        cpu.seg_lin(sreg, off, size, write)
    except Exception:  # noqa: BLE001 - the element path raises the fault itself
        return False
    return True


# The bulk path of the rep string instructions (all but the port
# ones).  Going element by element through the CPU's slow path costs a few
# microseconds a byte; a page at a time with one slice of the RAM bytearray
# costs about as much per page.  What makes the shortcut exact is doing, for the chunk's first
# element, precisely what the element path does: the segment checks, then
# the translation of the source (a read) and of the destination (a write),
# which is where a page fault, or the accessed and dirty bits, can happen.
# Every later element of the chunk lies in the same two pages and within the
# segments (checked for the last element), so it could not fault or walk.
# Overlapping `movs` copies keep the byte-at-a-time result: when the
# destination runs ahead of the source by d bytes, each element reads what
# an earlier one wrote, so the first d bytes repeat.  Decoded code on a
# written page is told once per chunk.  `scas` and `cmps` look for the first
# element that ends the rep and stop there, with its flags.
def _bulk(cpu, op: str, size: int, step: int, amask: int, src_seg: int, most: int,
          deadline: int, cost: int, until_zf: bool) -> int:
    """Do up to ``most`` iterations within one page; 0 when the element path must."""
    r = cpu.r
    count = r[1] & amask
    n = min(count, most)
    src = op in ("movs", "lods", "cmps")
    dst = op != "lods"
    write = op in ("movs", "stos")
    if dst:
        di = r[7] & amask
        dla = (cpu.sregs[ES].base + di) & M32
        n = min(n, _room(di, dla, size, step, amask))
    if src:
        si = r[6] & amask
        sla = (cpu.sregs[src_seg].base + si) & M32
        n = min(n, _room(si, sla, size, step, amask))
    if n < 2:
        return 0
    if src and not (_seg_ok(cpu, src_seg, si, size, False)
                    and _seg_ok(cpu, src_seg, si + step * (n - 1), size, False)):
        return 0
    if dst and not (_seg_ok(cpu, ES, di, size, write)
                    and _seg_ok(cpu, ES, di + step * (n - 1), size, write)):
        return 0
    # The first element's translations, in the element path's order: may fault or walk.
    user = cpu.cpl == 3
    tlb = cpu.tlb
    if src:
        tlb.accesses += 1
        ps = cpu._phys(sla, False, user)
    if dst:
        tlb.accesses += 1
        pd = cpu._phys(dla, write, user)
    if deadline < NEVER:
        # Stop at the first iteration boundary at or past the deadline.
        n = min(n, max(1, -((cpu.cycles - deadline) // cost)))
    mem = cpu.mem
    if op in ("lods", "scas", "cmps"):
        n = _read_only(cpu, op, size, step, ps if src else 0, pd if dst else 0, n, until_zf)
    else:
        nbytes = n * size
        back = nbytes - size if step < 0 else 0      # first element to the chunk's low end
        pd -= back
        if op == "movs":
            data = _copy(cpu, ps - back, pd, nbytes, size, step)
            if data is None:
                tlb.accesses -= 2              # the element path counts them again
                return 0
        else:
            data = (r[0] & ((1 << (8 * size)) - 1)).to_bytes(size, "little") * n
        if pd + nbytes <= mem.size:
            cpu.ram[pd:pd + nbytes] = data
            mem.written(pd, nbytes)
        elif pd < mem.size:
            mem.write(pd, data)          # runs off the end of RAM: the bus drops the rest
    if src:
        _adv(r, 6, step * n, amask)
    if dst:
        _adv(r, 7, step * n, amask)
    tlb.accesses += (src + dst) * (n - 1)
    r[1] = (r[1] & ~amask & M32) | ((r[1] - n) & amask)
    cpu.cycles += n * cost
    return n


def _elements(mem, pa: int, n: int, size: int, step: int) -> list[int]:
    """The n elements from physical ``pa`` (the first one), in iteration order."""
    nbytes = n * size
    lo = pa if step > 0 else pa - nbytes + size
    raw = mem.read(lo, nbytes)
    if size == 1:
        vals = list(raw)
    else:
        vals = [int.from_bytes(raw[i:i + size], "little") for i in range(0, nbytes, size)]
    return vals if step > 0 else vals[::-1]


def _read_only(cpu, op: str, size: int, step: int, ps: int, pd: int, n: int,
               until_zf: bool) -> int:
    """lods, scas, cmps over up to n elements: how many ran (a compare may end the
    rep early), with EAX or the flags as the last of them left them."""
    mem = cpu.mem
    if op == "lods":
        last = _elements(mem, ps + step * (n - 1), 1, size, step)[0]
        O.set_reg(cpu, size * 8, 0, last)
        return n
    bits = size * 8
    b = _elements(mem, pd, n, size, step)
    if op == "scas":
        a = [O.get_reg(cpu, bits, 0)] * n
    else:
        a = _elements(mem, ps, n, size, step)
    # repe runs while the elements are equal, repne while they differ.
    k = next((i for i in range(n) if (a[i] == b[i]) != until_zf), n - 1)
    cpu.eflags  # noqa: B018 - materialise the old flags before replacing them
    cpu.fo, cpu.fa, cpu.fb, cpu.fr = op_code(SUB, bits), a[k], b[k], (a[k] - b[k]) & ((1 << bits) - 1)
    return k + 1


def _copy(cpu, ps: int, pd: int, nbytes: int, size: int, step: int) -> bytes | None:
    """The bytes a movs of ``nbytes`` from physical ``ps`` leaves at ``pd``, element
    by element in the direction of ``step`` (None: leave it to the element path)."""
    mem = cpu.mem
    src = mem.read(ps, nbytes)
    ahead = pd - ps if step > 0 else ps - pd     # how far the writes run ahead of the reads
    if ahead <= 0 or ahead >= nbytes:
        return src                               # no byte is read after it is written
    if ahead < size:
        return None                              # an element reads its own writes: rare
    if step > 0:
        pattern = src[:ahead]
        return (pattern * (nbytes // ahead + 1))[:nbytes]
    pattern = src[nbytes - ahead:]
    reps = pattern * (nbytes // ahead + 1)
    return reps[len(reps) - nbytes:]


# The string instructions' helper, by mnemonic (translate.py merges this table
# with system.py's).
HELPERS = {op + s: string_op for op in ("movs", "stos", "lods", "cmps", "scas", "ins", "outs")
           for s in "bwd"}
