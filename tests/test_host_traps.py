"""Each trap path of the Host, on tiny Guests (ABI.md section F, the end).

A page fault the Host fills from the Guest's tables and the Guest never
sees; a fault reflected to the Guest with cr2 in lguest_data; an in/out the
Host emulates; #NM reflected only when the Guest set TS; a system call
delivered straight into the Guest without a world switch; and interrupts
held off by irq_enabled, blocked_interrupts and the noirq window.
"""

from __future__ import annotations

import struct

import pytest
from guestenv import boot, console_bytes, run_to_death, sym32

from lguestsim.host import LHREQ_IRQ

# A Guest prologue: INIT, a stack, and IDT entries for the vectors a test lists.
SETUP = """
        movl $(stack_top), %esp
        HCALL 1, lguest_data-PO
        HCALL 7, 0x69, stack_top, 1        # SET_STACK (ring 1 stack, 1 page)
"""

STACK = """
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""


def idt_entry(vector: int, handler: str, gate_type: int = 0xE, dpl: int = 1) -> str:
    """LOAD_IDT_ENTRY for ``handler``: the gate's low and high words built at run time."""
    flags = 0x8000 | (dpl << 13) | (gate_type << 8)
    return f"""
        movl ${handler}, %ebx
        andl $0xffff, %ebx
        orl $0x00600000, %ebx
        movl ${handler}, %ecx
        andl $0xffff0000, %ecx
        orl ${flags:#x}, %ecx
        movl $6, %eax
        movl ${vector}, %edx
        int $0x1f
"""


def test_demand_paged_fault_is_never_seen_by_the_guest():
    host, dev, lg, proc = boot(SETUP + """
        movl $0x12345678, data            # a kernel page not yet in the shadow tables
        movl data, %eax
        HCALL 2, msg-PO
msg:    .asciz "done"
        .p2align 12
data:   .long 0
    """ + STACK)
    reason, _ = run_to_death(dev)
    assert reason == "CRASH: done"
    faults = host.trace.of("pagefault")
    assert len(faults) >= 3 and all(f.handled for f in faults)
    assert not host.trace.of("trap")                  # nothing was reflected
    # The write fault set DIRTY (and ACCESSED) in the Guest's own PTE.
    assert any(f.errcode & 2 and f.gpte & 0x60 == 0x60 for f in faults)


def test_fault_is_reflected_with_cr2():
    host, dev, lg, proc = boot(SETUP + idt_entry(14, "pf_handler") + """
        movl 0x00400123, %eax             # nothing mapped below PAGE_OFFSET
        HCALL 2, nope-PO
pf_handler:
        movl lguest_data+8, %eax           # cr2, as the Host wrote it
        movl %eax, seen
        popl %ebx                          # error code
        movl %ebx, seen+4
        HCALL 2, msg-PO
nope:   .asciz "no fault"
msg:    .asciz "fault"
        .p2align 2
seen:   .long 0, 0
    """ + STACK)
    reason, _ = run_to_death(dev)
    assert reason == "CRASH: fault"
    assert sym32(proc, "seen") == 0x00400123
    assert sym32(proc, "seen", 1) == 0                 # read, supervisor, not present
    assert host.trace.of("trap")[0].vector == 14


def test_in_and_out_are_emulated():
    host, dev, lg, proc = boot(SETUP + """
        movl $0x12345600, %eax
        inb $0x60, %al                     # no device: all ones
        outb %al, $0x80                    # ignored
        movl %eax, result
        movw $0x3f8, %dx
        inw %dx, %ax                       # 16 bits of ones
        movl %eax, result+4
        HCALL 2, msg-PO
msg:    .asciz "io"
        .p2align 2
result: .long 0, 0
    """ + STACK)
    reason, _ = run_to_death(dev)
    assert reason == "CRASH: io"
    assert sym32(proc, "result") == 0x123456FF
    assert sym32(proc, "result", 1) == 0x1234FFFF
    assert [e.emulated for e in host.trace.of("trap")] == ["in", "out", "in"]


