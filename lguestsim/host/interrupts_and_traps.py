"""Interrupts and traps: how the Host makes the Guest's handlers run.

A Guest's IDT is a wish list: the Host keeps it (lg.idt) and, when it wants
the Guest to take an interrupt or a trap, does by hand what the processor
would do: push the frame on the Guest's kernel stack (switching to the stack
set by SET_STACK if the Guest was in user mode) and point the Guest's eip at
the handler.  Interrupts wait while the Guest has them "disabled" (the
irq_enabled word in lguest_data), while they are blocked, and while the Guest
is inside its own iret sequence (the noirq window).

Some traps never need the Host at all.  A trap gate for a vector the Guest can
take on its own (a system call, say) is copied straight into the real IDT the
Switcher loads, and the processor delivers it to the Guest's handler in
ring 1 with no world switch: a "direct trap".
"""

from __future__ import annotations

from .lg import (
    CHANGED_IDT,
    FIRST_EXTERNAL_VECTOR,
    GUEST_PL,
    IDT_ENTRIES,
    KERNEL_CS,
    LD_BLOCKED,
    LD_IRQ_ENABLED,
    LGUEST_IRQS,
    LGUEST_TRAP_ENTRY,
    SYSCALL_VECTOR,
    Lguest,
    kill_guest,
    lgread_u32,
    lgwrite_u32,
)

X86_EFLAGS_IF = 0x200


def idt_present(lo: int, hi: int) -> bool:
    return bool(hi & 0x8000)


def idt_type(lo: int, hi: int) -> int:
    return (hi >> 8) & 0xF


def idt_address(lo: int, hi: int) -> int:
    return (lo & 0xFFFF) | (hi & 0xFFFF0000)


def has_err(trap: int) -> bool:
    return trap == 8 or 10 <= trap <= 14 or trap == 17


