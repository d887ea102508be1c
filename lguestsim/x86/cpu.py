"""The CPU: its state, and the loop that runs translated blocks.

This is the hot path of the whole project, so parts of it are dense on
purpose.  The CPU does not interpret one instruction at a time.  The first
time it reaches an address it decodes the straight-line run of instructions
there (a block, ending at a jump or at anything that changes the processor's
mode), translates the block into Python source, compiles it, and caches it
by physical address.  Running code is then a loop of dictionary lookups and
calls of compiled blocks.  A block keeps the registers in local variables and
counts cycles once at its end; if an instruction faults, the block's handler
writes back the exact state at that instruction and the CPU delivers the
fault as an i386 would.  Stepping uses one-instruction blocks, so a reader who
steps sees precisely the same semantics.

Interrupts are recognised between blocks.  When one is pending, or the trap
flag is on, or a breakpoint or instruction limit falls inside a block, the
CPU runs one-instruction blocks so that the boundary falls exactly where the
SDM puts it.
"""

from __future__ import annotations

from . import interrupts, paging, segments
from .blocks import MAX_BLOCK, Block
from .faults import GP, SS, CPUFault, TripleFault
from .flags import AC, ARITH, FIXED_ONE, IF, IOPL, TF, VM, WRITABLE, materialize
from .memory import PhysicalMemory
from .regions import form_region
from .segments import SegmentCache
from .translate import translate
from .x87 import FPU

M32 = 0xFFFFFFFF
CR0_PE, CR0_MP, CR0_EM, CR0_TS, CR0_ET, CR0_NE, CR0_WP, CR0_AM, CR0_PG = (
    1, 2, 4, 8, 0x10, 0x20, 1 << 16, 1 << 18, 1 << 31)
CR4_TSD, CR4_PSE, CR4_PGE = 4, 0x10, 0x80
MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP, MSR_TSC = 0x174, 0x175, 0x176, 0x10
REG_NAMES = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
SEG_NAMES = ("es", "cs", "ss", "ds", "fs", "gs")
SINGLE = 1 << 20   # mode-key bit of the caches of one-instruction blocks
ALIGNMENT = {2: 2, 4: 4, 8: 8, 10: 8}   # what #AC checks, by access size
# What _mode_changed() folds in besides the segment registers (and CPL).
_CR0_MODE = CR0_PE | CR0_AM
_EF_MODE = VM | IOPL | AC


def _gpr_property(i: int) -> property:
    return property(lambda self: self.r[i], lambda self, v: self.r.__setitem__(i, v & M32))


def _selector_property(i: int) -> property:
    return property(lambda self: self.sregs[i].selector)


class SegmentRegisters:
    """A read-only view of the six segment caches, indexed by name or number."""

    __slots__ = ("regs",)

    def __init__(self, regs: list) -> None:
        self.regs = regs

    def __getitem__(self, key: str | int) -> SegmentCache:
        return self.regs[SEG_NAMES.index(key) if isinstance(key, str) else key]

    def __iter__(self):
        return iter(self.regs)

    def __len__(self) -> int:
        return 6


