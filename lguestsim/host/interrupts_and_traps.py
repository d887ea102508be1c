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

#: P:800 Three kinds of event can break into a running Guest, and this file
# deals with two of them.  Real hardware interrupts (in lguestsim, the Host's
# own timer tick on vector 0x20) belong to the Host: the Switcher passes them
# to the Host's IDT and the Guest never hears of them.  Virtual interrupts are
# the Guest's devices and clock: the Launcher (LHREQ_IRQ), another Guest's DMA
# or the Guest's timer sets a bit in `irqs_pending`, and the Host makes the
# Guest take it exactly as a processor would.  Traps are the Guest's own
# doing (a page fault, a system call, a division by zero): the Host either
# looks at them first and then reflects them into the Guest, or arranges for
# the processor to deliver them to the Guest's handler by itself, with no
# Host involved at all.
#
# Everything here is plain Python working on simulated memory.  Delivering an
# interrupt means writing a few 32-bit words into the Guest's stack, which
# lives in its Launcher's Process, and changing the saved registers that the
# Switcher will load on the next trip into the Guest.

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


#: H:212 A gate is two 32-bit words, `lo` and `hi`, and the handler's address
# is split between them: its low half in the bottom of `lo` (the top of `lo`
# is the code segment selector), its high half in the top of `hi`.  The rest
# of `hi` holds the present bit (15), the privilege level (13-14) and the type
# (8-11), which idt_present() and idt_type() pick out.
def idt_address(lo: int, hi: int) -> int:
    return (lo & 0xFFFF) | (hi & 0xFFFF0000)


#: H:220 With set_guest_interrupt() doing the work, reflecting a trap into
# the Guest is almost trivial.  The one wrinkle is the error code: the
# processor pushes one for the double fault (8), the invalid-TSS,
# segment-not-present, stack and general protection faults (10 to 13), the
# page fault (14) and the alignment check (17), and for no other vector.  The
# frame we build must match, or the Guest's handler would pop the wrong words.
def has_err(trap: int) -> bool:
    return trap == 8 or 10 <= trap <= 14 or trap == 17


