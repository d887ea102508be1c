"""The block translator against stepping, the CPU's own reference mode.

The CPU runs cached multi-instruction blocks (translate.py), loops inside a
block when it jumps back to its start, and single-steps one-instruction
blocks when a reader steps.  Whatever the path, the architectural result must
be the same: registers, flags, memory, cycle and instruction counts, and the
exact instruction at which a fault is taken.  These tests hold the fast paths
to that.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from asm import assemble
from x86env import CODE, PF_VEC, Env

from lguestsim.x86 import CPU, PhysicalMemory

ROOT = Path(__file__).resolve().parent.parent


def snapshot(cpu: CPU) -> dict:
    d = cpu.state()
    d.update(cycles=cpu.cycles, instructions=cpu.instructions, last=cpu.last_exception)
    return d


@pytest.fixture(scope="module")
def workload() -> tuple[list[tuple[int, bytes]], int]:
    """The benchmark's gcc -O2 program, with its identity page tables."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_core
    try:
        flat, entry = bench_core.build_workload()
    except (bench_core.BuildError, OSError) as e:
        pytest.fail(f"cannot build the gcc workload: {e} (.ci/run installs gcc-multilib)")
    return [*bench_core.page_tables(), (entry, flat)], entry


def boot_workload(image, entry) -> tuple[CPU, PhysicalMemory]:
    mem = PhysicalMemory(8 << 20)
    for addr, data in image:
        mem.write(addr, data)
    cpu = CPU(mem)
    cpu.reset_flat32()
    cpu.cr3 = 0x1000
    cpu.cr0 |= 0x80000000
    cpu.eip = entry
    cpu.esp = (8 << 20) - 0x1000
    cpu.eax = 1
    return cpu, mem


def test_run_and_step_agree_on_compiled_code(workload):
    """gcc -O2 code with paging on: blocks and single steps reach the same state."""
    image, entry = workload
    fast, fmem = boot_workload(image, entry)
    slow, smem = boot_workload(image, entry)
    n = 30_000
    assert fast.run(n) == "limit"
    for _ in range(n):
        assert slow.step() is None
    assert snapshot(fast) == snapshot(slow)
    assert bytes(fmem.ram) == bytes(smem.ram)


def test_run_in_random_slices_agrees_with_one_run(workload):
    image, entry = workload
    whole, wmem = boot_workload(image, entry)
    assert whole.run() == "hlt"
    sliced, smem = boot_workload(image, entry)
    rng = random.Random(7)
    while (why := sliced.run(rng.choice([1, 2, 3, 7, 50, 333, 4096]))) == "limit":
        pass
    assert why == "hlt"
    assert snapshot(sliced) == snapshot(whole)
    assert bytes(smem.ram) == bytes(wmem.ram)


def test_self_modifying_code_takes_effect():
    """Patch the immediate of an instruction that already ran; run it again."""
    env = Env()
    code = assemble("""
        mov $2, %ecx
    again:
        call target
        movl $0x22222222, target+1     # rewrite the immediate of the mov below
        dec %ecx
        jnz again
        hlt
    target:
        mov $0x11111111, %eax
        add %eax, %ebx
        ret
    """, CODE)
    env.code(code)
    env.cpu.ebx = 0
    assert env.cpu.run(1000) == "hlt"
    assert env.cpu.ebx == 0x33333333


def test_write_to_data_beside_code_keeps_the_code():
    """Stores to data on a code page must not throw away the unrelated code."""
    env = Env()
    code = assemble("""
        mov $1000, %ecx
    loop:
        incl counter
        dec %ecx
        jnz loop
        mov counter, %eax
        hlt
    counter: .long 0
    """, CODE)
    env.code(code)
    assert env.cpu.run(10_000) == "hlt"
    assert env.cpu.eax == 1000


def run_or_step(cpu, mode: str) -> None:
    """Run in blocks (to the hlt the fault handler ends in) or one step at a time."""
    if mode == "run":
        cpu.run(100_000)
    else:
        while cpu.step() is None:
            pass


@pytest.mark.parametrize("mode", ["run", "step"])
def test_fault_inside_a_looping_block_is_precise(mode):
    """A loop block walking into an unmapped page faults at the exact iteration."""
    env = Env(paging=True)
    env.pt.unmap(0x200000)
    code = assemble("""
        mov $0x1ff000, %esi
        xor %ebx, %ebx
        mov $5000, %ecx
    loop:
        add (%esi), %ebx
        add $4, %esi
        dec %ecx
        jnz loop
        hlt
    """, CODE)
    env.code(code)
    for a in range(0x1FF000, 0x200000, 4):
        env.mem.write32(a, 1)
    cpu = env.cpu
    run_or_step(cpu, mode)
    assert cpu.last_exception == (PF_VEC, 0)          # not present, read, supervisor
    assert cpu.cr2 == 0x200000
    assert cpu.esi == 0x200000
    assert cpu.ebx == 1024
    assert cpu.ecx == 5000 - 1024
    # the frame's EIP is the faulting add, so the handler could fix and retry
    error_code, eip, cs, eflags = env.stack(4)
    assert error_code == 0 and eip == CODE + 12
    # flags of the last completed instruction (jnz saw dec's result: ZF clear)
    assert not eflags & 0x40


