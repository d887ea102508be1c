"""The Guest's first page tables.

The Guest starts with paging on, at a virtual address above page_offset, long
before it can build page tables of its own. So the Launcher builds simple
ones: every page of Guest memory mapped in order from page_offset upwards,
physical page i at virtual page_offset + i * 4096. It is the same two-level
i386 format the processor walks (a page directory of 1024 entries, each
pointing at a page of 1024 page table entries), with every entry present,
writable and user (0x7).

They are put out of the way, just below the initrd (or the top of memory):
the page directory in the last free page, the page table pages right under
it. The Guest will build its own tables and forget these.
"""

from __future__ import annotations

import struct

from .abi import PAGE_PRESENT, PAGE_SIZE
from .memory import GuestMemory
from .report import LauncherError, Say, ptr, quiet

PTES_PER_PAGE = PAGE_SIZE // 4  # 1024 four-byte entries in a page
PGDIR_SPAN = PTES_PER_PAGE * PAGE_SIZE  # 4 MiB: what one directory entry maps


def linear_pages_needed(mem: int, page_offset: int) -> tuple[int, int]:
    """(pages mapped, page table pages needed) for ``mem`` bytes at page_offset.

    All of memory is mapped if it fits between page_offset and the top of
    the 4 GiB address space; otherwise only what fits: with the usual
    page_offset of 0xC0000000 that is 1 GiB. (The C code computes the room
    as ``-page_offset`` in unsigned arithmetic, which is 0, not 4 GiB, for a
    page_offset of 0; here the room is what the address space really has.)
    """
    room = (1 << 32) - (page_offset & 0xFFFFFFFF)
    mapped_pages = (mem if mem <= room else room) // PAGE_SIZE
    return mapped_pages, (mapped_pages + PTES_PER_PAGE - 1) // PTES_PER_PAGE


#: L:182 The Guest starts with paging already on, so before it can build page
# tables of its own it needs some from the Launcher. These are the simplest
# possible: a linear map in which physical page i appears at virtual address
# page_offset + i * 4096, in the i386's two-level format, every entry 0x7
# (present, writable, user). The page directory takes the page just below the
# initrd, and the page-table pages sit under it; with the usual page_offset of
# 0xC0000000 at most 1 GiB fits before the address space ends. The directory's
# physical address is returned, and goes to the Host as the Guest's first cr3,
# from which the Host builds its shadow page tables.
def setup_pagetables(memory: GuestMemory, mem: int, initrd_size: int, page_offset: int,
                     say: Say = quiet) -> int:
    """Build the linear page tables; return the page directory's Guest-physical address.

    The page directory goes at ``mem - initrd_size - 4096``, the page table
    pages immediately below it. Both areas must already be zeroed memory.
    """
    if page_offset % PGDIR_SPAN:
        raise LauncherError(f"page offset {page_offset:#x} is not a multiple of 4 MiB: "
                            f"the linear mapping cannot start on a page directory entry")
    mapped_pages, linear_pages = linear_pages_needed(mem, page_offset)

    # The page directory on top, the page table pages under it.
    pgdir = mem - initrd_size - PAGE_SIZE
    linear = pgdir - linear_pages * PAGE_SIZE
    if linear < 0:
        raise LauncherError(f"no room for the initial page tables below {pgdir + PAGE_SIZE:#x}")

    # The page table entries, in order: entry i maps physical page i.
    ptes = struct.pack(f"<{mapped_pages}I",
                       *(i * PAGE_SIZE | PAGE_PRESENT for i in range(mapped_pages)))
    memory.write(linear, ptes)

    # Directory entries: the one for page_offset points at the first page
    # table page, the next at the next, and so on.
    first = page_offset // PAGE_SIZE
    for i in range(0, mapped_pages, PTES_PER_PAGE):
        index = (first + i) // PTES_PER_PAGE
        memory.write32(pgdir + 4 * index, (linear + 4 * i) | PAGE_PRESENT)

    say(f"Linear mapping of {mapped_pages} pages in {linear_pages} pte pages "
        f"at {ptr(linear)}")
    return pgdir
