/*
 * i386_head.S: where the 2.6.25 (virtio) Guest starts; it replaces head.S
 * in guest-virtio.elf.
 *
 * 2.6.25's Launcher no longer hunts for a signature: it starts the kernel
 * at its ELF entry point, the physical address of startup_32, with paging
 * on and the first page tables mapping memory at virtual = physical only.
 * So these first instructions run at addresses PAGE_OFFSET below the ones
 * they were linked for: jumps are relative and work, but every piece of
 * data must be named by its physical address (symbol - PAGE_OFFSET).
 */
#include "guest.h"

	.section .text.head, "ax"

/*: G:021 What 2.6.25 changed in the first instructions: the Guest boots
 * through the ordinary boot protocol.  `startup_32` is what every x86
 * kernel runs first (Linux's head_32.S): it clears .bss and looks at the
 * boot header the Launcher wrote at physical 0 (%esi points at it).  The
 * field `hardware_subarch` at offset 0x23c appeared in 2.6.24 for lguest and
 * Xen: 1 means "you are an lguest Guest", and sends us to `lguest_entry`.
 * A kernel booted any other way has nowhere to go here: this kernel only
 * knows how to be a Guest, so it stops. */
	.globl startup_32
startup_32:
	cld
	movl	$__bss_start - PAGE_OFFSET, %edi
	movl	$__bss_stop - PAGE_OFFSET, %ecx
	subl	%edi, %ecx
	shrl	$2, %ecx
	xorl	%eax, %eax
	rep stosl

	movl	%esi, %ebp		/* the boot header, kept for lguest_init() */
	cmpl	$1, 0x23c(%esi)		/* hardware_subarch: 1 is lguest */
	je	lguest_entry
	ud2				/* not a Guest: nothing we can do */

/*: G:022 `lguest_entry`, 2.6.25's way in.  The first hypercall is still
 * LGUEST_INIT with the physical address of `lguest_data`, where the Host
 * now also writes `pgdir`: the page directory the Launcher built, which
 * maps memory only at virtual = physical.  We copy its first 32 entries
 * (128 MiB) up to the entries for PAGE_OFFSET, so our memory appears where
 * the kernel was linked to run as well, and the Host's shadow of those new
 * entries is built the first time we touch them.  Then the first task's
 * stack, and an absolute jump to `lguest_init()` at its proper, virtual
 * address, with the boot header's virtual address as its argument. */
lguest_entry:
	movl	$LHCALL_LGUEST_INIT, %eax
	movl	$lguest_data - PAGE_OFFSET, %edx
	int	$LGUEST_TRAP_ENTRY

	movl	lguest_data - PAGE_OFFSET + LGUEST_DATA_pgdir, %esi
	movl	$32, %ecx
	movl	%esi, %edi
	addl	$((PAGE_OFFSET >> 22) * 4), %edi
	rep movsl

	movl	$init_stack + THREAD_SIZE, %esp
	leal	PAGE_OFFSET(%ebp), %eax
	pushl	%eax
	pushl	$0			/* lguest_init() never returns */
	movl	$lguest_init, %eax
	jmp	*%eax
/*:*/

	/* The physical entry point the ELF header names (see build.py). */
	.globl	phys_startup_32
	.set	phys_startup_32, startup_32 - PAGE_OFFSET

	.section .bss
	.balign	THREAD_SIZE
	.globl	init_stack
init_stack:
	.skip	THREAD_SIZE

	.section .note.GNU-stack, "", @progbits
