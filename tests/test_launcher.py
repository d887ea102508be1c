"""The Launcher: loading kernels, page tables, the boot header, devices, the run
loop, and the command line.

Images are built here by hand (``launcher_images``). Most tests need no Host:
the Launcher lays a Guest out in plain memory. The last group runs the tiny
hand-written Guest on lguestsim's Host when it can be imported.
"""

from __future__ import annotations

import errno
import io
import struct
import subprocess
import sys
from pathlib import Path

import launcher_images as li
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lguestsim.launcher import abi, boot, devices, loader, main, pagetables, run
from lguestsim.launcher.memory import GuestMemory
from lguestsim.launcher.report import LauncherError

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
PAGE = 4096


def memory(mem: int = 4 * MIB, extra: int = PAGE) -> GuestMemory:
    return GuestMemory.plain(mem + extra)


def lines(say_calls: list[str]) -> str:
    return "\n".join(say_calls)


# --- ELF ---------------------------------------------------------------------------------
def test_elf_segments_load_at_their_physical_addresses():
    text = b"\x90" * 0x30 + li.MAGIC + b"\xf4" + b"code" * 100
    data = b"DATA" * 300
    image = li.elf([(0x100000, text, 0), (0x102000, data, 0x3000)])
    mem = memory()
    mem.write(0x102000 + len(data), b"\xaa" * 16)  # the bss must come out zero
    mem.zero(0, 4 * MIB)
    said: list[str] = []
    k = loader.load_kernel(mem, image, 4 * MIB, "vmlinux", said.append)
    assert k.kind == "ELF"
    assert k.page_offset == 0xC0000000
    assert k.start == 0xC0000000 + 0x100000 + 0x30 + len(li.MAGIC)
    assert (k.low, k.high) == (0x100000, 0x102000 + len(data) + 0x3000)
    assert mem.read(0x100000, len(text)) == text
    assert mem.read(0x102000, len(data)) == data
    assert mem.read(0x102000 + len(data), 0x3000) == bytes(0x3000)
    # Program header 0 is the PT_NOTE; the loads are 1 and 2.
    assert said == [f"Section 1: size {len(text)} addr 0x100000",
                    f"Section 2: size {len(data) + 0x3000} addr 0x102000"]


def test_elf_marker_in_a_later_segment_and_other_page_offsets():
    image = li.elf([(0x1000, b"nothing here", 0), (0x5000, b"xx" + li.MAGIC, 0)],
                   page_offset=0x80000000)
    mem = memory()
    k = loader.load_kernel(mem, image, 4 * MIB, "k")
    assert k.page_offset == 0x80000000
    assert k.start == 0x80000000 + 0x5000 + 2 + len(li.MAGIC)


def test_elf_start_wraps_at_4_gib():
    # page_offset 0 is legal for the loader: virtual = physical.
    image = li.elf([(0x2000, li.MAGIC, 0)], page_offset=0)
    k = loader.load_kernel(memory(), image, 4 * MIB, "k")
    assert (k.page_offset, k.start) == (0, 0x2000 + len(li.MAGIC))


SHIPPED = ROOT / "lguestsim" / "guest" / "images" / "guest.elf"


SHIPPED_BZ = SHIPPED.with_suffix(".bzImage")


def test_shipped_guest_loads():
    image = SHIPPED.read_bytes()
    mem = memory(32 * MIB)
    k = loader.load_kernel(mem, image, 32 * MIB, str(SHIPPED))
    assert k.kind == "ELF"
    assert k.page_offset == 0xC0000000
    phys = k.start - k.page_offset - len(li.MAGIC)
    assert mem.read(phys, len(li.MAGIC)) == li.MAGIC


def test_shipped_bzimage_loads_like_the_elf():
    elf_k = loader.load_kernel(memory(32 * MIB), SHIPPED.read_bytes(), 32 * MIB, "elf")
    bz_mem = memory(32 * MIB)
    bz_k = loader.load_kernel(bz_mem, SHIPPED_BZ.read_bytes(), 32 * MIB, "bz")
    assert bz_k.kind == "bzImage"
    assert (bz_k.page_offset, bz_k.start) == (elf_k.page_offset, elf_k.start)


