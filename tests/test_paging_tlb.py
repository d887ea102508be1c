"""Two-level paging, the TLB, accessed/dirty bits and page-fault error codes.

From the Intel SDM vol. 3:
  * 4.3 (32-bit paging), 4.6 (access rights): user accesses need U in both
    PDE and PTE, writes need W in both; supervisor writes to read-only pages
    fault only with CR0.WP (i486+).
  * 4.7 (page-fault exceptions): error code bit 0 P (protection violation,
    else not present), bit 1 W/R, bit 2 U/S (CPL 3); CR2 = the linear address.
    The faulting instruction is restartable: EIP points at it.
  * 4.8 (accessed and dirty flags): A set in PDE and PTE on any access, D in
    the PTE on a write.
  * 4.10 (TLBs): the processor may keep using a cached translation after the
    page table changes, until INVLPG for that page or a CR3 load; entries with
    G set (CR4.PGE) survive CR3 loads; changing CR4.PGE flushes everything;
    not-present translations are not cached.
"""

from __future__ import annotations

import pytest
import x86env as xe
from x86env import CODE, CS3, ESP0, PG_A, PG_D, PG_G, PG_P, PG_U, PG_W, Env

VA = 0x400000             # a page above the identity-mapped 4 MiB
PA1, PA2 = 0x200000, 0x201000


def mov_eax_from(addr: int) -> bytes:
    return b"\xa1" + addr.to_bytes(4, "little")


def mov_to_from_eax(addr: int) -> bytes:
    return b"\xa3" + addr.to_bytes(4, "little")


def invlpg(addr: int) -> bytes:
    return b"\x0f\x01\x3d" + addr.to_bytes(4, "little")


RELOAD_CR3 = b"\x0f\x20\xd8\x0f\x22\xd8"         # mov eax, cr3; mov cr3, eax


def paged_env(flags: int = PG_P | PG_W | PG_U) -> Env:
    env = Env(paging=True)
    env.mem.write32(PA1, 0x11111111)
    env.mem.write32(PA2, 0x22222222)
    env.pt.map(VA, PA1, flags)
    return env


def step_ok(env: Env, n: int = 1) -> None:
    for _ in range(n):
        env.step()
        assert env.cpu.last_exception is None, env.cpu.last_exception


# --- the TLB ------------------------------------------------------------------------------
def test_stale_translation_survives_until_invlpg():
    env = paged_env()
    cpu = env.cpu
    env.code(mov_eax_from(VA) * 2 + invlpg(VA) + mov_eax_from(VA))
    step_ok(env)
    assert cpu.eax == 0x11111111
    env.pt.map(VA, PA2)                       # rewrite the PTE behind the TLB's back
    step_ok(env)
    assert cpu.eax == 0x11111111, "the cached translation must still be used"
    step_ok(env, 2)
    assert cpu.eax == 0x22222222


def test_stale_translation_after_a_guest_pte_write():
    """The same with the PTE written by an instruction (the page-table page is
    itself mapped): a store to a page table does not flush the TLB."""
    env = paged_env()
    cpu = env.cpu
    pte = env.pt.pte_addr(VA)
    env.code(mov_eax_from(VA) + b"\x89\x0d" + pte.to_bytes(4, "little")   # mov [pte], ecx
             + mov_eax_from(VA) + invlpg(VA) + mov_eax_from(VA))
    cpu.ecx = PA2 | PG_P | PG_W | PG_U
    step_ok(env, 3)
    assert env.mem.read32(pte) & ~(PG_A | PG_D) == PA2 | PG_P | PG_W | PG_U
    assert cpu.eax == 0x11111111
    step_ok(env, 2)
    assert cpu.eax == 0x22222222


def test_cr3_load_flushes_non_global():
    env = paged_env()
    cpu = env.cpu
    env.code(mov_eax_from(VA) + mov_eax_from(VA) + RELOAD_CR3 + mov_eax_from(VA))
    step_ok(env)
    env.pt.map(VA, PA2)
    step_ok(env)
    assert cpu.eax == 0x11111111
    step_ok(env, 3)
    assert cpu.eax == 0x22222222


