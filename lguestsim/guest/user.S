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

/*: G:340 The program's first instruction: `enter_user_mode()` irets to
 * here, the first byte of the image at USER_CODE_ADDR, in ring 3, with every
 * other register zero.  The stack is as a C program's start-up code expects
 * it (G:315): `argc` on top, then the `argv` pointers.  `main(argc, argv)`
 * wants them as ordinary arguments, so we pop `argc` and push both again,
 * the right way round for a call.  Whatever `main()` returns goes to
 * `exit()`, which never comes back. */
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

/*: G:341 Every system call goes through `syscall3(nr, a, b, c)`: the
 * number into %eax, the arguments into %ebx, %ecx and %edx, then
 * `int $0x80`, which the Host lets the processor deliver straight to the
 * kernel's `system_call` stub.  %ebx is one of the registers a C function
 * must preserve for its caller, so it is saved around the call; the result
 * comes back in %eax, which is where C wants it anyway. */
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
/*:*/

	.section .note.GNU-stack, "", @progbits
