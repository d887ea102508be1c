/*
 * user.S: the first instructions of the user program, and its system calls.
 *
 * This runs in ring 3, in the process's own address space.  It has no
 * libc: "_start" calls main() and passes its result to exit(), and each
 * system call is a small function that loads the registers and executes
 * "int $0x80" (see user_abi.h for the numbers).
 */
#include "user_abi.h"

	.section .text.entry, "ax"

/*: G:340 The kernel irets to here, the first byte of the program, with
 * every other register zero and the stack as a C program's start expects
 * it: argc on top, then the argv pointers (process.c).  main(argc, argv)
 * wants them as arguments, so we push them again, the other way round. */
	.globl	_start
_start:
	popl	%eax			/* argc */
	movl	%esp, %edx		/* argv: what is left on top */
	pushl	%edx
	pushl	%eax
	call	main
	pushl	%eax
	call	exit
1:	jmp	1b

	.text

/* int syscall3(int nr, int a, int b, int c): %ebx is one of the registers
 * a C function must preserve, so it is saved around the call. */
	.globl	syscall3
syscall3:
	pushl	%ebx
	movl	8(%esp), %eax
	movl	12(%esp), %ebx
	movl	16(%esp), %ecx
	movl	20(%esp), %edx
	int	$SYSCALL_VECTOR
	popl	%ebx
	ret

	.section .note.GNU-stack, "", @progbits
