"""Differential tests of the two-level page walk against unicorn.

Random page directories and tables (P, R/W, U/S at both levels, 4 MiB PSE
pages with CR4.PSE, ignored bits, preset accessed/dirty bits), CR0.WP on or
off, and one to three loads or stores (1, 2 or 4 bytes, some crossing a page
boundary) at CPL 0, or at CPL 3 entered by an ``iret`` that both sides
execute. Compared: whether and where it faulted (the faulting EIP), CR2, the
registers, the data written, and the page directory and tables afterwards:
exactly after a successful run (the accessed and dirty bits the walk wrote
back), with the accessed/dirty bits masked after a fault (the SDM leaves
their update on a faulting walk unspecified; QEMU sets a present PDE's
accessed bit before looking at the PTE, Intel hardware does not).

A third test jumps into the test region (a 5-byte jmp placed through the
page tables, sometimes straddling two pages), for instruction-fetch faults
whose EIP is the jump target.

A second test interleaves the accesses with rewrites of the PTEs and PDEs
they use, each followed by ``invlpg`` or a CR3 reload (always a reload after
a PDE change, so no case depends on what a CPU may keep cached), to check
that the TLB never serves a stale translation.

Unicorn does not expose the #PF error code, so the error code our core
pushes is checked against a small reference walk written here from the SDM
(vol. 3, 4.3 and 4.7), and that reference is itself checked against
unicorn's outcome (fault or not, CR2 and EIP) on every case.
"""

from __future__ import annotations

import dataclasses
import random
import struct
from typing import Any

import pytest
import x86env_unicorn as xu
from hypothesis import given
from hypothesis import strategies as st

PD = 0x10000
SYS_PT = 0x11000
TEST_PTS = {1: 0x20000, 2: 0x21000, 3: 0x22000}
FRAMES_LO, FRAMES_HI = 0x30000, 0x41000     # frames the test entries map
PTI_LO, PTI_HI = 0x30, 0x40                 # test PTE indices (0x40: crossings)
P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100
CR0_WP, CR0_PG = 1 << 16, 1 << 31
CR4_PSE = 0x10
USER_CODE = xu.CODE + 0x40
USER_PAGES = {xu.CODE >> 12, (xu.CODE >> 12) + 1, xu.STACK_LO >> 12}


@pytest.fixture(autouse=True, scope="module")
def _count_cases(request: pytest.FixtureRequest) -> None:
    xu.register_summary(request.config)


@dataclasses.dataclass
class Access:
    """A load or store (kind "mem"), or a rewrite of the PTE or PDE that
    maps ``lin`` followed by ``invlpg [lin]`` or a CR3 reload ("pte"/"pde")."""

    store: bool
    width: int          # bytes
    lin: int
    reg: int
    code: bytes = b""
    kind: str = "mem"
    value: int = 0      # the new entry
    flush: str = ""     # "invlpg" or "cr3"


@dataclasses.dataclass
class PagingCase:
    wp: bool
    pse: bool
    user: bool
    pdes: dict[int, int]
    ptes: dict[int, dict[int, int]]    # pde index -> {pte index: value}
    accesses: list[Access]
    regs: list[int]
    frames_seed: int
    iret_eflags: int


def _entry_flags(draw: Any, friendly: bool = False) -> int:
    """Random P (mostly set), R/W, U/S, PWT, PCD, A, D, G and the bits left
    to software (D and G are ignored in a PDE that maps a table, G without
    CR4.PGE). ``friendly`` entries are more often present and writable, so
    that runs of several accesses get further."""
    present = draw(st.integers(0, 31 if friendly else 7)) != 0
    bits = draw(st.integers(0, 0xFFF)) & (RW | US | PWT | PCD | A | D | G | 0xE00)
    if friendly and draw(st.booleans()):
        bits |= RW
    return bits | (P if present else 0)


def _pde(draw: Any, i: int, pse: bool, friendly: bool = False) -> int:
    if pse and draw(st.booleans()):
        return _entry_flags(draw, friendly) | PS        # a 4 MiB page at physical 0
    flags = _entry_flags(draw, friendly)
    if not pse and draw(st.booleans()):
        flags |= PS                                     # ignored while CR4.PSE = 0
    return TEST_PTS[i] | flags


def _pte(draw: Any, friendly: bool = False) -> int:
    frame = draw(st.integers(FRAMES_LO >> 12, (FRAMES_HI >> 12) - 1)) << 12
    return frame | _entry_flags(draw, friendly)


def _access(draw: Any) -> Access:
    width = draw(st.sampled_from([1, 2, 4]))
    off = draw(st.one_of(st.integers(0, 0x1000 - width), st.integers(0xFFC, 0xFFF)))
    lin = (draw(st.sampled_from(sorted(TEST_PTS))) << 22) | (
        draw(st.integers(PTI_LO, PTI_HI - 1)) << 12) | off
    reg = draw(st.sampled_from([0, 1, 2, 3, 5, 6, 7]))
    return Access(store=draw(st.booleans()), width=width, lin=lin, reg=reg)


