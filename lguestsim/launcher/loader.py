"""Loading the kernel: zeroed memory, an ELF vmlinux or a bzImage, an initrd.

The Launcher first fills all of the Guest's memory with zeroes, so that the
Guest finds clean memory everywhere it is allowed to look. Then it puts the
kernel in. Two kinds of image are understood:

* an ELF ``vmlinux``: its program headers say which bytes of the file go to
  which physical address, and (by comparing each segment's virtual and
  physical address) which virtual address the kernel expects to run at;
* a ``bzImage``: a decompressor with a gzip stream inside. The Guest cannot
  run the decompressor, so the Launcher finds the stream, inflates it at
  1 MiB, and guesses the kernel's virtual base from the code itself.

Either way the entry point is found the same way: the Guest's boot code sits
right after the string "GenuineLguest", so the Launcher scans the loaded
image for it. That is what 2.6.23's Launcher did for an ELF vmlinux too: its
map_elf() ends with the scan and never looks at the header's e_entry (2.6.24
replaced the marker by the normal Linux entry point). lguestsim keeps the
scan, and ``--verbose`` says when e_entry names another address. An initrd,
if asked for, goes at the very top of memory.

Anything wrong with an image (too short, not what it claims to be, segments
that do not fit, no marker, no or broken compressed data) ends in a
``LauncherError`` whose message names the image and the problem.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from .abi import PAGE_SIZE
from .memory import GuestMemory, page_align
from .report import LauncherError, Say, ptr, quiet

MIB = 1 << 20

# The Guest's boot code follows this string; the entry point is just after it.
LGUEST_MAGIC = b"GenuineLguest"


@dataclass(frozen=True)
class Kernel:
    """What loading a kernel image found out."""

    kind: str          # "ELF" or "bzImage"
    start: int         # the entry point: a virtual address, the Guest's first eip
    page_offset: int   # virtual address - physical address of the kernel
    low: int           # first Guest-physical byte the kernel occupies
    high: int          # one past the last (including memory it zeroes itself)


#: L:130 Loading the kernel begins with two small helpers. The C Launcher has
# open_or_die(), which exits with a message so that no caller has to check for
# errors; `read_file` is its Python counterpart, reading a whole image at once
# and turning any OSError into a one-line `LauncherError`. `main` prints that
# line and exits with status 2: the Guest never ran.
def read_file(path: str | Path) -> bytes:
    """The whole of a file, or a ``LauncherError`` saying why not."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        reason = err.strerror or str(err)
        raise LauncherError(f"Failed to open {path}: {reason}") from None


#: L:131 Every page the Guest may touch must exist and start out as zeroes. The
# C Launcher arranges that by mapping /dev/zero over the range, privately and at
# exactly the address it asks for; here the memory already exists, so "mapping"
# zeroed pages means clearing them. It happens first over all of Guest memory,
# before the kernel goes in, and later for each page a device asks for above it.
def map_zeroed_pages(memory: GuestMemory, addr: int, num: int) -> int:
    """Make ``num`` pages from ``addr`` (page aligned) zeroed Guest memory.

    The real Launcher maps /dev/zero there; here the Launcher's memory
    already exists and we clear it. Returns ``addr``, for the caller's
    convenience.
    """
    if addr % PAGE_SIZE:
        raise LauncherError(f"map_zeroed_pages: {addr:#x} is not page aligned")
    memory.zero(addr, num * PAGE_SIZE)
    return addr


#: L:132 Where does the Guest start? The 2.6.23 Guest puts the string
# "GenuineLguest" just before its boot code, so the Launcher searches the loaded
# image for it. The search runs over physical addresses, where the image lies,
# but the Guest starts with paging already on, so the Launcher adds page_offset:
# the virtual address it returns becomes the Guest's first `eip` when the Host
# sets up its registers.
def entry_point(memory: GuestMemory, start: int, end: int, page_offset: int,
                name: str) -> int:
    """Find "GenuineLguest" at a physical address in [start, end).

    The scan works on physical addresses, where the image lies, but the Guest
    starts with paging on, so the entry point is the virtual address: the
    byte after the marker plus ``page_offset``. As in the original, a marker
    that starts inside the range may run past its end.
    """
    stop = min(end + len(LGUEST_MAGIC) - 1, memory.size)
    where = memory.read(start, max(stop - start, 0)).find(LGUEST_MAGIC)
    if where < 0:
        raise LauncherError(
            f"{name}: no \"GenuineLguest\" marker in the loaded image between "
            f"{start:#x} and {end:#x}: is this image a genuine lguest?")
    return (start + where + len(LGUEST_MAGIC) + page_offset) & 0xFFFFFFFF


