"""Rep string instructions: interruptible between iterations, fast, and exact.

A 386 takes interrupts between the iterations of a rep string instruction,
leaving EIP on it and ECX/ESI/EDI at the iterations done, and the handler's
iret resumes it.  The core does that, and stops there too at `run()`'s cycle
deadline and instruction limit; with the trap flag set it traps after every
iteration.  rep movs/stos go a page at a time on a bulk path, which must
give exactly what the element-by-element path gives: registers, memory,
accessed/dirty bits, faults (vector, error code, CR2), cycles, instructions
and the points where the instruction stops.  The element path itself is
checked against unicorn, with paging on, across pages, with faults and
overlapping copies.
"""

from __future__ import annotations

import errno
import struct

import pytest
import x86env_unicorn as xu
from guestenv import MEM, boot, sym32
from hypothesis import example, given
from hypothesis import strategies as st
from x86env import CODE, DATA, DF, IF, TF, Env, data_segment, selector

from lguestsim.x86 import strings, timing

MIB = 1 << 20
COUNTER = DATA          # the handlers below keep their notes here
TIMER = 0x20


def timer_handler(env: Env) -> None:
    """Vector 0x20: note ECX and count the interrupts, then iret."""
    env.set_handler_code(TIMER, b"\x89\x0d" + struct.pack("<I", COUNTER)        # mov [c], ecx
                         + b"\xff\x05" + struct.pack("<I", COUNTER + 4)       # inc dword [c+4]
                         + b"\xcf")                                           # iret


