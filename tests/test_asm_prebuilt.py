"""Prebuilt programs (lguestsim.asm): what the live book does without GNU as.

The live book's Python has no binutils.  Its wheel carries every program the
chapters assemble, keyed by source, base and flags.  Here the same is done
natively: a chapter's tiny Guest is assembled once with binutils (recorded),
then again with binutils hidden from the PATH; it must come from the shipped
folder and run exactly as before.  A text the folder lacks must stop with the
one-line message, and a changed flag must make every shipped program stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from lite_browser import literal_tiny

from lguestsim import asm
from lguestsim.session import Session

ROOT = Path(__file__).resolve().parent.parent


def run_to_timer(source: str) -> tuple[int, int, bytes]:
    s = Session.tiny(source)
    stop = s.step_to("timer")
    return stop.event.cycle, s.cpu.eip, s.world.runs[0].program.code


@pytest.fixture
def no_binutils(monkeypatch, tmp_path: Path) -> Path:
    """binutils hidden, a fresh folder of prebuilt programs, asm's memo empty."""
    asm._assemble.cache_clear()
    monkeypatch.setenv("LGUESTSIM_PREBUILT", str(tmp_path))
    monkeypatch.delenv("LGUESTSIM_ASM_RECORD", raising=False)
    yield tmp_path
    asm._assemble.cache_clear()


def test_a_chapters_tiny_guest_runs_from_the_prebuilt_folder(no_binutils, monkeypatch):
    assert asm.have_binutils(), "GNU binutils are needed to record (apt-get install binutils)"
    source = literal_tiny(ROOT / "notebooks" / "06_switcher.ipynb")
    monkeypatch.setenv("LGUESTSIM_ASM_RECORD", str(no_binutils))
    native = run_to_timer(source)
    assert len(list(no_binutils.glob("*.json"))) == 1
    monkeypatch.delenv("LGUESTSIM_ASM_RECORD")
    asm._assemble.cache_clear()
    monkeypatch.setenv("PATH", "/nonexistent")
    assert not asm.have_binutils()
    assert run_to_timer(source) == native
    # Its line table came along: the spin loop's lines are named.
    s = Session.tiny(source)
    s.step_to("timer")
    file, line = s.symbols_for(s.cpu.eip).line(s.cpu.eip)
    assert file == "guest.s" and "jmp 1b" in source.splitlines()[line - 1] + \
        source.splitlines()[line - 2]


def test_new_text_in_the_browser_says_one_line(no_binutils, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "platform", "emscripten")
    with pytest.raises(asm.NeedsLocalInstall) as err:
        asm.tiny_guest("HCALL 1, lguest_data-PO\n        nop\n")
    (line,) = err.value._render_traceback_()
    assert "\n" not in line and "make lab" in line
    # Nothing is left broken: a shipped program is still found afterwards.
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(asm.AsmError, match="binutils .* not installed"):
        asm.tiny_guest("nop\n")


def test_a_changed_flag_makes_a_program_stale(no_binutils, monkeypatch):
    files, base = asm.tiny_guest_files("HCALL 1, lguest_data-PO\n")
    monkeypatch.setenv("LGUESTSIM_ASM_RECORD", str(no_binutils))
    asm._assemble(files, base)
    assert asm.prebuilt(files, base) is not None
    assert asm.prebuilt(files, base + 0x1000) is None
    monkeypatch.setattr(asm, "AS_FLAGS", (*asm.AS_FLAGS, "--gdwarf-5"))
    assert asm.prebuilt(files, base) is None
    # A file whose name is the key but whose text is another source is not used.
    monkeypatch.undo()
    monkeypatch.setenv("LGUESTSIM_PREBUILT", str(no_binutils))
    (shipped,) = no_binutils.glob("*.json")
    other = json.loads(shipped.read_text())
    other["files"][1][1] = "nop\n"
    shipped.write_text(json.dumps(other))
    assert asm.prebuilt(files, base) is None


def test_the_guests_debug_twin_comes_from_the_prebuilt_folder(no_binutils, monkeypatch):
    import hashlib

    from lguestsim import symbols
    from lguestsim.guest import ELF_IMAGE
    symbols.guest_symbols.cache_clear()
    assert symbols.guest_symbols().has_lines, "the twin needs gcc -m32 (gcc-multilib)"
    digest = hashlib.sha256(ELF_IMAGE.read_bytes()).hexdigest()[:16]
    name = f"guest-debug-{digest}.elf"
    (no_binutils / name).write_bytes((symbols._cache_dir() / name).read_bytes())
    monkeypatch.setenv("LGUESTSIM_CACHE", str(no_binutils / "empty"))
    monkeypatch.setenv("PATH", "/nonexistent")
    symbols.guest_symbols.cache_clear()
    try:
        syms = symbols.guest_symbols()
        assert syms.has_lines and syms.line(syms.address("start_kernel"))[0] == "main.c"
    finally:
        symbols.guest_symbols.cache_clear()


def test_variants_hold_every_option_of_every_draw():
    from lguestsim.exercises.host import UNKNOWN, HostExercises
    from lguestsim.exercises.mastery import MasteryExercises
    variants = HostExercises.variants()
    assert {v.bad for v in variants} == set(UNKNOWN)
    assert {v.unknown for v in variants} == set(UNKNOWN)
    assert {v.k for v in variants} == {2, 3, 4, 5}
    # Whatever a student's name, each number of theirs is among them.
    for name in ("ada", "grace", "linus"):
        ex = HostExercises(name)
        assert ex.bad in UNKNOWN and ex.unknown in UNKNOWN
    m = MasteryExercises.variants()
    assert {v.n for v in m} == {5, 8, 12, 20} and {v.seed for v in m} == set(range(10))
    # Pinning draws leaves a student's generator alone.
    assert HostExercises("ada").bad == HostExercises("ada").bad
    assert HostExercises._pins is None