# The ELF format, as much of it as a loader needs (32-bit, little-endian).
ELFMAG = b"\x7fELF"
EI_CLASS, EI_DATA, EI_VERSION = 4, 5, 6
ELFCLASS32 = 1
ELFDATA2LSB = 1
EV_CURRENT = 1
ET_EXEC = 2
EM_386 = 3
PT_LOAD = 1

# Elf32_Ehdr: e_ident[16], e_type, e_machine, e_version, e_entry, e_phoff,
# e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum,
# e_shstrndx.
ELF32_EHDR = struct.Struct("<16sHHIIIIIHHHHHH")
# Elf32_Phdr: p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags,
# p_align.
ELF32_PHDR = struct.Struct("<8I")

ELF_TYPES = {0: "no file type", 1: "relocatable", 2: "executable",
             3: "shared object", 4: "core"}


@dataclass(frozen=True)
class ElfHeader:
    e_type: int
    e_machine: int
    e_version: int
    e_phoff: int
    e_phentsize: int
    e_phnum: int
    e_entry: int          # not what starts the Guest (see map_elf)


@dataclass(frozen=True)
class ProgramHeader:
    p_type: int
    p_offset: int
    p_vaddr: int
    p_paddr: int
    p_filesz: int
    p_memsz: int
    p_flags: int
    p_align: int


def parse_elf_header(image: bytes, name: str) -> ElfHeader:
    """Check the ELF header of a would-be i386 kernel and return its fields."""
    bad = f"{name}: malformed ELF header"
    if len(image) < ELF32_EHDR.size:
        raise LauncherError(f"{bad}: the file is only {len(image)} bytes, "
                            f"an ELF header needs {ELF32_EHDR.size}: truncated?")
    (ident, e_type, e_machine, e_version, e_entry, e_phoff, _shoff, _flags, _ehsize,
     e_phentsize, e_phnum, _shentsize, _shnum, _shstrndx) = ELF32_EHDR.unpack_from(image)
    if ident[:4] != ELFMAG:
        raise LauncherError(f"{bad}: no \\177ELF magic")
    if ident[EI_CLASS] != ELFCLASS32:
        raise LauncherError(f"{bad}: not a 32-bit ELF file (class {ident[EI_CLASS]})")
    if ident[EI_DATA] != ELFDATA2LSB:
        raise LauncherError(f"{bad}: not little-endian (data encoding {ident[EI_DATA]})")
    if ident[EI_VERSION] != EV_CURRENT or e_version != EV_CURRENT:
        raise LauncherError(f"{bad}: unknown ELF version {ident[EI_VERSION]}/{e_version}")
    if e_type != ET_EXEC:
        kind = ELF_TYPES.get(e_type, f"type {e_type}")
        raise LauncherError(f"{bad}: not an executable but {kind} (e_type {e_type})")
    if e_machine != EM_386:
        raise LauncherError(f"{bad}: not for the i386 (e_machine {e_machine})")
    # A sane number of program headers of the size we expect, all in the file.
    if e_phentsize != ELF32_PHDR.size:
        raise LauncherError(f"{bad}: program headers of {e_phentsize} bytes, "
                            f"not {ELF32_PHDR.size}")
    if not 1 <= e_phnum <= 65536 // ELF32_PHDR.size:
        raise LauncherError(f"{bad}: {e_phnum} program headers")
    if e_phoff + e_phnum * e_phentsize > len(image):
        raise LauncherError(f"{bad}: the program headers ({e_phnum} at offset "
                            f"{e_phoff:#x}) run past the end of the file: truncated?")
    return ElfHeader(e_type, e_machine, e_version, e_phoff, e_phentsize, e_phnum, e_entry)


def program_headers(image: bytes, ehdr: ElfHeader) -> list[ProgramHeader]:
    return [ProgramHeader(*ELF32_PHDR.unpack_from(image, ehdr.e_phoff + i * ehdr.e_phentsize))
            for i in range(ehdr.e_phnum)]


