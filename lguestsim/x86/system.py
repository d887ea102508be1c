"""The instructions carried out by Python functions rather than generated code.

Segment control (mov/pop/push sreg, lds..lss, far jmp/call/ret), interrupts
(int, into, int3, iret, hlt, cli, sti, popf), I/O (in, out), system
registers (lgdt, lidt, lldt, ltr, their stores, mov to and from CRn/DRn,
invlpg, clts, lmsw), the model-specific ones (cpuid, rdtsc, rdmsr, wrmsr,
sysenter, sysexit), the x87 escape and bound.  (The decimal adjustments are
with the arithmetic in alu.py, pusha, popa, enter and cmpxchg8b with the
moves in moves.py: each family keeps its slow-path helpers.)
Each ends its block, so it sees and changes the CPU object directly.  A
helper returns True when it has set EIP itself (a control transfer);
otherwise the block moves EIP past the instruction.
"""

from __future__ import annotations

from . import call_gates, interrupts, opcodes, segments, v86, x87
from . import operands as O
from .decode import Insn
from .faults import BP, GP, NM, OF, UD, CPUFault
from .flags import AC, DF, ID, IF, IOPL, NT, RF, TF, VM, WRITABLE
from .flags import OF as OF_BIT
from .paging import CR4_PGE

M32 = 0xFFFFFFFF
HELPERS: dict = {}


def helper(*names):
    def register(fn):
        for n in names:
            HELPERS[n] = fn
        return fn
    return register


def undefined(cpu, insn: Insn):
    raise CPUFault(UD)


#: P:032 lguest's Guest kernel runs in ring 1, and this little function is
# most of the reason it has to be paravirtualized.  `hlt`, `lgdt` and
# `lidt`, `lldt` and `ltr`, moves to and from control and debug registers,
# `invlpg`, `clts`, `lmsw`, `rdmsr` and `wrmsr`, `invd`: each calls
# `privileged()` first and raises #GP(0) anywhere but ring 0.  In ring 1 each
# of them would trap to the Host, so the Guest asks by hypercall instead: to
# switch page tables, load its IDT and GDT, flush the TLB, set its kernel
# stack or halt.  One unprivileged instruction is dangerous the other way
# round: `sysenter` jumps into ring 0 from any ring, to the code segment an
# MSR names, so the Host sets that MSR to 0 while a Guest runs, and
# `sysenter()` below then raises #GP (S:012).
def privileged(cpu) -> None:
    """Ring-0 only instructions raise #GP(0) elsewhere."""
    if cpu.cpl != 0:
        raise CPUFault(GP, 0)


#: P:033 A second privilege rule covers interrupts and I/O.  `cli`, `sti`,
# `in`, `out`, `ins` and `outs` are allowed only when the CPL is at most IOPL,
# the two-bit field in EFLAGS.  lguest's Guest kernel runs in ring 1 with
# IOPL 0, so `cli` and `sti` raise #GP(0), and the Guest keeps its interrupt
# flag in `lguest_data` instead (G:033).  `in` and `out` get a second chance
# through the TSS's I/O permission bitmap (`check_io()` below), but the
# Switcher's TSS has none, so they raise #GP(0) as well and the Host
# emulates them as an empty bus (H:130).  `popf` is the quiet one: above IOPL
# it leaves IF alone without a word (`popf()` below), and outside ring 0 it
# cannot change IOPL at all, so a Guest cannot grant itself the right.
def iopl_ok(cpu) -> bool:
    """CPL <= IOPL (always in real mode; in virtual-8086 mode, CPL is 3)."""
    return not cpu.cr0 & 1 or cpu.cpl <= (cpu._ef & IOPL) >> 12


def check_io(cpu, port: int, size: int) -> None:
    """in/out above IOPL, and always in virtual-8086 mode: the TSS I/O permission
    bitmap must allow every byte."""
    if iopl_ok(cpu) and not cpu.v86:
        return
    tr = cpu.tr_cache
    if not tr.valid or tr.limit < 0x67:
        raise CPUFault(GP, 0)
    base = int.from_bytes(cpu.read_sup((tr.base + 0x66) & M32, 2), "little")
    byte = base + port // 8
    if byte + 1 > tr.limit:
        raise CPUFault(GP, 0)
    bits = int.from_bytes(cpu.read_sup((tr.base + byte) & M32, 2), "little")
    if (bits >> (port & 7)) & ((1 << size) - 1):
        raise CPUFault(GP, 0)


def next_eip(cpu, insn: Insn) -> int:
    return (insn.eip + insn.length) & (M32 if cpu.code32 else 0xFFFF)