def test_global_entry_survives_cr3_load():
    env = paged_env(PG_P | PG_W | PG_U | PG_G)
    cpu = env.cpu
    cpu.cr4 = cpu.cr4 | xe.CR4_PGE
    env.code(mov_eax_from(VA) + RELOAD_CR3 + mov_eax_from(VA) + invlpg(VA) + mov_eax_from(VA))
    step_ok(env)
    env.pt.map(VA, PA2, PG_P | PG_W | PG_U | PG_G)
    step_ok(env, 3)
    assert cpu.eax == 0x11111111, "a global translation survives a CR3 load"
    step_ok(env, 2)
    assert cpu.eax == 0x22222222, "invlpg removes global entries too"


def test_global_bit_ignored_without_pge():
    env = paged_env(PG_P | PG_W | PG_U | PG_G)
    cpu = env.cpu
    env.code(mov_eax_from(VA) + RELOAD_CR3 + mov_eax_from(VA))
    step_ok(env)
    env.pt.map(VA, PA2, PG_P | PG_W | PG_U | PG_G)
    step_ok(env, 3)
    assert cpu.eax == 0x22222222


def test_clearing_pge_flushes_global_entries():
    env = paged_env(PG_P | PG_W | PG_U | PG_G)
    cpu = env.cpu
    cpu.cr4 = cpu.cr4 | xe.CR4_PGE
    env.code(mov_eax_from(VA) + b"\x0f\x20\xe0"          # mov eax, cr4
             + b"\x83\xe0\x7f" + b"\x0f\x22\xe0"           # and eax, ~PGE; mov cr4, eax
             + mov_eax_from(VA))
    step_ok(env)
    env.pt.map(VA, PA2, PG_P | PG_W | PG_U | PG_G)
    step_ok(env, 4)
    assert cpu.eax == 0x22222222


def test_not_present_translations_are_not_cached():
    """A #PF handler can fix the PTE and iret without invlpg."""
    env = Env(paging=True)
    cpu = env.cpu
    env.mem.write32(PA1, 0x11111111)
    env.set_handler_code(xe.PF_VEC, b"\x83\xc4\x04\xcf")    # add esp, 4; iret
    env.code(mov_eax_from(VA) + b"\xf4")
    env.step()
    assert cpu.eip == env.handler(xe.PF_VEC)
    assert cpu.last_exception == (xe.PF_VEC, 0) and cpu.cr2 == VA
    env.pt.map(VA, PA1)
    env.step(3)                                 # add, iret, the load again
    assert cpu.eax == 0x11111111 and cpu.eip == CODE + 5


def test_tlb_counts_hits_and_misses():
    env = paged_env()
    cpu = env.cpu
    env.code(mov_eax_from(VA) * 2 + invlpg(VA) + mov_eax_from(VA))
    env.step()                                  # warm the code page too
    env.code(mov_eax_from(VA) * 2 + invlpg(VA) + mov_eax_from(VA))
    cpu.cr3 = cpu.cr3                            # flush everything
    m0 = cpu.tlb.misses
    step_ok(env)
    h1, m1 = cpu.tlb.hits, cpu.tlb.misses
    assert m1 > m0, "a first access after a flush is a miss"
    step_ok(env)
    h2, m2 = cpu.tlb.hits, cpu.tlb.misses
    assert m2 == m1 and h2 > h1, "the same page again is a hit"
    step_ok(env, 2)                              # invlpg, then the load misses again
    assert cpu.tlb.misses > m2
    assert cpu.eax == 0x11111111


def test_tlb_entries_lists_the_translation():
    env = paged_env()
    env.code(mov_eax_from(VA))
    step_ok(env)
    entries = env.cpu.tlb.entries()
    assert entries, "the load must leave a TLB entry"
    text = " ".join(repr(e) for e in entries)
    assert any(_entry_maps(e, VA, PA1) for e in entries), text


def _entry_maps(entry, va: int, pa: int) -> bool:
    vals = {k: getattr(entry, k) for k in dir(entry) if not k.startswith("_")
            and isinstance(getattr(entry, k), int)}
    has_va = any(v in (va, va >> 12) for v in vals.values())
    has_pa = any(v & ~0xFFF == pa or v == pa >> 12 for v in vals.values())
    return has_va and has_pa


