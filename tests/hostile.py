"""The hostile-Guest harness: one hostile Guest beside a neighbour on one Host.

``run_case(case)`` builds a Host, boots the neighbour (a tiny Guest that
announces "ready", then maps a few MiB of its memory, sums what it wrote and
prints the sum through DMA), lets it run to "ready", and photographs
everything outside the hostile Guest: the neighbour's memory, regs page and
shadow page tables, the Host's Python-side record of the neighbour, and the
Host's shared state (its tables, the Switcher and its pages; recovery.py).
Then the hostile Guest runs on the same Host until it dies (or, for a hoarder
that halts, until it sleeps), with an optional fault injected into the
Switcher on the way.  The photograph is taken again and must be identical;
the shared state must also equal the Host's start-up image; and the
neighbour must run on to its end and print the right sum.  A Python
exception anywhere is a Host traceback, and fails the case.

The corpus itself is ``CORPUS``, a dict of name -> Case, in categories:
hypercalls with bad arguments, ``int n`` from ring 1 and from ring 3 (with
and without a handler), a fault at every instruction of the Switcher and of
every trap stub, frame hoarders, and system descriptors in the GDT.  (Bad
descriptor loops and bad rings of virtio wait for virtio.)

``make hostile`` (``PYTHONPATH=tests python tests/hostile.py``) runs all of
it and prints cases, neighbours hurt, Host tracebacks, changed parts and
failures per category; ``--sample N`` runs the suite's seeded sample.
"""

from __future__ import annotations

import errno
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from guestenv import MEM, PAGE_OFFSET, boot, console_bytes

from lguestsim.host import HOST_AREA, Host
from lguestsim.machine import Machine

SLICE = 200_000                 # a short time slice, so a spinning Guest yields soon

# -- the neighbour
# It walks 5 MiB of its memory one page in sixteen (PDE 768 and 769: shadow
# page tables the Host must find frames for), writes k*7 into page k and adds
# it up, then prints the sum as "sum=" and eight hex digits and powers down.
NEIGHBOUR_PAGES = 80
NEIGHBOUR = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 7, 0x69, stack_top, 1
        HCALL 13, 0, ready-PO              # "ready": back to the Launcher
        xorl %ecx, %ecx
        xorl %esi, %esi
1:      movl %ecx, %eax
        shll $16, %eax                     # page k*16, from 2 MiB up
        leal 0xC0200000(%eax), %edi
        leal (%ecx,%ecx,2), %eax
        leal (%eax,%ecx,4), %eax           # k*7
        movl %eax, (%edi)
        addl (%edi), %esi
        incl %ecx
        cmpl $%d, %ecx
        jne 1b
        movl $line+4, %edi                 # eight hex digits of %esi
        movl $8, %ecx
2:      roll $4, %esi
        movl %esi, %eax
        andl $15, %eax
        movb hex(%eax), %al
        movb %al, (%edi)
        incl %edi
        loop 2b
        HCALL 13, 0, result-PO
        HCALL 2, msg-PO
msg:    .asciz "Power down"
hex:    .ascii "0123456789abcdef"
        .p2align 2
ready:  DMA text-PO, 5
text:   .ascii "ready"
        .p2align 2
