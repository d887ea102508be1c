"""Random bytes at EIP: step() may fault, halt or shut down, never raise.

DESIGN.md: "nothing else may escape step() for any byte sequence".  Every
architectural fault is delivered through the IDT (or the IVT in real mode)
that x86env installs, so a Python exception out of step() is always a core
bug.  The harness below calls step() bare: any exception fails the test,
and test_harness_detects_an_escaping_exception shows that it would.

Worlds: flat 32-bit protected mode at CPL 0, 1 and 3 (flags including TF,
IOPL and NT, sometimes an external interrupt pending); 16-bit real mode;
paging on with random pages (including the code's next page, the stack, the
IDT and the GDT) unmapped or made supervisor-only.  Registers are drawn from
values that point into RAM, at the tables, past the end of RAM and at the
edges of the address space.
"""

from __future__ import annotations

import random

import pytest
import x86env as xe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from x86env import CODE, DATA, Env

M32 = 0xFFFFFFFF
OUTCOMES = (None, "hlt", "triple-fault")
STEPS = 4

INTERESTING = [0, 1, 2, 4, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFC, 0xFFFFF000, DATA, DATA + 0xFFD, CODE,
               xe.GDT_BASE, xe.IDT_BASE, xe.TSS_BASE, xe.PD_BASE, xe.RING0_ESP, 0x3FFFFE,
               0x400000, 0xF0000000, 0x10, 0x2B, 0x33, 0x38, 0x08]
regs_st = st.lists(st.one_of(st.sampled_from(INTERESTING), st.integers(0, M32)),
                   min_size=8, max_size=8)
# arithmetic flags, TF, IF, DF, IOPL, NT, AC
FLAG_MASK = 0x47FD5
flags_st = st.integers(0, 0x7FFFF).map(lambda f: (f & FLAG_MASK) | 0x2)
code_st = st.binary(min_size=1, max_size=16)


def check_state(cpu) -> None:
    """The architectural state stays well-formed whatever ran."""
    for name in ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip", "eflags"):
        v = getattr(cpu, name)
        assert isinstance(v, int) and 0 <= v <= M32, (name, v)
    assert cpu.cpl in (0, 1, 2, 3)
    for name in ("cs", "ds", "es", "fs", "gs", "ss"):
        v = getattr(cpu, name)
        assert isinstance(v, int) and 0 <= v <= 0xFFFF, (name, v)


def run_bytes(cpu, steps: int = STEPS) -> list:
    """Step ``steps`` times; returns the outcomes.  Deliberately no try/except:
    anything raised is a failure of the test that called it."""
    outcomes = []
    cycles = cpu.cycles
    for _ in range(steps):
        r = cpu.step()
        assert r in OUTCOMES, r
        check_state(cpu)
        assert cpu.cycles >= cycles
        cycles = cpu.cycles
        outcomes.append(r)
        if r == "triple-fault":
            break
    return outcomes


def _set_regs(cpu, regs, flags, keep_esp: bool) -> None:
    for name, v in zip(("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"), regs,
                       strict=True):
        if name == "esp" and keep_esp:
            continue
        setattr(cpu, name, v)
    cpu.eflags = flags


def protected_world(code: bytes, regs, flags, cpl: int, keep_esp: bool):
    env = Env()
    if cpl:
        env.enter_ring(cpl)
    env.code(code + b"\xf4" * 16)
    # a few non-zero words to load through random registers
    env.mem.write(DATA, bytes(range(256)) * 16)
    _set_regs(env.cpu, regs, flags, keep_esp)
    return env


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=code_st, regs=regs_st, flags=flags_st, cpl=st.sampled_from([0, 1, 3]),
       keep_esp=st.booleans(), irq=st.none() | st.integers(0, 255))
def test_random_bytes_protected_mode(code, regs, flags, cpl, keep_esp, irq):
    env = protected_world(code, regs, flags, cpl, keep_esp)
    if irq is not None:
        env.cpu.raise_interrupt(irq)
    run_bytes(env.cpu)


def real_world(code: bytes, regs, flags):
    from lguestsim.x86 import CPU, PhysicalMemory

    mem = PhysicalMemory(1 << 20)
    cpu = CPU(mem)
    for v in range(256):                 # every vector -> 0000:0500 + v (a hlt)
        mem.write32(v * 4, 0x500 + v)
        mem.write8(0x500 + v, 0xF4)
    cpu.load_cs(0x1000)
    cpu.load_segment("ss", 0x2000)
    cpu.load_segment("ds", 0x3000)
    mem.write(0x10000, code + b"\xf4" * 16)
    cpu.eip = 0
    for name, v in zip(("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"), regs,
                       strict=True):
        setattr(cpu, name, v if name != "esp" else (v & 0xFFFF) or 0xFFFE)
    cpu.eflags = flags
    return mem, cpu


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=code_st, regs=regs_st, flags=flags_st, irq=st.none() | st.integers(0, 255))
def test_random_bytes_real_mode(code, regs, flags, irq):
    _, cpu = real_world(code, regs, flags)
    if irq is not None:
        cpu.raise_interrupt(irq)
    run_bytes(cpu)


