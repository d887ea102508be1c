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
    # "patched" is a word with no meaning to the Guest, as long as "nopatch":
    # the program prints its command line, so both boots print as much.
    return virtio, boot_counting(virtio, ("patched",)), boot_counting(virtio, ("nopatch",))


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
        return s.console.replace("nopatch", "patched").splitlines()

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
    # apply_patches() itself costs about a thousand instructions, more than
    # the few calls of a short boot save: patching pays over a longer run.
    assert patched.cpu.instructions - patched_run > unpatched.cpu.instructions - unpatched_run


def test_a_site_too_small_or_unknown_keeps_its_call():
    """apply_patches() leaves the call where the replacement does not fit or
    the op has none; the Guest boots just the same."""
    s = Session.boot()
    s.run_to("apply_patches")
    recorded = sites(s)
    table = s.run.symbols.address("__parainstructions") - s.run.page_offset
    memory = s.run.layout.memory
    cli = next(i for i, (_a, op, _l) in enumerate(recorded) if op == 0)
    pushf = next(i for i, (_a, op, _l) in enumerate(recorded) if op == 2)
    memory.write(table + 8 * cli + 5, bytes([9]))      # one byte short of movl $0, mem
    memory.write(table + 8 * pushf + 4, bytes([200]))  # no such op
    s.finish()
    assert s.console.endswith("Goodbye from the Guest: powering off.\n")
    for i, (addr, _op, length) in enumerate(recorded):
        now = guest_bytes(s, addr, length)
        if i in (cli, pushf):
            assert now[:4] == b"\x51\x52\xff\x15", hex(addr)
        else:
            assert now[:4] != b"\x51\x52\xff\x15", hex(addr)
    syms = s.run.symbols
    patched = int.from_bytes(guest_bytes(s, syms.address("patched_sites"), 4), "little")
    unpatched = int.from_bytes(guest_bytes(s, syms.address("unpatched_sites"), 4), "little")
    assert (patched, unpatched) == (len(recorded) - 2, 2)