result: DMA line-PO, 12
line:   .ascii "sum=________"
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
""".replace("%d", str(NEIGHBOUR_PAGES))
NEIGHBOUR_SUM = sum(k * 7 for k in range(NEIGHBOUR_PAGES)) & 0xFFFFFFFF
NEIGHBOUR_OUT = [b"ready", b"sum=%08x" % NEIGHBOUR_SUM]


@dataclass
class Case:
    """One hostile Guest: its source, what it must die of, and how to provoke it."""

    source: str
    reason: str | None = ""          # prefix of its death; "" = any; None = may live on
    patch: dict[str, bytes] = field(default_factory=dict)   # label -> bytes written over it
    inject: list = field(default_factory=list)   # [(linear address or label, vector, error)]
    extra_guests: int = 0            # more Guests to boot after it (the hoarder's victims)
    pool: int | None = None          # shrink the Host's frame pool to this many frames,
    quota: int | None = None         # and set its per-Guest quota


@dataclass
class Outcome:
    hostile: str | None               # its death, or None if it lives (asleep)
    neighbour_out: list[bytes]
    neighbour_death: str
    changed: list[str]                # names of photographed parts that changed
    shared_differs: list[str]         # shared regions not equal to the start-up image
    injected: int = 0                 # faults actually injected
    notes: dict = field(default_factory=dict)


# -- the photograph
def neighbour_record(lg) -> tuple:
    """The Host's Python-side state of a Guest, as plain values."""
    return (lg.guestid, lg.pfn_limit, lg.page_offset, lg.regs_page, lg.lguest_data,
            lg.noirq_start, lg.noirq_end, lg.next_hcall, lg.ts, lg.halted, lg.break_out,
            lg.dead, lg.esp1, lg.ss1, lg.stack_pages, lg.irqs_pending,
            tuple(None if p is None else (p.gpgdir, p.page, tuple(p.tables.items()))
                  for p in lg.pgdirs),
            lg.pgdidx, tuple(lg.gdt), tuple(lg.idt), lg.syscall_idt, lg.dma_is_pending,
            lg.pending_dma, lg.pending_key, repr(lg.dma), lg.world_switches, lg.hypercalls,
            (lg.shadow.pages, lg.shadow.peak, lg.shadow.allocated, lg.shadow.reclaimed))


def photograph(host, lg) -> dict[str, object]:
    """Everything outside the hostile Guest that must not change while it runs."""
    mem = host.mem
    proc = lg.launcher
    parts: dict[str, object] = {
        "neighbour memory": mem.read(proc.base, proc.size),
        "neighbour regs page": mem.read(lg.regs_page, 4096),
        "neighbour record": neighbour_record(lg),
    }
    for i, pgdir in enumerate(lg.pgdirs):
        if pgdir is None:
            continue
        parts[f"neighbour shadow pgdir {i}"] = mem.read(pgdir.page, 4096)
        for j in range(1023):
            pde = mem.read32(pgdir.page + 4 * j)
            if pde & 1:
                parts[f"neighbour shadow page table {i}/{j}"] = mem.read(pde & ~0xFFF, 4096)
    for name, raw in host.recovery.shared_state().items():
        parts[f"shared: {name}"] = raw
    parts["the CPU's Host context"] = host_context(host.cpu)
    return parts


def host_context(cpu) -> tuple:
    """The CPU's system state as the Host runs between trips.  %ss is compared by
    what it is (a flat ring-0 data segment), not by its selector: a trip leaves it
    on LGUEST_DS, from the Guest's TSS, where the Host began on KERNEL_DS."""
    segs = tuple((s.selector, s.base, s.limit, s.access, s.big, s.gran)
                 for name, s in zip(("es", "cs", "ss", "ds", "fs", "gs"), cpu.sregs, strict=True)
                 if name != "ss")
    ss = cpu.sregs[2]
    return (cpu.cr0, cpu.cr3, cpu.cr4, cpu.gdtr, cpu.idtr, cpu.tr, cpu.ldtr, cpu.cpl,
            cpu.esp, cpu.eflags, cpu.halted, cpu.shutdown, tuple(cpu.pending),
            tuple(sorted(cpu.msr.items())), segs, (ss.base, ss.limit, ss.access, ss.big),
            cpu.eip, cpu.exit_eip)