def test_nm_is_reflected_only_when_the_guest_set_ts():
    host, dev, lg, proc = boot(SETUP + idt_entry(7, "nm_handler") + """
        fninit                             # TS clear: no trap
        HCALL 8, 8                         # the Guest's virtual TS on
        fld1                               # traps to the Guest
        fld1
        faddp
        fstps result
        HCALL 2, msg-PO
nm_handler:
        incl count
        HCALL 8, 0                         # "clts"
        iret
msg:    .asciz "fpu"
        .p2align 2
result: .long 0
count:  .long 0
    """ + STACK)
    reason, _ = run_to_death(dev)
    assert reason == "CRASH: fpu"
    assert sym32(proc, "result") == 0x40000000         # 2.0f: 1 + 1, after the retry
    assert sym32(proc, "count") == 1                   # one #NM reached the Guest
    assert [e.vector for e in host.trace.of("trap")] == [7]


SYSCALLS = SETUP + idt_entry(0x80, "syscall", gate_type=0xF, dpl=3) + """
        movl $200, %ecx
1:      int $0x80
        loop 1b
        HCALL 2, msg-PO
syscall:
        incl count
        iret
msg:    .asciz "syscalls"
        .p2align 2
count:  .long 0
""" + STACK


@pytest.mark.parametrize("direct", [True, False])
def test_system_call_is_a_direct_trap(direct):
    host, dev, lg, proc = boot(SYSCALLS, direct_traps=direct)
    reason, _ = run_to_death(dev)
    assert reason == "CRASH: syscalls"
    assert sym32(proc, "count") == 200
    if direct:
        assert lg.world_switches < 20                  # no Host in the system call path
    else:
        assert lg.world_switches > 200                 # every int $0x80 went through the Host


IRQS = SETUP + idt_entry(33, "irq1") + """
        movl $0, lguest_data               # irq_enabled off
        HCALL 13, 0, dma-PO                # back to the Launcher: it raises irq 1
        HCALL 0                            # a trip through the Host: nothing delivered
        movl count, %eax
        movl %eax, before_enable
        movl $0x200, lguest_data           # irq_enabled on
        HCALL 0                            # now it arrives
        movl count, %eax
        movl %eax, after_enable
        movl $2, lguest_data+4             # block irq 1
        HCALL 13, 0, dma-PO                # the Launcher raises irq 1 again
        HCALL 0
        movl count, %eax
        movl %eax, while_blocked
        movl $0, lguest_data+4
        HCALL 0
        movl count, %eax
        movl %eax, after_unblock
        HCALL 2, msg-PO
irq1:
        incl count
        movl $0x200, lguest_data           # handlers re-enable, as an iret would
        iret
msg:    .asciz "irqs"
        .p2align 2
dma:    DMA msg-PO, 1
count:          .long 0
before_enable:  .long 0
after_enable:   .long 0
while_blocked:  .long 0
after_unblock:  .long 0
""" + STACK


def test_interrupts_wait_for_irq_enabled_and_blocked_interrupts():
    host, dev, lg, proc = boot(IRQS)
    for _ in range(2):
        dma, key = struct.unpack("<II", dev.read(8))
        assert console_bytes(dev, dma) == b"i"
        dev.write(struct.pack("<II", LHREQ_IRQ, 1))
    reason, _ = run_to_death(dev)
    assert reason == "CRASH: irqs"
    values = [sym32(proc, n) for n in ("before_enable", "after_enable", "while_blocked",
                                       "after_unblock")]
    assert values == [0, 1, 1, 2]
    assert [e.irq for e in host.trace.of("interrupt")] == [1, 1]


def test_no_interrupt_inside_the_noirq_window():
    host, dev, lg, proc = boot(SETUP + idt_entry(33, "irq1") + """
        HCALL 13, 0, dma-PO                # the Launcher raises irq 1 now
window: HCALL 0                            # from inside the window: held off
after:  movl count, %eax
        movl %eax, in_window
        HCALL 0                            # outside: delivered
        HCALL 2, msg-PO
irq1:   incl count
        iret
msg:    .asciz "noirq"
        .p2align 2
dma:    DMA msg-PO, 1
count:  .long 0
in_window: .long 0
    """ + STACK)
    # The window covers the second hypercall's return address, where the Guest
    # sits when the Host next considers interrupts.
    dma, key = struct.unpack("<II", dev.read(8))
    lg.noirq_start = proc.symbols["window"]
    lg.noirq_end = proc.symbols["after"] + 1
    dev.write(struct.pack("<II", LHREQ_IRQ, 1))
    reason, _ = run_to_death(dev)
    assert reason == "CRASH: noirq"
    assert sym32(proc, "in_window") == 0               # not inside the window
    assert sym32(proc, "count") == 1                   # but delivered after it
