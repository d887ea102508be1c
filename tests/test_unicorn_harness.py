"""Self-tests of the differential harness (no core needed for most).

A differential test is only as good as its comparison: these check that a
difference in a register, a defined flag or memory is reported, that only the
flags an instruction leaves undefined are masked, that a flag reader is
neutralised only when it would read an undefined flag, and that the page-walk
reference gives the SDM's error codes.
"""

from __future__ import annotations

import dataclasses

import test_unicorn_paging as tp
import x86env_unicorn as xu


def _result(**kw: object) -> xu.Result:
    base = dict(regs=[0] * 8, eip=0x1000, eflags=2, cr2=0, mem={(xu.DATA, 4): b"\0" * 4})
    base.update(kw)
    return xu.Result(**base)  # type: ignore[arg-type]


def _machine() -> xu.Machine:
    return xu.Machine(image=[(xu.CODE, b"\xf4")], regs=[0] * 8, eflags=2, entry=xu.CODE,
                      stop=xu.CODE, regions=[(xu.DATA, 4)])


def test_compare_reports_registers_flags_and_memory() -> None:
    m = _machine()
    same = _result()
    assert xu.compare(m, same, _result(), 0) == []
    assert any("ecx" in d for d in xu.compare(m, _result(regs=[0, 1, 0, 0, 0, 0, 0, 0]),
                                              same, 0))
    assert any("eflags" in d for d in xu.compare(m, _result(eflags=2 | xu.ZF), same, 0))
    assert xu.compare(m, _result(eflags=2 | xu.AF), same, xu.AF) == []
    assert any("memory" in d for d in xu.compare(
        m, _result(mem={(xu.DATA, 4): b"\0\1\0\0"}), same, 0))
    assert any("fault" in d for d in xu.compare(m, _result(fault=0), same, 0))
    # undefined registers are skipped, nothing else
    assert xu.compare(m, _result(regs=[5, 0, 0, 0, 0, 0, 0, 0]), same, 0,
                      undef_regs=frozenset({xu.EAX})) == []


def test_compare_skips_only_our_exception_frame() -> None:
    m = _machine()
    ours = _result(fault=0, frame=(xu.DATA, 2), mem={(xu.DATA, 4): b"\1\1\0\0"})
    uni = _result(fault=0)
    assert xu.compare(m, ours, uni, 0) == []
    ours.mem = {(xu.DATA, 4): b"\1\1\1\0"}
    assert xu.compare(m, ours, uni, 0) != []


def test_shift_flags_follow_the_sdm() -> None:
    shl, shr, sar, rol, rcl = 4, 5, 7, 0, 2
    assert xu.shift_flags(shl, 32, 0) == (0, 0, 0)             # count 0: no flags
    assert xu.shift_flags(shl, 32, 32) == (0, 0, 0)            # masked to 0
    assert xu.shift_flags(shl, 8, 1)[2] == xu.AF               # OF defined at 1
    assert xu.shift_flags(shl, 8, 9)[2] == xu.AF | xu.OF | xu.CF  # CF undefined >= size
    assert xu.shift_flags(shr, 16, 16)[2] & xu.CF
    assert not xu.shift_flags(sar, 8, 9)[2] & xu.CF            # sar: CF is the sign
    assert xu.shift_flags(rol, 8, 8) == (0, xu.CF | xu.OF, xu.OF)  # CF still defined
    assert xu.shift_flags(rcl, 32, 1) == (xu.CF, xu.CF | xu.OF, 0)


def test_flow_neutralises_readers_of_undefined_flags() -> None:
    mul = xu.Insn(b"\xf7\xe1", writes=xu.STATUS, undef=xu.SF | xu.ZF | xu.AF | xu.PF)
    setz = xu.Insn(b"\x0f\x94\xc0", reads=xu.ZF)
    setc = xu.Insn(b"\x0f\x92\xc0", reads=xu.CF)
    flat = [mul, setz, setc]
    undef_in, _ = xu._flow(flat, [-1, -1, -1])
    assert setz.code == b"\x90" * 3 and setc.code == b"\x0f\x92\xc0"
    assert undef_in[-1] == xu.SF | xu.ZF | xu.AF | xu.PF
    # a later definition clears the undefined state
    add = xu.Insn(b"\x01\xc0", writes=xu.STATUS)
    setz2 = xu.Insn(b"\x0f\x94\xc0", reads=xu.ZF)
    undef_in, _ = xu._flow([dataclasses.replace(mul), add, setz2], [-1, -1, -1])
    assert setz2.code == b"\x0f\x94\xc0" and undef_in[-1] == 0


def _paging_case(pde: int, pte: int, user: bool, wp: bool, pse: bool = False) -> tp.PagingCase:
    return tp.PagingCase(wp=wp, pse=pse, user=user, pdes={1: pde},
                         ptes={1: {0x30: pte}}, accesses=[], regs=[0] * 8, frames_seed=0,
                         iret_eflags=2)


def test_reference_walk_error_codes() -> None:
    P, RW, US, PS = tp.P, tp.RW, tp.US, tp.PS
    lin = (1 << 22) | (0x30 << 12)
    pt = tp.TEST_PTS[1]
    ro_user = _paging_case(pt | P | RW | US, 0x30000 | P | US, user=False, wp=False)
    assert tp.ref_translate(ro_user, lin, write=True) is None          # WP=0: allowed
    ro_user.wp = True
    assert tp.ref_translate(ro_user, lin, write=True) == 0x3           # P | W/R
    ro_user.user = True
    assert tp.ref_translate(ro_user, lin, write=False) is None
    assert tp.ref_translate(ro_user, lin, write=True) == 0x7
    sup = _paging_case(pt | P | RW, 0x30000 | P | RW | US, user=True, wp=False)
    assert tp.ref_translate(sup, lin, write=False) == 0x5              # U/S in the PDE
    absent = _paging_case(pt | P | RW | US, 0x30000, user=True, wp=False)
    assert tp.ref_translate(absent, lin, write=True) == 0x6
    big = _paging_case(P | RW | PS, 0, user=False, wp=True, pse=True)
    assert tp.ref_translate(big, lin, write=True) is None              # 4 MiB page
    big.pdes[1] = P | PS
    assert tp.ref_translate(big, lin, write=True) == 0x3
    big.pse = False                    # PS ignored: the PDE points to a table at 0
    big.ptes = {1: {}}
    assert tp.ref_translate(big, lin, write=False) == 0x0


def test_repro_runs_both_sides() -> None:
    """The reduction helper agrees on a trivial instruction."""
    report = xu.repro(bytes.fromhex("01d8"), {"eax": 0x7FFFFFFF, "ebx": 1})
    assert report.startswith("repro: 0 difference(s)"), report