# -- provoking the Switcher
class Injector:
    """Deliver a fault to the CPU just before it runs a chosen instruction.

    The plan is a list of (linear address, vector, error code); each step
    waits for the CPU to reach its address (a breakpoint), delivers the fault
    there as if that instruction had raised it, and arms the next step.  It
    wraps the CPU's run(), and steps in where run() would start on the
    address (a breakpoint never stops the first instruction of a run)."""

    def __init__(self, cpu, plan: list[tuple[int, int, int | None]]) -> None:
        self.cpu, self.plan, self.done = cpu, list(plan), 0
        self.original = cpu.run
        cpu.run = self.run
        self._arm()

    def _arm(self) -> None:
        self.cpu.breakpoints.clear()
        if self.plan:
            self.cpu.breakpoints.add(self.plan[0][0])

    def _fire(self) -> None:
        _, vector, error = self.plan.pop(0)
        self.done += 1
        self._arm()
        self.cpu.deliver(vector, error)

    def _here(self) -> bool:
        cpu = self.cpu
        return bool(self.plan) and (cpu.segs["cs"].base + cpu.eip) & 0xFFFFFFFF == self.plan[0][0]

    def run(self, max_instructions: int = 1 << 62, deadline: int = 1 << 62) -> str:
        cpu = self.cpu
        while True:
            if self._here() and not cpu.shutdown:
                self._fire()
                if cpu.shutdown:
                    return "triple-fault"
                continue
            why = self.original(max_instructions, deadline)
            if why != "breakpoint":
                return why

    def remove(self) -> None:
        self.cpu.run = self.original
        self.cpu.breakpoints.clear()


# -- running
def run_hostile(dev, limit: int = 100) -> str | None:
    """read() the hostile Guest until it dies (its reason) or sleeps for good (None)."""
    sleeps = 0
    for _ in range(limit):
        try:
            dev.read(8)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return dev.read(1024).rstrip(b"\0").decode()
            if e.errno != errno.EAGAIN:
                raise
            if dev.lg.halted:
                sleeps += 1
                if sleeps >= 2:
                    return None
    return None


def run_neighbour(dev, limit: int = 400) -> tuple[str, list[bytes]]:
    out = []
    for _ in range(limit):
        try:
            got = dev.read(8)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return dev.read(1024).rstrip(b"\0").decode(), out
            if e.errno == errno.EAGAIN:
                continue
            raise
        dma, _key = struct.unpack("<II", got)
        out.append(console_bytes(dev, dma))
    return "", out


def resolve(addr, symbols: dict[str, int]) -> int:
    if isinstance(addr, int):
        return addr
    return symbols[addr]


def run_case(case: Case) -> Outcome:
    """One hostile Guest beside the neighbour; what happened, for the test to judge."""
    machine = Machine(HOST_AREA + (2 + case.extra_guests) * (MEM + 4096) + (1 << 20))
    host = Host(machine)
    host.time_slice = SLICE
    if case.pool is not None:
        host.free_frames = host.free_frames[-case.pool:]
    if case.quota is not None:
        host.page_tables.quota = case.quota
    _, ndev, neighbour, _ = boot(NEIGHBOUR, host=host)
    got = ndev.read(8)
    assert console_bytes(ndev, struct.unpack("<II", got)[0]) == b"ready"
    before = photograph(host, neighbour)
    _, hdev, hostile, hproc = boot(case.source, host=host)
    for label, data in case.patch.items():
        hproc.write(hproc.symbols[label] - PAGE_OFFSET, data)
    injector = None
    if case.inject:
        plan = [(resolve(a, hproc.symbols), v, e) for a, v, e in case.inject]
        injector = Injector(host.cpu, plan)
    try:
        died = run_hostile(hdev)
    finally:
        if injector is not None:
            injector.remove()
    notes = {"hostile shadow": vars(hostile.shadow).copy(),
             "switch failures": host.recovery.failures, "quota": host.page_tables.quota}
    after = photograph(host, neighbour)
    changed = [k for k in before if before[k] != after.get(k)]
    pristine = host.recovery.pristine_state()
    shared = host.recovery.shared_state()
    differs = [k for k in pristine if pristine[k] != shared[k]]
    # More Guests after the hostile one (a hoarder's later victims) must start.
    for _ in range(case.extra_guests):
        _, edev, _, _ = boot(HELLO, host=host)
        reason, out = run_neighbour(edev)
        notes.setdefault("extra guests", []).append((reason, out))
    if died is not None:
        hdev.close()
    reason, out = run_neighbour(ndev)
    notes["accounting"] = {g: vars(a).copy() for g, a in
                           host.page_tables.accounting().guests.items()}
    return Outcome(died, out, reason, changed, differs,
                   injector.done if injector else 0, notes)