class Interrupts:
    def __init__(self, host) -> None:
        self.host = host
        self.mem = host.machine.mem

    #: H:215 One push onto the Guest's stack, the way the processor does it:
    # move the stack pointer down four bytes, then store.  The stack pointer is
    # a Guest *virtual* address in the kernel's linear mapping, so subtracting
    # `page_offset` gives the Guest-physical address lgwrite_u32() expects;
    # that helper checks it against the Guest's memory and kills the Guest
    # rather than write anywhere else.
    def push_guest_stack(self, lg: Lguest, gstack: int, value: int) -> int:
        """Push onto a Guest kernel stack (a virtual address in the linear map)."""
        gstack = (gstack - 4) & 0xFFFFFFFF
        lgwrite_u32(lg, self.mem, (gstack - lg.page_offset) & 0xFFFFFFFF, value)
        return gstack

    #: H:210 The heart of delivery, shared by interrupts and traps: build the
    # frame a real x86 would build, so that the Guest's handler, and the `iret`
    # it ends with, cannot tell the difference.  A Guest caught in user mode
    # (ring 3) first moves to the kernel stack it registered with SET_STACK
    # (`ss1`/`esp1`), saving the old `ss` and `esp` there; a Guest already in
    # its kernel (ring 1) stays on the stack it is using.  Then come `eflags`,
    # `cs`, `eip` and, for the traps that have one, the error code.
    #
    # Two details are lguest's own.  The Guest never really turns interrupts
    # off, so the IF bit we push is copied from `irq_enabled` in lguest_data,
    # which is where the Guest's lguest_iret (entry.S) puts it back; and an
    # interrupt gate (type 0xE) "disables interrupts" by writing 0 there.  The
    # new `ss`, `esp`, `cs` and `eip` only go into the saved registers: nothing
    # happens until the Switcher loads them on the next trip into the Guest.
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

    #: H:200 Virtual interrupts.  run_guest() calls this each time round its
    # loop, just before switching into the Guest, to decide whether the Guest
    # should start an interrupt handler instead of carrying on where it was.
    # The candidates are the `irqs_pending` bits less those the Guest masked in
    # lguest_data's `blocked` word, and the lowest-numbered one wins.  Nothing
    # is delivered while the Guest's eip is inside its noirq window (the tail
    # of lguest_iret), nor while its `irq_enabled` is 0, unless it is halted:
    # a Guest that made the HALT hypercall is waiting for exactly this, so it
    # wakes with interrupts on.  Interrupt *n* uses IDT entry 32 + *n*; while
    # the Guest has no handler there, the interrupt simply stays pending.
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

    #: H:225 Reflecting a trap.  When the Guest faults in a way the Host had
    # to look at first (a page fault demand_page() could not fix, a general
    # protection fault that was not an in/out to fake, and the like),
    # run_guest() comes here to pass it on to the Guest's own handler.  A
    # vector without a present gate, or one beyond the 64 entries we keep (such
    # as trapnum 256, which says loading the Guest's segments faulted on the
    # way in), gives False, and run_guest() kills the Guest with "unhandled
    # trap".  The system call vector only gets here when lguestsim's direct
    # traps are switched off; its gate is the separate `syscall_idt`.
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

    #: H:250 Reflecting costs a round trip: out of the Guest through the
    # Switcher, round the Host's run_guest() loop, and back in, all for a trap
    # the Host had nothing to say about.  System calls make it hurt, since each
    # one is a trap (`int $0x80`): lguest measured 1750 ns per call reflected
    # against 270 ns delivered directly.  So where it is safe, the Guest's own
    # gate goes into the IDT the processor uses, and the CPU enters the Guest's
    # ring-1 handler by itself; in lguestsim, the interpreted CPU does it
    # without a line of the Python Host running.
    #
    # This decides "where it is safe".  The external interrupt vectors (32 and
    # up, except the system call) are the Host's.  The Host must see page
    # faults (shadow paging, cr2), general protection faults (in/out
    # emulation), device-not-available (the lazy FPU switch) and the hypercall
    # trap.  And only a trap gate will do: an interrupt gate has to turn the
    # Guest's interrupts off on entry, which the processor cannot do for us,
    # since the Guest's interrupt flag is a word in lguest_data.  lguestsim
    # adds `Host(direct_traps=False)` to switch the whole shortcut off.
    def direct_trap(self, lg: Lguest, lo: int, hi: int, num: int) -> bool:
        """May this vector go straight to the Guest, with no Host in between?"""
        if num >= FIRST_EXTERNAL_VECTOR and num != SYSCALL_VECTOR:
            return False
        if num in (14, 13, 7, LGUEST_TRAP_ENTRY):
            return False
        if not self.host.direct_traps:
            return False
        return idt_type(lo, hi) == 0xF

    #: M:005 Our Guest (guest/traps.c) asks for interrupt gates everywhere but
    # the system call, so none of its exceptions can go direct: a breakpoint
    # or a division error always costs a trip through the Host.  A Guest could
    # do better on its own: register a trap gate whose handler begins inside
    # its noirq window (placed next to lguest_iret, so that the one range
    # `noirq_start`..`noirq_end` covers both), where maybe_do_interrupt() never
    # interrupts it.  The handler's first instructions copy `irq_enabled` into
    # the IF bit of the frame (the processor pushed it with IF always set) and
    # then write 0 there: an interrupt gate in effect, with no Host in the
    # path.  Try it for one vector and count the world switches it saves.

    #: H:235 Checking one gate the Guest gave us and turning it into the form
    # we keep.  A gate that is not present becomes all zeroes.  Only interrupt
    # gates (0xE) and trap gates (0xF) are accepted; anything else (a task
    # gate, say) kills the Guest.  We keep the handler's address, the present
    # bit, the type and the privilege level, which says how unprivileged code
    # may be and still raise the vector with an `int` instruction (the system
    # call's gate has 3, so user programs may).  The code segment is forced to
    # the Guest kernel's ring-1 segment, 0x61, whatever the Guest wrote, so no
    # gate of the Guest's can lead into ring 0.
    def set_trap(self, lg: Lguest, num: int, lo: int, hi: int) -> tuple[int, int]:
        if not idt_present(lo, hi):
            return (0, 0)
        t = idt_type(lo, hi)
        if t not in (0xE, 0xF):
            kill_guest(lg, f"bad IDT type {t}")
            return (0, 0)
        return (((KERNEL_CS | GUEST_PL) << 16) | (lo & 0xFFFF), hi & 0xFFFFEF00)

    #: H:230 The other side of interrupts: how the Guest tells us where its
    # handlers are.  A native kernel writes its IDT and loads it with `lidt`;
    # our Guest makes an LHCALL_LOAD_IDT_ENTRY hypercall per entry instead,
    # and do_hcall() passes it here.  Four vectors are the Host's, and the
    # Guest's wishes for them are dropped without a word: NMI (2), double
    # fault (8), the spurious vector 15 and the hypercall trap itself (0x1F).
    # We keep 64 entries, the 32 traps and 32 interrupts, with the system call
    # gate (0x80) kept apart; any other vector is ignored.  Setting
    # CHANGED_IDT tells copy_in_guest_info() to rebuild the real IDT before
    # the Guest runs again.
    def load_guest_idt_entry(self, lg: Lguest, num: int, lo: int, hi: int) -> None:
        # NMI, double fault, the spurious vector 15 and the hypercall trap are the Host's.
        if num in (2, 8, 15, LGUEST_TRAP_ENTRY):
            return
        lg.changed |= CHANGED_IDT
        if num < IDT_ENTRIES:
            lg.idt[num] = self.set_trap(lg, num, lo, hi)
        elif num == SYSCALL_VECTOR:
            lg.syscall_idt = self.set_trap(lg, num, lo, hi)

    #: H:240 The IDT we keep for the Guest is never loaded into the processor.
    # The one the Switcher loads is the per-CPU copy in the Switcher's
    # read-only page (struct lguest_ro_state), and copy_in_guest_info() calls
    # this to refill it when CHANGED_IDT says the Guest changed its table or
    # another Guest ran here last.  For the 32 trap vectors and the system
    # call, a gate that direct_trap() approves goes in as the Guest wrote it;
    # the rest keep their default entry, a gate into the Switcher's stub that
    # takes the processor back to the Host.  The external interrupt vectors
    # always point at the Switcher, so they are never copied.  With direct
    # traps off, the system call's stub gate borrows the privilege level of
    # the Guest's gate, so that user programs may still reach it.
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

    #: M:006 Our Guest makes system calls with `int $0x80`, which can go
    # direct.  The faster `sysenter` cannot: it always enters ring 0, at the
    # address in the SYSENTER MSRs, so enter_guest() in core.py sets
    # SYSENTER_CS to 0 while a Guest runs, and a `sysenter` in the Guest only
    # raises a general protection fault.  An exercise: point those MSRs at a
    # new Switcher stub that returns to the Host, let run_guest() reflect the
    # call to the Guest's system call handler as `direct_traps=False` does for
    # `int $0x80`, and weigh the round trip against what `sysenter` saves.
    # Mind its semantics: it leaves neither a return address nor the user's
    # stack pointer behind, so user code and kernel must agree where to return.

    #: H:265 LHCALL_SET_STACK: the Guest names the kernel stack for traps and
    # interrupts that arrive in user mode, as a native kernel writes `ss0` and
    # `esp0` into its TSS.  Linux gives every process its own kernel stack, so
    # this comes on every context switch.  The segment must be a ring-1 one
    # (the Guest passes 0x69) and the stack at most two pages.  Unlike most
    # hypercall arguments, `esp` is a virtual address: copy_in_guest_info()
    # writes it as `esp1`/`ss1` into the TSS the Switcher loads, where the
    # processor itself uses it for direct traps, and set_guest_interrupt()
    # uses it when the Host delivers.  Then the stack's pages must be mapped:
    # pin_stack_pages() (H:260).
    def guest_set_stack(self, lg: Lguest, seg: int, esp: int, pages: int) -> None:
        if seg & 3 != GUEST_PL:
            kill_guest(lg, f"bad stack segment {seg}")
            return
        if pages > 2:
            kill_guest(lg, f"bad stack pages {pages}")
            return
        lg.ss1, lg.esp1, lg.stack_pages = seg, esp, pages
        self.host.page_tables.pin_stack_pages(lg)