# --- accessed and dirty --------------------------------------------------------------------
def test_accessed_and_dirty_written_back():
    env = paged_env()
    pt = env.pt
    assert pt.pte(VA) & (PG_A | PG_D) == 0
    env.code(mov_eax_from(VA) + mov_to_from_eax(VA))
    step_ok(env)
    assert pt.pde(VA) & PG_A and pt.pte(VA) & PG_A
    assert pt.pte(VA) & PG_D == 0, "a read does not set D"
    step_ok(env)                                 # the write hits the cached entry
    assert pt.pte(VA) & PG_D, "a write through a cached clean entry must set D"
    assert pt.pde(VA) & PG_D == 0, "D in a PDE of a 4 KiB page is not set"


def test_instruction_fetch_sets_accessed():
    env = Env(paging=True)
    env.pt.map(VA, PA1)
    env.mem.write(PA1, b"\x90")
    env.cpu.eip = VA
    step_ok(env)
    assert env.pt.pte(VA) & PG_A and not env.pt.pte(VA) & PG_D


def test_faulting_write_sets_neither_dirty_nor_memory():
    env = paged_env(PG_P | PG_U)                 # read-only
    env.enter_ring(3)
    env.code(mov_to_from_eax(VA))
    env.cpu.eax = 0xDEAD
    env.step()
    assert env.cpu.last_exception == (xe.PF_VEC, PG_P | PG_W | PG_U)
    assert env.pt.pte(VA) & PG_D == 0
    assert env.mem.read32(PA1) == 0x11111111


# --- page-fault error codes -----------------------------------------------------------------
@pytest.mark.parametrize("cpl,write,pde,pte,wp,want", [
    (0, False, PG_P | PG_W | PG_U, 0, False, 0),                        # not present
    (0, True, PG_P | PG_W | PG_U, 0, False, PG_W),
    (3, False, PG_P | PG_W | PG_U, 0, False, PG_U),
    (3, True, PG_P | PG_W | PG_U, 0, False, PG_W | PG_U),
    (3, False, PG_P | PG_W | PG_U, PG_P | PG_W, False, PG_P | PG_U),    # supervisor page
    (3, True, PG_P | PG_W | PG_U, PG_P | PG_U, False, PG_P | PG_W | PG_U),  # read-only
    (3, True, PG_P | PG_W | PG_U, PG_P | PG_W, False, PG_P | PG_W | PG_U),
    (3, False, PG_P | PG_W, PG_P | PG_W | PG_U, False, PG_P | PG_U),    # PDE supervisor
    (3, True, PG_P | PG_U, PG_P | PG_W | PG_U, False, PG_P | PG_W | PG_U),  # PDE read-only
    (3, False, 0, 0, False, PG_U),                                      # PDE not present
    (0, True, PG_P | PG_W | PG_U, PG_P | PG_U, False, None),            # WP=0: allowed
    (0, True, PG_P | PG_W | PG_U, PG_P | PG_U, True, PG_P | PG_W),      # WP=1: #PF
    (1, True, PG_P | PG_W | PG_U, PG_P | PG_U, False, None),            # ring 1 = supervisor
    (1, False, PG_P | PG_W | PG_U, PG_P | PG_W, False, None),
    (3, False, PG_P | PG_W | PG_U, PG_P | PG_U, False, None),
    (3, True, PG_P | PG_W | PG_U, PG_P | PG_W | PG_U, False, None),
])
def test_page_fault_error_code(cpl, write, pde, pte, wp, want):
    env = Env(paging=True)
    cpu = env.cpu
    if wp:
        cpu.cr0 = cpu.cr0 | xe.CR0_WP
    table = env.pt.pool
    env.pt.pool += 4096
    env.mem.write(table, bytes(4096))
    env.mem.write32(env.pt.pde_addr(VA), table | pde)
    env.mem.write32(table + ((VA >> 12) & 0x3FF) * 4, PA1 | pte)
    env.enter_ring(cpl)
    esp = cpu.esp
    env.code(mov_to_from_eax(VA) if write else mov_eax_from(VA))
    cpu.eax = 0x5A5A5A5A
    env.step()
    if want is None:
        assert cpu.last_exception is None and cpu.eip == CODE + 5
        if write:
            assert env.mem.read32(PA1) == 0x5A5A5A5A
        return
    assert cpu.eip == env.handler(xe.PF_VEC)
    assert cpu.last_exception == (xe.PF_VEC, want)
    assert cpu.cr2 == VA
    frame_esp = ESP0 - 24 if cpl else esp - 16
    assert cpu.esp == frame_esp
    assert env.mem.read32(frame_esp) == want and env.mem.read32(frame_esp + 4) == CODE