HELLO = """
        HCALL 1, lguest_data-PO
        movl $0xC0300000, %edi            # map a page of its own
        movl $42, (%edi)
        HCALL 13, 0, dma-PO
        HCALL 2, msg-PO
        .p2align 2
dma:    DMA hello-PO, 5
hello:  .ascii "hello"
msg:    .asciz "Power down"
"""

# ----------------------------------------------------------------- the corpus
HEAD = "movl $0xc0100000, %esp\n"
SURVIVED = """
        HCALL 2, survived-PO
survived: .asciz "survived"
"""

REFUSED = """
        testl %eax, %eax
        jnz 1f
        HCALL 2, refused-PO
1:      HCALL 2, bound-PO
refused: .asciz "refused"
bound:  .asciz "bound"
"""

# Bad hypercall arguments (these were tests/test_host_hostile.py's list).
# 50 batches of 60: each writes 60 calls into the ring of struct lguest_data,
# going round its 64 slots (status at +20, one byte a slot; the calls at +84,
# 16 bytes a slot), and traps once with FLUSH_ASYNC so the Host drains them:
# 3,000 FLUSH_TLB(1) as a Guest in lazy mode sends them (also benchmarks/bench_host.py).
ASYNC_FLUSHES = """
        xorl %edi, %edi                    # the ring's next slot, round and round
        movl $50, %esi
1:      movl $60, %ecx
2:      movl %edi, %eax
        shll $4, %eax
        movl $5, lguest_data+84(%eax)      # FLUSH_TLB
        movl $1, lguest_data+88(%eax)      # (1): kernel mappings too
        movb $0, lguest_data+20(%edi)      # the slot waits
        incl %edi
        andl $63, %edi
        loop 2b
        HCALL 0
        decl %esi
        jnz 1b
"""