class Interrupts:
    def __init__(self, host) -> None:
        self.host = host
        self.mem = host.machine.mem

    def push_guest_stack(self, lg: Lguest, gstack: int, value: int) -> int:
        """Push onto a Guest kernel stack (a virtual address in the linear map)."""
        gstack = (gstack - 4) & 0xFFFFFFFF
        lgwrite_u32(lg, self.mem, (gstack - lg.page_offset) & 0xFFFFFFFF, value)
        return gstack

    #: H:210 set_guest_interrupt
    def set_guest_interrupt(self, lg: Lguest, lo: int, hi: int, with_err: bool) -> None:
        """Make the Guest take the interrupt whose gate is (lo, hi), as the CPU would."""
        regs = lg.regs
        r = regs.as_dict()
        if r["ss"] & 3 != GUEST_PL:
            # From user mode: onto the kernel stack the Guest gave us, saving the user one.
            gstack, ss = lg.esp1, lg.ss1
            gstack = self.push_guest_stack(lg, gstack, r["ss"])
            gstack = self.push_guest_stack(lg, gstack, r["esp"])
        else:
            gstack, ss = r["esp"], r["ss"]
        eflags = r["eflags"]
        if not lgread_u32(lg, self.mem, lg.lguest_data + LD_IRQ_ENABLED) & X86_EFLAGS_IF:
            eflags &= ~X86_EFLAGS_IF
        gstack = self.push_guest_stack(lg, gstack, eflags)
        gstack = self.push_guest_stack(lg, gstack, r["cs"])
        gstack = self.push_guest_stack(lg, gstack, r["eip"])
        if with_err:
            gstack = self.push_guest_stack(lg, gstack, r["errcode"])
        if lg.dead:
            return
        regs.ss = ss
        regs.esp = gstack
        regs.cs = KERNEL_CS | GUEST_PL
        regs.eip = idt_address(lo, hi)
        # An interrupt gate means "interrupts off while the handler starts".
        if idt_type(lo, hi) == 0xE:
            lgwrite_u32(lg, self.mem, lg.lguest_data + LD_IRQ_ENABLED, 0)

    #: H:200 maybe_do_interrupt
    def maybe_do_interrupt(self, lg: Lguest) -> None:
        if lg.lguest_data is None:
            return
        blocked = lgread_u32(lg, self.mem, lg.lguest_data + LD_BLOCKED)
        pending = lg.irqs_pending & ~blocked & ((1 << LGUEST_IRQS) - 1)
        if not pending:
            return
        irq = (pending & -pending).bit_length() - 1
        eip = lg.regs.eip
        if lg.noirq_start <= eip < lg.noirq_end:
            return
        if lg.halted:
            # A halted Guest wakes with interrupts on, whatever it said before.
            lgwrite_u32(lg, self.mem, lg.lguest_data + LD_IRQ_ENABLED, X86_EFLAGS_IF)
            lg.halted = False
        elif not lgread_u32(lg, self.mem, lg.lguest_data + LD_IRQ_ENABLED):
            return
        lo, hi = lg.idt[FIRST_EXTERNAL_VECTOR + irq]
        if idt_present(lo, hi):
            lg.irqs_pending &= ~(1 << irq)
            self.set_guest_interrupt(lg, lo, hi, False)
            self.host.trace.emit("interrupt", guest=lg.guestid, irq=irq,
                                 vector=FIRST_EXTERNAL_VECTOR + irq, eip=eip)

    #: H:220 deliver_trap
    def deliver_trap(self, lg: Lguest, num: int) -> bool:
        if num == SYSCALL_VECTOR and not self.host.direct_traps:
            lo, hi = lg.syscall_idt       # only reachable with direct traps off
        elif num >= IDT_ENTRIES:
            return False
        else:
            lo, hi = lg.idt[num]
        if not idt_present(lo, hi):
            return False
        self.set_guest_interrupt(lg, lo, hi, has_err(num))
        self.host.trace.emit("trap", guest=lg.guestid, vector=num, reflected=True,
                             eip=lg.regs.eip)
        return True

    def direct_trap(self, lg: Lguest, lo: int, hi: int, num: int) -> bool:
        """May this vector go straight to the Guest, with no Host in between?"""
        if num >= FIRST_EXTERNAL_VECTOR and num != SYSCALL_VECTOR:
            return False
        if num in (14, 13, 7, LGUEST_TRAP_ENTRY):
            return False
        if not self.host.direct_traps:
            return False
        return idt_type(lo, hi) == 0xF

    def set_trap(self, lg: Lguest, num: int, lo: int, hi: int) -> tuple[int, int]:
        if not idt_present(lo, hi):
            return (0, 0)
        t = idt_type(lo, hi)
        if t not in (0xE, 0xF):
            kill_guest(lg, f"bad IDT type {t}")
            return (0, 0)
        return (((KERNEL_CS | GUEST_PL) << 16) | (lo & 0xFFFF), hi & 0xFFFFEF00)

    #: H:240 load_guest_idt_entry
    def load_guest_idt_entry(self, lg: Lguest, num: int, lo: int, hi: int) -> None:
        # NMI, double fault, the spurious vector 15 and the hypercall trap are the Host's.
        if num in (2, 8, 15, LGUEST_TRAP_ENTRY):
            return
        lg.changed |= CHANGED_IDT
        if num < IDT_ENTRIES:
            lg.idt[num] = self.set_trap(lg, num, lo, hi)
        elif num == SYSCALL_VECTOR:
            lg.syscall_idt = self.set_trap(lg, num, lo, hi)

    #: H:250 copy_traps
    def copy_traps(self, lg: Lguest, idt: list, default: list) -> None:
        """Fill the real IDT: direct traps to the Guest, the rest to the Switcher's stubs."""
        for i in range(FIRST_EXTERNAL_VECTOR):
            lo, hi = lg.idt[i]
            idt[i] = (lo, hi) if self.direct_trap(lg, lo, hi, i) else default[i]
        lo, hi = lg.syscall_idt
        if self.direct_trap(lg, lo, hi, SYSCALL_VECTOR):
            idt[SYSCALL_VECTOR] = (lo, hi)
        else:
            d_lo, d_hi = default[SYSCALL_VECTOR]
            if not self.host.direct_traps and idt_present(lo, hi):
                # lguestsim's "direct traps off" experiment: the system call
                # goes through the Switcher and the Host, which reflects it.
                # The stub gate takes the Guest's DPL so the int is allowed.
                d_hi = (d_hi & ~0x6000) | (hi & 0x6000)
            idt[SYSCALL_VECTOR] = (d_lo, d_hi)

    #: H:260 guest_set_stack
    def guest_set_stack(self, lg: Lguest, seg: int, esp: int, pages: int) -> None:
        if seg & 3 != GUEST_PL:
            kill_guest(lg, f"bad stack segment {seg}")
            return
        if pages > 2:
            kill_guest(lg, f"bad stack pages {pages}")
            return
        lg.ss1, lg.esp1, lg.stack_pages = seg, esp, pages
        self.host.page_tables.pin_stack_pages(lg)