#: L:133 An ELF `vmlinux` says exactly what to load: each PT_LOAD program header
# names a stretch of the file, the physical address it goes to, and the virtual
# address it was linked for. The Launcher insists that every segment has the
# same virtual-minus-physical difference, which then is page_offset, and loads
# each segment writable whatever its flags say, because the kernel patches its
# own code. The C Launcher maps the file there copy-on-write; we copy the bytes
# in, and a segment's bss needs nothing since the memory is already zeroed. The
# scan for "GenuineLguest" is bounded by the first and last byte from the file.
# 2.6.23 starts the Guest where the scan says, not at the ELF header's e_entry
# (the later Launchers use e_entry); with --verbose we say when the two differ.
def map_elf(memory: GuestMemory, image: bytes, mem: int, name: str,
            say: Say = quiet) -> Kernel:
    """Load each PT_LOAD segment of an ELF kernel at its physical address.

    Each segment also has a virtual address, the one the kernel was linked
    to run at. The Launcher expects one simple linear relation between the
    two: every segment must have the same virtual - physical difference,
    and that difference is the kernel's page_offset.

    Segments are copied writable whatever their flags say: the kernel
    patches its own code. Bytes a segment has in memory but not in the file
    (its bss) are left as the zeroes already there.
    """
    ehdr = parse_elf_header(image, name)
    page_offset: int | None = None
    start, end, high = 1 << 32, 0, 0
    for i, ph in enumerate(program_headers(image, ehdr)):
        if ph.p_type != PT_LOAD:
            continue
        say(f"Section {i}: size {ph.p_memsz} addr {ptr(ph.p_paddr)}")
        where = f"{name}: segment {i}"
        if ph.p_filesz > ph.p_memsz:
            raise LauncherError(f"{where}: {ph.p_filesz:#x} bytes in the file but only "
                                f"{ph.p_memsz:#x} in memory")
        if ph.p_offset + ph.p_filesz > len(image):
            raise LauncherError(f"{where}: {ph.p_filesz:#x} bytes at file offset "
                                f"{ph.p_offset:#x} run past the end of the file "
                                f"({len(image):#x} bytes): truncated?")
        if ph.p_paddr + ph.p_memsz > mem:
            raise LauncherError(f"{where}: physical {ph.p_paddr:#x} - "
                                f"{ph.p_paddr + ph.p_memsz:#x} is outside the Guest's "
                                f"memory (0 - {mem:#x})")
        offset = (ph.p_vaddr - ph.p_paddr) & 0xFFFFFFFF
        if page_offset is None:
            page_offset = offset
        elif offset != page_offset:
            raise LauncherError(f"{where}: page offset {offset:#x} is different from "
                                f"the earlier segments' {page_offset:#x}")
        # The first and last byte loaded from the file bound the marker scan.
        start = min(start, ph.p_paddr)
        end = max(end, ph.p_paddr + ph.p_filesz)
        high = max(high, ph.p_paddr + ph.p_memsz)
        memory.write(ph.p_paddr, image[ph.p_offset:ph.p_offset + ph.p_filesz])
    if page_offset is None:
        raise LauncherError(f"{name}: no loadable (PT_LOAD) segment")
    entry = entry_point(memory, start, end, page_offset, name)
    # e_entry 0 means "no entry point" in ELF: nothing to compare.
    if ehdr.e_entry not in (0, entry):
        say(f"ELF entry point {ptr(ehdr.e_entry)} is not the \"GenuineLguest\" "
            f"entry {ptr(entry)}: starting at {ptr(entry)}, as 2.6.23's Launcher does")
    return Kernel("ELF", entry, page_offset, start, high)


#: L:170 Guessing page_offset from the code itself. The kernel is full of
# `movl <address>, %eax`, which the i386 encodes as the byte 0xA1 followed by
# the 4-byte address, and the top byte of a kernel address is the top byte of
# page_offset (0xC0 for the usual 0xC0000000, as long as the kernel is smaller
# than 16 MiB). Telling real instructions from stray 0xA1 bytes would take a
# disassembler, so the Launcher counts instead: for each 0xA1 it tallies the
# byte four further on, and the first value seen more than three times wins.
# Crude, and yet it works on real kernels.
def intuit_page_offset(img: bytes) -> int:
    """Guess a bzImage kernel's page_offset from "movl address, %eax".

    Without ELF headers nothing says where the kernel expects to run. But
    the kernel's code is full of ``movl <address>, %eax``, encoded as 0xA1
    followed by the 4-byte address, and the top byte of a kernel address is
    the top byte of its page_offset. Finding real instructions would take a
    disassembler; statistics do instead: for every 0xA1 count the byte 4
    after it, and the first top byte seen more than 3 times wins.
    """
    seen = [0] * 256
    i = img.find(0xA1)
    while 0 <= i and i + 4 < len(img):
        top = img[i + 4]
        seen[top] += 1
        if seen[top] > 3:
            return top << 24
        i = img.find(0xA1, i + 1)
    raise LauncherError("could not determine page offset: too few "
                        "\"movl address, %eax\" (0xA1) instructions")