HYPERCALLS = {
    "init_outside_memory": ("HCALL 1, 0x800c00", "bad guest page 0x800c00"),
    "crash_message_outside": ("HCALL 1, lguest_data-PO\nHCALL 2, 0x900000",
                              "bad read address 0x900000 len 128"),
    "gdt_outside": ("HCALL 1, lguest_data-PO\nHCALL 3, 0x900000, 32",
                    "bad read address 0x900000 len 256"),
    "too_many_gdt_entries": ("HCALL 1, lguest_data-PO\nHCALL 3, lguest_data-PO, 33",
                             "too many gdt entries 33"),
    "task_gate_in_idt": ("HCALL 1, lguest_data-PO\nHCALL 6, 14, 0x00600000, 0x8500",
                         "bad IDT type 5"),
    "ring0_stack_segment": ("HCALL 1, lguest_data-PO\nHCALL 7, 0x68, 0xc0200000, 1",
                            "bad stack segment 104"),
    "three_stack_pages": ("HCALL 1, lguest_data-PO\nHCALL 7, 0x69, 0xc0200000, 3",
                          "bad stack pages 3"),
    "pte_past_pfn_limit": ("HCALL 1, lguest_data-PO\nHCALL 14, 0, 0xc0000000, 0x10000067",
                           "bad page table entry 0x10000067"),
    "pte_with_pse": ("HCALL 1, lguest_data-PO\nHCALL 14, 0, 0xc0000000, 0x000000e7",
                     "bad page table entry 0xe7"),
    "touch_switcher_entry": ("HCALL 1, lguest_data-PO\nHCALL 14, 0, 0xffc00000, 0x00001067",
                             "attempt to access switcher pages"),
    "second_init": ("HCALL 1, lguest_data-PO\nHCALL 1, lguest_data-PO",
                    "already have lguest_data"),
    "unknown_hypercall": ("HCALL 1, lguest_data-PO\nHCALL 11", "Bad hypercall 11"),
    "dma_key_unaligned": ("HCALL 1, lguest_data-PO\nHCALL 13, 2, 0", "bad sending DMA key"),
    # The Guest maps its own directory entry 1023, then writes through it.
    "write_to_switcher_mapping": ("HCALL 1, lguest_data-PO\nmovl $0x00200067, 0xc07ffffc\n"
                                  "movl %eax, 0xffc01000",
                                  "attempt to access switcher pages"),
    "cli_without_handler": ("HCALL 1, lguest_data-PO\ncli", "unhandled trap 13 at"),
    # A receive array a sender would have to search: too long, or past its memory.
    "bind_huge_dma_array": ("HCALL 1, lguest_data-PO\nHCALL 12, 0x1000, lguest_data-PO, "
                            "0xffffff01" + REFUSED, "CRASH: refused"),
    "bind_dma_array_past_memory": ("HCALL 1, lguest_data-PO\nHCALL 12, 0x1000, 0x800c00, "
                                   "0x00002001" + REFUSED, "CRASH: refused"),
    # 3,000 FLUSH_TLB(1), 60 a trip through the asynchronous ring: each must
    # cost the Host what the Guest's shadows hold, not four whole directories.
    "hypercall_storm_flush_all": ("""HCALL 1, lguest_data-PO
        HCALL 7, 0x69, 0xc0100000, 1       # a stack to pin again after each flush
""" + ASYNC_FLUSHES + """        HCALL 2, m-PO
m:      .asciz "flushed"
""", "CRASH: flushed"),
}

# `int n`: a placeholder vector, patched per case (the byte after 0xCD).
INT_RING1 = HEAD + """
        HCALL 1, lguest_data-PO
        movl $0x55555555, %esi
vector: int $0
""" + SURVIVED

# To ring 3: a GDT with user segments, a kernel stack for traps, an IDT
# entry for the vector (DPL 3, a handler that reports), and an iret down.
INT_RING3 = HEAD + """
        HCALL 1, lguest_data-PO
        HCALL 3, gdt-PO, 32
        HCALL 7, 0x69, 0xc0100000, 1
        movl $handler, %eax
        movl %eax, %edx
        andl $0xffff, %eax
        orl $0x00610000, %eax              # selector 0x61: the Guest kernel's code
        andl $0xffff0000, %edx
        orl $0xef00, %edx                  # present, DPL 3, trap gate
idtnum: movl $0, %ebx                      # patched: the vector, or 0 for no handler
        testl %ebx, %ebx
        jz 1f
        movl %edx, %ecx                    # LOAD_IDT_ENTRY: edx = vector, ebx/ecx = gate
        movl %ebx, %edx
        movl %eax, %ebx
        movl $6, %eax
        int $0x1f
1:      pushl $0x7b
        pushl $0xc0180000
        pushl $0x202
        pushl $0x73
        pushl $user
        iret
user:   movl $0x55555555, %esi
vector: int $0
2:      jmp 2b
handler:
        HCALL 2, handled-PO
handled: .asciz "handled"
        .p2align 3
gdt:    .fill 12, 8, 0
        .quad 0x00cf9a000000ffff, 0x00cf92000000ffff
        .quad 0x00cffa000000ffff, 0x00cff2000000ffff
        .fill 16, 8, 0
"""