@st.composite
def paging_cases(draw: Any, tlb: bool = False, fetch: bool = False) -> PagingCase:
    wp, pse, user = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    pdes: dict[int, int] = {}
    ptes: dict[int, dict[int, int]] = {}
    for i in TEST_PTS:
        pdes[i] = _pde(draw, i, pse, tlb or fetch)
        ptes[i] = {j: _pte(draw, tlb or fetch) for j in range(PTI_LO, PTI_HI + 1)}
    accesses = [_access(draw) for _ in range(draw(st.integers(1, 3)))]
    if tlb:
        # accesses interleaved with entry rewrites and TLB invalidations
        user = False
        for _ in range(draw(st.integers(1, 3))):
            a = accesses[draw(st.integers(0, len(accesses) - 1))]
            i, j = a.lin >> 22, (a.lin >> 12) & 0x3FF
            if a.width > 1 and a.lin & 0xFFF > 0x1000 - a.width and draw(st.booleans()):
                j += 1                       # the second page of a crossing access
            page = (i << 22) | (j << 12)
            if draw(st.booleans()):
                op = Access(False, 4, page, 0, kind="pde", value=_pde(draw, i, pse, True),
                            flush="cr3")
            else:
                op = Access(False, 4, page, 0, kind="pte", value=_pte(draw, True),
                            flush=draw(st.sampled_from(["invlpg", "cr3"])))
            accesses.insert(draw(st.integers(1, len(accesses))), op)
        accesses.append(_access(draw))
    if fetch:
        # a jump into the test region, to a 5-byte jmp back (maybe crossing
        # a page); only loads around it, so nothing overwrites that stub
        for a in accesses:
            a.store = False
        i = draw(st.sampled_from(sorted(TEST_PTS)))
        off = draw(st.one_of(st.integers(0, 0xFFB), st.integers(0xFFC, 0xFFF)))
        lin = (i << 22) | (draw(st.integers(PTI_LO, PTI_HI - 1)) << 12) | off
        accesses.insert(draw(st.integers(0, len(accesses))),
                        Access(False, 5, lin, 0, kind="fetch"))
    regs = [draw(st.integers(0, 2**32 - 1)) for _ in range(8)]
    return PagingCase(wp=wp, pse=pse, user=user, pdes=pdes, ptes=ptes, accesses=accesses,
                      regs=regs, frames_seed=draw(st.integers(0, 2**32 - 1)),
                      iret_eflags=2 | (draw(st.integers(0, 0xFFF)) & xu.STATUS))


def encode(acc: Access, draw_form: bool) -> bytes:
    """mov between a register and [disp32], by the moffs form for EAX/AX/AL
    or by ModRM."""
    if acc.kind != "mem":
        i, j = acc.lin >> 22, (acc.lin >> 12) & 0x3FF
        addr = PD + 4 * i if acc.kind == "pde" else TEST_PTS[i] + 4 * j
        code = b"\xc7\x05" + struct.pack("<II", addr, acc.value)   # mov dword [addr], imm32
        if acc.flush == "invlpg":
            return code + b"\x0f\x01\x3d" + struct.pack("<I", acc.lin)  # invlpg [lin]
        return code + b"\x0f\x20\xd8\x0f\x22\xd8"                   # mov eax,cr3; mov cr3,eax
    p = b"\x66" if acc.width == 2 else b""
    w = 0 if acc.width == 1 else 1
    disp = struct.pack("<I", acc.lin)
    if acc.reg == 0 and draw_form:
        return p + bytes([(0xA2 if acc.store else 0xA0) + w]) + disp
    return p + bytes([(0x88 if acc.store else 0x8A) + w, (acc.reg << 3) | 5]) + disp


