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

/*: G:110 The trap stubs.  Whether the Host delivers a trap or the
 * processor does (a direct trap), our stack ends up holding the hardware's
 * frame: the return eip, cs and eflags, plus the user's esp and ss if the
 * trap came from ring 3, and for a few vectors (8, 10 to 14 and 17) an error
 * code.  To give C one layout, the stub of every vector without an error
 * code pushes a 0 where it would be; then each stub pushes its vector number
 * and jumps to `common_trap`.
 *
 * The assembler's `.rept` makes the 64 stubs we need (the processor's 32
 * exceptions and the Host's 32 interrupt lines), and as it makes each one
 * it drops the stub's address into `trap_stub_table` in .rodata, so that
 * traps.c finds vector n's stub at `trap_stub_table[n]`. */
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

/*: G:111 The system call, `int $0x80`, gets a stub of its own, outside the
 * table, since 0x80 is far past vector 63.  traps.c gives it a trap gate
 * that ring 3 may use, and the Host lets the processor deliver it straight
 * here, so a system call costs no world switch at all. */
	.globl	system_call
system_call:
	pushl	$0
	pushl	$SYSCALL_VECTOR
	jmp	common_trap

/*: G:112 The common part: save the data segments and the general
 * registers (`pushal`), so that the stack now holds a whole
 * `struct trap_frame` (guest.h), from the saved %edi up to the hardware's
 * frame.  After a trap from user mode %ds and %es still hold the user's
 * segments, so we load the kernel's, with our privilege level 1 in the
 * selector.  C code also expects the direction flag clear.  Then
 * `do_trap()` in traps.c gets a pointer to the frame; whatever it changes
 * there is what we return to. */
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

/*: G:113 And back, in the opposite order: the general registers, the data
 * segments, then `addl $8` drops the vector number and error code, leaving
 * only the hardware's frame, which `lguest_iret` returns through.  A native
 * kernel would end with `iret` here; G:045 shows why we cannot. */
	.globl	ret_from_trap
ret_from_trap:
	popal
	popl	%es
	popl	%ds
	addl	$8, %esp
	jmp	lguest_iret

/*: G:045 The last op, and the one that must be assembly: returning from
 * a trap or interrupt.  Natively, one `iret` pops eip, cs and eflags, and
 * since eflags carries the interrupt flag, interrupts come back on at the
 * very instant the handler is gone.  Our interrupt flag is
 * `lguest_data.irq_enabled`, which `iret` knows nothing about (the
 * processor ignores IF in the popped eflags at our privilege level), so we
 * copy the IF bit out of the eflags on the stack into `irq_enabled` first,
 * borrowing %eax for it.
 *
 * That opens a gap: interrupts are on again while we are still on the
 * handler's stack, frame unpopped, and a stream of interrupts landing there
 * could stack handler on handler without end.  So we told the Host (in
 * `noirq_start` and `noirq_end` of `lguest_data`) about the instructions
 * from the store up to and including the `iret`, and it never interrupts us
 * there.  The store goes through %ss, because on the way back to user mode
 * %ds already holds the user's segment. */
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

/*: M:004 Where does the eflags that `lguest_iret` reads come from?  When
 * the Host delivers a trap or interrupt it builds the frame itself, and sets
 * IF in it from `irq_enabled`, so the copy restores the Guest's own state.
 * A direct trap (the system call) is pushed by the processor, and the real
 * IF is always on while a Guest runs, so a system call always returns with
 * interrupts on.  That is harmless here, since user mode never runs with
 * them off, but a Guest whose kernel took a direct trap with interrupts off
 * would find them switched on behind its back.  An exercise: start a
 * session with `direct_traps=False` (lguestsim/session.py), so that the
 * system call too goes through the Switcher and the Host, which builds its
 * frame like any other; check the eflags that arrives, and count in the
 * trace what the detour costs per call. */

/*: G:300 Into user mode.  There is no "jump to ring 3" instruction: the
 * way down is to build the frame that a trap from ring 3 would have left
 * (the user's ss, esp, eflags with IF set, cs and eip) and return through
 * it, with the same `lguest_iret` as every other return.
 *
 * `enter_user_mode(saved, eip, esp)` first keeps the kernel's place: the
 * registers C expects a call to preserve go on our stack, and the stack
 * pointer into `*saved`.  The program never returns here as such; when it
 * exits, `leave_user_mode()` picks up that stack pointer and returns from
 * `enter_user_mode()` with the exit code, as if the program's whole life
 * had been one function call.  The user's data segment goes into %ds and
 * %es by hand (the `iret` only loads cs and ss), and the other registers
 * are cleared so the program learns nothing from them. */
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

/*: G:301 `leave_user_mode(saved, code)` is the way back up.  process.c
 * calls it from the exit system call, or when it kills the program, on the
 * process's kernel stack, which we simply abandon: nothing on it is needed
 * again.  The program may have loaded its TLS segment into %gs (user.c
 * does), so %fs and %gs are emptied first.  Then the stack pointer saved by
 * `enter_user_mode()`, its four saved registers, and a `ret` that hands
 * `code` back as its result. */
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
/*:*/

	.section .note.GNU-stack, "", @progbits