# The Switcher's victim: initializes, then spins, so that it leaves the
# Switcher by a hypercall (return_to_host) and by the scheduler's timer
# (deliver_to_host), and enters it again and again (switch_to_guest).
SPINNER = HEAD + """
        HCALL 1, lguest_data-PO
spin:   incl counter
        jmp spin
        .p2align 2
counter: .long 0
"""

# Fills three page directories: every entry of each points at one of the
# Launcher's own page tables (so every 4 MiB of the address space maps its
# RAM), and it touches every 4 MiB, then sleeps.  About 3,000 shadow page
# tables, if the Host let it have them.
HOARDER = HEAD + """
        HCALL 1, lguest_data-PO
        xorl %esi, %esi
2:      movl %esi, %edi
        shll $12, %edi
        addl $pgdirs, %edi
        xorl %ecx, %ecx
1:      movl %ecx, %eax
        andl $1, %eax
        shll $12, %eax
        addl $(%d - 3 * 4096 + 7), %eax    # the Launcher's two page tables
        movl %eax, (%edi,%ecx,4)
        incl %ecx
        cmpl $1023, %ecx
        jne 1b
        leal -0xC0000000(%edi), %edx
        movl $4, %eax                      # NEW_PGTABLE
        int $0x1f
        xorl %ecx, %ecx
3:      movl %ecx, %eax
        shll $22, %eax
        movl (%eax), %ebx
        incl %ecx
        cmpl $1023, %ecx
        jne 3b
        incl %esi
        cmpl $3, %esi
        jne 2b
4:      HCALL 10
        jmp 4b
        .p2align 12
pgdirs: .fill 3 * 4096, 1, 0
""".replace("%d", str(MEM))

# A GDT with one system descriptor in entry 14 (the Guest's first free slot).
GDT_WITH = HEAD + """
        HCALL 1, lguest_data-PO
        HCALL 3, gdt-PO, 32
        ljmp $0x70, $0
        HCALL 2, survived-PO
survived: .asciz "survived"
        .p2align 3
gdt:    .fill 12, 8, 0
        .quad 0x00cf9a000000ffff, 0x00cf92000000ffff
entry:  .quad 0
        .fill 17, 8, 0
tss:    .fill 104, 1, 0
"""

# (type, what, high word, low word): DPL 0 (raised to 1 by 2.6.23) and DPL 3.
SYSTEM_DESCRIPTORS = {
    "tss_386": 0x9, "tss_386_busy": 0xB, "tss_286": 0x1, "ldt": 0x2, "call_gate_386": 0xC,
    "call_gate_286": 0x4, "task_gate": 0x5, "interrupt_gate": 0xE, "trap_gate": 0xF,
}


def system_descriptor(kind: int, dpl: int, tss: int) -> bytes:
    """A present system descriptor: gates name LGUEST_CS (ring 0) or the TSS at ``tss``."""
    if kind in (0x4, 0xC, 0xE, 0xF):          # gates into the Switcher's ring-0 code segment
        lo, hi = (0x50 << 16) | (tss & 0xFFFF), (tss & 0xFFFF0000) | 0x8000 | dpl << 13 | kind << 8
    elif kind == 0x5:                         # a task gate naming entry 15 (the TSS below)
        lo, hi = 0x78 << 16, 0x8000 | dpl << 13 | kind << 8
    else:                                     # TSS or LDT at the Guest's own page
        lo = ((tss & 0xFFFF) << 16) | 0x67
        hi = (tss & 0xFF000000) | ((tss >> 16) & 0xFF) | 0x8000 | dpl << 13 | kind << 8
    return struct.pack("<II", lo, hi)


def _int_case(ring: int, n: int, handler: bool) -> Case:
    """Every one must end the Guest: killed, or its handler's CRASH."""
    if ring == 1:
        return Case(INT_RING1, "", patch={"vector": bytes([0xCD, n])})
    return Case(INT_RING3, "",
                patch={"vector": bytes([0xCD, n]),
                       "idtnum": bytes([0xBB]) + (n if handler else 0).to_bytes(4, "little")})