def test_instruction_fetch_from_unmapped_page():
    env = Env(paging=True)
    cpu = env.cpu
    env.code(b"\xe9" + (VA - (CODE + 5)).to_bytes(4, "little", signed=True))   # jmp VA
    env.step()
    assert cpu.eip == VA
    env.step()
    assert cpu.eip == env.handler(xe.PF_VEC)
    assert cpu.last_exception == (xe.PF_VEC, 0) and cpu.cr2 == VA
    assert env.stack(2) == [0, VA]


def test_instruction_straddling_into_unmapped_page():
    env = Env(paging=True)
    cpu = env.cpu
    env.pt.map(VA, PA1)
    env.mem.write(PA1 + 0xFFE, b"\xb8\x01")         # mov eax, imm32: 3 bytes on the next page
    cpu.eip = VA + 0xFFE
    env.step()
    assert cpu.eip == env.handler(xe.PF_VEC)
    assert cpu.cr2 == VA + 0x1000
    assert env.stack(2) == [0, VA + 0xFFE]
    assert cpu.eax == 0


def test_user_fetch_from_supervisor_page():
    env = Env(paging=True)
    cpu = env.cpu
    env.pt.map(VA, PA1, PG_P | PG_W)
    env.mem.write(PA1, b"\x90")
    env.enter_ring(3)
    cpu.eip = VA
    env.step()
    assert cpu.last_exception == (xe.PF_VEC, PG_P | PG_U) and cpu.cr2 == VA
    words = env.stack(3)
    assert words[1] == VA and words[2] & 0xFFFF == CS3


def test_faulting_push_leaves_esp():
    """push at ring 3 onto a supervisor page: #PF(P|W|U), and the interrupted
    ESP in the frame is the value before the push."""
    env = Env(paging=True)
    cpu = env.cpu
    env.pt.map(0x7000, 0x7000, PG_P | PG_W)
    env.enter_ring(3, esp=0x8000)
    env.code(b"\x50")
    env.step()
    assert cpu.last_exception == (xe.PF_VEC, PG_P | PG_W | PG_U)
    assert cpu.cr2 == 0x7FFC
    assert cpu.esp == ESP0 - 24
    words = env.stack(6)
    assert words[:2] == [PG_P | PG_W | PG_U, CODE] and words[4] == 0x8000


def test_paging_with_cr3_switch_between_address_spaces():
    env = Env(paging=True)
    cpu = env.cpu
    env.pt.map(VA, PA1)
    other = xe.PageTables(env.mem, pd_base=0x60000, pool=0x61000)
    other.identity(0, 0x400000)
    other.map(VA, PA2)
    env.code(mov_eax_from(VA) + b"\x0f\x22\xdb" + mov_eax_from(VA))   # mov cr3, ebx
    env.mem.write32(PA1, 1)
    env.mem.write32(PA2, 2)
    cpu.ebx = 0x60000
    step_ok(env)
    assert cpu.eax == 1
    step_ok(env, 2)
    assert cpu.eax == 2 and cpu.cr3 == 0x60000


def test_page_fault_in_rep_movsd_is_restartable():
    """A #PF in the middle of rep movsd leaves ECX/ESI/EDI at the iterations
    done, EIP at the rep instruction; fixing the page and returning finishes
    the copy (SDM vol. 2, REP: 'the instruction is restartable')."""
    env = Env(paging=True)
    cpu = env.cpu
    env.pt.map(VA, PA1)                          # destination: VA .. VA+0xFFF mapped
    for i in range(8):
        env.mem.write32(xe.DATA + 4 * i, 0x1000 + i)
    env.set_handler_code(xe.PF_VEC, b"\x83\xc4\x04\xcf")    # add esp, 4; iret
    env.code(b"\xf3\xa5" + b"\xf4")              # rep movsd; hlt
    cpu.esi, cpu.edi, cpu.ecx = xe.DATA, VA + 0xFF8, 8
    env.step()
    assert cpu.eip == env.handler(xe.PF_VEC)
    assert cpu.last_exception == (xe.PF_VEC, PG_W) and cpu.cr2 == VA + 0x1000
    assert env.stack(2)[1] == CODE
    assert (cpu.ecx, cpu.esi, cpu.edi) == (6, xe.DATA + 8, VA + 0x1000)
    assert env.mem.read32(PA1 + 0xFF8) == 0x1000 and env.mem.read32(PA1 + 0xFFC) == 0x1001
    env.pt.map(VA + 0x1000, PA2)
    assert cpu.run(100) == "hlt"
    assert cpu.ecx == 0 and cpu.eip == CODE + 3
    assert [env.mem.read32(PA2 + 4 * i) for i in range(6)] == [0x1002 + i for i in range(6)]


