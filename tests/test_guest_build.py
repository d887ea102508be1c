"""The teaching Guest's images: reproducible, and shaped the way the Launcher expects.

The first test rebuilds the Guest from its sources and needs gcc with -m32 (CI
installs gcc-multilib); the others read the shipped images only.
"""

import gzip
import io
import shutil
import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from lguestsim import guest
from lguestsim.guest import build

PAGE_OFFSET = 0xC0000000

# struct lguest_data (ABI.md, section B)
LD_BLOCKED, LD_HCALL_STATUS, LD_NOIRQ_START, LD_NOIRQ_END, LD_SIZE = 4, 20, 1120, 1124, 1128


def m32_link_problem(tmp_path) -> str | None:
    """Why gcc cannot build 32-bit freestanding code here, or None if it can."""
    missing = [t for t in build.TOOLS if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    src = tmp_path / "probe.c"
    src.write_text("int probe(void) { return 1; }\n")
    proc = subprocess.run(["gcc", "-m32", "-c", str(src), "-o", str(tmp_path / "probe.o")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return "gcc -m32 cannot compile (gcc-multilib missing?): " + proc.stderr.strip()
    proc = subprocess.run(["ld", "-m", "elf_i386", "-e", "probe", "-o", str(tmp_path / "probe"),
                           str(tmp_path / "probe.o")], capture_output=True, text=True)
    if proc.returncode != 0:
        return "ld -m elf_i386 cannot link: " + proc.stderr.strip()
    return None


@pytest.fixture(scope="module")
def shipped():
    elf = guest.ELF_IMAGE.read_bytes()
    bz = guest.BZIMAGE.read_bytes()
    return elf, bz, build.unpack_bzimage(bz)


def symbols(elf_bytes: bytes) -> dict[str, int]:
    f = ELFFile(io.BytesIO(elf_bytes))
    return {s.name: s["st_value"] for s in f.get_section_by_name(".symtab").iter_symbols()
            if s.name}


def test_rebuild_is_byte_for_byte_the_shipped_images(tmp_path):
    problem = m32_link_problem(tmp_path)
    assert not problem, f"cannot build the Guest here: {problem} (.ci/run installs gcc-multilib)"
    out = tmp_path / "images"
    elf, bz = build.build(out)
    shipped_with = (guest.IMAGES / "toolchain.txt").read_text()
    here = (out / "toolchain.txt").read_text()
    hint = ("" if here == shipped_with else
            f"\nthe shipped images were built with:\n{shipped_with}this toolchain is:\n{here}")
    assert elf.read_bytes() == guest.ELF_IMAGE.read_bytes(), \
        "guest.elf differs: rebuild with python -m lguestsim.guest.build and commit" + hint
    assert bz.read_bytes() == guest.BZIMAGE.read_bytes(), \
        "guest.bzImage differs: rebuild with python -m lguestsim.guest.build and commit" + hint


def test_shipped_images_pass_the_build_checks(shipped):
    elf, bz, flat = shipped
    build.check_images(elf, flat, bz)


def test_elf_segments_are_the_flat_kernel_at_1mib(shipped):
    elf, _bz, flat = shipped
    segments = build.elf_segments(elf)
    assert [p for _v, p, _f, _m in segments][0] == 0x100000
    f = ELFFile(io.BytesIO(elf))
    for seg in f.iter_segments():
        if seg["p_type"] != "PT_LOAD":
            continue
        assert seg["p_vaddr"] - seg["p_paddr"] == PAGE_OFFSET
        start = seg["p_paddr"] - 0x100000
        assert flat[start:start + seg["p_filesz"]] == seg.data()


def test_entry_follows_the_signature_and_starts_with_lguest_init(shipped):
    elf, _bz, flat = shipped
    sym = symbols(elf)
    at = flat.index(b"GenuineLguest") + len(b"GenuineLguest")
    entry = PAGE_OFFSET + 0x100000 + at
    assert build.elf_entry(elf) == entry == sym["startup_32"]
    # mov $1, %eax; mov $__pa(lguest_data), %edx; int $0x1F
    lguest_data_phys = sym["lguest_data"] - PAGE_OFFSET
    assert flat[at:at + 12] == (b"\xb8\x01\x00\x00\x00\xba"
                                + struct.pack("<I", lguest_data_phys) + b"\xcd\x1f")


def test_lguest_data_is_ready_for_lguest_init(shipped):
    elf, _bz, flat = shipped
    sym = symbols(elf)
    off = sym["lguest_data"] - PAGE_OFFSET - 0x100000
    data = flat[off:off + LD_SIZE]
    assert len(data) == LD_SIZE
    assert struct.unpack_from("<I", data, 0)[0] == 0                      # irq_enabled: off
    assert struct.unpack_from("<I", data, LD_BLOCKED)[0] == 1             # timer blocked
    assert data[LD_HCALL_STATUS:LD_HCALL_STATUS + 64] == b"\xff" * 64      # ring empty
    start, end = struct.unpack_from("<II", data, LD_NOIRQ_START)
    assert (start, end) == (sym["lguest_noirq_start"], sym["lguest_noirq_end"])
    # The window holds the store to irq_enabled, the pop and the iret, which is last.
    window = flat[start - PAGE_OFFSET - 0x100000:end - PAGE_OFFSET - 0x100000]
    assert 0 < len(window) <= 16 and window[-1] == 0xCF
    assert struct.pack("<I", sym["lguest_data"]) in window


def test_bzimage_header_and_gzip_stream(shipped):
    _elf, bz, flat = shipped
    assert bz[0x202:0x206] == b"HdrS"
    assert struct.unpack_from("<H", bz, 0x1FE)[0] == 0xAA55
    setup_sects = bz[0x1F1]
    start = build.find_gzip(bz)
    assert start == (1 + setup_sects) * 512
    assert bz[start:start + 4] == b"\x1f\x8b\x08\x00"
    assert bz[start + 4:start + 8] == b"\0\0\0\0"       # no timestamp
    assert bz[start + 9] == 3                              # OS: Unix
    assert gzip.decompress(bz[start:]) == flat


def test_page_offset_guess(shipped):
    _elf, _bz, flat = shipped
    assert build.guess_page_offset(flat) == PAGE_OFFSET
    assert build.guess_page_offset(b"\xa1\0\0\0\x12" * 3) is None
    assert build.guess_page_offset(b"\xa1\0\0\0\x12" * 4 + b"\xa1\0\0\0\xc0" * 9) == 0x12000000