PAGE_CHOICES = [CODE + 0x1000, CODE - 0x1000, DATA, xe.RING0_ESP - 0x1000, xe.ESP0 - 0x1000,
                xe.ESP1 - 0x1000, xe.RING3_ESP - 0x1000, xe.IDT_BASE, xe.GDT_BASE,
                xe.TSS_BASE, xe.HANDLERS, xe.PD_BASE]


def paged_world(code: bytes, regs, flags, cpl: int, offset: int, unmapped, supervisor):
    env = Env(paging=True)
    if cpl:
        env.enter_ring(cpl)
    # the code ends near the end of its page, so it may run onto the next one
    at = CODE + 0x1000 - offset
    env.mem.write(DATA, bytes(range(256)) * 16)
    env.code(code + b"\xf4" * 16, at=at)
    for page in supervisor:
        env.pt.map(page, page, xe.PG_P | xe.PG_W)
    for page in unmapped:
        env.pt.unmap(page)
    _set_regs(env.cpu, regs, flags, keep_esp=True)
    return env


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=code_st, regs=regs_st, flags=flags_st, cpl=st.sampled_from([0, 1, 3]),
       offset=st.integers(1, 16),
       unmapped=st.sets(st.sampled_from(PAGE_CHOICES), max_size=3),
       supervisor=st.sets(st.sampled_from(PAGE_CHOICES), max_size=2))
def test_random_bytes_with_paging(code, regs, flags, cpl, offset, unmapped, supervisor):
    env = paged_world(code, regs, flags, cpl, offset, unmapped, supervisor)
    run_bytes(env.cpu)


def test_many_random_byte_strings_seeded():
    """A cheaper, wider sweep than hypothesis's: 3000 strings from a fixed seed
    over the three worlds."""
    rng = random.Random(0x1A55)
    for i in range(3000):
        code = rng.randbytes(rng.randint(1, 16))
        regs = [rng.choice(INTERESTING) if rng.random() < 0.5 else rng.getrandbits(32)
                for _ in range(8)]
        flags = (rng.getrandbits(19) & FLAG_MASK) | 0x2
        kind = i % 3
        if kind == 0:
            cpu = protected_world(code, regs, flags, rng.choice([0, 1, 3]),
                                  rng.random() < 0.5).cpu
        elif kind == 1:
            _, cpu = real_world(code, regs, flags)
        else:
            cpu = paged_world(code, regs, flags, rng.choice([0, 1, 3]), rng.randint(1, 16),
                              set(rng.sample(PAGE_CHOICES, rng.randint(0, 3))), set()).cpu
        try:
            run_bytes(cpu)
        except Exception as e:   # noqa: BLE001 - re-raised with the input that caused it
            raise AssertionError(f"world {kind}, code {code.hex(' ')}, regs "
                                 f"{[hex(r) for r in regs]}, flags {flags:#x}: "
                                 f"{type(e).__name__}: {e}") from e


@pytest.mark.parametrize("code", [b"\xf3\xaa", b"\xf3\xa5", b"\xf3\xae"],
                         ids=["rep stosb", "rep movsd", "repe scasb"])
def test_rep_with_a_huge_count_returns_quickly(code):
    """step() must come back in bounded time for any bytes: the SDM lets a
    repeated string instruction stop between iterations (EIP still at the
    instruction, ECX/ESI/EDI updated) and resume at the next step."""
    import signal

    env = Env()
    cpu = env.cpu
    env.code(code + b"\xf4")
    cpu.ecx, cpu.esi, cpu.edi, cpu.eax = 0xFFFFFFFF, DATA, DATA + 0x1000, 0
    env.mem.write(DATA, bytes(0x2000))

    def too_slow(signum, frame):
        raise TimeoutError("step() ran for more than 2 s")

    old = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        cpu.step()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert cpu.eip in (CODE, CODE + len(code)) or cpu.last_exception is not None


def test_harness_detects_an_escaping_exception():
    """run_bytes lets a Python exception out of step() through, and rejects
    an outcome step() may not return."""

    class Broken:
        cycles = 0

        def step(self):
            raise KeyError("escaped")

    with pytest.raises(KeyError):
        run_bytes(Broken())

    class Liar:
        cycles = 0

        def step(self):
            return "ok"

    with pytest.raises(AssertionError):
        run_bytes(Liar())


def test_known_faulting_bytes_are_delivered_not_raised():
    """Bytes that certainly fault go through the IDT: #UD, #GP, #DE, #PF."""
    cases = [(b"\x0f\x0b", xe.UD), (b"\x8e\xd8", xe.GP), (b"\xf7\xf1", xe.DE),
             (b"\xa1\x00\x00\x00\xf0", None)]
    for code, vector in cases:
        env = Env()
        env.code(code)
        env.cpu.eax, env.cpu.ecx = 0x100, 0
        assert env.cpu.step() in OUTCOMES
        if vector is not None:
            assert env.cpu.eip == env.handler(vector)
    env = Env(paging=True)
    env.code(b"\xa1\x00\x00\x00\xf0")            # mov eax, [0xF0000000]: unmapped
    env.cpu.step()
    assert env.cpu.eip == env.handler(xe.PF_VEC) and env.cpu.cr2 == 0xF0000000
