/*: P:900 The Switcher: the only x86 code of the Host, and the door between
 * the Host's world and a Guest's.  It is mapped at 0xFFC00000, the last
 * page-directory entry, both in the Host's page tables and in every shadow page
 * directory the Host builds for a Guest, so it stays in place while %cr3 changes
 * underneath it.  The two pages after it hold this CPU's struct lguest_pages:
 * the first ends with the Guest's registers, exactly where the processor pushes
 * its trap frame when the Guest traps into ring 0; the second, which the Guest
 * may only read, keeps the Host's saved descriptors and stack and the GDT, IDT
 * and TSS the Guest runs with.  The offsets below must match the ones the Host's
 * Python code writes.
 *
 * The Host enters through switch_to_guest with a far call; the Guest leaves
 * through one of the 256 trap stubs at the end, and the Switcher either returns
 * to the Host (return_to_host) or, for a real interrupt, jumps into the Host's
 * own handler (deliver_to_host).  lguestsim assembles this file with GNU as and
 * ships the bytes, and its interpreted CPU executes every instruction of it, one
 * at a time, at every switch.  This is the last passage of the Preparation;
 * the Switcher chapter comes back here to walk through the code itself.
 */
/* Layout of struct lguest_pages (2.6.23, ABI.md section E). */
.set PAGE_SIZE,            4096
.set LGUEST_REGS,          4024                 /* struct lguest_regs, 72 bytes */
.set REGS_TRAPNUM,         LGUEST_REGS + 44
.set RO,                   PAGE_SIZE            /* struct lguest_ro_state */
.set HOST_CR3,             RO + 0
.set HOST_IDT_DESC,        RO + 4
.set HOST_GDT_DESC,        RO + 12
.set HOST_SP,              RO + 20
.set GUEST_IDT_DESC,       RO + 24
.set GUEST_GDT_DESC,       RO + 32
.set GUEST_GDT,            RO + 2192

.set LGUEST_DS,            0x58
.set GDT_ENTRY_TSS,        16
/*:*/

.code32
.text

/*: S:100 switch_to_guest.  The Host arrives here by a far call made just after
 * pushf, so its stack already holds its eflags, code segment and return address:
 * the same three words an interrupt would push, which is what lets the way back
 * end in a plain iret.  %eax points at this CPU's lguest_pages and %ebx holds the
 * physical address of the Guest's shadow page directory.  The Switcher saves the
 * Host's segment registers and stack pointer, loads the Guest's GDT, IDT and TSS,
 * switches %cr3, pops the Guest's registers out of struct lguest_regs and irets
 * into the Guest at privilege level 1 (or 3, if it was in user mode).
 */
.globl switch_to_guest
switch_to_guest:
        /* Save the Host's segment registers and frame pointer on its stack, and
         * remember where that stack is. */
        pushl   %es
        pushl   %ds
        pushl   %gs
        pushl   %fs
        pushl   %ebp
        movl    %esp, HOST_SP(%eax)

        /* The stack becomes the Guest's saved registers: we pop them below. */
        movl    %eax, %edx
        addl    $LGUEST_REGS, %edx
        movl    %edx, %esp

        /* The Guest's GDT and IDT, and its TSS (whose ss0:esp0 lead back here). */
        lgdt    GUEST_GDT_DESC(%eax)
        lidt    GUEST_IDT_DESC(%eax)
        movl    $(GDT_ENTRY_TSS * 8), %edx
        ltr     %dx

        /* That ltr marked the Guest's TSS descriptor busy, and ltr refuses a
         * busy one.  The Host's TSS entry is still busy from the Host's own
         * ltr, and we ltr it again on the way back: clear its busy bit now. */
        movl    (HOST_GDT_DESC + 2)(%eax), %edx
        andb    $0xFD, (GDT_ENTRY_TSS * 8 + 5)(%edx)

        /* The Guest's address space.  The Switcher and these pages are mapped
         * at the same place there, so the next instruction is still here. */
        movl    %ebx, %cr3

        /* The registers, in struct lguest_regs order; then skip trapnum and
         * errcode, and iret into the Guest at ring 1 (or 3). */
        popl    %ebx
        popl    %ecx
        popl    %edx
        popl    %esi
        popl    %edi
        popl    %ebp
        popl    %gs
        popl    %eax
        popl    %fs
        popl    %ds
        popl    %es
        addl    $8, %esp
        iret