# ---------------------------------------------------------------- segments
@helper("mov")
def mov_special(cpu, insn: Insn):
    dst, src = insn.operands
    if dst[0] == "s":
        sel = O.read(cpu, insn, src) & 0xFFFF
        if dst[2] == 1:
            raise CPUFault(UD)
        cpu.load_segment(dst[2], sel)
        if dst[2] == 2:
            cpu.inhibit = True
        return None
    privileged(cpu)
    if dst[0] == "c":
        value = cpu.r[src[2]]
        n = dst[2]
        if n == 0:
            if value & 0x80000000 and not value & 1:
                raise CPUFault(GP, 0)
            cpu.cr0 = value
        elif n == 2:
            cpu.cr2 = value
        elif n == 3:
            cpu.cr3 = value
        elif n == 4:
            if value & ~0x69F:
                raise CPUFault(GP, 0)
            cpu.cr4 = value
        return None
    if src[0] == "c":
        n = src[2]
        cpu.r[dst[2]] = {0: cpu.cr0, 2: cpu.cr2, 3: cpu.cr3, 4: cpu.cr4}[n] & M32
        return None
    if dst[0] == "d":
        cpu.dr[dst[2]] = cpu.r[src[2]]
        return None
    if src[0] == "d":
        cpu.r[dst[2]] = cpu.dr[src[2]]
        return None
    raise CPUFault(UD)


@helper("push")
def push_special(cpu, insn: Insn):
    op = insn.operands[0]
    size = 4 if insn.op32 else 2
    if op[0] == "s":
        O.push(cpu, size, cpu.sregs[op[2]].selector)
    else:
        O.push(cpu, size, O.read(cpu, insn, op))
    return None


@helper("pop")
def pop_special(cpu, insn: Insn):
    op = insn.operands[0]
    size = 4 if insn.op32 else 2
    if op[0] == "s":
        if op[2] == 1:
            raise CPUFault(UD)
        # (E)SP steps by the stack it was popped from: POP SS through a 16-bit
        # stack moves SP only, even if the new SS is a 32-bit one.
        mask = M32 if cpu.sregs[2].big else 0xFFFF
        sel = int.from_bytes(cpu.read_seg(2, cpu.r[4] & mask, size), "little") & 0xFFFF
        if op[2] == 2:          # (O.peek and cpu.load_segment, one call each fewer)
            segments.load_ss(cpu, sel)
        else:
            segments.load_data_segment(cpu, op[2], sel)
        cpu.r[4] = (cpu.r[4] & ~mask & M32) | ((cpu.r[4] + size) & mask)
        if op[2] == 2:
            cpu.inhibit = True
        return None
    # pop r/m: the address is computed with ESP already incremented.
    value = O.peek(cpu, size)
    old = cpu.r[4]
    O.pop(cpu, size)
    try:
        O.write(cpu, insn, op, value)
    except CPUFault:
        cpu.r[4] = old
        raise
    return None


@helper("lds", "les", "lfs", "lgs", "lss")
def load_far_pointer(cpu, insn: Insn):
    dst = insn.operands[0]
    size = 4 if insn.op32 else 2
    la = O.linear(cpu, insn, (size + 2) * 8, False)
    raw = cpu.read_linear(la, size + 2)
    off = int.from_bytes(raw[:size], "little")
    sel = int.from_bytes(raw[size:], "little")
    sreg = {"les": 0, "lss": 2, "lds": 3, "lfs": 4, "lgs": 5}[insn.mnemonic]
    cpu.load_segment(sreg, sel)
    O.set_reg(cpu, size * 8, dst[2], off)
    return None


@helper("ljmp")
def far_jmp(cpu, insn: Insn):
    call_gates.far_transfer(cpu, insn, call=False)
    return True


@helper("lcall")
def far_call(cpu, insn: Insn):
    call_gates.far_transfer(cpu, insn, call=True)
    return True


@helper("lret")
def far_ret(cpu, insn: Insn):
    extra = insn.operands[0][2] if insn.operands else 0
    interrupts.far_return(cpu, insn.op32, False, extra, next_eip(cpu, insn))
    return True


@helper("iret", "iretd")
def iret(cpu, insn: Insn):
    interrupts.far_return(cpu, insn.op32, True, 0, next_eip(cpu, insn))
    return True


@helper("arpl")
def arpl(cpu, insn: Insn):
    if not cpu.protected:
        raise CPUFault(UD)
    dst, src = insn.operands
    d = O.read(cpu, insn, dst)
    s = O.read(cpu, insn, src)
    ef = cpu.eflags
    if (d & 3) < (s & 3):
        O.write(cpu, insn, dst, (d & ~3) | (s & 3))
        cpu.eflags = ef | 0x40
    else:
        cpu.eflags = ef & ~0x40
    return None


