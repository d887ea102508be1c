"""Symbols and source lines of a Guest: what a debugger shows beside an address.

A Guest image is an ELF file.  Its symbol table names functions and data
(``start_kernel``, ``lguest_data``); its DWARF line table, when it has one,
maps each instruction address to a line of C or assembly source.  The views
use both to label the disassembly around EIP, and a session uses them to stop
at a symbol or at a source line (``session.run_to("mm.c:120")``).

The shipped teaching Guest is built without debug information, so that a
rebuild is byte-for-byte the same.  For its lines, ``guest_symbols()``
compiles the same sources once more with ``-g`` (gcc must be installed),
checks that every loaded byte is identical to the shipped image's, and keeps
the result in a cache directory; debug information never changes the code.
Without a compiler the symbols still work and the lines are simply missing
-- except in the live book, whose wheel ships the twin (``book/lite.py``).

Read with pyelftools.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from elftools.elf.elffile import ELFFile

from . import asm


@dataclass(frozen=True)
class Symbol:
    name: str
    address: int
    size: int
    kind: str          # "func", "object" or "other"


@dataclass(frozen=True)
class LineRow:
    address: int
    file: str
    line: int
    is_stmt: bool


class Symbols:
    """The symbol table and (if present) the line table of one ELF image.

    ``sources`` maps a file name as the line table spells it to its text
    (or to a directory to find it in: ``source_dir``), for showing lines.
    """

    def __init__(self, elf: bytes, debug_elf: bytes | None = None,
                 source_dir: Path | None = None, sources: dict[str, str] | None = None) -> None:
        self.source_dir = source_dir
        self.sources = dict(sources or {})
        f = ELFFile(io.BytesIO(elf))
        self.symbols: dict[str, Symbol] = {}
        table = f.get_section_by_name(".symtab")
        for sym in table.iter_symbols() if table is not None else ():
            kind = sym["st_info"]["type"]
            if (not sym.name or kind in ("STT_FILE", "STT_SECTION")
                    or sym["st_shndx"] == "SHN_UNDEF"):
                continue
            k = {"STT_FUNC": "func", "STT_OBJECT": "object"}.get(kind, "other")
            old = self.symbols.get(sym.name)
            if old is None or old.kind == "other":
                self.symbols[sym.name] = Symbol(sym.name, sym["st_value"], sym["st_size"], k)
        # Labels in code (functions and plain labels), sorted, for "what is at this address".
        text = [s for s in self.symbols.values() if s.kind != "object" and s.address >= 0x1000]
        text.sort(key=lambda s: (s.address, s.kind != "func", s.name))
        self._by_addr = text
        self._addrs = [s.address for s in text]
        self.rows: list[LineRow] = []
        self._seqs: list[tuple[int, int, list[LineRow]]] = []
        self._read_lines(debug_elf if debug_elf is not None else elf)

    # -- symbols
    def address(self, name: str) -> int:
        """The address of symbol ``name``; KeyError if there is none."""
        return self.symbols[name].address

    def __contains__(self, name: str) -> bool:
        return name in self.symbols

    def lookup(self, addr: int) -> tuple[str, int] | None:
        """(name, offset) of the code label at or before ``addr``, or None."""
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return None
        # Prefer a function among labels at the same address.
        best = self._by_addr[i]
        j = i
        while j > 0 and self._addrs[j - 1] == best.address:
            j -= 1
            if self._by_addr[j].kind == "func":
                best = self._by_addr[j]
        if best.kind == "func" and best.size and addr >= best.address + best.size:
            return None            # past the end of that function: not part of it
        if addr - best.address > 0x10000:
            return None
        return best.name, addr - best.address

    def describe(self, addr: int) -> str:
        """``name+0x12`` or the bare address."""
        found = self.lookup(addr)
        if found is None:
            return f"{addr:#010x}"
        name, off = found
        return f"{name}+{off:#x}" if off else name

    # -- lines
    @property
    def has_lines(self) -> bool:
        return bool(self.rows)

    def _read_lines(self, elf: bytes) -> None:
        f = ELFFile(io.BytesIO(elf))
        if not f.has_dwarf_info():
            return
        dwarf = f.get_dwarf_info()
        for cu in dwarf.iter_CUs():
            prog = dwarf.line_program_for_CU(cu)
            if prog is None:
                continue
            version = prog.header["version"]
            files = prog.header["file_entry"]
            dirs = prog.header["include_directory"]

            def name_of(index: int, files=files, dirs=dirs, version=version) -> str:
                entry = files[index if version >= 5 else index - 1]
                name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
                d = entry.dir_index
                if d and (d if version >= 5 else d - 1) < len(dirs):
                    dname = dirs[d if version >= 5 else d - 1]
                    dname = dname.decode() if isinstance(dname, bytes) else dname
                    if not name.startswith("/") and dname not in (".", ""):
                        name = f"{dname}/{name}"
                return name[2:] if name.startswith("./") else name

            seq: list[LineRow] = []
            for entry in prog.get_entries():
                st = entry.state
                if st is None:
                    continue
                if st.end_sequence:
                    if seq:
                        self._seqs.append((seq[0].address, st.address, seq))
                    seq = []
                    continue
                row = LineRow(st.address, name_of(st.file), st.line, bool(st.is_stmt))
                seq.append(row)
                self.rows.append(row)
        self._seqs.sort(key=lambda s: s[0])
        self._seq_starts = [s[0] for s in self._seqs]

    def line(self, addr: int) -> tuple[str, int] | None:
        """(file, line) of the source that produced the instruction at ``addr``."""
        if not self._seqs:
            return None
        i = bisect.bisect_right(self._seq_starts, addr) - 1
        if i < 0:
            return None
        start, end, rows = self._seqs[i]
        if not start <= addr < end:
            return None
        best = None
        for row in rows:
            if row.address <= addr:
                if best is None or row.address >= best.address:
                    best = row
            else:
                break
        return (best.file, best.line) if best else None

    def files(self) -> list[str]:
        return sorted({r.file for r in self.rows})

    def _match_file(self, name: str) -> str:
        known = self.files()
        if name in known:
            return name
        hits = [f for f in known if f.endswith("/" + name) or Path(f).name == name]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise KeyError(f"no line information for a file called {name!r}")
        raise KeyError(f"{name!r} is ambiguous: {hits}")

    def line_addresses(self, file: str, line: int) -> tuple[int, list[int]]:
        """The addresses where source line ``file:line`` begins.

        A line with no code of its own (a comment, a declaration) stands for
        the next line that has some, as in a debugger; returns (that line,
        its addresses)."""
        name = self._match_file(file)
        rows = [r for r in self.rows if r.file == name and r.is_stmt]
        later = sorted({r.line for r in rows if r.line >= line})
        if not later:
            raise KeyError(f"no code at or after {file}:{line}")
        found = later[0]
        addrs = sorted({r.address for r in rows if r.line == found})
        return found, addrs

    def source_text(self, file: str, line: int) -> str | None:
        """The text of one source line, when the source can be found."""
        lines = self._source_lines(file)
        if lines is None or not 1 <= line <= len(lines):
            return None
        return lines[line - 1]

    def _source_lines(self, file: str) -> list[str] | None:
        if file in self.sources:
            return self.sources[file].splitlines()
        if self.source_dir is not None:
            p = self.source_dir / file
            if p.is_file():
                text = p.read_text(errors="replace")
                self.sources[file] = text
                return text.splitlines()
        return None


# ---------------------------------------------------------------------------
# The shipped teaching Guest and its debug twin.

def _cache_dir() -> Path:
    base = os.environ.get("LGUESTSIM_CACHE") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    if not os.environ.get("LGUESTSIM_CACHE"):
        root = root / "lguestsim"
    return root


def _loaded_bytes(elf: bytes) -> list[tuple[int, bytes]]:
    f = ELFFile(io.BytesIO(elf))
    return [(seg["p_paddr"], seg.data()) for seg in f.iter_segments() if seg["p_type"] == "PT_LOAD"]


def build_debug_twin(shipped: bytes) -> bytes | None:
    """The shipped Guest rebuilt with -g, if gcc can and the code comes out identical."""
    try:
        from .guest import build as gb
    except ImportError:      # pragma: no cover
        return None
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            user_elf, user_bin = tmp / "user.elf", tmp / "user.bin"
            gb._run(["ld", *gb.LDFLAGS, "-T", "user.ld", "-o", str(user_elf),
                     *gb._compile(gb.USER_SOURCES, tmp)])
            gb._run(["objcopy", "-O", "binary", str(user_elf), str(user_bin)])
            kernel = tmp / "guest.elf"
            objs = gb._compile(gb.KERNEL_SOURCES, tmp, ("-g", f"-Wa,-I{tmp}"))
            gb._run(["ld", *gb.LDFLAGS, "-T", "guest.ld", "-o", str(kernel), *objs])
            twin = kernel.read_bytes()
    except Exception:        # no compiler, or the build's internals moved on
        return None
    if _loaded_bytes(twin) != _loaded_bytes(shipped):
        return None          # the sources no longer match the shipped image
    return twin


@lru_cache(maxsize=1)
def guest_symbols() -> Symbols:
    """Symbols and (when a compiler is at hand) source lines of the shipped Guest."""
    from .guest import ELF_IMAGE, HERE
    shipped = ELF_IMAGE.read_bytes()
    digest = hashlib.sha256(shipped).hexdigest()[:16]
    cached = _cache_dir() / f"guest-debug-{digest}.elf"
    # The live book, with no compiler, ships the twin of the image it ships.
    prebuilt = asm.prebuilt_folder() / cached.name
    twin = None
    if cached.is_file():
        twin = cached.read_bytes()
    elif prebuilt.is_file():
        twin = prebuilt.read_bytes()
    else:
        twin = build_debug_twin(shipped)
        if twin is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(twin)
                tmp.replace(cached)
            except OSError:
                pass
    return Symbols(shipped, twin, source_dir=HERE)


def program_symbols(program: asm.Program) -> Symbols:
    """Symbols and lines of a program made by ``lguestsim.asm``."""
    return Symbols(program.elf, sources=program.sources)


@lru_cache(maxsize=1)
def switcher_symbols() -> Symbols:
    """Symbols and lines of the Switcher (switcher.S assembled again with -g)."""
    from .switcher import HERE, SWITCHER_ADDR
    shipped = (HERE / "switcher.bin").read_bytes()
    source = (HERE / "switcher.S").read_text()
    try:
        prog = asm._assemble((("switcher.S", source),), SWITCHER_ADDR)
    except asm.AsmError:
        prog = None
    if prog is not None and prog.code == shipped:
        syms = Symbols(prog.elf, source_dir=HERE, sources={"switcher.S": source})
    else:                     # no binutils: the entry points, from switcher.json
        import json
        syms = Symbols(_empty_elf())
        for name, text in json.loads((HERE / "switcher.json").read_text()).items():
            addr = int(text, 16)
            syms.symbols[name] = Symbol(name, addr, 0, "func")
        syms._by_addr = sorted(syms.symbols.values(), key=lambda s: s.address)
        syms._addrs = [s.address for s in syms._by_addr]
    return syms


def _empty_elf() -> bytes:
    """A minimal 32-bit ELF header with no sections, for Symbols without a file."""
    import struct
    ident = b"\x7fELF\x01\x01\x01" + bytes(9)
    return ident + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, 0, 0, 0, 0, 52, 0, 0, 40, 0, 0)