# A bzImage's kernel is inflated to where it would unpack itself: 1 MiB.
BZIMAGE_LOAD = 0x100000

# gzip: ID1 ID2, CM 8 = deflate, FLG, MTIME (4 bytes), XFL, OS.
GZIP_MAGIC = b"\x1f\x8b\x08"
GZIP_HEADER = 10
GZIP_OS = 9
GZIP_OS_UNIX = 3
FHCRC, FEXTRA, FNAME, FCOMMENT, FRESERVED = 0x02, 0x04, 0x08, 0x10, 0xE0


#: L:151 The header to look for is gzip's: the bytes 1f 8b, compression method
# 8 (deflate), and in the tenth byte an operating-system code of 3, "made on
# Unix". The C Launcher walks the file one byte at a time through a small state
# machine, and gives up at the first header with the wrong system byte; this
# version jumps between candidates with `bytes.find` and moves on to the next
# one instead.
def find_gzip_header(image: bytes) -> int | None:
    """Offset of the first gzip header made under Unix, or None.

    The original scans byte by byte; a header whose OS byte is not 3 makes it
    give up altogether. This scan goes on to the next candidate instead.
    """
    pos = image.find(GZIP_MAGIC)
    while pos >= 0:
        if pos + GZIP_HEADER <= len(image) and image[pos + GZIP_OS] == GZIP_OS_UNIX:
            return pos
        pos = image.find(GZIP_MAGIC, pos + 1)
    return None


def gzip_data_start(image: bytes, pos: int, name: str) -> int:
    """Skip the gzip header at ``pos`` and its optional fields (RFC 1952)."""
    flags = image[pos + 3]
    if flags & FRESERVED:
        raise LauncherError(f"{name}: gzip header at {pos:#x} has reserved flags {flags:#x}")
    p = pos + GZIP_HEADER
    try:
        if flags & FEXTRA:
            p += 2 + int.from_bytes(image[p:p + 2], "little")
        for flag in (FNAME, FCOMMENT):
            if flags & flag:
                p = image.index(b"\0", p) + 1
    except ValueError:
        p = len(image) + 1
    if flags & FHCRC:
        p += 2
    if p > len(image):
        raise LauncherError(f"{name}: gzip header at {pos:#x} runs past the end of the file")
    return p


def inflate(image: bytes, pos: int, limit: int, name: str) -> bytes:
    """The data of the gzip member at ``pos``, at most ``limit`` bytes.

    Its CRC-32 and length are checked, as zlib's gzread() does; whatever
    follows the member in the file is not looked at.
    """
    data = gzip_data_start(image, pos, name)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(image[data:], limit + 1)
    except zlib.error as err:
        raise LauncherError(f"reading image from bzImage {name}: corrupt "
                            f"compressed data ({err})") from None
    if len(out) > limit:
        raise LauncherError(f"reading image from bzImage {name}: the kernel is bigger "
                            f"than the {limit:#x} bytes of memory above 1 MiB")
    if not inflater.eof:
        raise LauncherError(f"reading image from bzImage {name}: the compressed data "
                            f"ends too soon: truncated?")
    trailer = inflater.unused_data[:8]
    if len(trailer) < 8:
        raise LauncherError(f"reading image from bzImage {name}: no gzip trailer: "
                            f"truncated?")
    crc, size = struct.unpack("<II", trailer)
    if crc != zlib.crc32(out) or size != len(out) & 0xFFFFFFFF:
        raise LauncherError(f"reading image from bzImage {name}: gzip checksum or "
                            f"length mismatch: corrupt image")
    return out