def _lar_lsl(cpu, insn: Insn, want_limit: bool):
    if not cpu.protected:
        raise CPUFault(UD)
    sel = O.read(cpu, insn, insn.operands[1]) & 0xFFFF
    ef = cpu.eflags & ~0x40
    ok = False
    if sel & 0xFFFC:
        try:
            d = segments.fetch_descriptor(cpu, sel)
        except CPUFault:
            d = None
        if d is not None:
            valid_sys = {1, 2, 3, 9, 0xB} | ({4, 5, 0xC} if not want_limit else set())
            conforming = d.is_code and d.type & 4
            if d.system and d.type not in valid_sys:
                ok = False
            elif not conforming and (d.dpl < cpu.cpl or d.dpl < (sel & 3)):
                ok = False
            else:
                ok = True
    if ok:
        value = d.limit if want_limit else d.high & 0x00F0FF00
        O.write(cpu, insn, insn.operands[0], value)
        ef |= 0x40
    cpu.eflags = ef
    return None


@helper("lar")
def lar(cpu, insn):
    return _lar_lsl(cpu, insn, False)


@helper("lsl")
def lsl(cpu, insn):
    return _lar_lsl(cpu, insn, True)


@helper("verr", "verw")
def verr_verw(cpu, insn: Insn):
    if not cpu.protected:
        raise CPUFault(UD)
    sel = O.read(cpu, insn, insn.operands[0]) & 0xFFFF
    ok = False
    if sel & 0xFFFC:
        try:
            d = segments.fetch_descriptor(cpu, sel)
        except CPUFault:
            d = None
        if d is not None and not d.system:
            conforming = d.is_code and d.type & 4
            if conforming or (d.dpl >= cpu.cpl and d.dpl >= (sel & 3)):
                if insn.mnemonic == "verr":
                    ok = not d.is_code or bool(d.type & 2)
                else:
                    ok = not d.is_code and bool(d.type & 2)
    ef = cpu.eflags
    cpu.eflags = (ef | 0x40) if ok else (ef & ~0x40)
    return None


# -------------------------------------------------------------- interrupts
@helper("int")
def int_n(cpu, insn: Insn):
    v86.sensitive(cpu)     # INT n (not INT3 or INTO) needs IOPL 3 in virtual-8086 mode
    cpu.deliver(insn.operands[0][2], None, return_eip=next_eip(cpu, insn), software=True)
    return True


@helper("int3")
def int3(cpu, insn: Insn):
    cpu.deliver(BP, None, return_eip=next_eip(cpu, insn), software=True)
    return True


@helper("int1")
def int1(cpu, insn: Insn):
    cpu.deliver(1, None, return_eip=next_eip(cpu, insn), software=False)
    return True


@helper("into")
def into(cpu, insn: Insn):
    if cpu.eflags & OF_BIT:
        cpu.deliver(OF, None, return_eip=next_eip(cpu, insn), software=True)
        return True
    return None


@helper("hlt")
def hlt(cpu, insn: Insn):
    privileged(cpu)
    cpu.eip = next_eip(cpu, insn)
    cpu.halted = True
    return True


@helper("cli")
def cli(cpu, insn: Insn):
    if not iopl_ok(cpu):
        raise CPUFault(GP, 0)
    cpu.eflags = cpu.eflags & ~IF
    return None


@helper("sti")
def sti(cpu, insn: Insn):
    if not iopl_ok(cpu):
        raise CPUFault(GP, 0)
    was_enabled = cpu._ef & IF
    cpu.eflags = cpu.eflags | IF
    if not was_enabled:
        cpu.inhibit = True   # interrupts wait until after the next instruction
    return None


@helper("popf", "popfd")
def popf(cpu, insn: Insn):
    v86.sensitive(cpu)
    size = 4 if insn.op32 else 2
    new = O.peek(cpu, size)
    O.pop(cpu, size)
    old = cpu.eflags
    changeable = WRITABLE & ~(RF | VM)
    if cpu.cr0 & 1 and cpu.cpl > 0:
        changeable &= ~IOPL
        if cpu.cpl > (old & IOPL) >> 12:
            changeable &= ~IF
    if size == 2:
        changeable &= 0xFFFF
    cpu.eflags = (old & ~changeable) | (new & changeable)
    return None