# --- bzImage -----------------------------------------------------------------------------
def bz_kernel(top: int = 0xC0, marker_at: int = 0x40) -> bytes:
    moves = li.movl_eax([(top << 24) + 0x476018 + 4 * i for i in range(4)])
    body = bytearray(b"\x55\x89\xe5" + moves + bytes(0x100))
    body[marker_at:marker_at + len(li.MAGIC)] = li.MAGIC
    return bytes(body)


def test_bzimage_inflates_at_1mib_and_guesses_page_offset():
    kernel = bz_kernel()
    said: list[str] = []
    mem = memory()
    k = loader.load_kernel(mem, li.bzimage(kernel), 4 * MIB, "bzImage", said.append)
    assert k.kind == "bzImage"
    assert mem.read(0x100000, len(kernel)) == kernel
    assert k.page_offset == 0xC0000000
    assert k.start == 0xC0000000 + 0x100000 + 0x40 + len(li.MAGIC)
    assert (k.low, k.high) == (0x100000, 0x100000 + len(kernel))
    assert said == [f"Unpacked size {len(kernel)} addr 0x100000"]


@pytest.mark.parametrize("fields", [
    dict(flags=0x08, name=b"vmlinux.bin"),
    dict(flags=0x04, extra=b"\x01\x02\x03"),
    dict(flags=0x10 | 0x08 | 0x04 | 0x02, name=b"n", comment=b"a comment", extra=b"ex"),
])
def test_bzimage_gzip_header_fields_are_skipped(fields):
    kernel = bz_kernel(top=0x80)
    k = loader.load_kernel(memory(), li.bzimage(kernel, **fields), 4 * MIB, "bz")
    assert k.page_offset == 0x80000000
    assert k.start == 0x80000000 + 0x100000 + 0x40 + len(li.MAGIC)


def test_bzimage_skips_gzip_headers_not_made_under_unix():
    decoy = li.gzip_member(b"not the kernel", os_byte=0)  # made under FAT
    kernel = bz_kernel()
    image = li.bzimage(kernel, before=li.DECOMPRESSOR + decoy)
    mem = memory()
    loader.load_kernel(mem, image, 4 * MIB, "bz")
    assert mem.read(0x100000, len(kernel)) == kernel


def test_intuit_page_offset_counts_the_byte_four_after_a1():
    # 0xC0 is seen 4 times, 0x80 only 3: the first past 3 wins.
    img = li.movl_eax([0x80000000, 0xC0000000, 0x80000000, 0xC0000000,
                       0xC0000000, 0x80000000, 0xC0000000])
    assert loader.intuit_page_offset(img) == 0xC0000000
    # The first value to be seen a fourth time wins, not the most common one.
    img = li.movl_eax([0x40000000] * 4 + [0xC0000000] * 10)
    assert loader.intuit_page_offset(img) == 0x40000000
    # A1 bytes inside other bytes count too: it is statistics, not decoding.
    assert loader.intuit_page_offset(b"\xa1\x00\x00\x00\xa1" * 3 + b"\x00\x00\x00\xa1") \
        == 0xA1000000


def test_intuit_page_offset_needs_four_sightings():
    with pytest.raises(LauncherError, match="could not determine page offset"):
        loader.intuit_page_offset(li.movl_eax([0xC0000000] * 3))
    # An A1 whose fourth following byte is past the end does not count.
    with pytest.raises(LauncherError):
        loader.intuit_page_offset(li.movl_eax([0xC0000000] * 3) + b"\xa1\x00\x00\x00")


# --- malformed images --------------------------------------------------------------------
GOOD_ELF = li.elf([(0x100000, li.MAGIC + b"\xf4", 0)])


def patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


def bad_phdr(**kw) -> bytes:
    args = dict(p_type=li.PT_LOAD, offset=0x1000, vaddr=0xC0100000, paddr=0x100000,
                filesz=0x10, memsz=0x10)
    args.update(kw)
    return li.ehdr(1) + li.phdr(*args.values()) + bytes(0x1000 - 84) + li.MAGIC + bytes(3)


def corrupt_deflate() -> bytes:
    member = bytearray(li.gzip_member(bz_kernel()))
    member[10] = 0xFF  # a reserved block type (3)
    return li.DECOMPRESSOR + bytes(member)