def test_instruction_limit_is_exact_inside_a_loop():
    env = Env()
    env.code(assemble("""
        mov $100, %ecx
    loop:
        inc %eax
        dec %ecx
        jnz loop
        hlt
    """, CODE))
    cpu = env.cpu
    assert cpu.run(1 + 3 * 10 + 2) == "limit"
    assert cpu.eax == 11 and cpu.ecx == 89   # ten rounds, then inc and dec
    assert cpu.instructions == 33


def test_breakpoint_inside_a_block_stops_before_it():
    env = Env()
    code = assemble("""
        mov $1, %eax
        mov $2, %ebx
    here:
        mov $3, %ecx
        hlt
    """, CODE)
    env.code(code)
    cpu = env.cpu
    cpu.breakpoints.add(CODE + 10)
    assert cpu.run(100) == "breakpoint"
    assert cpu.eip == CODE + 10 and cpu.ebx == 2 and cpu.ecx == 0
    assert cpu.run(100) == "hlt"                     # resuming executes it
    assert cpu.ecx == 3


def test_pending_interrupt_is_taken_at_the_next_boundary():
    env = Env()
    env.code(assemble("""
        sti
        nop
    loop:
        inc %eax
        jmp loop
    """, CODE))
    cpu = env.cpu
    cpu.raise_interrupt(0x30)
    cpu.run(2)          # sti, nop (the shadow); the interrupt comes before inc
    assert cpu.eax == 0
    assert cpu.eip == env.handler(0x30)
    assert env.stack(1)[0] == CODE + 2


def test_cycles_are_the_same_stepped_or_run():
    env1, env2 = Env(), Env()
    src = """
        mov $50, %ecx
    loop:
        push %ecx
        pop %edx
        imul %edx, %eax
        dec %ecx
        jnz loop
        hlt
    """
    env1.code(assemble(src, CODE))
    env2.code(assemble(src, CODE))
    env1.cpu.run(10_000)
    while env2.cpu.step() is None:
        pass
    assert env1.cpu.cycles == env2.cpu.cycles > env1.cpu.instructions
    assert snapshot(env1.cpu) == snapshot(env2.cpu)


@pytest.mark.parametrize("mode", ["run", "step"])
def test_effective_address_wraps_at_4g(mode):
    """[ebx - 8] with ebx = 4 is 0xfffffffc: generated code leaves such an
    address unwrapped (no fast dict holds it) and the slow path wraps it."""
    env = Env(paging=True)
    env.pt.map(0xFFFFF000, 0x300000)
    env.mem.write32(0x300FFC, 0x12345678)
    env.code(assemble("""
        mov $4, %ebx
        mov -8(%ebx), %eax
        movl $0x9abcdef0, -8(%ebx)
        mov -8(%ebx), %ecx
        hlt
    """, CODE))
    cpu = env.cpu
    if mode == "run":
        assert cpu.run(100) == "hlt"
    else:
        while cpu.step() is None:
            pass
    assert cpu.eax == 0x12345678 and cpu.ecx == 0x9ABCDEF0
    assert env.mem.read32(0x300FFC) == 0x9ABCDEF0
    assert cpu.instructions == 5


# The arithmetic flags after each, as unicorn gives them (ecx = 0x80000000,
# edx = 0xfffffffe after the add).
AFTER = {"xor %eax, %eax": 0x44, "sub %eax, %eax": 0x44, "cmp %ecx, %edx": 0x00,
         "inc %edx": 0x84, "xor %ecx, %edx": 0x00}


@pytest.mark.parametrize("producer", sorted(AFTER))
@pytest.mark.parametrize("mode", ["run", "step"])
def test_flags_pushed_by_a_fault_right_after_a_producer(producer, mode):
    """The flags a fault pushes are those of the instruction before it, even
    where generated code keeps them as constants (a register zeroed) or
    without a result (a cmp), and whether the fault is found by a block's
    line (run) or in a one-instruction block (step)."""
    env = Env(paging=True)
    env.pt.unmap(0x200000)
    env.code(assemble(f"""
        mov $0x80000000, %ecx
        mov $0x7fffffff, %edx
        mov $0x1234, %eax
        add %edx, %edx
        {producer}
        mov 0x200000, %ebx
        hlt
    """, CODE))
    run_or_step(env.cpu, mode)
    assert env.cpu.last_exception == (PF_VEC, 0)
    assert env.stack(4)[3] & 0x8D5 == AFTER[producer]


@pytest.mark.parametrize("mode", ["run", "step"])
def test_push_esp_stores_the_old_esp(mode):
    """`push %esp` stores ESP as it was before the push (a 286 and later):
    generated code stores a register straight from the register, and moves
    ESP only after the store."""
    env = Env()
    env.code(assemble("""
        push %esp
        pop %ebx
        mov %esp, %edx
        push %eax
        push %esp
        push %ecx
        hlt
    """, CODE))
    cpu = env.cpu
    esp0 = cpu.esp
    cpu.eax, cpu.ecx = 0x11, 0x22
    run_or_step(cpu, mode)
    assert cpu.ebx == esp0 and cpu.edx == esp0
    assert env.stack(3) == [0x22, esp0 - 4, 0x11] and cpu.esp == esp0 - 12
