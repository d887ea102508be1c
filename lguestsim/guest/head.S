/*
 * head.S: the first instructions the Guest runs.
 *
 * A kernel on a PC is started by a boot loader; a Guest is started by the
 * Launcher, which loads this image at physical 1 MiB, writes a boot header
 * at physical 0, gives us page tables mapping all of our memory at
 * PAGE_OFFSET, and asks the Host to run us in ring 1.  From here we go to
 * lguest_init() in boot.c, and from there to start_kernel() in main.c.
 */
#include "guest.h"

	.section .text.head, "ax"

/*: G:020 The Guest's first instruction.  A PC boot loader finds a kernel's
 * entry point in a header; the Launcher instead searches the image for the
 * bytes "GenuineLguest" and starts the Guest at the byte right after them.
 * So the signature sits in the text directly before `startup_32`, with not
 * even alignment padding between (Linux 2.6.23's lguest_asm.S starts the
 * same way; later Linuxes use a field of the boot header instead).
 *
 * We wake at our proper virtual addresses around 0xC0100000, because the
 * Launcher's page tables map all of RAM there; the segments are the Host's
 * flat ones, interrupts are off (`irq_enabled` starts at 0), %esi holds the
 * boot header's physical address (0), and %esp points nowhere useful.  The
 * first thing a Guest does must be LHCALL_LGUEST_INIT with the physical
 * address of its `lguest_data`: the Host kills a Guest whose first
 * hypercall is any other.  That needs no stack of ours, since the `int`
 * switches to the Host's.  Then we clear .bss (C expects those variables to
 * be zero), take the first task's stack, and call `lguest_init()` in boot.c
 * with the boot header's virtual address. */
	.ascii "GenuineLguest"
	.globl startup_32
startup_32:
	movl	$LHCALL_LGUEST_INIT, %eax
	movl	$lguest_data - PAGE_OFFSET, %edx
	int	$LGUEST_TRAP_ENTRY

	/* The C code expects variables without initial values (the .bss
	 * section) to be zero.  The Launcher probably left that memory zero,
	 * but a kernel makes sure: "rep stosl" stores %eax at (%edi), %ecx
	 * times, in one instruction. */
	cld
	movl	$__bss_start, %edi
	movl	$__bss_stop, %ecx
	subl	%edi, %ecx
	shrl	$2, %ecx
	xorl	%eax, %eax
	rep stosl

	/* Now a stack: the first task's two pages, which lie in the .bss we
	 * just cleared.  Stacks grow down, so we start at the top. */
	movl	$init_stack + THREAD_SIZE, %esp

	/* lguest_init() takes the boot header as a virtual address. */
	leal	PAGE_OFFSET(%esi), %eax
	pushl	%eax
	call	lguest_init

	/* lguest_init() never returns; if it did, stop here for good. */
1:	jmp	1b
/*:*/

	/* The first task's kernel stack.  It is aligned to its size, as Linux
	 * aligns every task's stack. */
	.section .bss
	.balign	THREAD_SIZE
	.globl	init_stack
init_stack:
	.skip	THREAD_SIZE

	.section .note.GNU-stack, "", @progbits