# --------------------------------------------------------------------- I/O
@helper("in", "out")
def port_io(cpu, insn: Insn):
    """in al/ax/eax, port  and  out port, al/ax/eax (port an imm8 or DX)."""
    is_in = insn.mnemonic == "in"
    reg, port_op = insn.operands if is_in else insn.operands[::-1]
    port = O.read(cpu, insn, port_op) & 0xFFFF
    size = reg[1] // 8
    check_io(cpu, port, size)
    if is_in:
        O.set_reg(cpu, reg[1], 0, cpu.port_in(port, size))
    else:
        cpu.port_out(port, size, O.get_reg(cpu, reg[1], 0))
    return None


# -------------------------------------------------------- system registers
@helper("lgdt", "lidt")
def load_table_register(cpu, insn: Insn):
    privileged(cpu)
    la = O.linear(cpu, insn, 48, False)
    raw = cpu.read_linear(la, 6)
    limit = int.from_bytes(raw[:2], "little")
    base = int.from_bytes(raw[2:], "little")
    if not insn.op32:
        base &= 0x00FFFFFF
    if insn.mnemonic == "lgdt":
        cpu.gdtr = (base, limit)
    else:
        cpu.idtr = (base, limit)
    return None


@helper("sgdt", "sidt")
def store_table_register(cpu, insn: Insn):
    base, limit = cpu.gdtr if insn.mnemonic == "sgdt" else cpu.idtr
    la = O.linear(cpu, insn, 48, True)
    cpu.write_linear(la, limit.to_bytes(2, "little") + base.to_bytes(4, "little"))
    return None


@helper("lldt", "ltr")
def load_system_selector(cpu, insn: Insn):
    """lldt / ltr: protected mode, ring 0; segments.py checks the descriptor."""
    if not cpu.protected:
        raise CPUFault(UD)
    privileged(cpu)
    load = segments.load_ldtr if insn.mnemonic == "lldt" else segments.load_tr
    load(cpu, O.read(cpu, insn, insn.operands[0]) & 0xFFFF)
    return None


@helper("sldt", "str")
def store_selector(cpu, insn: Insn):
    if not cpu.protected:
        raise CPUFault(UD)
    sel = cpu.ldtr if insn.mnemonic == "sldt" else cpu.tr
    op = insn.operands[0]
    if op[0] == "r":
        O.set_reg(cpu, 32 if insn.op32 else 16, op[2], sel)
    else:
        O.write(cpu, insn, ("m", 16), sel)
    return None


@helper("smsw")
def smsw(cpu, insn: Insn):
    op = insn.operands[0]
    if op[0] == "r":
        O.set_reg(cpu, 32 if insn.op32 else 16, op[2], cpu.cr0)
    else:
        O.write(cpu, insn, ("m", 16), cpu.cr0 & 0xFFFF)
    return None


@helper("lmsw")
def lmsw(cpu, insn: Insn):
    privileged(cpu)
    v = O.read(cpu, insn, insn.operands[0]) & 0xF
    # lmsw can set PE but never clear it
    cpu.cr0 = (cpu.cr0 & ~0xE) | v | (cpu.cr0 & 1)
    return None


@helper("clts")
def clts(cpu, insn: Insn):
    privileged(cpu)
    cpu.cr0 = cpu.cr0 & ~8
    return None


@helper("invlpg")
def invlpg(cpu, insn: Insn):
    privileged(cpu)
    la = O.linear(cpu, insn, 8, False)
    cpu.tlb.invalidate(la >> 12)
    return None


@helper("invd", "wbinvd")
def cache_flush(cpu, insn: Insn):
    privileged(cpu)
    return None


@helper("ud2")
def ud2(cpu, insn: Insn):
    raise CPUFault(UD)


@helper("simd")
def simd(cpu, insn: Insn):
    if cpu.cr0 & 0xC:   # TS or EM
        raise CPUFault(NM)
    raise CPUFault(UD)


@helper("wait")
def fwait(cpu, insn: Insn):
    if cpu.cr0 & 0xA == 0xA:   # TS and MP
        raise CPUFault(NM)
    x87.wait(cpu)              # a pending unmasked x87 error is reported here
    return None


#: P:040 Every x87 instruction comes through here, and the first thing it
# checks is CR0: with TS ("task switched") or EM set it raises #NM, "device
# not available", before touching anything.  That one check is the hardware
# side of lazy FPU switching: a kernel switching tasks sets TS instead of
# saving the FPU registers, and only a task that really uses the FPU traps,
# whereupon the kernel clears TS with `clts`, saves the old state and loads
# the new.  lguestsim's Host gives each Guest its own FPU, swapped in on each
# entry, and sets TS during a Guest's run only when the Guest asked for it by
# hypercall (LHCALL_TS, since `clts` and writes to CR0 are privileged); the
# #NM that follows goes to the Guest, whose kernel does its own lazy switching
# between its processes.  x87.py is the 387 itself (P:046); the MMX/SSE
# opcodes obey TS too, and so does `wait` when CR0.MP is set.
def fpu(cpu, insn: Insn):
    if cpu.cr0 & 0xC:
        raise CPUFault(NM)
    if insn.fpu[0] == "unsupported":
        raise CPUFault(UD)
    x87.execute(cpu, insn)
    return None


for _m, _op in set(opcodes.X87_TABLE.values()):
    HELPERS[_m] = fpu
HELPERS["fpu"] = fpu


# -------------------------------------------------------- model-specific
CPUID_VENDOR = b"GenuineIntel"


@helper("cpuid")
def cpuid(cpu, insn: Insn):
    leaf = cpu.r[0]
    if leaf == 0:
        v = CPUID_VENDOR
        cpu.r[0] = 1
        cpu.r[3] = int.from_bytes(v[0:4], "little")
        cpu.r[2] = int.from_bytes(v[4:8], "little")
        cpu.r[1] = int.from_bytes(v[8:12], "little")
    elif leaf == 1:
        # family 6 model 1 stepping 0; FPU, PSE, TSC, MSR, CX8, SEP, PGE, CMOV
        cpu.r[0] = 0x00000610
        cpu.r[3] = 0
        cpu.r[1] = 0
        cpu.r[2] = (1 << 0) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 11) | (1 << 13) | (1 << 15)
    else:
        cpu.r[0] = cpu.r[1] = cpu.r[2] = cpu.r[3] = 0
    return None


@helper("rdtsc")
def rdtsc(cpu, insn: Insn):
    if cpu.cr4 & 4 and cpu.cpl != 0:
        raise CPUFault(GP, 0)
    t = cpu.tsc
    cpu.r[0] = t & M32
    cpu.r[2] = (t >> 32) & M32
    return None


@helper("rdmsr")
def rdmsr(cpu, insn: Insn):
    privileged(cpu)
    n = cpu.r[1]
    if n == 0x10:
        v = cpu.tsc
    elif n in cpu.msr:
        v = cpu.msr[n]
    else:
        raise CPUFault(GP, 0)
    cpu.r[0] = v & M32
    cpu.r[2] = (v >> 32) & M32
    return None


@helper("wrmsr")
def wrmsr(cpu, insn: Insn):
    privileged(cpu)
    n = cpu.r[1]
    if n not in cpu.msr:
        raise CPUFault(GP, 0)
    cpu.msr[n] = (cpu.r[2] << 32) | cpu.r[0]
    return None


@helper("sysenter")
def sysenter(cpu, insn: Insn):
    cs = cpu.msr[0x174] & 0xFFFC
    if not cpu.protected or cs == 0:
        raise CPUFault(GP, 0)
    cpu.eflags = cpu.eflags & ~(VM | IF | RF)
    cpu.set_cs(segments.SegmentCache(cs, 0, M32, 0x9B, True, True), 0)
    cpu.set_segment(2, segments.SegmentCache(cs + 8, 0, M32, 0x93, True, True))
    cpu.r[4] = cpu.msr[0x175] & M32
    cpu.eip = cpu.msr[0x176] & M32
    return True


@helper("sysexit")
def sysexit(cpu, insn: Insn):
    cs = cpu.msr[0x174] & 0xFFFC
    if not cpu.protected or cs == 0 or cpu.cpl != 0:
        raise CPUFault(GP, 0)
    cpu.set_cs(segments.SegmentCache((cs + 16) | 3, 0, M32, 0xFB, True, True), 3)
    cpu.set_segment(2, segments.SegmentCache((cs + 24) | 3, 0, M32, 0xF3, True, True))
    cpu.r[4] = cpu.r[1]
    cpu.eip = cpu.r[2]
    return True


# ------------------------------------------------------ the rest, in Python
@helper("bound")
def bound(cpu, insn: Insn):
    reg = insn.operands[0]
    bits = reg[1]
    size = bits // 8
    raw = cpu.read_linear(O.linear(cpu, insn, 2 * bits, False), 2 * size)

    def signed(v):
        return v - (1 << bits) if v >> (bits - 1) else v
    lo = signed(int.from_bytes(raw[:size], "little"))
    hi = signed(int.from_bytes(raw[size:], "little"))
    idx = signed(O.get_reg(cpu, bits, reg[2]))
    if not lo <= idx <= hi:
        raise CPUFault(5)
    return None


# Unused imports kept meaningful for readers of the flag rules above.
_ = (AC, DF, ID, NT, TF, CR4_PGE)