def build(case: PagingCase, forms: list[bool]) -> tuple[xu.Machine, list[int]]:
    """The machine both sides run and the EIP of each access instruction."""
    img: list[tuple[int, bytes]] = xu.system_image()
    pd = bytearray(0x1000)
    struct.pack_into("<I", pd, 0, SYS_PT | P | RW | US | A | D)
    for i, v in case.pdes.items():
        struct.pack_into("<I", pd, 4 * i, v)
    img.append((PD, bytes(pd)))
    sys_pt = bytearray(0x1000)
    for j in range(xu.MEM_SIZE >> 12):
        us = US if j in USER_PAGES else 0
        struct.pack_into("<I", sys_pt, 4 * j, (j << 12) | P | RW | us | A | D)
    img.append((SYS_PT, bytes(sys_pt)))
    for i, entries in case.ptes.items():
        pt = bytearray(0x1000)
        for j, v in entries.items():
            struct.pack_into("<I", pt, 4 * j, v)
        img.append((TEST_PTS[i], bytes(pt)))
    frames = bytearray(random.Random(case.frames_seed).randbytes(FRAMES_HI - FRAMES_LO))
    body = b""
    eips = []
    start = USER_CODE if case.user else xu.CODE
    for acc, form in zip(case.accesses, forms, strict=True):
        here = start + len(body)
        if acc.kind == "fetch":
            # jmp lin; at lin (through the page tables): jmp back to here + 5
            acc.code = b"\xe9" + struct.pack("<I", (acc.lin - here - 5) & 0xFFFFFFFF)
            stub = b"\xe9" + struct.pack("<I", (here + 5 - acc.lin - 5) & 0xFFFFFFFF)
            for k, byte in enumerate(stub):
                pa = ref_phys(case, acc.lin + k)
                if pa is not None and FRAMES_LO <= pa < FRAMES_HI:
                    frames[pa - FRAMES_LO] = byte
        else:
            acc.code = encode(acc, form)
        eips.append(here)
        body += acc.code
    img.append((FRAMES_LO, bytes(frames)))
    stop = start + len(body)
    body += b"\xf4"
    regs = list(case.regs)
    if case.user:
        prologue = (b"\x6a\x23\x1f\x6a\x23\x07"             # push 0x23; pop ds; (es)
                    b"\x6a\x23" + b"\x68" + struct.pack("<I", xu.STACK_TOP)
                    + b"\x68" + struct.pack("<I", case.iret_eflags)
                    + b"\x6a\x1b" + b"\x68" + struct.pack("<I", USER_CODE) + b"\xcf")
        assert len(prologue) <= USER_CODE - xu.CODE
        img.append((xu.CODE, prologue))
        img.append((USER_CODE, body))
        regs[xu.ESP] = xu.RING0_STACK_TOP
    else:
        img.append((xu.CODE, body))
        regs[xu.ESP] = xu.STACK_TOP
    regions = [(PD, 0x1000)] + [(pt, 0x1000) for pt in TEST_PTS.values()] + [
        (FRAMES_LO, FRAMES_HI - FRAMES_LO)]
    m = xu.Machine(image=img, regs=regs, eflags=2, entry=xu.CODE, stop=stop, regions=regions,
                   cr0_or=CR0_PG | (CR0_WP if case.wp else 0), cr3=PD,
                   cr4_or=CR4_PSE if case.pse else 0, user_stop=case.user)
    return m, eips


# --------------------------------------------------------------------------
# The reference walk (SDM vol. 3, 4.3 32-bit paging, 4.6 access rights,
# 4.7 page-fault error code)


def ref_translate(case: PagingCase, lin: int, write: bool) -> int | None:
    """None if the access to the page of ``lin`` is allowed, else the #PF
    error code."""
    user = case.user
    wr = 2 if write else 0
    us = 4 if user else 0
    pde = case.pdes.get(lin >> 22, 0) if lin >> 22 in TEST_PTS else 0
    if not pde & P:
        return wr | us
    if case.pse and pde & PS:
        rw_ok, us_ok = bool(pde & RW), bool(pde & US)
    else:
        pte = case.ptes[lin >> 22].get((lin >> 12) & 0x3FF, 0)
        if not pte & P:
            return wr | us
        rw_ok, us_ok = bool(pde & pte & RW), bool(pde & pte & US)
    if user and not us_ok:
        return P | wr | us
    if write and not rw_ok and (user or case.wp):
        return P | wr | us
    return None


def ref_phys(case: PagingCase, lin: int) -> int | None:
    """The physical address ``lin`` maps to, if its entries are present."""
    pde = case.pdes.get(lin >> 22, 0)
    if not pde & P:
        return None
    if case.pse and pde & PS:
        return (pde & 0xFFC00000) | (lin & 0x3FFFFF)
    pte = case.ptes[lin >> 22].get((lin >> 12) & 0x3FF, 0)
    return (pte & ~0xFFF) | (lin & 0xFFF) if pte & P else None


def ref_run(case: PagingCase) -> tuple[int, int, int] | None:
    """(index of the faulting access, CR2, error code), or None."""
    case = dataclasses.replace(case, pdes=dict(case.pdes),
                               ptes={i: dict(t) for i, t in case.ptes.items()})
    for n, acc in enumerate(case.accesses):
        i, j = acc.lin >> 22, (acc.lin >> 12) & 0x3FF
        if acc.kind == "pde":
            case.pdes[i] = acc.value
            continue
        if acc.kind == "pte":
            case.ptes[i][j] = acc.value
            continue
        first_page = acc.lin & ~0xFFF
        last_page = (acc.lin + acc.width - 1) & ~0xFFF
        for page in sorted({first_page, last_page}):
            ec = ref_translate(case, page, acc.store)
            if ec is not None:
                return n, max(acc.lin, page), ec
    return None


