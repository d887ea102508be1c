"""Build the teaching Guest kernel: C and assembly -> guest.elf and guest.bzImage.

``python -m lguestsim.guest.build [OUT_DIR]`` rebuilds both images (into
``lguestsim/guest/images/`` by default).  The shipped images are committed,
so running lguestsim needs no compiler, and a test checks that a rebuild is
byte-for-byte the same.  What makes that possible: no debug information, no
``.comment`` or ``.note`` sections, no build id, sources compiled by their
names relative to this directory in a fixed order, and a gzip stream with no
timestamp.

The build, in order:

1. The user program (user.S, user.c, shell.c, ulib.c) is linked at
   0x08048000 by user.ld and flattened into user.bin.
2. The kernel sources are compiled (``gcc -m32``; ``.S`` files go through the
   C preprocessor and ``as --32``), user.bin is pulled in by user_image.S,
   and guest.ld links everything at virtual 0xC0100000, loaded at physical
   0x100000: guest.elf.  The Launcher can boot that directly.
3. ``objcopy -O binary`` gives the flat kernel as it sits in memory from
   physical 1 MiB; gzip'd behind a boot sector with Linux's "HdrS" header, it
   becomes guest.bzImage, the way the Launcher of Linux 2.6.23 loads a
   bzImage: it finds the gzip header, inflates it at 1 MiB and guesses
   PAGE_OFFSET from the code (``guess_page_offset`` below does the same).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
PAGE_OFFSET = 0xC0000000
LOAD_PHYS = 0x100000
SIGNATURE = b"GenuineLguest"

# The user program, then the kernel in the order a reader meets it; the
# link order fixes the layout, so it is spelled out rather than globbed.
USER_SOURCES = ("user.S", "user.c", "shell.c", "ulib.c")
KERNEL_SOURCES = (
    "head.S", "boot.c", "patch.S", "patch.c", "main.c", "traps.c", "entry.S", "mm.c", "time.c",
    "lguest_bus.c", "console.c", "block.c", "net.c", "ioport.c", "process.c", "user_image.S",
    "lib.c",
)
# The 2.6.25 (virtio) Guest, guest-virtio.elf: the same kernel where the two
# generations agree, built with CONFIG_VIRTIO; what 2.6.25 changed is the
# entry (i386_head.S for head.S) and the drivers (lguest_device.c and the
# virtio drivers for lguest_bus.c, block.c and net.c).  It is linked with
# its physical entry point, as a vmlinux is, and has no bzImage.
KERNEL_SOURCES_VIRTIO = (
    "i386_head.S", "boot.c", "patch.S", "patch.c", "main.c", "traps.c", "entry.S", "mm.c", "time.c",
    "lguest_device.c", "virtio_ring.c", "console.c", "virtio_console.c", "virtio_blk.c",
    "virtio_net.c", "ioport.c", "process.c", "user_image.S", "lib.c",
)
VIRTIO_DEFINES = ("-DCONFIG_VIRTIO",)
VIRTIO_ENTRY = "phys_startup_32"

CFLAGS = (
    "-m32", "-march=i686", "-O2", "-ffreestanding", "-nostdlib",
    "-fno-pic", "-fno-pie", "-fno-stack-protector", "-fcf-protection=none",
    "-fno-asynchronous-unwind-tables", "-fno-unwind-tables",
    # The kernel has no FPU or SSE state of its own: integer code only.
    "-mgeneral-regs-only",
    # Do not turn our own memset/memcpy loops into calls to themselves.
    "-fno-tree-loop-distribute-patterns",
    "-fno-strict-aliasing", "-fno-common",
    "-Wall", "-Wextra", "-Werror",
    f"-ffile-prefix-map={HERE}=.",
)
LDFLAGS = ("-m", "elf_i386", "-nostdlib", "--build-id=none", "-z", "noexecstack")
TOOLS = ("gcc", "ld", "objcopy")


class BuildError(RuntimeError):
    """The toolchain is missing or the result breaks the Launcher's rules."""


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def toolchain() -> str:
    """One line per tool that shapes the bytes of the images."""
    lines = []
    for tool in ("gcc", "ld"):
        lines.append(_run([tool, "--version"]).splitlines()[0])
    lines.append(f"zlib {zlib.ZLIB_RUNTIME_VERSION}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# What the Launcher does with the images, for the checks.

def elf_segments(elf: bytes) -> list[tuple[int, int, int, int]]:
    """The PT_LOAD program headers: (vaddr, paddr, filesz, memsz)."""
    phoff, = struct.unpack_from("<I", elf, 0x1C)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x2A)
    segments = []
    for i in range(phnum):
        p_type, _off, vaddr, paddr, filesz, memsz = struct.unpack_from(
            "<6I", elf, phoff + i * phentsize)
        if p_type == 1:
            segments.append((vaddr, paddr, filesz, memsz))
    return segments


