#!/usr/bin/env python3
"""The core benchmark: how fast lguestsim's interpreted i386 runs, next to unicorn.

Two workloads, each run on our core and on unicorn (QEMU's translator) from
the same memory image, in the same run:

alu-loop   a hand-encoded add/xor/dec/jnz loop, paging off, flat segments;
           its length is --alu-instructions.
workload   benchmarks/workload.c (sorting, CRC32, Adler-32, string handling)
           built by gcc -O2 -m32 -march=i386 freestanding into a flat binary
           in benchmarks/out/, run with PAGING ON on both engines: a page
           directory and 4 KiB page tables identity-map the first 8 MiB,
           cr3 points at them and cr0.PG is set; --rounds sets its length.

Both end at hlt. The registers (and all of RAM, page-table accessed/dirty
bits included) must agree between the engines; eax holds the workload's
checksum. Figures go to stdout and to benchmarks/out/bench_core.json; they
are reported, never asserted.

Our core's headline run is a cold start: its code cache on disk
(lguestsim/x86/code_cache.py) points at a fresh, empty folder, so every
block is compiled.  The workload is then run again in a fresh process
reading the code that run left there (engine "lguestsim-warm": what a
second run, or a restarted notebook kernel, pays), and must end with the
same registers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
SOURCE = HERE / "workload.c"

# Memory layout, the same for both engines.
MEM_SIZE = 8 << 20  # 8 MiB of RAM
PGDIR = 0x1000  # page directory
PGTABLES = 0x2000  # page tables follow it, one per 4 MiB
LOAD = 0x100000  # code is loaded (and linked) at 1 MiB
STACK_TOP = MEM_SIZE - 0x1000  # esp at start
PTE_FLAGS = 0x3  # present, writable, supervisor
CR0_PG = 0x80000000
STOP = 0xFFFFFFF0  # unicorn's `until`: never reached, hlt stops it first

CFLAGS = [
    "-m32", "-march=i386", "-O2", "-ffreestanding", "-fno-pic", "-fno-stack-protector",
    "-nostdlib", "-fno-asynchronous-unwind-tables", "-fno-tree-loop-distribute-patterns",
    "-Wall", "-Wextra",
]

# Written data goes on pages of its own, as ld's default script does; with
# --shared-page it shares the last code page instead (DATA_ALIGN = 1), which
# shows what invalidating decoded code on writes costs.
LINKER_SCRIPT = f"""\
ENTRY(_start)
SECTIONS {{
  . = {LOAD:#x};
  .text : {{ *(.text.start) *(.text.startup .text.startup.*) *(.text .text.*) }}
  .rodata : {{ *(.rodata .rodata.*) }}
  . = ALIGN(DATA_ALIGN);
  .data : {{ *(.data .data.*) }}
  .bss : {{ *(.bss .bss.* COMMON) }}
  /DISCARD/ : {{ *(.comment) *(.note*) *(.eh_frame*) }}
}}
"""

REGS = ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "eip"]


# Run from a checkout, the package beside this folder is the one measured.
sys.path.insert(0, str(ROOT))

from code_cache_env import cache_folder, cache_size  # noqa: E402


class BuildError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# The programs


def alu_loop(instructions: int) -> tuple[bytes, int]:
    """The ALU loop sized to about `instructions`; returns (code, exact count)."""
    iterations = max(1, (instructions - 4) // 4)
    code = b"".join([
        b"\xb9" + struct.pack("<I", iterations),  # mov ecx, iterations
        b"\x31\xc0",  # xor eax, eax
        b"\xbb\x78\x56\x34\x12",  # mov ebx, 0x12345678
        b"\x01\xd8",  # loop: add eax, ebx
        b"\x31\xc3",  # xor ebx, eax
        b"\x49",  # dec ecx
        b"\x75\xf9",  # jnz loop
        b"\xf4",  # hlt
    ])
    return code, 3 + 4 * iterations + 1  # hlt counted, as both engines do


def run_tool(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")


def build_workload(out: Path = OUT, shared_page: bool = False) -> tuple[bytes, int]:
    """Compile, link and flatten workload.c; returns (flat binary, entry address)."""
    missing = [tool for tool in ("gcc", "ld", "objcopy") if shutil.which(tool) is None]
    if missing:
        raise BuildError(f"cannot build the workload: {', '.join(missing)} not found")
    out.mkdir(parents=True, exist_ok=True)
    obj, elf, flat, lds = (out / f"workload.{ext}" for ext in ("o", "elf", "bin", "ld"))
    lds.write_text(LINKER_SCRIPT.replace("DATA_ALIGN", "1" if shared_page else "4096"))
    run_tool(["gcc", *CFLAGS, "-c", str(SOURCE), "-o", str(obj)])
    run_tool(["ld", "-m", "elf_i386", "-nostdlib", "-T", str(lds), "-o", str(elf), str(obj)])
    run_tool(["objcopy", "-O", "binary", str(elf), str(flat)])
    header = elf.read_bytes()[:0x34]
    if header[:4] != b"\x7fELF" or header[4] != 1:
        raise BuildError(f"{elf} is not a 32-bit ELF file")
    entry = struct.unpack_from("<I", header, 0x18)[0]
    if entry != LOAD:
        raise BuildError(f"entry {entry:#x} is not the load address {LOAD:#x}")
    return flat.read_bytes(), entry


def page_tables(size: int = MEM_SIZE) -> list[tuple[int, bytes]]:
    """An identity map of [0, size) with 4 KiB pages: [(address, bytes)]."""
    pages = size // 4096
    ntables = (pages + 1023) // 1024
    pgdir = bytearray(4096)
    chunks = []
    for t in range(ntables):
        table_addr = PGTABLES + t * 4096
        struct.pack_into("<I", pgdir, 4 * t, table_addr | PTE_FLAGS)
        table = bytearray(4096)
        for i in range(min(1024, pages - t * 1024)):
            struct.pack_into("<I", table, 4 * i, ((t * 1024 + i) << 12) | PTE_FLAGS)
        chunks.append((table_addr, bytes(table)))
    assert PGTABLES + ntables * 4096 <= LOAD, "page tables would overlap the code"
    return [(PGDIR, bytes(pgdir)), *chunks]


@dataclass
class Program:
    name: str
    image: list[tuple[int, bytes]]  # (address, bytes) to load
    entry: int
    eax: int  # the argument, in eax at entry
    paging: bool
    expected_instructions: int | None = None


# --------------------------------------------------------------------------
# The engines


@dataclass
class Result:
    program: str
    engine: str
    paging: bool
    instructions: int | None = None
    seconds: float | None = None
    cpu_seconds: float | None = None   # process time: steadier on a shared machine
    cycles: int | None = None
    compiles: int | None = None        # blocks compiled: found in no code cache
    cold_runs: list[float] | None = None   # CPU MIPS of each cold start (the best is this one)
    regs: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def mips(self) -> float | None:
        if self.instructions and self.seconds:
            return self.instructions / self.seconds / 1e6
        return None

    @property
    def cpu_mips(self) -> float | None:
        if self.instructions and self.cpu_seconds:
            return self.instructions / self.cpu_seconds / 1e6
        return None


def run_ours(prog: Program, max_instructions: int,
             engine: str = "lguestsim") -> tuple[Result, bytes | None]:
    res = Result(prog.name, engine, prog.paging)
    try:
        from lguestsim.x86 import CPU, PhysicalMemory, code_cache
    except Exception as exc:  # the core may not be there yet
        res.error = f"cannot import lguestsim.x86: {exc}"
        return res, None
    try:
        mem = PhysicalMemory(MEM_SIZE)
        for addr, data in prog.image:
            mem.write(addr, data)
        cpu = CPU(mem)
        cpu.reset_flat32()
        if prog.paging:
            cpu.cr3 = PGDIR
            cpu.cr0 = cpu.cr0 | CR0_PG
        cpu.eip = prog.entry
        cpu.esp = STACK_TOP
        cpu.eax = prog.eax
        insns0, cycles0 = cpu.instructions, cpu.cycles
        compiles0 = code_cache.stats.compiles
        t0, c0 = time.perf_counter(), time.process_time()
        why = cpu.run(max_instructions)
        res.seconds = time.perf_counter() - t0
        res.cpu_seconds = time.process_time() - c0
        res.compiles = code_cache.stats.compiles - compiles0
        code_cache.flush()      # (at exit otherwise) for the warm run in a fresh process
        res.instructions = cpu.instructions - insns0
        res.cycles = cpu.cycles - cycles0
        res.regs = {r: getattr(cpu, r) for r in REGS}
        if why != "hlt":
            res.error = f"stopped by {why!r} at eip={cpu.eip:#x}, not hlt"
        return res, mem.read(0, MEM_SIZE)
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        return res, None


def run_warm(prog: Program, args: argparse.Namespace, cold: Result,
             env: dict[str, str] | None = None, engine: str = "lguestsim-warm") -> Result:
    """The workload in a fresh process reading the code cache the cold run
    filled (or, given ``env``, the cache folder it names)."""
    res = Result(prog.name, engine, prog.paging)
    proc = subprocess.run([sys.executable, __file__, "--warm-child", "--out", str(args.out),
                           "--rounds", str(args.rounds),
                           "--max-instructions", str(args.max_instructions)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not proc.stdout.strip():
        res.error = f"the {engine} run failed: {proc.stderr.strip()[-300:]}"
        return res
    res = Result(**json.loads(proc.stdout.strip().splitlines()[-1]))
    res.engine = engine
    if not res.error and (res.regs != cold.regs or res.instructions != cold.instructions):
        res.error = f"the {engine} run ended unlike the first cold one"
    return res


def best_cold(prog: Program, args: argparse.Namespace, first: Result) -> Result:
    """The best of ``--cold-runs`` cold starts, as unicorn's figure is its best
    of 3: ``first`` (this process) and the others each in a fresh process with
    an empty code cache of its own.  Every run's CPU MIPS is kept."""
    runs = [first]
    for _ in range(args.cold_runs - 1):
        with cache_folder() as env:
            runs.append(run_warm(prog, args, first, env, engine="lguestsim"))
    failed = [r for r in runs if r.error]
    if failed:
        return failed[0]
    best = min(runs, key=lambda r: r.cpu_seconds)
    best.cold_runs = [round(r.cpu_mips, 3) for r in runs]
    return best


def warm_child(args: argparse.Namespace) -> int:
    """--warm-child: the workload built by the parent, run once, its Result as json."""
    flat = (args.out / "workload.bin").read_bytes()
    prog = Program("workload", [*page_tables(), (LOAD, flat)], LOAD, args.rounds, True)
    res, _ = run_ours(prog, args.max_instructions, engine="lguestsim-warm")
    print(json.dumps(asdict(res)))
    return 0


def run_unicorn(prog: Program, count: bool) -> tuple[Result, bytes | None]:
    res = Result(prog.name, "unicorn", prog.paging)
    try:
        from unicorn import UC_ARCH_X86, UC_HOOK_CODE, UC_MODE_32, Uc
        from unicorn import x86_const as X
    except ImportError as exc:
        res.error = f"unicorn not installed: {exc}"
        return res, None

    def setup() -> Uc:
        uc = Uc(UC_ARCH_X86, UC_MODE_32)  # starts in flat 32-bit protected mode
        uc.mem_map(0, MEM_SIZE)
        for addr, data in prog.image:
            uc.mem_write(addr, data)
        if prog.paging:
            uc.reg_write(X.UC_X86_REG_CR3, PGDIR)
            uc.reg_write(X.UC_X86_REG_CR0, uc.reg_read(X.UC_X86_REG_CR0) | CR0_PG)
        uc.reg_write(X.UC_X86_REG_ESP, STACK_TOP)
        uc.reg_write(X.UC_X86_REG_EAX, prog.eax)
        return uc

    try:
        best = best_cpu = None
        for _ in range(3):  # cheap, so the best of three
            uc = setup()
            t0, c0 = time.perf_counter(), time.process_time()
            uc.emu_start(prog.entry, STOP)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            best = dt if best is None else min(best, dt)
            best_cpu = dc if best_cpu is None else min(best_cpu, dc)
        res.seconds = best
        res.cpu_seconds = best_cpu
        res.regs = {r: uc.reg_read(getattr(X, f"UC_X86_REG_{r.upper()}")) for r in REGS}
        if uc.mem_read(res.regs["eip"] - 1, 1) != b"\xf4":
            res.error = f"did not stop after a hlt (eip={res.regs['eip']:#x})"
        ram = bytes(uc.mem_read(0, MEM_SIZE))
        if count:  # an untimed run with a hook on every instruction
            n = [0]

            def hook(uc, address, size, user_data):
                n[0] += 1

            uc = setup()
            uc.hook_add(UC_HOOK_CODE, hook)
            uc.emu_start(prog.entry, STOP)
            res.instructions = n[0]
        else:
            res.instructions = prog.expected_instructions
        return res, ram
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        return res, None


def compare(ours: Result, ram_ours: bytes | None, uni: Result, ram_uni: bytes | None) -> str:
    if ours.error or uni.error or ram_ours is None or ram_uni is None:
        return "not compared"
    problems = [f"{r} {ours.regs[r]:#x} != {uni.regs[r]:#x}"
                for r in REGS if ours.regs[r] != uni.regs[r]]
    if ram_ours != ram_uni:
        diff = [i for i in range(0, MEM_SIZE, 4) if ram_ours[i:i + 4] != ram_uni[i:i + 4]]
        problems.append(f"RAM differs in {len(diff)} dwords, first at {diff[0]:#x}")
    verdict = "agree" if not problems else "DIFFER: " + "; ".join(problems)
    if ours.instructions != uni.instructions:  # worth a note, not a failure
        verdict += f" (instruction counts {ours.instructions:,} vs {uni.instructions:,})"
    return verdict


# --------------------------------------------------------------------------
# Reporting


def fmt(value, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def report(rows: list[Result], verdicts: dict[str, str]) -> None:
    print(f"{'program':<10} {'engine':<14} {'paging':<6} {'instructions':>13} "
          f"{'seconds':>9} {'MIPS':>9} {'MIPS(cpu)':>9} {'cycles':>13}  result (eax)")
    for r in rows:
        line = (f"{r.program:<10} {r.engine:<14} {'on' if r.paging else 'off':<6} "
                f"{fmt(r.instructions, ',', 13)} {fmt(r.seconds, '.4f', 9)} "
                f"{fmt(r.mips, '.3f', 9)} {fmt(r.cpu_mips, '.3f', 9)} {fmt(r.cycles, ',', 13)}  ")
        line += f"error: {r.error}" if r.error else f"{r.regs['eax']:#010x}"
        print(line)
    print()
    for name in verdicts:
        ours = next((r for r in rows if r.program == name and r.engine == "lguestsim"), None)
        uni = next((r for r in rows if r.program == name and r.engine == "unicorn"), None)
        ratio = ""
        if ours and uni and ours.mips and uni.mips:
            ratio = f"unicorn is {uni.mips / ours.mips:,.0f}x faster"
            if ours.cpu_mips and uni.cpu_mips:
                ratio += f" ({uni.cpu_mips / ours.cpu_mips:,.0f}x in CPU time)"
            ratio += "; "
        print(f"{name}: {ratio}results {verdicts[name]}")


def git_revision() -> str | None:
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True)
        return proc.stdout.strip() or None
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alu-instructions", type=int, default=5_000_000, metavar="N",
                        help="length of the ALU loop in instructions (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=50, metavar="R",
                        help="rounds of the compiled workload (default %(default)s)")
    parser.add_argument("--only", choices=["alu", "workload"], help="run one program only")
    parser.add_argument("--no-unicorn", action="store_true", help="run our core only")
    parser.add_argument("--max-instructions", type=int, default=10**9, metavar="N",
                        help="stop our core after N instructions (default %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT, metavar="DIR",
                        help="where to build the workload (default %(default)s)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="where to write the figures (default DIR/bench_core.json)")
    parser.add_argument("--shared-page", action="store_true",
                        help="link the workload's data onto its last code page")
    parser.add_argument("--build-only", action="store_true",
                        help="build the workload into benchmarks/out/ and stop")
    parser.add_argument("--cold-runs", type=int, default=3, metavar="N",
                        help="cold starts of the workload, the best kept (default %(default)s)")
    parser.add_argument("--warm-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warm_child:
        return warm_child(args)

    programs: list[Program] = []
    if args.build_only or args.only != "alu":
        try:
            flat, entry = build_workload(args.out, shared_page=args.shared_page)
        except BuildError as exc:
            print(f"bench_core: {exc}", file=sys.stderr)
            return 1
        if args.build_only:
            print(f"built {args.out / 'workload.bin'}: {len(flat)} bytes, entry {entry:#x}")
            return 0
    if args.only != "workload":
        code, count = alu_loop(args.alu_instructions)
        programs.append(Program("alu-loop", [(LOAD, code)], LOAD, 0, False, count))
    if args.only != "alu":
        programs.append(Program("workload", [*page_tables(), (entry, flat)], entry,
                                args.rounds, True))

    try:
        import unicorn
        uc_version = unicorn.__version__
    except ImportError:
        uc_version = None
    print(f"lguestsim core benchmark: Python {platform.python_version()}, "
          f"unicorn {uc_version or 'not installed'}, {platform.machine()}")
    print(f"alu-loop: flat, paging off. workload: {args.rounds} rounds of workload.c, "
          f"paging on (identity map of {MEM_SIZE >> 20} MiB, 4 KiB pages) on both engines,")
    print("  its written data " + ("sharing a page with code (--shared-page)."
                                  if args.shared_page else "on pages of its own."))
    print(f"lguestsim: the workload's best of {args.cold_runs} cold starts (each in a fresh "
          "process but the first, its code cache empty);")
    print("  lguestsim-warm: the workload in a fresh process reading the code the first cold run "
          "cached; unicorn: best of 3 runs.")
    print()

    rows: list[Result] = []
    verdicts: dict[str, str] = {}
    cached: int | None = None           # bytes of code cached by the workload's cold run
    with cache_folder() as env:
        # Set before lguestsim is first imported: the cold run starts empty.
        os.environ["LGUESTSIM_CODE_CACHE"] = env["LGUESTSIM_CODE_CACHE"]
        for prog in programs:
            ours, ram_ours = run_ours(prog, args.max_instructions)
            if prog.name == "workload" and not ours.error:
                warm = run_warm(prog, args, ours)
                cached = cache_size(env)
                ours = best_cold(prog, args, ours)
                rows += [ours, warm]
            else:
                rows.append(ours)
            if args.no_unicorn:
                continue
            # Count unicorn's instructions with a hook unless the count is known.
            uni, ram_uni = run_unicorn(prog, count=prog.expected_instructions is None)
            rows.append(uni)
            verdicts[prog.name] = compare(ours, ram_ours, uni, ram_uni)
    report(rows, verdicts)
    for r in rows:
        if r.compiles is not None:
            print(f"{r.program} on {r.engine}: {r.compiles} blocks compiled")
    if cached is not None:
        print(f"the code cache after the workload: {cached / 1024:.0f} KiB on disk")

    args.json = args.json or args.out / "bench_core.json"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": git_revision(),
        "python": platform.python_version(),
        "unicorn": uc_version,
        "results": [asdict(r) | {"mips": r.mips, "cpu_mips": r.cpu_mips} for r in rows],
        "code_cache_bytes": cached,
        "verdicts": verdicts,
    }, indent=2) + "\n")
    print(f"\nfigures written to {args.json}")
    failed = any(r.error for r in rows) or any(v.startswith("DIFFER") for v in verdicts.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