# --- descriptor-table accesses are supervisor accesses -----------------------------------------
def _gdt_across_pages(env: Env) -> int:
    """Move the GDT to VA: its first page mapped, entry 512 on the next page."""
    cpu = env.cpu
    env.pt.map(VA, PA1, PG_P | PG_W)                     # supervisor only
    env.mem.write(PA1, env.mem.read(xe.GDT_BASE, xe.GDT_ENTRIES * 8))
    env.mem.write(PA2, xe.data_segment(3))               # entry 512, on VA + 0x1000
    cpu.gdtr = (VA, 0x1000 + 8 - 1)
    return (512 << 3) | 3


def test_descriptor_load_from_unmapped_gdt_page_is_supervisor_pf():
    env = Env(paging=True)
    cpu = env.cpu
    sel = _gdt_across_pages(env)
    env.enter_ring(3)
    env.code(b"\x8e\xd8")                                 # mov ds, eax
    cpu.eax = sel
    env.step()
    assert cpu.eip == env.handler(xe.PF_VEC)
    assert cpu.last_exception == (xe.PF_VEC, 0)        # U/S = 0: an implicit supervisor read
    assert cpu.cr2 == VA + 0x1000 + 0


def test_descriptor_load_at_ring3_reads_a_supervisor_gdt_page():
    env = Env(paging=True)
    cpu = env.cpu
    sel = _gdt_across_pages(env)
    env.pt.map(VA + 0x1000, PA2, PG_P | PG_W)             # supervisor only
    env.enter_ring(3)
    env.code(b"\x8e\xd8")
    cpu.eax = sel
    step_ok(env)
    assert cpu.ds == sel
    assert env.mem.read8(PA2 + 5) & 1, "the accessed bit is written back"


# --- 4 MiB pages (CR4.PSE, Pentium) -------------------------------------------------------------
def test_large_page_with_pse():
    env = Env(paging=True)
    cpu = env.cpu
    big_va = 0x800000
    env.mem.write32(0x200000 + 0x1234, 0xBEEF)
    env.mem.write32(env.pt.pde_addr(big_va), 0x000000 | PG_P | PG_W | PG_U | xe.PG_PS)
    cpu.cr4 = cpu.cr4 | xe.CR4_PSE
    env.code(mov_eax_from(big_va + 0x201234))
    step_ok(env)
    assert cpu.eax == 0xBEEF
    assert env.mem.read32(env.pt.pde_addr(big_va)) & PG_A
    env.code(mov_to_from_eax(big_va + 0x201234))
    step_ok(env)
    assert env.mem.read32(env.pt.pde_addr(big_va)) & PG_D, "D is set in a 4 MiB PDE"


def test_invlpg_drops_a_whole_4mib_page():
    """One invlpg anywhere in a 4 MiB page drops all of it (SDM: the TLB holds
    one entry for a large page), though lguestsim caches it per 4 KiB."""
    env = paged_env()
    cpu = env.cpu
    cpu.cr4 |= xe.CR4_PSE
    big = 0x400000                                # directory entry 1: a 4 MiB page at 0
    env.mem.write32(env.pt.pde_addr(big), PG_P | PG_W | PG_U | 0x80)
    a, b = big + PA1, big + PA2                   # two of its 4 KiB pieces
    env.code(mov_eax_from(a) + mov_eax_from(b) + invlpg(a) + mov_eax_from(b))
    step_ok(env, 2)
    assert cpu.eax == 0x22222222
    env.mem.write32(env.pt.pde_addr(big), 0)      # the page goes away in memory
    step_ok(env)                                  # invlpg of the *other* piece
    env.step()
    assert cpu.last_exception is not None and cpu.last_exception[0] == 14, \
        "the piece read before the invlpg was still cached"
    assert cpu.cr2 == b