def switcher_instructions() -> list[tuple[str, int]]:
    """Every instruction of switch_to_guest, return_to_host, deliver_to_host and
    handle_nmi (the unnamed exit after it), as (symbol+offset, address), by
    decoding the shipped bytes."""
    from lguestsim import switcher as switcher_mod
    from lguestsim.x86.decode import decode
    sw = switcher_mod.load()
    base = switcher_mod.SWITCHER_ADDR
    names = json.loads(Path(switcher_mod.__file__).with_name("switcher.json").read_text())
    at = {k: int(v, 16) for k, v in names.items()}
    pieces = [("switch_to_guest", at["return_to_host"]),
              ("return_to_host", at["deliver_to_host"]),
              ("deliver_to_host", at["trap_stubs"])]
    out = []
    for name, end in pieces:
        addr = start = at[name]
        while addr < end:
            insn = decode(sw.code[addr - base:addr - base + 16], addr)
            out.append((f"{name}+{addr - start:#x}", addr))
            addr += insn.length
            if name == "deliver_to_host" and insn.mnemonic.startswith("jmp"):
                name, start = "handle_nmi", addr      # the NMI's exit follows
            elif insn.opcode == 0xCF and name == "handle_nmi":
                break                      # its iret; alignment padding follows
    return out


def stub_instructions(vector: int) -> list[int]:
    """The two or three instructions of one trap stub, up to its jmp."""
    from lguestsim import switcher as switcher_mod
    from lguestsim.x86.decode import decode
    sw = switcher_mod.load()
    base = switcher_mod.SWITCHER_ADDR
    addr = sw.stub(vector)
    out = []
    while True:
        insn = decode(sw.code[addr - base:addr - base + 16], addr)
        out.append(addr)
        if insn.opcode in (0xE9, 0xEB):
            return out
        addr += insn.length


HAS_ERROR = {8, 10, 11, 12, 13, 14, 17}


def build_corpus() -> dict[str, Case]:
    corpus: dict[str, Case] = {}
    for name, (code, reason) in HYPERCALLS.items():
        corpus[f"hypercall/{name}"] = Case(HEAD + code + SURVIVED, reason)
    for n in range(256):
        corpus[f"int-ring1/{n:#04x}"] = _int_case(1, n, False)
    for n in range(256):
        corpus[f"int-ring3/{n:#04x}"] = _int_case(3, n, False)
    for n in list(range(64)) + [0x80]:
        corpus[f"int-ring3-handler/{n:#04x}"] = _int_case(3, n, True)
    for where, addr in switcher_instructions():
        # handle_nmi runs only for an NMI: give the spinning Guest one first.
        first = [("spin", 2, None)] if where.startswith("handle_nmi") else []
        for vector, error in ((13, 0), (14, 0)):
            corpus[f"switcher/{where}/#{'GP' if vector == 13 else 'PF'}"] = \
                Case(SPINNER, "", inject=first + [(addr, vector, error)])
    for v in range(256):
        for i, addr in enumerate(stub_instructions(v)):
            corpus[f"switcher-stub/{v:#04x}+{i}/#GP"] = Case(
                SPINNER, "", inject=[("spin", v, 0 if v in HAS_ERROR else None), (addr, 13, 0)])
    corpus["hoarder/quota"] = Case(HOARDER, None, extra_guests=1)
    # No quota and a pool it can drain: the neighbour's and the next Guest's
    # tables must come from the hoarder's.
    corpus["hoarder/dry-pool"] = Case(HOARDER, None, extra_guests=1, pool=1200, quota=1 << 30)
    for kind, t in SYSTEM_DESCRIPTORS.items():
        for dpl in (0, 1, 3):
            corpus[f"gdt/{kind}/dpl{dpl}"] = Case(
                GDT_WITH, "bad GDT entry 14: system descriptor type",
                patch={"entry": system_descriptor(t, dpl, 0xC0100000)})
    return corpus


