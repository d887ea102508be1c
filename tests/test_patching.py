"""Paravirt patching in the teaching Guest (G:050, G:055, G:060).

The shipped Guest rewrites its interrupt flag call sites at boot unless its
command line says "nopatch".  These boot it both ways, in both generations,
and look at the rewritten bytes in Guest memory, at the console and at the
processor's counters.
"""

import pytest

from lguestsim.session import Session

OPS = ("lguest_irq_disable", "lguest_irq_enable", "lguest_save_fl", "lguest_restore_fl")
# Which patch.S sequence goes with each op number (PATCH_* in guest.h).
REPLACEMENTS = ("lgstart_cli", "lgstart_sti", "lgstart_pushf", "lgstart_popf")
SITE_LEN = 10  # pushl %ecx; pushl %edx; call *pv+n; popl %edx; popl %ecx


def guest_bytes(s: Session, vaddr: int, n: int) -> bytes:
    """Kernel memory, through the Guest's linear map (physical = virtual - PAGE_OFFSET)."""
    return s.run.layout.memory.read(vaddr - s.run.page_offset, n)


def sites(s: Session) -> list[tuple[int, int, int]]:
    """The (address, op, length) records of .parainstructions, read from the Guest."""
    syms = s.run.symbols
    start, end = syms.address("__parainstructions"), syms.address("__parainstructions_end")
    table = guest_bytes(s, start, end - start)
    return [(int.from_bytes(table[i:i + 4], "little"), table[i + 4], table[i + 5])
            for i in range(0, len(table), 8)]


def boot_counting(virtio: bool, cmdline: tuple[str, ...]) -> tuple[Session, int, int]:
    """Boot to the end, counting the calls that reach the four C ops, and the
    instructions from start_kernel() (after apply_patches()) to the end."""
    s = Session.boot(virtio=virtio, cmdline=cmdline)
    s.run_to("start_kernel")
    kernel_from = s.cpu.instructions
    for op in OPS:
        s.break_at(op)
    calls = 0
    while not s.finished:
        s.cont(max_steps=1_000_000)
        if not s.finished:
            assert s.run.symbols.lookup(s.cpu.eip) in [(op, 0) for op in OPS]
            calls += 1
            s.step()
    return s, calls, s.cpu.instructions - kernel_from


@pytest.fixture(scope="module", params=[False, True], ids=["2.6.23", "2.6.25"])
def both(request):
    virtio = request.param
    return virtio, boot_counting(virtio, ()), boot_counting(virtio, ("nopatch",))


def test_sites_are_recorded(both):
    _virtio, (patched, *_), _ = both
    recorded = sites(patched)
    assert len(recorded) >= 8
    assert {op for _addr, op, _len in recorded} == {0, 1, 2, 3}
    assert all(length == SITE_LEN for _addr, _op, length in recorded)


def test_patched_sites_hold_the_replacements(both):
    _virtio, (patched, *_), (unpatched, *_) = both
    syms = patched.run.symbols
    for addr, op, length in sites(patched):
        start = syms.address(REPLACEMENTS[op])
        end = syms.address(REPLACEMENTS[op].replace("lgstart", "lgend"))
        replacement = guest_bytes(patched, start, end - start)
        now = guest_bytes(patched, addr, length)
        assert now[:len(replacement)] == replacement, hex(addr)
        # The rest is a nop that changes nothing: none, or the 5-byte nop; lea.
        assert now[len(replacement):] in (b"", b"\x90\x8d\x74\x26\x00"), hex(addr)
        # With nopatch the site still holds its indirect call through pv.
        assert guest_bytes(unpatched, addr, length)[:4] == b"\x51\x52\xff\x15", hex(addr)


def test_the_console_is_unchanged(both):
    _virtio, (patched, *_), (unpatched, *_) = both

    def lines(s: Session) -> list[str]:
        return [line for line in s.console.splitlines() if "command line" not in line
                and "nopatch" not in line]

    assert patched.console.endswith("Goodbye from the Guest: powering off.\n")
    assert lines(patched) == lines(unpatched)


def test_patching_removes_the_calls_and_their_instructions(both):
    _virtio, (patched, patched_calls, patched_run), (unpatched, unpatched_calls,
                                                     unpatched_run) = both
    # Every call of the four ops went through a patched site: none is left.
    assert patched_calls == 0
    assert unpatched_calls >= 10
    # A patched site runs one or two instructions (the move, maybe a nop);
    # its call ran seven (push, push, call, the move, ret, pop, pop).
    assert unpatched_run - patched_run >= 5 * unpatched_calls
    # Over the whole boot, apply_patches() included, patching still wins.
    assert patched.cpu.instructions < unpatched.cpu.instructions