#: L:160 What is compressed inside a bzImage is not an ELF file but the
# kernel's raw loaded bytes, so once they are inflated nothing records where
# they were meant to run. The physical address follows the convention every
# bzImage keeps, 1 MiB (CONFIG_PHYSICAL_START); the virtual base, page_offset,
# has to be guessed (`intuit_page_offset`). `inflate` uses zlib, checks the gzip
# trailer's CRC and length as gzread() would, and refuses a kernel bigger than
# the Guest's memory above 1 MiB.
def unpack_bzimage(memory: GuestMemory, image: bytes, pos: int, mem: int, name: str,
                   say: Say = quiet) -> Kernel:
    """Inflate the gzip stream at ``pos`` to Guest-physical 1 MiB.

    What is compressed is not an ELF file but the kernel's raw loaded bytes,
    so the virtual base has to be guessed (intuit_page_offset).
    """
    img = inflate(image, pos, max(mem - BZIMAGE_LOAD, 0), name)
    memory.write(BZIMAGE_LOAD, img)
    say(f"Unpacked size {len(img)} addr {ptr(BZIMAGE_LOAD)}")
    page_offset = intuit_page_offset(img)
    end = BZIMAGE_LOAD + len(img)
    start = entry_point(memory, BZIMAGE_LOAD, end, page_offset, name)
    return Kernel("bzImage", start, page_offset, BZIMAGE_LOAD, end)


#: L:150 A bzImage is built to be run, not loaded: a boot loader jumps into its
# decompressor, which unpacks the real kernel and jumps to it. A Guest cannot
# run that code, and lguest deliberately grows no features that would let it.
# But the compressed kernel is just a gzip stream placed after the
# decompressor, so the Launcher finds the first gzip header and does the
# unpacking itself (`unpack_bzimage`). No header at all means the file was
# neither ELF nor a bzImage, and the error says both.
def load_bzimage(memory: GuestMemory, image: bytes, mem: int, name: str,
                 say: Say = quiet) -> Kernel:
    """A bzImage is meant to be jumped into, to unpack itself.

    The Guest cannot run that unpacking code (and lguest will not grow
    features so that it could), but the compressed kernel is simply placed
    after it: the Launcher looks for the first gzip header and inflates the
    kernel itself.
    """
    pos = find_gzip_header(image)
    if pos is None:
        raise LauncherError(f"Could not find kernel in bzImage {name}: not an ELF file, "
                            f"and no gzip stream (1f 8b 08, made under Unix) inside")
    return unpack_bzimage(memory, image, pos, mem, name, say)


#: L:140 A kernel comes wrapped one of two ways. A `vmlinux` is an ELF file and
# easy to load; most distributions ship a `bzImage` instead, a small
# decompressor with the compressed kernel inside, which takes more work. The
# first four bytes decide: `\177ELF` means ELF, and anything else is taken for a
# bzImage. Either way the result is a `Kernel`: the entry point, page_offset,
# and the physical range the kernel fills, which `lay_out_guest` uses to make
# sure the initrd and the page tables do not land on it.
def load_kernel(memory: GuestMemory, image: bytes, mem: int, name: str,
                say: Say = quiet) -> Kernel:
    """Load a kernel image into Guest memory below ``mem``.

    A file that starts with the ELF magic is an ELF vmlinux; anything else
    is taken for a bzImage.
    """
    if image[:4] == ELFMAG:
        return map_elf(memory, image, mem, name, say)
    return load_bzimage(memory, image, mem, name, say)


#: L:180 The initrd: a small file system the Launcher places in memory next
# to the kernel, which the kernel mounts first, before it has the drivers to
# reach a real disk; distributions keep their modules in one. The Launcher puts it at the
# very top of Guest memory, rounded up to whole pages, and returns the rounded
# size: the page tables go just below it, and the boot header will tell the
# kernel where it starts and how long it is. Here too the C Launcher maps the
# file where we copy it.
def load_initrd(memory: GuestMemory, path: str | Path, mem: int, say: Say = quiet) -> int:
    """Put the initrd file at the top of Guest memory; return its page-aligned size.

    An initrd is a disk image the kernel can boot from before it has any
    drivers loaded. It goes at the top of memory, a whole number of pages
    long, and the boot header tells the kernel where it is.
    """
    data = read_file(path)
    if not data:
        raise LauncherError(f"initrd {path} is empty")
    size = page_align(len(data))
    if size >= mem:
        raise LauncherError(f"initrd {path} ({len(data)} bytes) does not fit in the "
                            f"Guest's memory ({mem:#x} bytes)")
    memory.write(mem - size, data)
    say(f"mapped initrd {path} size={len(data)} @ {ptr(mem - size)}")
    return size