@pytest.mark.parametrize("paging", [False, True], ids=["flat", "paging"])
def test_timer_interrupt_gets_into_rep_stosb_over_16_mib(paging: bool) -> None:
    """A timer due in the middle of a 16 MiB rep stosb is taken at the first
    iteration boundary after its deadline; iret resumes the rep to the end."""
    env = Env(mem_size=24 * MIB)
    if paging:
        env.enable_paging()
        env.pt.identity(0x400000, 24 * MIB)
        env.cpu.cr3 = env.cpu.cr3
    cpu, mem = env.cpu, env.mem
    timer_handler(env)
    env.code(b"\xf3\xaa\xf4")                  # rep stosb; hlt
    dst, count = 0x400000, 16 * MIB
    mem.write(dst - 1, b"\x11")
    mem.write(dst + count, b"\x22")
    cpu.eax, cpu.ecx, cpu.edi = 0x77, count, dst
    cpu.eflags = cpu.eflags | IF
    start = cpu.cycles
    deadline = start + 3 * 1_234_567 + 1       # the timer, a few ms of simulated time in
    assert cpu.run(deadline=deadline) == "deadline"
    assert cpu.eip == CODE                     # still on the rep
    done = count - cpu.ecx
    assert 0 < done < count and cpu.edi == dst + done
    if not paging:                             # exactly the first boundary at the deadline
        assert done == -(-(deadline - start) // timing.BASE["stos"])
    else:                                      # within a page walk's worth of it
        assert 0 <= cpu.cycles - deadline < timing.BASE["stos"] + timing.PAGE_WALK
    cpu.raise_interrupt(TIMER)
    assert cpu.run() == "hlt"
    assert mem.read32(COUNTER) == count - done          # the handler saw ECX part-way
    assert mem.read32(COUNTER + 4) == 1
    assert cpu.ecx == 0 and cpu.edi == dst + count and cpu.eip == CODE + 3
    assert mem.read(dst, count) == b"\x77" * count
    assert mem.read(dst - 1, 1) == b"\x11" and mem.read(dst + count, 1) == b"\x22"
    assert cpu.instructions == 2 + 1 + 1 + 1           # rep, hlt, and the handler's three


def test_a_stop_changes_no_count() -> None:
    """Cycles and instructions of a rep are the same however often it is stopped."""
    results = []
    for slice_cycles in (None, 1000, 7):
        env = Env()
        env.code(b"\xf3\xa5\xf4")              # rep movsd; hlt
        env.cpu.ecx, env.cpu.esi, env.cpu.edi = 3000, 0x100000, 0x200000
        partial = 0
        while True:
            deadline = env.cpu.cycles + slice_cycles if slice_cycles else 1 << 62
            why = env.cpu.run(deadline=deadline)
            if why != "deadline":
                break
            partial += 0 < env.cpu.ecx < 3000 and env.cpu.eip == CODE
        assert why == "hlt"
        results.append((env.cpu.cycles, env.cpu.instructions, env.cpu.edi))
        assert partial > 0 or slice_cycles is None       # it was stopped part-way
    assert len(set(results)) == 1, results
    assert results[0][0] == (3000 * timing.BASE["movs"] + timing.REP_SETUP + timing.BASE["movs"]
                             + timing.BASE["hlt"])


def test_step_and_run_limit_come_back_soon_whatever_ecx_holds() -> None:
    """A rep stops on its own every 64Ki iterations: step() is bounded, and run(n)
    counts each partial execution toward its limit."""
    env = Env()
    env.code(b"\xf3\xaa\xf4")
    cpu = env.cpu
    cpu.ecx, cpu.edi = 200_000, 0x100000
    cpu.step()
    assert cpu.ecx == 200_000 - strings.REP_CAP and cpu.eip == CODE
    assert cpu.instructions == 0 and cpu.partial_reps == 1
    assert cpu.run(1) == "limit"
    assert cpu.ecx == 200_000 - 2 * strings.REP_CAP and cpu.eip == CODE
    assert cpu.run() == "hlt" and cpu.ecx == 0 and cpu.instructions == 2 and cpu.partial_reps == 3
    assert cpu.cycles == 200_000 * timing.BASE["stos"] + timing.REP_SETUP + timing.BASE["stos"] \
        + timing.BASE["hlt"]


def test_trap_flag_traps_after_each_iteration() -> None:
    """With TF set, a rep does one iteration and #DB reports EIP on the rep itself."""
    env = Env()
    env.code(b"\xf3\xa4\xf4")                  # rep movsb; hlt
    cpu = env.cpu
    cpu.ecx, cpu.esi, cpu.edi = 3, 0x100000, 0x100100
    env.mem.write(0x100000, b"abc")
    cpu.eflags = cpu.eflags | TF
    cpu.step()
    assert cpu.last_exception == (1, None)
    assert env.stack(1)[0] == CODE and cpu.ecx == 2 and cpu.edi == 0x100101


def test_rep_ins_with_ecx_zero_checks_no_io_permission() -> None:
    """The SDM's rep loop does nothing at all when ECX is 0: no #GP from the bitmap."""
    env = Env()
    env.enter_ring(3)
    env.code(b"\xf3\x6c\xf4")                  # rep insb; hlt (a #GP at ring 3, IOPL 0)
    env.cpu.ecx = 0
    env.cpu.step()
    assert env.cpu.last_exception is None and env.cpu.eip == CODE + 2
    env.code(b"\xf3\x6c\xf4")
    env.cpu.ecx = 1
    env.cpu.step()
    assert env.cpu.last_exception == (13, 0)


def test_an_interrupt_raised_by_a_port_stops_rep_outs() -> None:
    """A device that raises an interrupt during rep outsb gets it in after that byte."""
    env = Env()
    cpu = env.cpu
    timer_handler(env)
    env.code(b"\xf3\x6e\xf4")                  # rep outsb; hlt
    out = []

    def port_out(port: int, size: int, value: int) -> None:
        out.append(value)
        if len(out) == 3:
            cpu.raise_interrupt(TIMER)

    cpu.port_out = port_out
    env.mem.write(0x100000, bytes(range(10)))
    cpu.ecx, cpu.esi, cpu.edx = 10, 0x100000, 0x80
    cpu.eflags = cpu.eflags | IF
    assert cpu.run() == "hlt"
    assert out == list(range(10))
    assert env.mem.read32(COUNTER) == 7 and env.mem.read32(COUNTER + 4) == 1


# ---------------------------------------------------------------------------
# The bulk path against the element path.

PT_DATA = (0x100000, 0x108000)     # eight pages whose PTEs the cases play with
LIMIT_SEL = selector(10)


@st.composite
def bulk_cases(draw):
    op = draw(st.sampled_from(["movs", "stos", "movs", "stos", "lods", "scas", "cmps"]))
    size = draw(st.sampled_from([1, 2, 4]))
    prefix = draw(st.sampled_from(["rep", "repne"] if op in ("scas", "cmps") else ["rep"]))
    addr16 = draw(st.booleans()) and draw(st.booleans())
    df = draw(st.booleans())
    lo, hi = PT_DATA
    near = st.one_of(st.integers(lo, hi - 1),
                     st.builds(lambda p, d: lo + p * 0x1000 + d, st.integers(1, 7),
                               st.integers(-9, 9)))
    if addr16:
        near = st.integers(0xD800, 0xFFFF)     # 16-bit offsets, wrapping past 0xFFFF too
    edi = draw(near)
    # overlapping, or a whole number of fill patterns away (equal runs for cmps)
    d = draw(st.one_of(st.integers(-9, 9), st.integers(-40, 40).map(lambda k: 64 * k)))
    esi = draw(st.one_of(near, st.just((edi + d) & 0xFFFF if addr16 else edi + d)))
    count = draw(st.one_of(st.integers(0, 40), st.integers(0, 600 if addr16 else 2500)))
    ptes = draw(st.lists(st.sampled_from([0x7, 0x7, 0x7, 0x5, 0x0, 0x67]), min_size=8,
                         max_size=8))
    limit = draw(st.one_of(st.none(), st.integers(0x100000, 0x10A000)))
    # deadlines every few cycles for short reps, every few hundred for long ones
    slice_cycles = draw(st.one_of(st.none(), st.integers(1 if count <= 40 else 300, 5000)))
    interrupt = draw(st.booleans())
    wp = draw(st.booleans())                   # read-only pages then fault ring-0 writes
    fill = draw(st.binary(min_size=64, max_size=64))
    eax = draw(st.one_of(st.integers(0, 0xFFFFFFFF),              # or an element (scas)
                         st.integers(0, 60).map(lambda i: int.from_bytes(fill[i:i + 4],
                                                                         "little"))))
    return dict(op=op, size=size, prefix=prefix, addr16=addr16, df=df, edi=edi, esi=esi,
                count=count, ptes=ptes, limit=limit, slice_cycles=slice_cycles, interrupt=interrupt,
                wp=wp, fill=fill, eax=eax)


def run_bulk_case(c: dict, bulk: bool) -> dict:
    env = Env(paging=True)
    cpu, mem = env.cpu, env.mem
    lo, hi = PT_DATA
    mem.write(lo, (c["fill"] * ((hi - lo) // 64 + 1))[:hi - lo])
    if c["addr16"]:
        # 16-bit offsets reach 0..0xFFFF: put three play pages under the top of them
        # (a wrap runs on into page 0, which holds nothing)
        for i in range(3):
            env.pt.map(0xD000 + i * 0x1000, lo + i * 0x1000, c["ptes"][i])
    else:
        for i in range(8):
            env.pt.map(lo + i * 0x1000, lo + i * 0x1000, c["ptes"][i])
    if c["limit"] is not None:               # an ES whose limit cuts the play pages
        if c["addr16"]:
            desc = data_segment(0, 0, 0xC000 + (c["limit"] & 0x3FFF), g=False)
        else:
            desc = data_segment(0, 0, c["limit"] >> 12)
        env.set_gdt(10, desc)
        cpu.load_segment("es", LIMIT_SEL)
    cpu.cr3 = cpu.cr3                              # flush the TLB after the edits
    if c["wp"]:
        cpu.cr0 = cpu.cr0 | 0x10000
    opcode = {"movs": 0xA4, "stos": 0xAA, "lods": 0xAC, "scas": 0xAE,
              "cmps": 0xA6}[c["op"]] + (c["size"] > 1)
    code = (b"\x67" if c["addr16"] else b"") + (b"\x66" if c["size"] == 2 else b"") \
        + (b"\xf3" if c["prefix"] == "rep" else b"\xf2") + bytes([opcode]) + b"\xf4"
    env.code(code)
    timer_handler(env)
    cpu.eax, cpu.ecx, cpu.esi, cpu.edi = c["eax"], c["count"], c["esi"], c["edi"]
    if c["addr16"]:
        cpu.ecx |= 0xABC00000                    # the high half of ECX must stay
    cpu.eflags = cpu.eflags | (DF if c["df"] else 0) | IF
    saved = strings._bulk
    if not bulk:
        strings._bulk = lambda *a: 0
    stops = []
    try:
        for _ in range(20_000):
            deadline = cpu.cycles + c["slice_cycles"] if c["slice_cycles"] else 1 << 62
            why = cpu.run(deadline=deadline)
            if why != "deadline":
                break
            stops.append((cpu.ecx, cpu.esi, cpu.edi, cpu.cycles))
            # (Not in slices shorter than a delivery and an iret: nothing else would run.)
            if c["interrupt"] and c["slice_cycles"] >= 100:
                cpu.raise_interrupt(TIMER)
    finally:
        strings._bulk = saved
    return dict(why=why, regs=[cpu.eax, cpu.ecx, cpu.edx, cpu.ebx, cpu.esp, cpu.ebp, cpu.esi,
                               cpu.edi], eip=cpu.eip, eflags=cpu.eflags, cr2=cpu.cr2,
                exc=cpu.last_exception, cycles=cpu.cycles, insns=cpu.instructions,
                stops=stops, accesses=cpu.tlb.accesses,
                ram=mem.read(0x8000 - 0x1000, 0x1000) + mem.read(lo, hi - lo)
                + mem.read(0x30000, 0x3000),        # stack, play pages, page tables
                handler=mem.read(COUNTER, 8))


@given(bulk_cases())
def test_bulk_path_is_exactly_the_element_path(c: dict) -> None:
    """Every rep string instruction with a bulk path, run with it and without it:
    the same registers, flags, memory, page tables, faults, cycles, accesses and
    stops, with deadlines and interrupts on the way."""
    fast = run_bulk_case(c, bulk=True)
    slow = run_bulk_case(c, bulk=False)
    for key in slow:
        assert fast[key] == slow[key], f"{key} differs: bulk {fast[key]!r:.200} " \
                                       f"element {slow[key]!r:.200}"


# ---------------------------------------------------------------------------
# Against unicorn: paging on, page crossings, faults, overlapping copies.

U_PD, U_PT = 0x10000, 0x11000
U_LO, U_PAGES = 0x30000, 6


@st.composite
def unicorn_cases(draw):
    op = draw(st.sampled_from(["movs", "stos", "lods", "cmps", "scas"]))
    size = draw(st.sampled_from([1, 2, 4]))
    df = draw(st.booleans())
    near = st.builds(lambda p, d: U_LO + p * 0x1000 + d, st.integers(0, U_PAGES - 1),
                     st.integers(-12, 12)).filter(lambda a: U_LO <= a < U_LO + U_PAGES * 0x1000)
    edi = draw(near)
    esi = draw(st.one_of(near, st.builds(lambda d: edi + d, st.integers(-9, 9))))
    count = draw(st.integers(0, 1500 // (1 if op in ("movs", "stos") else 4)))
    ptes = draw(st.lists(st.sampled_from([0x3, 0x3, 0x3, 0x1, 0x0]), min_size=U_PAGES,
                         max_size=U_PAGES))
    prefix = draw(st.sampled_from(["rep", "repne"] if op in ("cmps", "scas") else ["rep"]))
    fill = draw(st.binary(min_size=16, max_size=16))
    eax = draw(st.integers(0, 0xFFFFFFFF))
    return dict(op=op, size=size, df=df, edi=edi, esi=esi, count=count, ptes=ptes,
                prefix=prefix, fill=fill, eax=eax)


@given(unicorn_cases())
@example(dict(op="cmps", size=2, df=False, edi=0x35000, esi=0x31FFF, count=1,
              ptes=[3, 3, 0, 3, 3, 0], prefix="rep", fill=bytes(16), eax=0))
def test_rep_strings_with_paging_against_unicorn(c: dict) -> None:
    pd = struct.pack("<I", U_PT | 3) + bytes(4092)
    ptes = [(i << 12) | 3 for i in range(256)]     # the first MiB, identity, writable
    for i, flags in enumerate(c["ptes"]):
        ptes[(U_LO >> 12) + i] = (U_LO + i * 0x1000) | flags
    pt = b"".join(struct.pack("<I", p) for p in ptes)
    data = (c["fill"] * (U_PAGES * 0x1000 // 16))
    opcode = {"movs": 0xA4, "stos": 0xAA, "lods": 0xAC, "cmps": 0xA6, "scas": 0xAE}[c["op"]]
    code = ((b"\x66" if c["size"] == 2 else b"") + (b"\xf3" if c["prefix"] == "rep" else b"\xf2")
            + bytes([opcode + (c["size"] > 1)]) + b"\xf4")
    regs = [c["eax"], c["count"], 0, 0, xu.STACK_TOP, 0, c["esi"], c["edi"]]
    m = xu.Machine(image=xu.system_image() + [(U_PD, pd), (U_PT, pt), (U_LO, data),
                                              (xu.CODE, code)],
                   regs=regs, eflags=0x2 | (DF if c["df"] else 0), entry=xu.CODE,
                   stop=xu.CODE + len(code) - 1,
                   regions=[(U_LO, U_PAGES * 0x1000), (xu.STACK_LO, xu.STACK_HI - xu.STACK_LO)],
                   cr0_or=0x80000000, cr3=U_PD)
    uni = xu.run_unicorn(m)
    ours = xu.run_core(m)
    diffs = xu.compare(m, ours, uni, 0)
    if ours.fault == 14 and uni.fault == 14 and ours.cr2 != uni.cr2:
        # cmps reads two operands, and when both fault the first read decides.
        # The core reads DS:ESI first, the operand order of the manual (and
        # Bochs); QEMU reads ES:EDI first.  The SDM does not say.
        # An operand that straddles two pages faults at the second one's start,
        # so each cr2 need only lie within its own operand.
        def within(cr2: int, start: int) -> bool:
            return start <= cr2 < start + c["size"]

        both = (c["op"] == "cmps" and within(ours.cr2, ours.regs[6])
                and within(uni.cr2, uni.regs[7]) and ours.regs == uni.regs)
        if not both:
            diffs.append(f"cr2: ours {ours.cr2:#x} unicorn {uni.cr2:#x}")
    assert not diffs, xu.report("rep string with paging", m, ours, uni, diffs)


# ---------------------------------------------------------------------------
# Under the Host: a Guest's endless rep stosb does not keep its neighbour off the CPU.

STOSB = """
        HCALL 1, lguest_data-PO
        movl $0x5a5a5a5a, %eax
        movl $0xc0400000, %edi                  # 4 MiB into its 8 MiB
        movl $0xffffffff, %ecx
        rep stosb
        HCALL 2, msg-PO
msg:    .asciz "stosb ended"
"""

BUSY = """
        HCALL 1, lguest_data-PO
1:      incl counter
        jmp 1b
        .p2align 2
counter: .long 0
"""


def test_a_guests_long_rep_stosb_is_preempted_for_its_neighbour() -> None:
    from asm import need_binutils

    from lguestsim.host import HOST_AREA, Host
    from lguestsim.machine import Machine
    need_binutils()
    host = Host(Machine(HOST_AREA + 3 * (MEM + 4096) + (1 << 20)))
    host.time_slice = 30_000                        # cycles: 10,000 iterations of stosb
    _, dev_a, lg_a, proc_a = boot(STOSB, host=host)
    _, dev_b, lg_b, proc_b = boot(BUSY, host=host)
    buffer = 0x400000
    filled = [0]
    counts = [0]
    for _ in range(5):
        for dev in (dev_a, dev_b):
            with pytest.raises(OSError) as e:
                dev.read(8)
            assert e.value.errno == errno.EAGAIN     # its time slice is over, it is alive
        filled.append(proc_a.read(buffer, 0x100000).count(0x5A))
        counts.append(sym32(proc_b, "counter"))
    # Each slice of the stosb Guest moved its rep on by at most a slice's worth
    # of iterations, and the neighbour counted in each of its own slices.
    steps = [b - a for a, b in zip(filled, filled[1:], strict=False)]
    assert all(0 < s <= 30_000 // timing.BASE["stos"] + 1 for s in steps), steps
    assert all(b > a for a, b in zip(counts, counts[1:], strict=False)), counts
