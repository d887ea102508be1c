/*
 * The Switcher: the only x86 code of the Host, and the door between worlds.
 *
 * This page is mapped at 0xFFC00000 (the last page-directory entry) in the
 * Host's page tables and in every shadow page directory the Host builds for a
 * Guest, so it stays put while CR3 changes under it.  The two pages after it
 * hold this CPU's "struct lguest_pages": the Guest's registers (at the end of
 * the first page, where the processor pushes a trap frame on entry to ring 0)
 * and the read-only state (the Host's saved GDT/IDT/stack and the Guest's GDT,
 * IDT and TSS as the processor should see them).
 *
 * The Host enters through switch_to_guest with a far call; the processor leaves
 * the Guest through one of the 256 trap stubs below, and the Switcher either
 * returns to the Host (return_to_host) or, for a real interrupt, jumps to the
 * Host's own handler (deliver_to_host).  lguestsim assembles this with GNU as
 * and executes every instruction of it on the simulated CPU.
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

.code32
.text

/*S:100 switch_to_guest: %eax points at this CPU's lguest_pages, %ebx holds the
 * physical address of the Guest's shadow page directory.  The Host's eflags, its
 * code segment and return address are already on the stack: the same frame an
 * interrupt would leave, which is how we will get back. */
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

        /* ltr marked the Host's TSS busy in the Host's GDT too?  No: it marked
         * the Guest's.  But the Host's TSS entry is still busy from the Host's
         * own ltr, and we will ltr it again on the way back: clear its busy bit. */
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

/*S:200 Back to the Host.  The processor has pushed the Guest's ss, esp, eflags,
 * cs, eip (and maybe an error code) on the ring-0 stack at the end of the regs
 * page; the trap stub pushed the rest of the frame.  Save the Guest's
 * registers into struct lguest_regs and restore the Host's world. */
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

/* A trap the Host must look at: return from the far call, as if from an
 * interrupt.  The Host reads trapnum and errcode from lguest_regs. */
.globl return_to_host
return_to_host:
        SWITCH_TO_HOST
        iret

/*S:300 A real interrupt (the Host's timer, say) arrived while the Guest ran.
 * Back in the Host's world we jump to the Host's own handler for that vector,
 * found in the Host's IDT; its iret returns to the Host's far call as if the
 * interrupt had arrived there. */
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

/* An NMI while the Guest ran: nothing to do but return to it (drop the stub's
 * two words first). */
handle_nmi:
        addl    $8, %esp
        iret

/*S:400 The 256 trap stubs, 16 bytes apart.  Each makes the frame uniform (a zero where the
 * processor pushed no error code), pushes its vector number, and jumps to
 * where that vector is handled.  The Host points the Guest's real IDT at them. */
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