MALFORMED = {
    "empty": (b"", "Could not find kernel in bzImage"),
    "not a kernel": (b"hello world\n" * 100, "Could not find kernel in bzImage"),
    "truncated ELF header": (GOOD_ELF[:40], "truncated"),
    "64-bit": (patched(GOOD_ELF, 4, b"\x02"), "not a 32-bit"),
    "big-endian": (patched(GOOD_ELF, 5, b"\x02"), "not little-endian"),
    "ELF version": (patched(GOOD_ELF, 6, b"\x00"), "version"),
    "relocatable": (patched(GOOD_ELF, 16, b"\x01\x00"), "relocatable"),
    "shared object": (patched(GOOD_ELF, 16, b"\x03\x00"), "shared object"),
    "x86-64 machine": (patched(GOOD_ELF, 18, b"\x3e\x00"), "not for the i386"),
    "program header size": (patched(GOOD_ELF, 42, b"\x38\x00"), "program headers of 56"),
    "no program headers": (patched(GOOD_ELF, 44, b"\x00\x00"), "0 program headers"),
    "too many program headers": (patched(GOOD_ELF, 44, b"\x01\x08"), "2049 program headers"),
    "program headers past the end": (patched(GOOD_ELF, 28, b"\x00\x00\x10\x00"),
                                     "program headers"),
    "segment past end of file": (GOOD_ELF[:0x1008], "past the end of the file"),
    "segment outside memory": (bad_phdr(paddr=0x3FFFF8, vaddr=0xC03FFFF8),
                               "outside the Guest's memory"),
    "segment above 4 GiB": (bad_phdr(paddr=0xFFFFFFF0, vaddr=0xFFFFFFF0, memsz=0x100),
                            "outside the Guest's memory"),
    "filesz > memsz": (bad_phdr(memsz=4), "only 0x4 in memory"),
    "no PT_LOAD": (bad_phdr(p_type=li.PT_NOTE), "no loadable"),
    "page offsets differ": (li.elf([(0x100000, li.MAGIC, 0), (0x200000, b"x", 0)])
                            .replace(struct.pack("<I", 0xC0200000), struct.pack("<I", 0x80200000)),
                            "page offset"),
    "no GenuineLguest (ELF)": (li.elf([(0x100000, b"GenuineLgues", 0)]), "genuine lguest"),
    "no GenuineLguest (bzImage)": (li.bzimage(bz_kernel(marker_at=0x200)[:0x100]),
                                   "genuine lguest"),
    "no gzip stream": (li.DECOMPRESSOR * 4, "Could not find kernel"),
    "gzip not made under Unix": (li.bzimage(bz_kernel(), os_byte=11), "Could not find kernel"),
    "gzip header cut short": (li.DECOMPRESSOR + b"\x1f\x8b\x08\x08" + bytes(5) + b"\x03name",
                              "gzip header"),
    "reserved gzip flags": (li.bzimage(bz_kernel(), flags=0x20), "reserved flags"),
    "corrupt deflate": (corrupt_deflate(), "corrupt compressed data"),
    "truncated deflate": (li.bzimage(bz_kernel(), after=b"")[:-30], "truncated"),
    "no gzip trailer": (li.bzimage(bz_kernel(), after=b"")[:-8], "trailer"),
    "bad CRC": (li.bzimage(bz_kernel(), after=b"")[:-8] + bytes(8), "checksum"),
    "too few movl": (li.bzimage(li.MAGIC + bytes(100)), "could not determine page offset"),
    "kernel bigger than memory": (li.bzimage(bz_kernel() + bytes(3 * MIB + 1)), "bigger"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_images_give_a_clear_error(name):
    image, expected = MALFORMED[name]
    with pytest.raises(LauncherError) as info:
        loader.load_kernel(memory(), image, 4 * MIB, "bad.img")
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and message.strip() == message
    assert info.value.status == main.EXIT_NOT_STARTED


@given(st.binary(max_size=300))
def test_random_bytes_only_ever_give_launcher_errors(data):
    for image in (data, li.ehdr(1)[:16] + data, b"\x1f\x8b\x08" + data):
        try:
            loader.load_kernel(memory(MIB), image, MIB, "random")
        except LauncherError:
            pass


@given(st.integers(0, len(li.tiny_guest_elf()) - 1), st.integers(0, 255))
def test_damaged_elf_only_ever_gives_launcher_errors(where, byte):
    image = patched(li.tiny_guest_elf(), where, bytes([byte]))
    for cut in (image, image[:where]):
        try:
            loader.load_kernel(memory(), cut, 4 * MIB, "damaged")
        except LauncherError:
            pass


@given(st.integers(0, len(li.tiny_guest_bzimage()) - 1), st.integers(0, 255))
def test_damaged_bzimage_only_ever_gives_launcher_errors(where, byte):
    image = patched(li.tiny_guest_bzimage(), where, bytes([byte]))
    for cut in (image, image[:where]):
        try:
            loader.load_kernel(memory(), cut, 4 * MIB, "damaged")
        except LauncherError:
            pass


# --- initrd ------------------------------------------------------------------------------
def test_initrd_goes_at_the_top_of_memory(tmp_path):
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(b"\x07" * 5000)
    mem = memory()
    said: list[str] = []
    size = loader.load_initrd(mem, initrd, 4 * MIB, said.append)
    assert size == 8192
    assert mem.read(4 * MIB - 8192, 5000) == b"\x07" * 5000
    assert mem.read(4 * MIB - 8192 + 5000, 8192 - 5000) == bytes(8192 - 5000)
    assert said == [f"mapped initrd {initrd} size=5000 @ {4 * MIB - 8192:#x}"]


def test_initrd_errors(tmp_path):
    with pytest.raises(LauncherError, match="Failed to open .*missing"):
        loader.load_initrd(memory(), tmp_path / "missing", 4 * MIB)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(LauncherError, match="empty"):
        loader.load_initrd(memory(), tmp_path / "empty", 4 * MIB)
    (tmp_path / "huge").write_bytes(bytes(4 * MIB))
    with pytest.raises(LauncherError, match="does not fit"):
        loader.load_initrd(memory(), tmp_path / "huge", 4 * MIB)


# --- page tables -------------------------------------------------------------------------
def walk(mem: GuestMemory, pgdir: int, vaddr: int) -> tuple[int, int] | None:
    """(physical address, pte flags) of ``vaddr`` through two-level tables, or None."""
    pde = mem.read32(pgdir + 4 * (vaddr >> 22))
    if not pde & 1:
        return None
    pte = mem.read32((pde & ~0xFFF) + 4 * (vaddr >> 12 & 0x3FF))
    if not pte & 1:
        return None
    return (pte & ~0xFFF) | (vaddr & 0xFFF), pte & 0xFFF


@pytest.mark.parametrize("mem_size, initrd_size, page_offset", [
    (16 * MIB, 0, 0xC0000000),
    (6 * MIB, 2 * PAGE, 0xC0000000),
    (5 * MIB + 12 * PAGE, 0, 0x80000000),
    (20 * MIB, 0, 0xFF000000),   # only 16 MiB fit above this page_offset
])
def test_linear_page_tables(mem_size, initrd_size, page_offset):
    mem = memory(mem_size)
    said: list[str] = []
    pgdir = pagetables.setup_pagetables(mem, mem_size, initrd_size, page_offset, said.append)
    assert pgdir == mem_size - initrd_size - PAGE
    mapped = min(mem_size, (1 << 32) - page_offset) // PAGE
    ptes = -(-mapped // 1024)
    linear = pgdir - ptes * PAGE
    assert said == [f"Linear mapping of {mapped} pages in {ptes} pte pages at {linear:#x}"]
    # Every mapped page: virtual page_offset + p -> physical p, flags 0x7.
    for page in range(mapped):
        assert walk(mem, pgdir, page_offset + page * PAGE + 0x123) == (page * PAGE + 0x123, 7)
    # The directory entries point at the PTE pages, in order, with 0x7.
    first = page_offset >> 22
    for i in range(1024):
        pde = mem.read32(pgdir + 4 * i)
        if first <= i < first + ptes:
            assert pde == (linear + (i - first) * PAGE) | 7
        else:
            assert pde == 0
    # Nothing above the mapped pages in the last PTE page.
    assert mem.read(linear + 4 * mapped, ptes * PAGE - 4 * mapped) == bytes(ptes * PAGE
                                                                            - 4 * mapped)
    if page_offset:
        assert walk(mem, pgdir, 0) is None


def test_page_tables_map_at_most_1_gib_at_0xc0000000():
    assert pagetables.linear_pages_needed(2048 * MIB, 0xC0000000) == (262144, 256)
    assert pagetables.linear_pages_needed(64 * MIB, 0xC0000000) == (16384, 16)
    assert pagetables.linear_pages_needed(64 * MIB + PAGE, 0xC0000000) == (16385, 17)


def test_page_offset_must_be_on_a_directory_entry():
    with pytest.raises(LauncherError, match="4 MiB"):
        pagetables.setup_pagetables(memory(), 4 * MIB, 0, 0xC0001000)


# --- the whole layout: boot header, devices ---------------------------------------------
def lay_out(mem_size=8 * MIB, cmdline=("console=hvc0", "root=/dev/lgba"), initrd=None,
            image=None):
    mem = GuestMemory.plain(mem_size + devices.device_area_size(["console"]))
    image = li.tiny_guest_elf() if image is None else image
    return main.lay_out_guest(mem, mem_size, image, "tiny", initrd, list(cmdline))


def test_boot_header_fields():
    g = lay_out()
    m = g.memory
    assert m.read8(0x1E8) == 1
    assert m.read(0x2D0, 20) == struct.pack("<QQI", 0, 8 * MIB, 1)
    assert m.read32(0x228) == 0x1000
    line = b"console=hvc0 root=/dev/lgba \0"  # 2.6.23: each word followed by a space
    assert m.read(0x1000, len(line)) == line == g.cmdline
    assert m.read32(0x23C) == 1
    # No initrd: the initrd fields stay zero.
    assert (m.read8(0x210), m.read32(0x218), m.read32(0x21C)) == (0, 0, 0)
    assert g.pgdir == 8 * MIB - PAGE
    assert g.pfnlimit == (8 * MIB + PAGE) // PAGE


def test_boot_header_with_initrd_and_empty_command_line(tmp_path):
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"ramdisk!" * 1000)
    g = lay_out(cmdline=(), initrd=str(initrd))
    m = g.memory
    assert m.read8(0x210) == 0xFF
    assert m.read32(0x218) == 8 * MIB - 2 * PAGE
    assert m.read32(0x21C) == 2 * PAGE  # page-aligned, as the original
    assert m.read(8 * MIB - 2 * PAGE, 8) == b"ramdisk!"
    assert g.pgdir == 8 * MIB - 2 * PAGE - PAGE
    assert m.read8(0x1000) == 0 and g.cmdline == b"\0"


def test_command_line_words_keep_their_bytes():
    assert boot.concat(["a", "-x", "é"]) == "a -x é ".encode() + b"\0"
    assert boot.concat([]) == b"\0"
    with pytest.raises(LauncherError, match="command line"):
        lay_out(cmdline=["x" * 5000])


def test_layout_refuses_too_little_memory(tmp_path):
    # 1 MiB of RAM cannot hold a kernel at 1 MiB.
    with pytest.raises(LauncherError, match="outside the Guest's memory"):
        lay_out(mem_size=MIB)
    # The kernel fits, but the page tables below the initrd would land on it.
    initrd = tmp_path / "initrd"
    initrd.write_bytes(bytes(2 * MIB - 3 * PAGE))
    with pytest.raises(LauncherError, match="page tables"):
        lay_out(mem_size=3 * MIB, initrd=str(initrd))
    initrd.write_bytes(bytes(2 * MIB - PAGE))
    with pytest.raises(LauncherError, match="overlap the kernel"):
        lay_out(mem_size=3 * MIB, initrd=str(initrd))


def test_device_descriptor_page_holds_the_console():
    g = lay_out()
    assert g.devices.descs == 8 * MIB
    assert g.devices.descriptor(0) == dict(type=abi.LGUEST_DEVICE_T_CONSOLE, features=0,
                                           status=0, num_pages=0, pfn=0)
    assert all(g.devices.descriptor(i)["type"] == 0 for i in range(1, 16))
    (console,) = g.devices.devices
    assert (console.index, console.irq, console.mem, console.watch_key) == (0, 1, 0, 0)


def test_device_pages_are_allocated_upward_after_the_descriptor_page():
    mem = GuestMemory.plain(4 * MIB + 4 * PAGE)
    dl = devices.DeviceList(mem, 4 * MIB)
    a = dl.new_device("a", 3, 1, abi.LGUEST_DEVICE_F_RANDOMNESS, None, 0, None)
    b = dl.new_device("b", 2, 2, 1, None, 4, None)
    assert (a.mem, b.mem) == (4 * MIB + PAGE, 4 * MIB + 2 * PAGE)
    assert b.watch_key == b.mem + 4
    assert dl.top == 4 * MIB + 4 * PAGE
    assert dl.descriptor(1) == dict(type=2, features=1, status=0, num_pages=2,
                                    pfn=(4 * MIB + 2 * PAGE) // PAGE)
    for _ in range(2, 16):
        dl.new_device("c", 1, 0, 0, None, 0, None)
    with pytest.raises(LauncherError, match="too many devices"):
        dl.new_device("d", 1, 0, 0, None, 0, None)


# --- console output and DMA checks ------------------------------------------------------
def put_dma(mem: GuestMemory, at: int, sections: list[tuple[int, int]]) -> None:
    addrs = [a for a, _ in sections] + [0] * (16 - len(sections))
    lens = [n for _, n in sections] + [0] * (16 - len(sections))
    mem.write(at, struct.pack("<I16I16H", 0, *addrs, *lens))


class Stream(io.StringIO):
    """A text stream with a binary buffer behind it, like sys.stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()


def console_setup(top_extra: int = PAGE):
    mem = GuestMemory.plain(MIB + top_extra)
    dl = devices.DeviceList(mem, MIB)
    out = Stream()
    devices.setup_console(dl, out)
    return mem, dl, out


def test_console_output_goes_to_stdout_and_sets_used_len():
    mem, dl, out = console_setup()
    mem.write(0x5000, b"Hello, ")
    mem.write(0x6000, b"world\n")
    put_dma(mem, 0x7000, [(0x5000, 7), (0x6000, 6), (0x9000, 0), (0x5000, 7)])
    dl.handle_output(None, 0x7000, 0)
    assert out.buffer.getvalue() == b"Hello, world\n"  # a 0 length ends the list
    assert mem.read32(0x7000) == 13


def test_console_output_to_a_text_only_stream():
    mem = GuestMemory.plain(MIB + PAGE)
    dl = devices.DeviceList(mem, MIB)
    out = io.StringIO()
    devices.setup_console(dl, out)
    mem.write(0x5000, b"hi\n")
    put_dma(mem, 0x7000, [(0x5000, 3)])
    dl.handle_output(None, 0x7000, 0)
    assert out.getvalue() == "hi\n" and mem.read32(0x7000) == 3


def test_dma_to_an_unwatched_key_is_a_warning(capsys):
    mem, dl, out = console_setup()
    mem.write(0x5000, b"lost")
    put_dma(mem, 0x7000, [(0x5000, 4)])
    dl.handle_output(None, 0x7000, 0x8000)
    assert "Pending dma 0x7000, key 0x8000" in capsys.readouterr().err
    assert out.buffer.getvalue() == b"" and mem.read32(0x7000) == 0


@pytest.mark.parametrize("dma, sections", [
    (MIB + PAGE, []),                     # the DMA itself beyond the top
    (MIB + PAGE - 100, []),               # ... ending exactly at the top (refused too)
    (0x7000, [(MIB + PAGE - 4, 4)]),      # a section ending at the top
    (0x7000, [(MIB, 4097)]),              # a section running over it
    (0x7000, [(0xFFFFFFFF, 2)]),
])
def test_bad_guest_addresses_stop_the_launcher(dma, sections):
    mem, dl, out = console_setup()
    if sections:
        put_dma(mem, dma, sections)
    with pytest.raises(LauncherError, match="invalid address") as info:
        dl.handle_output(None, dma, 0)
    assert info.value.status == main.EXIT_GUEST_DIED
    assert out.buffer.getvalue() == b""


class FakeLguest:
    """/dev/lguest played from a script: each read() takes the next step."""

    def __init__(self, steps: list, reason: bytes = b"CRASH: Power down\0") -> None:
        self.steps = list(steps)
        self.reason = reason
        self.writes: list[tuple[int, ...]] = []
        self.dead = False

    def read(self, n: int) -> bytes:
        if self.dead:
            return self.reason[:n]
        step = self.steps.pop(0)
        if isinstance(step, int):
            if step == errno.ENOENT:
                self.dead = True
            raise OSError(step, "scripted")
        return step

    def write(self, data: bytes) -> int:
        self.writes.append(struct.unpack(f"<{len(data) // 4}I", data))
        return 0


def test_run_loop_serves_output_until_the_guest_dies():
    mem, dl, out = console_setup()
    mem.write(0x5000, b"one\n")
    put_dma(mem, 0x7000, [(0x5000, 4)])
    fake = FakeLguest([struct.pack("<II", 0x7000, 0), struct.pack("<II", 0x7000, 0),
                       errno.ENOENT])
    assert run.run_guest(fake, dl) == "CRASH: Power down"
    assert out.buffer.getvalue() == b"one\none\n"


def test_run_loop_eagain_with_nothing_to_wake_the_guest():
    mem, dl, out = console_setup()
    with pytest.raises(LauncherError, match="asleep") as info:
        run.run_guest(FakeLguest([errno.EAGAIN]), dl)
    assert info.value.status == main.EXIT_ASLEEP


def test_run_loop_eagain_serves_input_and_releases_the_break():
    mem, dl, out = console_setup()
    ready = [True, False]
    served = []
    dev = dl.new_device("input", 1, 0, 0, lambda lg, d: served.append(d.name) or True, 0,
                        None, input_ready=lambda: ready.pop(0) if ready else False)
    assert dev.irq == 2
    fake = FakeLguest([errno.EAGAIN, errno.ENOENT], reason=b"CRASH: oops\n  more\0")
    assert run.run_guest(fake, dl) == "CRASH: oops more"
    assert served == ["input"]
    assert fake.writes == [(abi.LHREQ_BREAK, 0)]


def test_run_loop_other_errors():
    mem, dl, out = console_setup()
    with pytest.raises(LauncherError, match="Running guest failed"):
        run.run_guest(FakeLguest([errno.EINVAL]), dl)
    with pytest.raises(LauncherError, match="Running guest failed"):
        run.run_guest(FakeLguest([b"abc"]), dl)


def test_tell_kernel_writes_initialize():
    fake = FakeLguest([])
    run.tell_kernel(fake, 0x1001, 0xFFF000, 0xC010001D, 0xC0000000)
    assert fake.writes == [(abi.LHREQ_INITIALIZE, 0x1001, 0xFFF000, 0xC010001D, 0xC0000000)]


def test_get_dma_buffer_and_trigger_irq():
    mem, dl, out = console_setup()
    put_dma(mem, 0x7000, [(0x5000, 256)])
    mem.write32(0x7000, 3)  # the Host stashes the irq in used_len

    class Host(FakeLguest):
        def write(self, data):
            super().write(data)
            return 0x7000 if data[:4] == struct.pack("<I", abi.LHREQ_GETDMA) else 0

    fake = Host([])
    iov, used_len, irq = dl.get_dma_buffer(fake, 0)
    assert (iov, used_len, irq) == ([devices.Section(0x5000, 256)], 0x7000, 3)
    dl.trigger_irq(fake, irq)
    assert fake.writes == [(abi.LHREQ_GETDMA, 0), (abi.LHREQ_IRQ, 3)]


def test_abi_matches_the_host():
    import lguestsim.host as host
    assert (host.LHREQ_INITIALIZE, host.LHREQ_GETDMA, host.LHREQ_IRQ, host.LHREQ_BREAK) == (
        abi.LHREQ_INITIALIZE, abi.LHREQ_GETDMA, abi.LHREQ_IRQ, abi.LHREQ_BREAK)


# --- the command line --------------------------------------------------------------------
@pytest.mark.parametrize("argv, head, tail", [
    ([], [], []),
    (["64"], ["64"], []),
    (["64", "vmlinux", "a", "-b", "--initrd=x"], ["64", "vmlinux"], ["a", "-b", "--initrd=x"]),
    (["--initrd", "rd", "64", "--verbose", "k", "v"],
     ["--initrd", "rd", "64", "--verbose", "k"], ["v"]),
    (["64", "--", "-k", "x"], ["64", "--", "-k"], ["x"]),
])
def test_split_argv(argv, head, tail):
    assert main.split_argv(argv) == (head, tail)


def test_parse_args():
    o = main.parse_args(["--verbose", "--initrd=rd", "48", "k.elf", "console=hvc0", "-s"])
    assert (o.verbose, o.initrd, o.mem, o.image, o.cmdline) == (
        True, "rd", 48 * MIB, "k.elf", ["console=hvc0", "-s"])
    o = main.parse_args([])
    assert (o.mem_mb, o.image, o.cmdline) == (main.DEFAULT_MEM_MB, None, [])
    o = main.parse_args(["--block=a", "--sharenet", "n", "--block=b", "--tunnet=10.0.0.1",
                         "--guests=2", "64", "k"])
    assert o.devices == [("block", "a"), ("sharenet", "n"), ("block", "b"),
                         ("tunnet", "10.0.0.1")]
    assert o.guests == 2


def lguest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lguestsim", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["--no-such-option"], "usage: lguest"),
    (["0", "k"], "must be between 1"),
    (["lots", "k"], "not a number of megabytes"),
    (["--initrd"], "expected one argument"),
    (["--block=no/such/disk.img", "16"], "Failed to open no/such/disk.img"),
    (["--tunnet", "bridge:no-such-bridge", "16"], "--tunnet=bridge:no-such-bridge: "),
    (["--tunnet", "not-an-address", "16"], "--tunnet=not-an-address: "),
    (["--sharenet=no/such/dir/net", "16"], "cannot open net file 'no/such/dir/net'"),
    (["--guests=0", "16"], "must be between 1 and 16"),
    (["64", "no/such/vmlinux"], "Failed to open no/such/vmlinux"),
])
def test_bad_command_lines_exit_2(args, message):
    proc = lguest(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_image_on_the_command_line_exits_2(tmp_path):
    for name in ("64-bit", "corrupt deflate", "no GenuineLguest (ELF)"):
        image = tmp_path / "bad"
        image.write_bytes(MALFORMED[name][0])
        proc = lguest("16", str(image))
        assert proc.returncode == 2
        assert proc.stderr.startswith("lguest: ") and proc.stderr.count("\n") == 1
        assert "Traceback" not in proc.stderr


def test_demo_is_still_reachable():
    proc = lguest("--demo")
    assert proc.returncode == 0 and "eax = 0x000013ba" in proc.stdout


# --- with the Host -----------------------------------------------------------------------
def host_api():
    return main.load_host_api()


@pytest.mark.parametrize("build", [li.tiny_guest_elf, li.tiny_guest_bzimage])
def test_tiny_guest_runs_and_powers_down(build, tmp_path, capsys):
    api = host_api()
    image = tmp_path / "tiny"
    image.write_bytes(build())
    opts = main.Options(mem_mb=16, verbose=True, image=str(image), cmdline=["console=hvc0"])
    out = Stream()
    assert main.launch(opts, api, console_out=out) == main.EXIT_POWER_DOWN
    assert out.buffer.getvalue() == b"Hello from the Guest\n"
    captured = capsys.readouterr()
    assert captured.err == "lguest: CRASH: Power down\n"
    assert "Guest: (nil) - 0x1001000 (0x1001000)" in captured.out
    assert "Linear mapping of 4096 pages in 4 pte pages at 0xffb000" in captured.out


def test_tiny_guest_on_the_command_line(tmp_path):
    host_api()
    image = tmp_path / "tiny.elf"
    image.write_bytes(li.tiny_guest_elf(text=b"console works\n", reason=b"Kernel panic"))
    proc = lguest("16", str(image), "console=hvc0")
    assert proc.stdout == "console works\n"
    assert proc.stderr == "lguest: CRASH: Kernel panic\n"
    assert proc.returncode == main.EXIT_GUEST_DIED
    image.write_bytes(li.tiny_guest_elf())
    proc = lguest("--verbose", "16", str(image))
    assert proc.returncode == main.EXIT_POWER_DOWN
    assert proc.stdout.splitlines()[0] == "device (nil): console"
    assert "Hello from the Guest" in proc.stdout


@pytest.mark.parametrize("image", [None, SHIPPED_BZ])
def test_shipped_guest_boots_and_powers_down(image, capsys):
    api = host_api()
    out = Stream()
    opts = main.Options(mem_mb=32, image=None if image is None else str(image))
    assert main.launch(opts, api, console_out=out) == main.EXIT_POWER_DOWN
    assert capsys.readouterr().err == "lguest: CRASH: Power down\n"
    assert out.buffer.getvalue()
