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

/*: G:020 Our story starts here.  The Launcher does not read an entry point
 * from a header: it searches the kernel image for the bytes "GenuineLguest"
 * and starts the Guest at the byte just after them.  So those bytes sit in
 * the text immediately before our first instruction, with nothing between
 * them (not even alignment padding: the next byte had better be code).
 *
 * We start at our proper virtual addresses (around 0xC0100000): the Launcher
 * has mapped all of RAM there.  Our segment registers are the Host's flat
 * kernel segments, interrupts are off (lguest_data.irq_enabled starts at 0)
 * and %esi holds the physical address of the boot header, 0.  We have no
 * stack yet: %esp is whatever it happens to be.
 *
 * The very first thing a Guest must do is tell the Host where its
 * "struct lguest_data" is, with the LHCALL_LGUEST_INIT hypercall.  Any
 * other hypercall before it gets the Guest killed.  The Host wants a
 * physical address, as it always does: the Guest's virtual addresses mean
 * nothing to it.  (The hypercall does not need our stack: the "int" switches
 * to the Host's ring 0 stack.) */
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

	/* The first task's kernel stack.  It is aligned to its size, as Linux
	 * aligns every task's stack. */
	.section .bss
	.balign	THREAD_SIZE
	.globl	init_stack
init_stack:
	.skip	THREAD_SIZE

	.section .note.GNU-stack, "", @progbits