CORPUS = build_corpus()


def category(name: str) -> str:
    return name.split("/", 1)[0]


def sample(names, per_category: int, seed: int = 10) -> list[str]:
    """A seeded sample of each category (all of the small ones)."""
    import random
    rnd = random.Random(seed)
    by: dict[str, list[str]] = {}
    for n in names:
        by.setdefault(category(n), []).append(n)
    out = []
    for cat in sorted(by):
        group = sorted(by[cat])
        out += group if len(group) <= per_category else sorted(rnd.sample(group, per_category))
    return out


# ----------------------------------------------------------------- judging
def judge(case: Case, outcome: Outcome) -> list[str]:
    """What went wrong in one case (nothing, for a Host no Guest can break)."""
    problems = []
    if outcome.neighbour_out != NEIGHBOUR_OUT[1:] or outcome.neighbour_death != \
            "CRASH: Power down":
        problems.append(f"neighbour hurt: {outcome.neighbour_death!r} {outcome.neighbour_out}")
    if outcome.changed:
        problems.append(f"changed outside the hostile Guest: {outcome.changed}")
    if outcome.shared_differs:
        problems.append(f"shared state not as at start-up: {outcome.shared_differs}")
    if case.reason is not None and (outcome.hostile is None
                                    or not outcome.hostile.startswith(case.reason)):
        problems.append(f"hostile Guest: {outcome.hostile!r}, wanted {case.reason!r}...")
    if outcome.injected != len(case.inject):
        problems.append(f"injected {outcome.injected} of {len(case.inject)} faults")
    elif case.inject and not outcome.notes["switch failures"]:
        problems.append(f"a fault in the Switcher went unnoticed: {outcome.hostile!r}")
    if outcome.notes["hostile shadow"]["peak"] > outcome.notes["quota"]:
        problems.append(f"hostile held {outcome.notes['hostile shadow']['peak']} frames")
    for reason, out in outcome.notes.get("extra guests", []):
        if reason != "CRASH: Power down" or out != [b"hello"]:
            problems.append(f"a later Guest failed: {reason!r} {out}")
    return problems


def main(argv: list[str]) -> int:
    """Run the corpus (all of it, or a seeded sample with --sample N) and report."""
    import time
    import traceback
    names = sorted(CORPUS)
    if "--sample" in argv:
        names = sample(names, int(argv[argv.index("--sample") + 1]))
    stats: dict[str, list[int]] = {}
    failures = []
    start = time.time()
    for name in names:
        row = stats.setdefault(category(name), [0, 0, 0, 0, 0])
        row[0] += 1
        try:
            outcome = run_case(CORPUS[name])
        except Exception:                              # a Host traceback
            row[2] += 1
            failures.append((name, traceback.format_exc()))
            print(f"FAILED {name}: {failures[-1][1]}", flush=True)
            continue
        problems = judge(CORPUS[name], outcome)
        row[1] += any(p.startswith("neighbour hurt") for p in problems)
        row[3] += len(outcome.changed) + len(outcome.shared_differs)
        row[4] += bool(problems)
        if problems:
            failures.append((name, "; ".join(problems)))
            print(f"FAILED {name}: {failures[-1][1]}", flush=True)
    took = time.time() - start
    print(f"{'category':20} {'cases':>6} {'hurt':>5} {'tracebacks':>10} {'changed':>8} "
          f"{'failed':>7}")
    for cat, (n, hurt, tb, changed, failed) in sorted(stats.items()):
        print(f"{cat:20} {n:6} {hurt:5} {tb:10} {changed:8} {failed:7}")
    total = [sum(col) for col in zip(*stats.values(), strict=True)]
    print(f"{'total':20} {total[0]:6} {total[1]:5} {total[2]:10} {total[3]:8} {total[4]:7}")
    print(f"run time {took:.1f} s, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))
