/*
 * user_image.S: the user program, carried inside the kernel.
 *
 * A real kernel would read its first program from a disk.  Ours has the
 * program's bytes (user.c and user.S, linked by user.ld into user.bin)
 * built into its read-only data; process.c copies them into the process's
 * pages.
 */
/*: G:305 The whole user program as bytes in the kernel's read-only data.
 * build.py compiles and links it first (user.c, shell.c, ulib.c and user.S,
 * linked by user.ld to run at USER_CODE_ADDR) and flattens it into
 * user.bin; `.incbin` then pulls those bytes in here, between two labels
 * that process.c uses to find them.  A real kernel would read its first
 * program from a file system; this one has no disk it can count on. */
	.section .rodata
	.balign	4
	.globl	user_image_start
	.globl	user_image_end
user_image_start:
	.incbin	"user.bin"
user_image_end:
/*:*/

	.section .note.GNU-stack, "", @progbits
