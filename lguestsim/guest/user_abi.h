/*
 * user_abi.h: what the kernel and its one user program agree on.
 *
 * The user program (user.c, user.S) is built on its own, linked to run at
 * USER_CODE_ADDR, and carried inside the kernel image as plain bytes.  It
 * shares no code with the kernel, only these numbers: where things are in
 * its address space and how to ask the kernel for something.
 */
#ifndef USER_ABI_H
#define USER_ABI_H

/* The user address space: everything below the kernel's PAGE_OFFSET.
 * The program's code and data start where Linux puts an i386 program; its
 * stack is the page just below the kernel; its heap is a range the kernel
 * leaves unmapped and fills in one page at a time, when the program first
 * touches each page. */
#define USER_CODE_ADDR		0x08048000
#define USER_STACK_TOP		0xC0000000
#define USER_HEAP_START		0x10000000
#define USER_HEAP_SIZE		0x00100000

/* System calls: "int $0x80" with the number in %eax and the arguments in
 * %ebx, %ecx, %edx; the result comes back in %eax.  The numbers are
 * Linux's for i386. */
#define SYSCALL_VECTOR		0x80
#define __NR_exit		1	/* exit(code): never returns */
#define __NR_write		4	/* write(fd, buf, len) -> len or -errno */
#define __NR_getpid		20	/* getpid() -> the process id */
#define ENOSYS			38
#define EFAULT			14
#define EBADF			9

/* Thread-local storage: the kernel puts a small block at the very top of
 * the user stack page and points GDT entry 6 at it, so the program finds it
 * at %gs:0 after loading selector USER_TLS_SEL into %gs (entry 6, ring 3).
 * Its first word holds its own address, as a C library's thread block
 * does. */
#define USER_TLS_SEL		((6 << 3) | 3)
#define USER_TLS_SIZE		16
#define USER_TLS_ADDR		(USER_STACK_TOP - USER_TLS_SIZE)
#define USER_TLS_SELF		0	/* offset: the block's own address */
#define USER_TLS_PID		4	/* offset: the process id */

#endif /* USER_ABI_H */