#: P:015 The processor's state is plain Python attributes.  The eight
# general registers are the list `r` (with `eax` ... `edi` as properties for
# readers), EIP an int, and each segment register a `SegmentCache` holding
# the selector and the hidden base, limit and access rights (P:030).  GDTR,
# IDTR, LDTR, TR, CR0 to CR4 and the SYSENTER MSRs are all here, because
# lguest touches nearly every one of them.  EFLAGS is split in two: `_ef`
# holds the flags as stored, and `fo`, `fa`, `fb`, `fr` describe the last
# arithmetic operation, whose flags nobody has asked for yet (P:026).  Beside the
# architecture sit the simulator's own parts: cycle and instruction counters,
# the TLB and the FPU, the external interrupts waiting to be taken, the I/O
# port hooks (by default no device answers), and `exit_eip`, the address at
# which a run hands control back to the Python Host.
#
# `reset()` leaves the CPU where a 386 wakes up, in real mode.  Nobody here
# boots that way: the Host's set-up (H:005) and most tests start from
# `reset_flat32()`, protected mode with flat 4 GiB segments, and load real
# tables from there through the same checked paths a kernel's code uses.
class CPU:
    """An i386 (with the i486/i686 additions gcc uses) over a PhysicalMemory."""

    def __init__(self, mem: PhysicalMemory) -> None:
        self.mem = mem
        self.ram = mem.ram
        self.r = [0] * 8
        self.eip = 0
        self._ef = FIXED_ONE
        self.fo = self.fa = self.fb = self.fr = 0
        self.sregs = [SegmentCache() for _ in range(6)]
        self.ldtr_cache = SegmentCache(0, 0, 0, 0, False, False, False)
        self.tr_cache = SegmentCache(0, 0, 0xFFFF, 0x8B, False, False, False)
        self.gdt_base, self.gdt_limit = 0, 0xFFFF
        self.idt_base, self.idt_limit = 0, 0x3FF
        self._cr0 = CR0_ET
        self.cr2 = 0
        self._cr3 = 0
        self._cr4 = 0
        self.dr = [0] * 8
        self.cpl = 0
        self.msr = {MSR_SYSENTER_CS: 0, MSR_SYSENTER_ESP: 0, MSR_SYSENTER_EIP: 0}
        self.cycles = 0
        self.instructions = 0
        self.tlb = paging.TLB()
        self.fpu = FPU()
        self.halted = False
        self.shutdown: str | None = None    # set by a triple fault
        self.inhibit = False                # the one-instruction STI / mov ss shadow
        self.pending: list[int] = []
        self.last_exception: tuple[int, int | None] | None = None
        self.breakpoints: set[int] = set()
        self.exit_eip: int | None = None     # run() returns "exit" on reaching it
        self.port_in = lambda port, size: (1 << (8 * size)) - 1
        self.port_out = lambda port, size, value: None
        self.on_exception = None            # hook(cpu, vector, error_code) before delivery
        # A rep string instruction stops between iterations at run()'s deadline
        # (strings.py); `partial_reps` counts its executions that stopped part-way.
        self.stop_cycles = 1 << 62
        self.partial_reps = 0
        self._caches: dict[int, dict[int, Block]] = {}
        self.code_generation = 0            # bumped when translations are dropped, or a walk adds cycles
        self.live_generation = 0            # bumped when only live immediates were written (P:059)
        self._page_blocks: dict[int, list] = {}
        self._page_spans: dict[int, tuple[int, int]] = {}  # page -> (first, last + 1) code byte
        self.rewritten: dict[int, int] = {}   # block address -> times a write dropped it
        mem.watch(self._memory_written)     # weakly: a dropped CPU stops watching
        self.reset()

    # ------------------------------------------------------------------ reset
    def reset(self) -> None:
        """The state after RESET: real mode at F000:FFF0 (CS base 0xFFFF0000)."""
        self.r[:] = [0] * 8
        self.r[2] = 0x0000_0400  # edx: family 4 (a 486) after reset
        self._ef = FIXED_ONE
        self.fo = 0
        for i in range(6):
            self.sregs[i] = SegmentCache(0, 0, 0xFFFF, 0x93, False)
        self.sregs[1] = SegmentCache(0xF000, 0xFFFF0000, 0xFFFF, 0x9B, False)
        self.eip = 0xFFF0
        self._cr0 = CR0_ET
        self._cr3 = self._cr4 = 0
        self.cpl = 0
        self.halted = False
        self.shutdown = None
        self.pending.clear()
        self.fpu.reset()
        self._mode_changed()

    #:
    def reset_flat32(self) -> None:
        """Protected mode, paging off, ring 0, flat 4 GiB code (0x08) and data (0x10)."""
        self.reset()
        self.r[2] = 0
        self._cr0 = CR0_ET | CR0_PE
        code = SegmentCache(0x08, 0, M32, 0x9B, True, True)
        data = SegmentCache(0x10, 0, M32, 0x93, True, True)
        self.sregs = [data.copy(), code, data.copy(), data.copy(), data.copy(), data.copy()]
        self.eip = 0
        self._ef = FIXED_ONE
        self.cpl = 0
        self._mode_changed()

    # -------------------------------------------------------------- registers
    eax, ecx, edx, ebx, esp, ebp, esi, edi = (_gpr_property(i) for i in range(8))

    @property
    def eflags(self) -> int:
        if self.fo:
            self._ef = (self._ef & ~ARITH) | materialize(self.fo, self.fa, self.fb, self.fr)
            self.fo = 0
        return self._ef

    @eflags.setter
    def eflags(self, value: int) -> None:
        old = self._ef
        self._ef = (value & (WRITABLE | VM)) | FIXED_ONE
        self.fo = 0
        if (old ^ self._ef) & _EF_MODE:      # (IF and TF are not part of the mode)
            self._mode_changed()

    es, cs, ss, ds, fs, gs = (_selector_property(i) for i in range(6))

    @property
    def segs(self) -> SegmentRegisters:
        """The segment registers' caches, by name ('ds') or number (3)."""
        return SegmentRegisters(self.sregs)

    @property
    def protected(self) -> bool:
        """Protected mode's segment rules: CR0.PE set and not virtual-8086 mode."""
        return bool(self._cr0 & CR0_PE) and not self._ef & VM

    @property
    def v86(self) -> bool:
        """Virtual-8086 mode: EFLAGS.VM (only ever set with CR0.PE)."""
        return bool(self._ef & VM)

    @property
    def tsc(self) -> int:
        return self.cycles

    @property
    def gdtr(self) -> tuple[int, int]:
        return self.gdt_base, self.gdt_limit

    @gdtr.setter
    def gdtr(self, value: tuple[int, int]) -> None:
        self.gdt_base, self.gdt_limit = value[0] & M32, value[1] & 0xFFFF

    @property
    def idtr(self) -> tuple[int, int]:
        return self.idt_base, self.idt_limit

    @idtr.setter
    def idtr(self, value: tuple[int, int]) -> None:
        self.idt_base, self.idt_limit = value[0] & M32, value[1] & 0xFFFF

    @property
    def ldtr(self) -> int:
        return self.ldtr_cache.selector

    @property
    def tr(self) -> int:
        return self.tr_cache.selector

    def load_ldtr(self, selector: int) -> None:
        segments.load_ldtr(self, selector)

    def load_tr(self, selector: int) -> None:
        segments.load_tr(self, selector)

    @property
    def cr0(self) -> int:
        return self._cr0

    @cr0.setter
    def cr0(self, value: int) -> None:
        value = (value | CR0_ET) & 0xE005003F
        if value & CR0_PG and not value & CR0_PE:
            raise CPUFault(GP, 0)
        changed = self._cr0 ^ value
        self._cr0 = value
        if changed & (CR0_PG | CR0_WP | CR0_PE):
            self.tlb.flush()
            self._mode_changed()
        elif changed & CR0_AM:
            self._mode_changed()

    @property
    def cr3(self) -> int:
        return self._cr3

    @cr3.setter
    def cr3(self, value: int) -> None:
        self._cr3 = value & 0xFFFFF018
        self.tlb.flush(keep_global=bool(self._cr4 & CR4_PGE))

    @property
    def cr4(self) -> int:
        return self._cr4

    @cr4.setter
    def cr4(self, value: int) -> None:
        value &= 0x0000069F
        changed = self._cr4 ^ value
        self._cr4 = value
        if changed & (CR4_PSE | CR4_PGE):
            self.tlb.flush()

    def load_segment(self, name: str | int, selector: int) -> None:
        """An architectural segment load (mov sreg), with every check."""
        sreg = SEG_NAMES.index(name) if isinstance(name, str) else name
        if sreg == 1:
            raise ValueError("CS is loaded by far transfers: use load_cs")
        if sreg == 2:
            segments.load_ss(self, selector)
        else:
            segments.load_data_segment(self, sreg, selector)

    def load_cs(self, selector: int) -> None:
        """Load CS from its descriptor and take CPL from its DPL (set-up, not a jump)."""
        if not self.protected:
            cs = self.sregs[1]
            self.set_cs(SegmentCache(selector, selector << 4, cs.limit, cs.access, cs.big), 0)
            return
        desc = segments.fetch_descriptor(self, selector)
        if not desc.is_code:
            raise CPUFault(GP, selector & 0xFFFC)
        dpl = desc.dpl if not desc.type & 4 else max(desc.dpl, selector & 3)
        self.set_cs(desc.cache((selector & 0xFFFC) | dpl), dpl)

    def set_segment(self, sreg: int, cache: SegmentCache) -> None:
        self.sregs[sreg] = cache
        # A data segment matters to the mode only through flat(), SS also
        # through its B bit: when neither differs from what the mode already
        # assumes, and nothing else it folds in has moved since, recomputing
        # it would give the same answer (a world switch loads ~10 segments).
        if (cache.flat() == bool(self.flat_mask >> sreg & 1) and sreg != 1
                and (sreg != 2 or bool(cache.big) == self.stack32)
                and self._mode_inputs == (self.cpl, self._cr0 & _CR0_MODE, self._ef & _EF_MODE)):
            return
        self._mode_changed()

    def set_cs(self, cache: SegmentCache, cpl: int) -> None:
        self.sregs[1] = cache
        # As in set_segment: skip the recomputation when it cannot change
        # anything (an iret back into the ring and code segment it left).
        if (cpl == self.cpl and self.cs_flat == (cache.base == 0 and cache.limit == M32)
                and self.code32 == (cache.big if self._mode_inputs[1] & CR0_PE
                                    and not self._mode_inputs[2] & VM else False)
                and self._mode_inputs == (cpl, self._cr0 & _CR0_MODE, self._ef & _EF_MODE)):
            return
        self.cpl = cpl
        self._mode_changed()

    # --------------------------------------------------------------- the mode
    #: P:028 Translated code is fast because it takes things about the
    # processor's mode for granted: whether each data segment is flat (base 0,
    # limit 4 GiB, so an offset is already a linear address and needs no
    # checks), whether code and stack are 32-bit, whether protection is on.
    # `_mode_changed()` runs after anything that could change those facts (a
    # segment load, a new CS or CPL, CR0, some EFLAGS bits), folds them into
    # `mode_key`, and picks the block cache for that key, so a block only ever
    # runs in the mode it was compiled for.  It also picks the TLB's fast
    # dicts the blocks will use (P:035): the user ones at CPL 3, the
    # supervisor ones otherwise.  Paging has only those two classes, so
    # lguest's Guest kernel in ring 1 counts as supervisor, like the Host.
    def _mode_changed(self) -> None:
        """Recompute what translated code may assume, and pick its block cache."""
        s = self.sregs
        flat = 0
        for i in (0, 2, 3, 4, 5):
            if s[i].flat():
                flat |= 1 << i
        code32 = s[1].big if self.protected else False
        cs_flat = s[1].base == 0 and s[1].limit == M32
        # In virtual-8086 mode with IOPL < 3, pushf must fault (#GP(0)), so the
        # translator needs to know; every other sensitive instruction is a helper.
        self.v86_trap = bool(self._ef & VM) and self._ef & IOPL != IOPL
        key = (flat | (code32 << 6) | (bool(s[2].big) << 7) | (cs_flat << 8)
               | (self.protected << 9) | (self.v86_trap << 10))
        self.mode_key = key
        self.flat_mask = flat
        self._mode_inputs = (self.cpl, self._cr0 & _CR0_MODE, self._ef & _EF_MODE)
        self.code32 = code32
        self.stack32 = bool(s[2].big)
        self.cs_flat = cs_flat
        cache = self._caches.get(key)
        if cache is None:
            cache = self._caches[key] = {}
            self._caches[key | SINGLE] = {}
        self.bcache = cache
        self.scache = self._caches[key | SINGLE]   # one-instruction blocks, for stepping
        user = self.cpl == 3
        # Alignment checking (i486): CR0.AM, EFLAGS.AC and ring 3.  Then every
        # access takes the slow path, which checks; empty dicts make it so.
        self.align_check = user and bool(self._cr0 & CR0_AM) and bool(self._ef & AC)
        if self.align_check:
            self.TR, self.TW, self.TRD, self.TWD = {}, {}, {}, {}
        else:
            tlb = self.tlb
            self.TR, self.TW = (tlb.ur, tlb.uw) if user else (tlb.sr, tlb.sw)
            self.TRD, self.TWD = (tlb.dur, tlb.duw) if user else (tlb.dsr, tlb.dsw)

    # ----------------------------------------------------------------- memory
    # Slow paths: any size, any alignment, page crossings, faults.
    def _phys(self, la: int, write: bool, user: bool) -> int:
        # The TLB's fast dicts first: an entry there is one paging.translate
        # would find and pass without a side effect (it is how it got there).
        la &= M32
        tlb = self.tlb
        if write:
            p = (tlb.uw if user else tlb.sw).get(la >> 12)
        else:
            p = (tlb.ur if user else tlb.sr).get(la >> 12)
        if p is not None:
            return p | (la & 0xFFF)
        return paging.translate(self, la, write, user)

    def read_priv(self, la: int, n: int, user: bool) -> bytes:
        """Read ``n`` bytes at linear ``la`` with the given privilege (a counted access)."""
        self.tlb.accesses += 1
        if user and self.align_check:
            self._check_alignment(la, n)
        return self._read(la, n, user)

    def write_priv(self, la: int, data: bytes, user: bool) -> None:
        self.tlb.accesses += 1
        if user and self.align_check:
            self._check_alignment(la, len(data))
        self._write(la, data, user)

    def _check_alignment(self, la: int, n: int) -> None:
        if la & (ALIGNMENT.get(n, 1) - 1):
            raise CPUFault(17, 0)

    def _read(self, la: int, n: int, user: bool) -> bytes:
        la &= M32
        off = la & 0xFFF
        if off + n <= 0x1000:
            tlb = self.tlb
            p = (tlb.ur if user else tlb.sr).get(la >> 12)
            if p is not None:       # a page of RAM the fast dicts already allow
                p |= off
                return bytes(self.ram[p:p + n])
            return self.mem.read(paging.translate(self, la, False, user), n)
        first = 0x1000 - (la & 0xFFF)
        pa1 = self._phys(la, False, user)
        pa2 = self._phys(la + first, False, user)
        return self.mem.read(pa1, first) + self.mem.read(pa2, n - first)

    def _write(self, la: int, data: bytes, user: bool) -> None:
        la &= M32
        n = len(data)
        off = la & 0xFFF
        if off + n <= 0x1000:
            tlb = self.tlb
            fast = tlb.uw if user else tlb.sw
            p = fast.get(la >> 12)
            if p is None:
                p = (tlb.cuw if user else tlb.cw).get(la >> 12)
                if p is not None:           # a page of code: the TLB allows the store
                    self._write_code(p | off, data)
                    return
                pa = paging.translate(self, la, True, user)
                p = fast.get(la >> 12)      # the walk may have made it a fast page
                if p is None:
                    self._write_code(pa, data)
                    return
            if self.mem.sole_watcher(self):
                # A fast-dict page holds no translated code (P:029), and no
                # one else is watching: the store needs to tell nobody.
                p |= off
                self.ram[p:p + n] = data
            else:
                self.mem.write(p | off, data)
            return
        first = 0x1000 - (la & 0xFFF)
        pa1 = self._phys(la, True, user)
        pa2 = self._phys(la + first, True, user)   # both checked before either write
        self.mem.write(pa1, data[:first])
        self.mem.write(pa2, data[first:])

    def _write_code(self, pa: int, data: bytes) -> None:
        """A store to a page that may hold code: what mem.write does, and its
        one watcher told, without the trip through the memory's watcher list."""
        n = len(data)
        if pa + n <= self.mem.size and self.mem.sole_watcher(self):
            self.ram[pa:pa + n] = data
            self._memory_written(pa, n, True)
        else:
            self.mem.write(pa, data)

    def read_linear(self, la: int, n: int) -> bytes:
        return self.read_priv(la, n, self.cpl == 3)

    def write_linear(self, la: int, data: bytes) -> None:
        self.write_priv(la, data, self.cpl == 3)

    def read_sup(self, la: int, n: int) -> bytes:
        return self.read_priv(la, n, False)

    def write_sup(self, la: int, data: bytes) -> None:
        self.write_priv(la, data, False)

    # The slow paths of generated code (whose accesses the block counts itself).
    def rd(self, la: int, size: int) -> int:
        if self.align_check:
            self._check_alignment(la, size)
        return int.from_bytes(self._read(la, size, self.cpl == 3), "little")

    def wr(self, la: int, size: int, value: int) -> None:
        if self.align_check:
            self._check_alignment(la, size)
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        # A store to a page of code the TLB allows (self-modifying code) skips
        # the look through the fast dicts that _write() would make first.
        p = (self.tlb.cuw if self.cpl == 3 else self.tlb.cw).get(la >> 12)
        if p is None or (la & 0xFFF) + size > 0x1000:
            return self._write(la, data, self.cpl == 3)
        self._write_code(p | (la & 0xFFF), data)

    def seg_lin(self, sreg: int, off: int, size: int, write: bool) -> int:
        """Segmentation for a non-flat segment: checks, then base + offset."""
        s = self.sregs[sreg]
        if self._cr0 & CR0_PE and not self._ef & VM:
            vec = SS if sreg == 2 else GP
            if not s.valid:
                raise CPUFault(vec, 0)
            acc = s.access
            if write and (acc & 8 or not acc & 2):
                raise CPUFault(vec, 0)
            if not write and acc & 8 and not acc & 2:
                raise CPUFault(vec, 0)
            if acc & 0x1C == 0x14:      # s.expand_down, without the call
                upper = M32 if s.big else 0xFFFF
                if off <= s.limit or off + size - 1 > upper:
                    raise CPUFault(vec, 0)
            elif off + size - 1 > s.limit:
                raise CPUFault(vec, 0)
        elif off + size - 1 > s.limit:
            raise CPUFault(SS if sreg == 2 else GP, 0)
        return (s.base + off) & M32

    # read_linear/write_linear's work, inline: stacks and descriptors come here.
    def read_seg(self, sreg: int, off: int, size: int) -> bytes:
        la = self.seg_lin(sreg, off, size, False)
        user = self.cpl == 3
        self.tlb.accesses += 1
        if user and self.align_check:
            self._check_alignment(la, size)
        return self._read(la, size, user)

    def write_seg(self, sreg: int, off: int, data: bytes) -> None:
        la = self.seg_lin(sreg, off, len(data), True)
        user = self.cpl == 3
        self.tlb.accesses += 1
        if user and self.align_check:
            self._check_alignment(la, len(data))
        self._write(la, data, user)

    #: P:029 Code that is written over, whether by itself or by a Launcher
    # loading a new kernel, must not go on running from a stale translation.
    # Every physical page holding translated code is listed in
    # `tlb.code_pages` and kept out of the fast write dicts, so any store to it
    # takes the slow path and ends in `PhysicalMemory.write()`, whose watcher
    # is this method.  It drops the blocks whose bytes the write touched and
    # bumps `code_generation`, which a block running a loop checks after
    # every iteration (`live_generation` when only live immediates were hit); once a page has no block left, it is a data page again
    # and gets its fast writes back.  Pages of plain data never pay for any of
    # this.
    def _memory_written(self, addr: int, n: int, by_code: bool = False) -> None:
        """A write reached RAM: forget translations of the bytes it touched."""
        code = self.tlb.code_pages
        if not code:
            return
        page = addr & ~0xFFF
        end = addr + n
        while page < end:
            lo, hi = self._page_spans.get(page, (0, 0))    # where its code lies: a store
            if page in code and lo < end and addr < hi:     # beside it need look no further
                blocks = self._page_blocks.get(page, [])
                touched = False
                hit = []
                for b in blocks:
                    if b[2] < end and addr < b[3]:
                        touched = True
                        for s, e in b[4]:
                            if s <= addr and end <= e:
                                break       # only its live immediates (P:059)
                        else:
                            hit.append(b)
                if touched and not hit:
                    # Only live immediates were written: a block reads them
                    # afresh each time it starts, so only a block looping on
                    # itself, which read them once, must stop and start again.
                    self.live_generation += 1
                if hit:
                    # A running loop or region checks this, and stops.  Only
                    # stores by the code itself count towards live immediates:
                    # a Launcher loading a kernel again does not.
                    self.code_generation += 1
                    rewritten = self.rewritten
                    for cache, key, *_ in hit:
                        if cache.get(key) is not None:
                            del cache[key]
                        if by_code:
                            rewritten[key] = rewritten.get(key, 0) + 1
                    blocks = [b for b in blocks if b not in hit]
                    self._page_blocks[page] = blocks
                if not blocks:
                    self.invalidate_page(page)
            page += 0x1000

    def invalidate_page(self, page: int) -> None:
        """Drop every translation of code on ``page``."""
        self.code_generation += 1
        for cache, key, *_ in self._page_blocks.pop(page, ()):
            cache.pop(key, None)
        self.tlb.unprotect_code_page(page)

    def flush_translations(self) -> None:
        self.code_generation += 1
        for cache in self._caches.values():
            cache.clear()
        self._page_blocks.clear()
        for page in list(self.tlb.code_pages):
            self.tlb.unprotect_code_page(page)

    # ----------------------------------------------------------- interrupts
    def raise_interrupt(self, vector: int) -> None:
        """Assert an external interrupt; it is taken when IF allows."""
        if vector not in self.pending:
            self.pending.append(vector)

    def deliver(self, vector: int, error_code: int | None = None, *, return_eip: int | None = None,
                software: bool = False, external: bool = False) -> None:
        if self.on_exception is not None and not external:
            self.on_exception(self, vector, error_code)
        try:
            interrupts.deliver_exception(self, vector, error_code, return_eip, software, external)
        except TripleFault as t:
            self.shutdown = f"triple fault: {t}"
            self.halted = True

    # ------------------------------------------------------------ execution
    def translate_block(self, eip: int, pa: int, single: bool) -> Block:
        return translate(self, eip, pa, 1 if single else MAX_BLOCK)

    def _block_at(self, single: bool) -> Block:
        eip = self.eip
        la = (self.sregs[1].base + eip) & M32
        p = self.TR.get(la >> 12)
        if p is None:
            pa = paging.translate(self, la, False, self.cpl == 3)
        else:
            pa = p | (la & 0xFFF)
        blk = (self.scache if single else self.bcache).get(pa)
        if blk is None or blk.eip != eip:
            blk = self.translate_block(eip, pa, single)
        return blk

    def _take_interrupt(self) -> None:
        vector = self.pending.pop(0)
        self.halted = False
        self.deliver(vector, None, external=True)

    #: P:017 `step()` is the smallest unit of the machine: one instruction,
    # or, if an external interrupt is pending and EFLAGS.IF lets it in, the
    # delivery of that interrupt instead.  A fault is delivered within the
    # same step, so afterwards the CPU already stands at the handler's first
    # instruction with the frame pushed.  `_execute()` below runs a
    # one-instruction block made by the same translator that makes the long
    # ones (P:023), so stepping and running cannot disagree about what an
    # instruction does; with the trap flag set it follows the instruction
    # with a #DB, as the hardware does.  A reader who steps the session
    # through the Switcher's world switch is stepping this method.
    def step(self) -> str | None:
        """Execute one instruction, or deliver one pending interrupt."""
        if self.shutdown:
            return "triple-fault"
        if self.pending and self._ef & IF and not self.inhibit:
            self._take_interrupt()
            return "triple-fault" if self.shutdown else None
        if self.halted:
            return "hlt"
        self._execute(True)
        return "triple-fault" if self.shutdown else None

    def _execute(self, single: bool) -> None:
        """Run one block (one instruction if ``single``), delivering any fault."""
        trap = self._ef & TF
        if trap:
            single = True
        self.inhibit = False
        try:
            blk = self._block_at(single)
            blk.fn(self, 1, 1)
        except CPUFault as f:
            self.deliver(f.vector, f.error_code)
            return
        if trap and not self.halted:
            self.deliver(1, None, return_eip=self.eip, software=False)

    #: P:018 `run()` is the fast loop.  Each time round it finds the block
    # for the current EIP: CS base plus EIP is the linear address, the TLB's
    # read dict gives its physical page, and a dict keyed by physical address
    # gives the compiled block, translated on a miss.  Then it calls the
    # block, which may run dozens of instructions, or a tight loop many times
    # over; a block it has called a thousand times becomes a region, which
    # goes on to the blocks after it by itself (P:058).  Only a block that ended
    # in a helper, or a fault, can change what the loop must watch, so only
    # then does it look again.  Whenever an exact instruction boundary matters (an interrupt
    # pending, the trap flag or an interrupt shadow after `sti`, a breakpoint
    # or the instruction limit inside the block) it goes one instruction at a
    # time instead.  It stops only between blocks: at `hlt`, a triple fault, a
    # breakpoint or the limit; once the cycle count passes `deadline`, which
    # is how the Host's timers get their turn (P:013); or on reaching
    # `exit_eip`, the return address of the Host's far call into the Switcher,
    # where there is no x86 code at all and the Python Host carries on (S:013).
    def run(self, max_instructions: int = 1 << 62, deadline: int = 1 << 62) -> str:
        """Run until hlt, a breakpoint, a triple fault or the instruction limit.

        Also stops (between blocks) with "deadline" once ``cycles`` reaches
        ``deadline``, and with "exit" when EIP reaches ``exit_eip``: the
        address the Host's far call into the Switcher returns to, where no
        x86 code lives and Python takes over again.  A long rep string
        instruction stops between its iterations at the deadline, and every
        execution of one that stops part-way counts toward the limit as an
        instruction would (it is counted in ``instructions`` once, when it
        completes), so run(n) returns after at most n executions.
        """
        limit = self.instructions + self.partial_reps + max_instructions
        self.stop_cycles = deadline
        try:
            return self._run(limit, deadline)
        finally:
            self.stop_cycles = 1 << 62

    def _run(self, limit: int, deadline: int) -> str:
        # Dense on purpose: this loop runs once per block.  A block returns
        # True when it ended in a helper (P:027), which may have changed
        # anything: the mode (so the block caches and TLB dicts held in
        # locals), CS, a pending interrupt, the trap flag, hlt.  Only then,
        # after a fault and with breakpoints set, are the careful checks made;
        # a block of inline code changes none of those things.
        first = True
        careful = True
        bps = self.breakpoints
        segs = self.sregs
        exit_eip = self.exit_eip
        while True:
            eip = self.eip
            if careful:
                exit_eip = self.exit_eip
            if eip == exit_eip:
                return "exit"
            if careful:
                # Anything unusual goes one instruction at a time, carefully.
                if self.pending or self.halted or self.shutdown or self.inhibit \
                        or self._ef & TF or (bps and not first):
                    if self.shutdown:
                        return "triple-fault"
                    if self.pending and self._ef & IF and not self.inhibit:
                        self._take_interrupt()
                        continue
                    if self.halted:
                        return "hlt"
                    if self.instructions + self.partial_reps >= limit:
                        return "limit"
                    if bps and not first and (segs[1].base + eip) & M32 in bps:
                        return "breakpoint"
                    if self.inhibit or self._ef & TF or self.pending:
                        self._execute(True)
                        continue
                first = False
                careful = bool(bps)
                TR = self.TR
                bcache = self.bcache
                cs = segs[1]
            left = limit - self.instructions - self.partial_reps
            if left <= 0:
                return "limit"
            # The fast path: find the block by physical address and call it.
            cycles = self.cycles
            if cycles >= deadline:
                return "deadline"
            la = (cs.base + eip) & M32
            try:
                p = TR.get(la >> 12)
                pa = (p | (la & 0xFFF)) if p is not None else paging.translate(self, la, False, self.cpl == 3)
                blk = bcache.get(pa)
                if blk is None or blk.eip != eip:
                    blk = self.translate_block(eip, pa, False)
                if blk.heat:
                    blk.heat -= 1
                    if not blk.heat:
                        blk = form_region(self, blk, pa)
                if blk.count > left or (bps and self._bp_inside(blk)):
                    blk = self.scache.get(pa)
                    if blk is None or blk.eip != eip:
                        blk = self.translate_block(eip, pa, True)
                if blk.fn(self, left, deadline - cycles):
                    careful = True
            except CPUFault as f:
                self.deliver(f.vector, f.error_code)
                careful = True

    def _bp_inside(self, blk: Block) -> bool:
        base = self.sregs[1].base
        start = (base + blk.eip) & M32
        end = (base + blk.end) & M32
        return any(start < b < end for b in self.breakpoints)

    # ------------------------------------------------------------- for views
    def state(self) -> dict:
        """A snapshot of the architectural state, for views and tests."""
        d = {name: self.r[i] for i, name in enumerate(REG_NAMES)}
        d.update(eip=self.eip, eflags=self.eflags, cpl=self.cpl, cr0=self._cr0, cr2=self.cr2,
                 cr3=self._cr3, cr4=self._cr4)
        for i, name in enumerate(SEG_NAMES):
            d[name] = self.sregs[i].selector
        return d

    def __repr__(self) -> str:
        regs = " ".join(f"{n}={self.r[i]:08x}" for i, n in enumerate(REG_NAMES))
        return f"<CPU {regs} eip={self.eip:08x} eflags={self.eflags:08x} cpl={self.cpl}>"

