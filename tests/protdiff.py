"""Run one protected-mode program on the core and on unicorn, and compare.

The world is ``x86env.Env`` (its GDT, IDT, TSS and stacks), built by a test
and then copied byte for byte into unicorn with the same GDTR, IDTR, TR,
segment registers and general registers.  Both sides run from EIP until the
linear address ``stop`` is reached, or until an exception.

Unicorn (QEMU's TCG) carries out far calls and returns through call gates,
hardware task switches on far JMP/CALL and IRET, and IRET into virtual-8086
mode itself, so those are compared in full: registers, EFLAGS, segment
selectors, CR0's TS bit and memory.  It does not deliver exceptions through
the IDT (its interrupt hook stops at the faulting instruction, without the
error code), so for a fault only the vector and the faulting EIP are
compared; the error code and what delivery does are the tests' own
assertions, from the manual.
"""

from __future__ import annotations

import dataclasses
import struct

import x86env as xe

SEGS = ("es", "cs", "ss", "ds", "fs", "gs")
REGS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")


@dataclasses.dataclass
class Outcome:
    regs: dict[str, int]
    eip: int
    eflags: int
    sels: dict[str, int]
    ts: bool                       # CR0.TS
    tr: int
    fault: int | None              # vector, if the run ended in an exception
    fault_eip: int | None          # EIP of the faulting instruction
    mem: bytes


def run_unicorn(env: xe.Env, stop: int, max_steps: int = 400,
                regions: tuple[tuple[int, int], ...] = ()) -> Outcome:
    from unicorn import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_32, Uc, UcError
    from unicorn import x86_const as x

    cpu = env.cpu
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, env.mem.size)
    uc.mem_write(0, bytes(env.mem.ram))
    uc.reg_write(x.UC_X86_REG_GDTR, (0, cpu.gdt_base, cpu.gdt_limit, 0))
    uc.reg_write(x.UC_X86_REG_IDTR, (0, cpu.idt_base, cpu.idt_limit, 0))
    uc.reg_write(x.UC_X86_REG_CR0, uc.reg_read(x.UC_X86_REG_CR0) | 1)
    tr = cpu.tr_cache
    # QEMU keeps the type TR was loaded with (available: LTR marks only the
    # table entry busy) and aborts on any other when it reads the TSS.
    uc.reg_write(x.UC_X86_REG_TR, (tr.selector, tr.base, tr.limit, (tr.access & ~2) << 8))
    if cpu.cr0 & xe.CR0_PG:
        uc.reg_write(x.UC_X86_REG_CR3, cpu.cr3)
        uc.reg_write(x.UC_X86_REG_CR0, uc.reg_read(x.UC_X86_REG_CR0) | xe.CR0_PG)
    assert cpu.cpl == 0, "start the comparison at ring 0; enter other rings by instructions"
    for name in SEGS:
        uc.reg_write(getattr(x, "UC_X86_REG_" + name.upper()), getattr(cpu, name))
    for name in REGS:
        uc.reg_write(getattr(x, "UC_X86_REG_" + name.upper()), getattr(cpu, name))
    uc.reg_write(x.UC_X86_REG_EFLAGS, cpu.eflags)
    fault: list[int] = []

    def hook(u, intno: int, _user) -> None:
        fault.append(intno)
        u.emu_stop()

    uc.hook_add(UC_HOOK_INTR, hook)
    try:
        uc.emu_start(cpu.eip, stop, count=max_steps)
    except UcError as e:
        fault.append(-1 if "INSN_INVALID" not in str(e) else xe.UD)
    eip = uc.reg_read(x.UC_X86_REG_EIP)
    return Outcome(
        regs={n: uc.reg_read(getattr(x, "UC_X86_REG_" + n.upper())) for n in REGS},
        eip=eip, eflags=uc.reg_read(x.UC_X86_REG_EFLAGS),
        sels={n: uc.reg_read(getattr(x, "UC_X86_REG_" + n.upper())) & 0xFFFF for n in SEGS},
        ts=bool(uc.reg_read(x.UC_X86_REG_CR0) & xe.CR0_TS),
        tr=uc.reg_read(x.UC_X86_REG_TR)[0],
        fault=fault[0] if fault else None, fault_eip=eip if fault else None,
        mem=b"".join(bytes(uc.mem_read(a, n)) for a, n in regions))


