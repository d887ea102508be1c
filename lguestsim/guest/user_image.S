/*
 * user_image.S: the user program, carried inside the kernel.
 *
 * A real kernel would read its first program from a disk.  Ours has the
 * program's bytes (user.c and user.S, linked by user.ld into user.bin)
 * built into its read-only data; process.c copies them into the process's
 * pages.
 */
	.section .rodata
	.balign	4
	.globl	user_image_start
	.globl	user_image_end
user_image_start:
	.incbin	"user.bin"
user_image_end:

	.section .note.GNU-stack, "", @progbits
