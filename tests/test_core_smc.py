"""Self-modifying code: live immediates (translate.py, P:059) against full retranslation.

A block that stores have thrown away `REWRITTEN` times is translated with
its immediates read from RAM at entry, so a store to one of them no longer
drops it.  Everything a program can see must be what retranslating it after
each store gives: registers, memory, cycles, instructions, TLB counts, the
prefetch-queue rule (a block finishes the bytes it started with), and a store
to an opcode still takes effect.  Each test runs its program twice, once with
live immediates and once with them turned off, and compares.
"""

from __future__ import annotations

from asm import assemble
from x86env import CODE, Env

from lguestsim.x86 import translate


def run_both(source: str, monkeypatch, paging: bool = False) -> tuple[dict, dict, Env]:
    """Run ``source`` with live immediates and without; returns both outcomes."""
    outcomes = []
    for threshold in (translate.REWRITTEN, 10**9):
        monkeypatch.setattr(translate, "REWRITTEN", threshold)
        env = Env(paging=paging)
        env.code(assemble(source, CODE))
        cpu = env.cpu
        why = cpu.run(1_000_000)
        live = [b for c in cpu._caches.values() for b in c.values()
                if "int.from_bytes(cpu.ram[" in b.source]
        outcomes.append(dict(cpu.state(), why=why, cycles=cpu.cycles,
                             instructions=cpu.instructions, hits=cpu.tlb.hits,
                             misses=cpu.tlb.misses, ram=env.mem.read(CODE, 0x200),
                             live=len(live)))
    return outcomes[0], outcomes[1], env


def same_but_live(live: dict, fresh: dict) -> None:
    assert live.pop("live") > 0, "no block was translated with live immediates"
    assert fresh.pop("live") == 0
    assert live == fresh


# A called routine whose mov immediate is rewritten before every call.
REWRITTEN_ROUTINE = """
        mov $200, %ecx
        xor %ebx, %ebx
    again:
        movl %ecx, target+1
        call target
        add %eax, %ebx
        dec %ecx
        jnz again
        hlt
    target:
        mov $0, %eax
        ret
"""


def test_rewritten_immediate_matches_retranslation(monkeypatch):
    """A called routine whose mov immediate is rewritten before every call."""
    live, fresh, _ = run_both(REWRITTEN_ROUTINE, monkeypatch, paging=True)
    assert live["why"] == "hlt"
    assert live["ebx"] == sum(range(1, 201))
    same_but_live(live, fresh)


def test_a_block_finishes_the_immediate_it_started_with(monkeypatch):
    """A loop storing into its own later mov: this pass uses the bytes at its entry."""
    live, fresh, _ = run_both("""
        mov $100, %ecx
        xor %ebx, %ebx
    again:
        movl %ecx, target+1
    target:
        mov $0, %eax
        add %eax, %ebx
        dec %ecx
        jnz again
        hlt
    """, monkeypatch)
    # pass k's mov sees what pass k-1 stored: 0, 100, 99, ..., 2
    assert live["ebx"] == sum(range(2, 101))
    same_but_live(live, fresh)


def test_sign_extended_imm8_read_live(monkeypatch):
    """add $imm8, %eax (0x83) sign-extends the byte it reads at entry."""
    live, fresh, _ = run_both("""
        mov $20, %ecx
        xor %eax, %eax
    again:
        mov %ecx, %edx
        shl $4, %edx
        movb %dl, target+2             # 0x40, 0x30, ..., 0x00, 0xf0, ..., 0x10
        call target
        dec %ecx
        jnz again
        hlt
    target:
        add $1, %eax
        pushl $5
        pop %edx
        ret
    """, monkeypatch)
    imm8 = [(c << 4) & 0xFF for c in range(20, 0, -1)]
    assert live["eax"] == sum(b - 0x100 if b & 0x80 else b for b in imm8) & 0xFFFFFFFF
    same_but_live(live, fresh)


def test_store_to_an_opcode_still_drops_a_live_block(monkeypatch):
    """After the immediate has gone live, rewriting the opcode (mov to eax ->
    mov to edx), or the byte just past the immediate, takes effect at the next entry."""
    live, fresh, _ = run_both("""
        mov $10, %ecx
        xor %ebx, %ebx
        xor %edx, %edx
    again:
        movl %ecx, target+1
        cmp $6, %ecx
        jne 2f
        movb $0x47, target+5           # the byte just past it: inc %esi -> inc %edi
    2:
        cmp $3, %ecx
        jne 1f
        movb $0xba, target             # mov $imm, %eax -> mov $imm, %edx
    1:
        xor %eax, %eax
        call target
        add %eax, %ebx
        dec %ecx
        jnz again
        hlt
    target:
        mov $0, %eax
        inc %esi
        ret
    """, monkeypatch)
    # calls with ecx = 10..4 add to ebx; from ecx = 3 on the mov fills edx
    assert live["ebx"] == sum(range(4, 11))
    assert live["edx"] == 1
    assert (live["esi"], live["edi"]) == (4, 6)
    same_but_live(live, fresh)


def test_a_region_takes_in_a_live_block_and_runs_on(monkeypatch):
    """With regions formed early (after the routine has gone live), the
    rewritten routine joins its caller's region, reading its immediate at each
    pass; the stores to that immediate no longer stop the region, and
    everything matches retranslation."""
    monkeypatch.setattr(translate, "HOT", 8)
    source = REWRITTEN_ROUTINE
    live, fresh, _ = run_both(source, monkeypatch, paging=True)
    assert live["why"] == "hlt"
    assert live["ebx"] == sum(range(1, 201))
    # (run_both's last run is the one without live immediates: once more with them)
    monkeypatch.setattr(translate, "REWRITTEN", 2)
    env = Env(paging=True)
    env.code(assemble(source, CODE))
    cpu = env.cpu
    assert cpu.run(1_000_000) == "hlt"
    mixed = [b for b in cpu.bcache.values() if b.fn.__code__.co_filename.startswith("<region")
             and "int.from_bytes(cpu.ram[" in b.source]
    assert mixed, "the live routine did not join a region"
    assert cpu.live_generation > 150 and cpu.ebx == live["ebx"]
    same_but_live(live, fresh)