def run_core(env: xe.Env, stop: int, max_steps: int = 400,
             regions: tuple[tuple[int, int], ...] = ()) -> Outcome:
    """Run the core until ``stop`` (linear) or an exception delivered to a stub."""
    cpu = env.cpu
    cpu.breakpoints.add(stop)
    fault = fault_eip = None
    for _ in range(max_steps):
        if (cpu.sregs[1].base + cpu.eip) & 0xFFFFFFFF == stop:
            break
        before = cpu.last_exception
        cpu.last_exception = None
        cpu.step()
        if cpu.shutdown:
            raise AssertionError(f"core shut down: {cpu.shutdown}")
        if cpu.last_exception is not None:
            vector, error = cpu.last_exception
            fault = vector
            # The faulting EIP is in the frame the delivery pushed.
            words = struct.unpack("<2I", env.mem.read(cpu.sregs[2].base + cpu.esp, 8))
            fault_eip = words[1] if error is not None else words[0]
            break
        cpu.last_exception = before
    return Outcome(
        regs={n: getattr(cpu, n) for n in REGS}, eip=cpu.eip, eflags=cpu.eflags,
        sels={n: getattr(cpu, n) for n in SEGS}, ts=bool(cpu.cr0 & xe.CR0_TS), tr=cpu.tr,
        fault=fault, fault_eip=fault_eip,
        mem=b"".join(env.mem.read(a, n) for a, n in regions))


def compare(env_factory, stop: int, regions: tuple[tuple[int, int], ...] = (),
            flags_mask: int = 0x3F7FD5) -> tuple[Outcome, Outcome]:
    """Build the world twice, run it on both, assert they agree; return (ours, unicorn)."""
    uni = run_unicorn(env_factory(), stop, regions=regions)
    ours = run_core(env_factory(), stop, regions=regions)
    assert uni.fault != -1, "unicorn failed to run the program"
    assert ours.fault == uni.fault, f"fault: ours {ours.fault}, unicorn {uni.fault}"
    if ours.fault is not None:
        assert ours.fault_eip == uni.fault_eip, (
            f"faulting eip: ours {ours.fault_eip:#x}, unicorn {uni.fault_eip:#x}")
        return ours, uni
    diffs = [f"{n}: ours {ours.regs[n]:#x} unicorn {uni.regs[n]:#x}"
             for n in REGS if ours.regs[n] != uni.regs[n]]
    diffs += [f"{n}: ours {ours.sels[n]:#x} unicorn {uni.sels[n]:#x}"
              for n in SEGS if ours.sels[n] != uni.sels[n]]
    if ours.eip != uni.eip:
        diffs.append(f"eip: ours {ours.eip:#x} unicorn {uni.eip:#x}")
    if (ours.eflags ^ uni.eflags) & flags_mask:
        diffs.append(f"eflags: ours {ours.eflags:#x} unicorn {uni.eflags:#x}")
    if ours.ts != uni.ts:
        diffs.append(f"CR0.TS: ours {ours.ts} unicorn {uni.ts}")
    if ours.tr != uni.tr:
        diffs.append(f"TR: ours {ours.tr:#x} unicorn {uni.tr:#x}")
    if ours.mem != uni.mem:
        at = next(i for i, (a, b) in enumerate(zip(ours.mem, uni.mem, strict=True)) if a != b)
        diffs.append(f"memory differs at byte {at} of the compared regions")
    assert not diffs, "; ".join(diffs)
    return ours, uni