def elf_entry(elf: bytes) -> int:
    return struct.unpack_from("<I", elf, 0x18)[0]


def elf_section_names(elf: bytes) -> list[str]:
    shoff, = struct.unpack_from("<I", elf, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x2E)
    strtab_off = struct.unpack_from("<I", elf, shoff + shstrndx * shentsize + 0x10)[0]
    names = []
    for i in range(shnum):
        name_off = struct.unpack_from("<I", elf, shoff + i * shentsize)[0]
        start = strtab_off + name_off
        names.append(elf[start:elf.index(b"\0", start)].decode())
    return names


def guess_page_offset(image: bytes) -> int | None:
    """The 2.6.23 Launcher's guess: after each byte 0xA1 ("mov moffs32, %eax")
    count the byte 4 further on (the top byte of the address); the first
    value seen more than 3 times, shifted up 24 bits."""
    counts = [0] * 256
    i = image.find(b"\xa1")
    while i != -1 and i + 4 < len(image):
        top = image[i + 4]
        counts[top] += 1
        if counts[top] > 3:
            return top << 24
        i = image.find(b"\xa1", i + 1)
    return None


def find_gzip(bzimage: bytes) -> int:
    """Where the Launcher finds the kernel in a bzImage: the first gzip
    header (1F 8B 08) whose OS byte, 9 bytes in, is 3 (Unix)."""
    i = bzimage.find(b"\x1f\x8b\x08")
    while i != -1:
        if i + 9 < len(bzimage) and bzimage[i + 9] == 3:
            return i
        i = bzimage.find(b"\x1f\x8b\x08", i + 1)
    raise BuildError("no gzip header in the bzImage")


def unpack_bzimage(bzimage: bytes) -> bytes:
    """The flat kernel, inflated as the Launcher inflates it."""
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(bzimage[find_gzip(bzimage):])


# ---------------------------------------------------------------------------
# The bzImage.

def gzip_stream(data: bytes) -> bytes:
    """A gzip member written by hand, so that nothing in it varies: the
    header has no name and mtime 0 (XFL 2: maximum compression; OS 3: Unix),
    then raw deflate at level 9, then the CRC-32 and length of the data."""
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\x03"
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = comp.compress(data) + comp.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


SETUP_SECTS = 1
BOOT_MESSAGE = (b"lguestsim teaching Guest: this is a bzImage for the lguest Launcher;\r\n"
                b"a PC cannot boot it.\r\n\0")


def make_bzimage(flat: bytes) -> bytes:
    """A 512-byte boot sector, one setup sector, then the gzip'd kernel.

    In Linux the boot sector and the setup sectors hold real-mode code, and
    the setup header ("HdrS", at offset 0x202) tells a boot loader about the
    rest.  The Launcher needs none of that code, so the sectors carry only
    the header fields a boot loader reads and a small real-mode stop.  Where
    Linux puts its decompressor, we put the gzip stream itself."""
    packed = gzip_stream(flat)
    setup = bytearray((1 + SETUP_SECTS) * 512)
    setup[0:len(BOOT_MESSAGE)] = BOOT_MESSAGE
    setup[0x1F1] = SETUP_SECTS                                  # setup_sects
    struct.pack_into("<I", setup, 0x1F4, (len(packed) + 15) // 16)  # syssize
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)                # boot_flag
    setup[0x200:0x202] = b"\xeb\x7e"                            # jmp 0x280
    setup[0x202:0x206] = b"HdrS"                                # header magic
    struct.pack_into("<H", setup, 0x206, 0x0206)                # protocol 2.06
    setup[0x211] = 0x01                                         # LOADED_HIGH
    struct.pack_into("<I", setup, 0x214, LOAD_PHYS)             # code32_start
    setup[0x280:0x284] = b"\xfa\xf4\xeb\xfd"                    # cli; hlt; jmp .-1
    return bytes(setup) + packed


# ---------------------------------------------------------------------------
# The build.

