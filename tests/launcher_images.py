"""Kernel images built by hand, for the Launcher's tests.

``elf()`` wraps bytes in a minimal i386 ELF executable, ``bzimage()`` in a
fake bzImage (some "decompressor" bytes, then a gzip stream made under Unix),
and ``tiny_guest()`` is a Guest small enough to write in machine code: after
the "GenuineLguest" marker it makes the LGUEST_INIT hypercall, sends one
console line by SEND_DMA to key 0, then crashes with a message ("Power down"
by default), which is how a 2.6.23 Guest powers off.
"""

from __future__ import annotations

import struct
import zlib

PAGE_OFFSET = 0xC0000000
LOAD = 0x100000            # where the tiny Guest's bytes go (physical)
MAGIC = b"GenuineLguest"

ET_EXEC, EM_386, PT_LOAD, PT_NOTE = 2, 3, 1, 4


def ehdr(phnum: int, *, phoff: int = 52, ident: bytes | None = None, e_type: int = ET_EXEC,
         machine: int = EM_386, version: int = 1, phentsize: int = 32,
         entry: int = 0) -> bytes:
    if ident is None:
        ident = b"\x7fELF\x01\x01\x01" + bytes(9)
    return struct.pack("<16sHHIIIIIHHHHHH", ident, e_type, machine, version, entry, phoff,
                       0, 0, 52, phentsize, phnum, 40, 0, 0)


def phdr(p_type: int, offset: int, vaddr: int, paddr: int, filesz: int, memsz: int,
         flags: int = 7, align: int = 0x1000) -> bytes:
    return struct.pack("<8I", p_type, offset, vaddr, paddr, filesz, memsz, flags, align)


def elf(segments: list[tuple[int, bytes, int]], *, page_offset: int = PAGE_OFFSET,
        notes: bool = True, **header) -> bytes:
    """An ELF executable with one PT_LOAD per (paddr, bytes, bss) segment.

    Each segment's bytes are placed at a page-aligned file offset; a PT_NOTE
    program header comes first when ``notes``, as in a real vmlinux.
    """
    phs = []
    body = bytearray()
    offset = 0x1000
    if notes:
        phs.append(phdr(PT_NOTE, 0, 0, 0, 0, 0, 4, 4))
    for paddr, data, bss in segments:
        phs.append(phdr(PT_LOAD, offset + len(body), paddr + page_offset, paddr, len(data),
                        len(data) + bss))
        body += data
        body += bytes(-len(body) % 0x1000)
    head = ehdr(len(phs), **header) + b"".join(phs)
    return head + bytes(offset - len(head)) + bytes(body)


def gzip_member(data: bytes, *, os_byte: int = 3, flags: int = 0, extra: bytes = b"",
                name: bytes = b"", comment: bytes = b"") -> bytes:
    """One gzip member (RFC 1952) with the header fields asked for."""
    head = bytes([0x1F, 0x8B, 0x08, flags]) + struct.pack("<I", 0) + bytes([0, os_byte])
    if flags & 0x04:
        head += struct.pack("<H", len(extra)) + extra
    if flags & 0x08:
        head += name + b"\0"
    if flags & 0x10:
        head += comment + b"\0"
    if flags & 0x02:
        head += struct.pack("<H", zlib.crc32(head) & 0xFFFF)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(data) + deflate.flush()
    return head + body + struct.pack("<II", zlib.crc32(data), len(data))


# Bytes that stand in for a bzImage's setup code and decompressor: no
# 1f 8b 08 in them.
DECOMPRESSOR = bytes(range(0x20, 0x7F)) * 8


def bzimage(kernel: bytes, *, before: bytes = DECOMPRESSOR, after: bytes = b"\0" * 64,
            **gzip) -> bytes:
    """A fake bzImage: the decompressor, then the kernel as a Unix gzip stream."""
    return before + gzip_member(kernel, **gzip) + after


def movl_eax(addresses: list[int]) -> bytes:
    """``movl address, %eax`` (A1 + 4 bytes) for each address."""
    return b"".join(b"\xa1" + struct.pack("<I", a) for a in addresses)


# Offsets inside the tiny Guest's page.
MSG, TEXT, DMA, DATA = 0x100, 0x200, 0x300, 0x400


def tiny_guest(text: bytes = b"Hello from the Guest\n", reason: bytes = b"Power down",
               *, base: int = LOAD, prefix: bytes = b"") -> bytes:
    """The tiny Guest's bytes, to be loaded at physical ``base``.

    ``prefix`` goes before the marker (say, movl instructions for a bzImage).
    """
    img = bytearray(0x1000)
    img[:len(prefix)] = prefix
    at = len(prefix)
    img[at:at + len(MAGIC)] = MAGIC
    code = b"".join([
        b"\xba" + struct.pack("<I", base + DATA),     # mov edx, &lguest_data
        b"\xb8" + struct.pack("<I", 1),               # mov eax, LHCALL_LGUEST_INIT
        b"\xcd\x1f",                                  # int $0x1f
        b"\xb8" + struct.pack("<I", 13),              # mov eax, LHCALL_SEND_DMA
        b"\xba" + struct.pack("<I", 0),               # mov edx, key 0 (the console)
        b"\xbb" + struct.pack("<I", base + DMA),      # mov ebx, &lguest_dma
        b"\xcd\x1f",
        b"\xb8" + struct.pack("<I", 2),               # mov eax, LHCALL_CRASH
        b"\xba" + struct.pack("<I", base + MSG),      # mov edx, &message
        b"\xcd\x1f",
        b"\xeb\xfe",                                  # jmp $ (never reached)
    ])
    start = at + len(MAGIC)
    img[start:start + len(code)] = code
    img[MSG:MSG + len(reason) + 1] = reason + b"\0"
    img[TEXT:TEXT + len(text)] = text
    img[DMA + 4:DMA + 8] = struct.pack("<I", base + TEXT)        # addr[0]
    img[DMA + 68:DMA + 70] = struct.pack("<H", len(text))        # len[0]
    img[DATA + 20:DATA + 84] = b"\xff" * 64                      # hcall_status: all free
    return bytes(img)


def tiny_guest_elf(**kw) -> bytes:
    return elf([(LOAD, tiny_guest(**kw), 0x1000)])


def tiny_guest_bzimage(**kw) -> bytes:
    # Enough movl instructions with PAGE_OFFSET's top byte for the guess.
    moves = movl_eax([PAGE_OFFSET + 0x1234 * i for i in range(1, 6)])
    return bzimage(tiny_guest(prefix=moves, **kw))