def _mask_ad(data: bytes) -> bytes:
    words = struct.unpack(f"<{len(data) // 4}I", data)
    return struct.pack(f"<{len(words)}I", *(w & ~(A | D) for w in words))


def _describe(a: Access) -> str:
    if a.kind == "fetch":
        return f"jmp {a.lin:#x}"
    if a.kind == "mem":
        return f"{'store' if a.store else 'load'}{8 * a.width} {a.lin:#x}"
    return f"{a.kind} of {a.lin:#x} := {a.value:#010x} + {a.flush}"


def check_paging(case: PagingCase, forms: list[bool]) -> None:
    """Run a paging case on both sides and assert they agree."""
    m, eips = build(case, forms[:len(case.accesses)])
    ref = ref_run(case)
    uni = xu.run_unicorn(m)
    ours = xu.run_core(m)
    xu.COUNTS["paging"] += 1
    extra = (f"CR0.WP={int(case.wp)} CR4.PSE={int(case.pse)} CPL={3 if case.user else 0}\n"
             + "".join(f"PDE[{i}]={v:#010x} " for i, v in case.pdes.items()) + "\n"
             + "operations: " + ", ".join(_describe(a) for a in case.accesses) + "\n"
             + "PTEs used: " + " ".join(
                 f"[{a.lin >> 22}][{(a.lin >> 12) & 0x3FF:#x}]="
                 f"{case.ptes.get(a.lin >> 22, {}).get((a.lin >> 12) & 0x3FF, 0):#010x}"
                 for a in case.accesses) + "\n"
             + f"reference: {ref}; CR2 ours {ours.cr2:#x} unicorn {uni.cr2:#x}")
    # The reference must agree with unicorn, or the test itself is wrong.
    if uni.error is None:
        uni_outcome = None if uni.fault is None else (uni.fault, uni.eip, uni.cr2)
        fault_eip = None
        if ref is not None:
            op = case.accesses[ref[0]]
            fault_eip = op.lin if op.kind == "fetch" else eips[ref[0]]
        ref_outcome = None if ref is None else (14, fault_eip, ref[1])
        assert uni_outcome == ref_outcome, (
            f"reference walk disagrees with unicorn: {ref_outcome} vs {uni_outcome}\n" + extra)
    faulted = uni.fault is not None
    diffs = xu.compare(m, ours, uni, undef_flags=0, skip_regions=m.regions[:4])
    if ours.cr2 != uni.cr2:
        diffs.append(f"CR2: ours {ours.cr2:#x} unicorn {uni.cr2:#x}")
    if faulted and ours.fault == 14 and ref is not None and ours.error_code != ref[2]:
        diffs.append(f"#PF error code: ours {ours.error_code} reference {ref[2]:#x}")
    for key in m.regions[:4]:
        od, ud = ours.mem[key], uni.mem[key]
        if faulted:
            od, ud = _mask_ad(od), _mask_ad(ud)
        if od != ud:
            bad = [i for i in range(0, len(od), 4) if od[i:i + 4] != ud[i:i + 4]]
            for i in bad[:4]:
                (o,), (u,) = struct.unpack_from("<I", od, i), struct.unpack_from("<I", ud, i)
                diffs.append(f"entry at {key[0] + i:#x}: ours {o:#010x} unicorn {u:#010x}"
                             + (" (A/D masked after the fault)" if faulted else ""))
    if diffs:
        raise AssertionError(xu.report("page-walk mismatch", m, ours, uni, diffs, extra))


@xu.examples(ci=1100)
@given(paging_cases(), st.lists(st.booleans(), min_size=8, max_size=8))
def test_page_walk(case: PagingCase, forms: list[bool]) -> None:
    """One to three accesses under random page tables, CPL 0 or 3."""
    check_paging(case, forms)


@xu.examples(ci=700)
@given(paging_cases(tlb=True), st.lists(st.booleans(), min_size=8, max_size=8))
def test_tlb_invalidation(case: PagingCase, forms: list[bool]) -> None:
    """Accesses, then PTE/PDE rewrites made visible by invlpg or a CR3
    reload, then accesses again (CPL 0): the TLB must not serve stale
    translations, permissions or accessed/dirty state."""
    check_paging(case, forms)


@xu.examples(ci=500)
@given(paging_cases(fetch=True), st.lists(st.booleans(), min_size=8, max_size=8))
def test_fetch(case: PagingCase, forms: list[bool]) -> None:
    """Instruction fetch through the page tables: a jump to a page that may
    be absent or supervisor-only, sometimes an instruction straddling two
    pages; #PF reports the jump target as EIP."""
    check_paging(case, forms)