def check_images(elf: bytes, flat: bytes, bzimage: bytes) -> None:
    """The rules the Launcher relies on; raises BuildError if one is broken."""
    segments = elf_segments(elf)
    if not segments or segments[0][1] != LOAD_PHYS:
        raise BuildError(f"the kernel must load at {LOAD_PHYS:#x}: {segments}")
    for vaddr, paddr, _filesz, _memsz in segments:
        if vaddr - paddr != PAGE_OFFSET:
            raise BuildError(f"segment at {vaddr:#x} is loaded at {paddr:#x}")
    if flat.count(SIGNATURE) != 1:
        raise BuildError(f"{SIGNATURE!r} must appear exactly once in the kernel")
    entry = PAGE_OFFSET + LOAD_PHYS + flat.index(SIGNATURE) + len(SIGNATURE)
    if elf_entry(elf) != entry:
        raise BuildError(f"ELF entry {elf_entry(elf):#x}, signature says {entry:#x}")
    stray = [n for n in elf_section_names(elf) if n == ".comment" or n.startswith(".note")]
    if stray:
        raise BuildError(f"sections that would spoil reproducibility: {stray}")
    if guess_page_offset(flat) != PAGE_OFFSET:
        raise BuildError("the Launcher would not guess PAGE_OFFSET from this kernel")
    if unpack_bzimage(bzimage) != flat:
        raise BuildError("the bzImage does not inflate to the kernel")


def check_virtio_image(elf: bytes) -> None:
    """The 2.6.25 Launcher's rules: loaded at 1 MiB, linked at PAGE_OFFSET above
    that, entered at the physical address of startup_32; no "GenuineLguest"."""
    segments = elf_segments(elf)
    if not segments or segments[0][1] != LOAD_PHYS:
        raise BuildError(f"the kernel must load at {LOAD_PHYS:#x}: {segments}")
    for vaddr, paddr, _filesz, _memsz in segments:
        if vaddr - paddr != PAGE_OFFSET:
            raise BuildError(f"segment at {vaddr:#x} is loaded at {paddr:#x}")
    if elf_entry(elf) != LOAD_PHYS:
        raise BuildError(f"ELF entry {elf_entry(elf):#x}: startup_32 must be first, at "
                         f"physical {LOAD_PHYS:#x}")
    if SIGNATURE in elf:
        raise BuildError("a 2.6.25 Guest carries no GenuineLguest signature")
    stray = [n for n in elf_section_names(elf) if n == ".comment" or n.startswith(".note")]
    if stray:
        raise BuildError(f"sections that would spoil reproducibility: {stray}")


def _compile(sources: tuple[str, ...], objdir: Path, extra: tuple[str, ...] = ()) -> list[str]:
    objs = []
    for src in sources:
        obj = objdir / (src.replace(".", "_") + ".o")
        _run(["gcc", *CFLAGS, *extra, "-c", src, "-o", str(obj)])
        objs.append(str(obj))
    return objs


def _build_kernel(kernel_sources: tuple[str, ...], defines: tuple[str, ...] = (),
                  ld_extra: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """The user program and a kernel around it: (ELF, flat binary)."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        user_elf, user_bin = tmp / "user.elf", tmp / "user.bin"
        _run(["ld", *LDFLAGS, "-T", "user.ld", "-o", str(user_elf),
              *_compile(USER_SOURCES, tmp, defines)])
        _run(["objcopy", "-O", "binary", str(user_elf), str(user_bin)])

        kernel_elf, kernel_bin = tmp / "guest.elf", tmp / "guest.bin"
        objs = _compile(kernel_sources, tmp, (*defines, f"-Wa,-I{tmp}"))
        _run(["ld", *LDFLAGS, *ld_extra, "-T", "guest.ld", "-o", str(kernel_elf), *objs])
        _run(["objcopy", "-O", "binary", str(kernel_elf), str(kernel_bin)])
        return kernel_elf.read_bytes(), kernel_bin.read_bytes()


def build(out_dir: Path = IMAGES) -> tuple[Path, Path]:
    """Build guest.elf, guest.bzImage and guest-virtio.elf into out_dir; returns
    the paths of the first two (the third lies beside them)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise BuildError(f"cannot build the Guest: {', '.join(missing)} not found")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    elf, flat = _build_kernel(KERNEL_SOURCES)
    bzimage = make_bzimage(flat)
    check_images(elf, flat, bzimage)
    virtio_elf, _ = _build_kernel(KERNEL_SOURCES_VIRTIO, VIRTIO_DEFINES, ("-e", VIRTIO_ENTRY))
    check_virtio_image(virtio_elf)

    elf_path, bz_path = out_dir / "guest.elf", out_dir / "guest.bzImage"
    elf_path.write_bytes(elf)
    bz_path.write_bytes(bzimage)
    (out_dir / "guest-virtio.elf").write_bytes(virtio_elf)
    (out_dir / "toolchain.txt").write_text(toolchain())
    return elf_path, bz_path


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else IMAGES
    try:
        elf, bz = build(out)
    except BuildError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"built {elf} ({elf.stat().st_size} bytes) and {bz} ({bz.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