/*: S:200 The way back.  When the Guest traps or is interrupted, the processor
 * moves to the ring-0 stack that the Guest's TSS names, which ends exactly at the
 * end of struct lguest_regs, and pushes the Guest's ss, esp, eflags, cs and eip
 * (plus an error code, for some traps); the trap stub then pushes the rest of a
 * uniform frame.  Both ways out, straight back to the Host or into one of the
 * Host's interrupt handlers, must save the Guest's registers and restore the
 * Host's world, so that work is a macro: push the general registers to complete
 * struct lguest_regs, find lguest_pages by rounding the stack pointer down to
 * its page, and bring back the Host's %cr3, GDT, IDT, stack and TSS.
 */
.macro SWITCH_TO_HOST
        pushl   %es
        pushl   %ds
        pushl   %fs
        pushl   %eax
        pushl   %gs
        pushl   %ebp
        pushl   %edi
        pushl   %esi
        pushl   %edx
        pushl   %ecx
        pushl   %ebx
        /* A known-good data segment, and %eax = the start of lguest_pages. */
        movl    $LGUEST_DS, %eax
        movl    %eax, %ds
        movl    %esp, %eax
        andl    $~(PAGE_SIZE - 1), %eax
        /* The trap number goes in %ebx for deliver_to_host. */
        movl    REGS_TRAPNUM(%eax), %ebx
        /* The Host's address space, GDT, IDT and stack. */
        movl    HOST_CR3(%eax), %edx
        movl    %edx, %cr3
        /* The Guest's TSS descriptor is busy now; the next ltr needs it free. */
        andb    $0xFD, (GUEST_GDT + GDT_ENTRY_TSS * 8 + 5)(%eax)
        lgdt    HOST_GDT_DESC(%eax)
        lidt    HOST_IDT_DESC(%eax)
        movl    HOST_SP(%eax), %esp
        movl    $(GDT_ENTRY_TSS * 8), %edx
        ltr     %dx
        popl    %ebp
        popl    %fs
        popl    %gs
        popl    %ds
        popl    %es
.endm

/*: S:210 return_to_host is the exit for the traps the Host must look at:
 * faults, the hypercall vector and the rest below 32, and the system-call
 * vector 128 whenever it is not sent straight to the Guest.  After the macro the
 * Host's stack holds just what the far call left, so an iret returns into the
 * Host's run loop as if from an interrupt, and the Host reads trapnum and
 * errcode from struct lguest_regs.
 */
.globl return_to_host
return_to_host:
        SWITCH_TO_HOST
        iret

/*: S:300 deliver_to_host is the exit for a real interrupt, such as the Host's
 * timer, that arrived while the Guest ran (vectors 32 and up, except 128).  Back
 * in the Host's world it reads the gate for vector %ebx from the Host's IDT,
 * puts the handler's address together from the gate's two halves, and jumps
 * there.  The handler's own iret then returns to the Host's far call, exactly as
 * though the interrupt had arrived in the Host just after the call was made.
 */
.globl deliver_to_host
deliver_to_host:
        SWITCH_TO_HOST
        movl    (HOST_IDT_DESC + 2)(%eax), %edx
        leal    (%edx, %ebx, 8), %eax
        movzwl  (%eax), %edx
        movl    4(%eax), %eax
        xorw    %ax, %ax
        orl     %eax, %edx
        jmp     *%edx

/*: S:310 An NMI that arrives while the Guest runs needs nothing from the Host
 * here: drop the two words the stub pushed and iret straight back into the Guest.
 */
handle_nmi:
        addl    $8, %esp
        iret

/*: S:400 The 256 trap stubs, one every 16 bytes, which the Host puts in the
 * Guest's real IDT.  Each gives the frame the same shape whatever the vector: it
 * pushes a zero error code unless the processor pushed one already (vectors 8,
 * 10 to 14 and 17), then its own vector number, which lands in trapnum, and jumps
 * to that vector's exit: the NMI path for 2, return_to_host for the rest of 0
 * to 31 and for 128, deliver_to_host for all the others.  lguest copies its Switcher and has to adjust
 * these addresses for the move; lguestsim links it at 0xFFC00000, so the Host
 * uses the addresses in switcher.json as they are.
 */
.macro TRAP_STUB vector, target
        .if (\vector == 8) || ((\vector >= 10) && (\vector <= 14)) || (\vector == 17)
        .else
        pushl   $0
        .endif
        pushl   $\vector
        jmp     \target
.endm

        .balign 16
.globl trap_stubs
trap_stubs:                     /* stub n is at trap_stubs + 16 * n */
.set vec, 0
.rept 256
        .balign 16
        .if vec == 2
        TRAP_STUB vec, handle_nmi
        .elseif (vec < 32) || (vec == 128)
        TRAP_STUB vec, return_to_host
        .else
        TRAP_STUB vec, deliver_to_host
        .endif
        .set vec, vec + 1
.endr
.globl switcher_end
switcher_end:
