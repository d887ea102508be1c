/*
 * entry.S: the assembly side of traps and interrupts.
 *
 * When the processor (for a system call) or the Host (for everything else)
 * sends the Guest a trap or an interrupt, it arrives here, through the IDT
 * entries traps.c loaded: one small stub per vector, which records the
 * vector number, then common code that saves the registers and calls
 * do_trap() in traps.c.  On the way out we restore the registers and return
 * with lguest_iret, the one piece of the Guest that must be written in
 * assembly.  The last two functions enter user mode and come back from it.
 */
#include "guest.h"
#include "user_abi.h"

	.text

/*: G:110 The stubs.  The frame the Host or the processor leaves on our
 * stack is the hardware's: the return eip, cs and eflags (and the user's
 * esp and ss if the trap came from user mode), plus an error code for a few
 * vectors (8, 10 to 14 and 17).  To give C one layout for all of them, each
 * stub for a vector without an error code pushes a 0 in its place; then it
 * pushes its vector number and jumps to common_trap.
 *
 * A table of the stubs' addresses goes into .rodata as the stubs are made,
 * so traps.c can find the stub for vector n at trap_stub_table[n].  We make
 * 64: the 32 processor exceptions and the Host's 32 interrupts. */
	.section .rodata
	.balign	4
	.globl	trap_stub_table
trap_stub_table:
	.text

vector = 0
	.rept	FIRST_EXTERNAL_VECTOR + NR_IRQ_VECTORS
	.pushsection .rodata
	.long	1f
	.popsection
1:
	.if	(vector == 8) || (vector >= 10 && vector <= 14) || (vector == 17)
	.else
	pushl	$0
	.endif
	pushl	$vector
	jmp	common_trap
vector = vector + 1
	.endr

/* The system call, "int $0x80", has a stub of its own. */
	.globl	system_call
system_call:
	pushl	$0
	pushl	$SYSCALL_VECTOR
	jmp	common_trap

/* Save the rest of the registers, switch to the kernel's data segments
 * (after a trap from user mode %ds and %es still hold the user's), and hand
 * C a pointer to the whole frame: a struct trap_frame (guest.h).  C code
 * also expects the direction flag clear. */
common_trap:
	pushl	%ds
	pushl	%es
	pushal
	movl	$(__KERNEL_DS | GUEST_PL), %eax
	movl	%eax, %ds
	movl	%eax, %es
	cld
	pushl	%esp
	call	do_trap
	addl	$4, %esp

/* And back: registers, data segments, then drop the vector number and error
 * code so the stack holds just the hardware frame, which lguest_iret
 * returns through. */
	.globl	ret_from_trap
ret_from_trap:
	popal
	popl	%es
	popl	%ds
	addl	$8, %esp
	jmp	lguest_iret

/*: G:045 The return from an interrupt.  On a real machine one "iret" pops
 * eip, cs and eflags, and with eflags the interrupt flag, so interrupts come
 * back on at the very moment the handler returns.  Our "interrupt flag" is
 * lguest_data.irq_enabled, which iret knows nothing about.  So before the
 * iret we copy the IF bit of the eflags it is about to pop into
 * irq_enabled.
 *
 * That leaves a gap: after the store, interrupts are on again, but we are
 * still on the handler's stack with the frame not yet popped.  An interrupt
 * arriving right there would start another handler on top of this one, and
 * a steady stream of them could grow the stack without end.  The Host
 * closes the gap for us: we told it (in lguest_data.noirq_start and
 * noirq_end) about the addresses from the store up to and including the
 * iret, and it never interrupts us while our eip is in that range.
 *
 * The store uses the %ss segment, not %ds: we may be returning to user mode,
 * and by now %ds holds the user's segment again. */
	.globl	lguest_iret
lguest_iret:
	pushl	%eax
	movl	12(%esp), %eax		/* %eax, then eip, cs, eflags */
	andl	$X86_EFLAGS_IF, %eax
	.globl	lguest_noirq_start
lguest_noirq_start:
	movl	%eax, %ss:lguest_data + LGUEST_DATA_irq_enabled
	popl	%eax
	iret
	.globl	lguest_noirq_end
lguest_noirq_end:

/*: M:004 The Host pushes eflags with the interrupt flag taken from
 * irq_enabled when it delivers a trap or an interrupt.  A system call is
 * different: the processor delivers it directly, and the processor's own
 * interrupt flag is always on while a Guest runs.  So a system call always
 * returns with interrupts on, which is right: user mode never runs with
 * them off. */

/*: G:300 Into user mode.  There is no instruction to "jump to ring 3": the
 * way down is to build the frame an interrupt from user mode would have left
 * (the user's ss, esp, eflags, cs, eip) and return through it.
 *
 * enter_user_mode(saved, eip, esp) first keeps the kernel's own place: the
 * registers C expects preserved, and the stack pointer, in *saved.  The
 * user program never returns here; when it exits, leave_user_mode() picks up
 * that saved stack pointer and returns from enter_user_mode() with the exit
 * code, as if the whole run of the program had been one long call.
 *
 * The user's data segments go into %ds and %es before the iret (it only
 * loads cs and ss), and every other register is cleared so the program
 * sees nothing of the kernel's. */
	.globl	enter_user_mode
enter_user_mode:
	pushl	%ebp
	pushl	%ebx
	pushl	%esi
	pushl	%edi
	movl	20(%esp), %eax		/* saved */
	movl	24(%esp), %ecx		/* eip */
	movl	28(%esp), %edx		/* esp */
	movl	%esp, (%eax)

	pushl	$__USER_DS		/* ss */
	pushl	%edx			/* esp */
	pushl	$(X86_EFLAGS_IF | 2)	/* eflags: interrupts on */
	pushl	$__USER_CS		/* cs */
	pushl	%ecx			/* eip */

	movl	$__USER_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	xorl	%eax, %eax
	xorl	%ebx, %ebx
	xorl	%ecx, %ecx
	xorl	%edx, %edx
	xorl	%esi, %esi
	xorl	%edi, %edi
	xorl	%ebp, %ebp
	jmp	lguest_iret

/* leave_user_mode(saved, code): called from a system call or a fault, on
 * the process's kernel stack, which we simply abandon.  The user program may
 * have loaded its thread-local segment into %gs; drop it, since the kernel
 * has no use for it. */
	.globl	leave_user_mode
leave_user_mode:
	movl	4(%esp), %ecx		/* saved */
	movl	8(%esp), %eax		/* code: enter_user_mode()'s result */
	xorl	%edx, %edx
	movl	%edx, %fs
	movl	%edx, %gs
	movl	(%ecx), %esp
	popl	%edi
	popl	%esi
	popl	%ebx
	popl	%ebp
	ret

	.section .note.GNU-stack, "", @progbits
