/*
 * process.c: the one user program, from birth to exit.
 *
 * run_init_process() builds an address space for the program carried in the
 * kernel image (user_image.S), gives it a kernel stack, a thread-local
 * storage segment and a lazily enabled FPU, and drops into ring 3.  While it
 * runs, it comes back to the kernel only through traps: system calls
 * (do_syscall), page faults on its heap (mm.c) and its first FPU
 * instruction (do_device_not_available).  Its exit system call ends
 * run_init_process(), and the kernel goes on.
 */
#include "guest.h"
#include "user_abi.h"

extern const u8 user_image_start[], user_image_end[];

int current_pid;
static struct mm user_mm;
static struct kernel_context kernel_context;
static int fpu_ready;

/* The process's kernel stack: traps from user mode land on it. */
static u8 process_stack[THREAD_SIZE] __attribute__((aligned(THREAD_SIZE)));

/* The three thread-local storage entries of the GDT (6, 7 and 8), as this
 * process wants them: only the first is used. */
static u64 tls_array[3];

/*: G:310 Making a process.  Its code goes into fresh user pages at
 * USER_CODE_ADDR, copied through the kernel's own mapping of those pages;
 * one more page becomes its stack, with the thread block at the top.  Its
 * heap stays unmapped.  Then the switch: the process's page directory, its
 * kernel stack (the Host must know where traps from user mode should land),
 * its TLS segment, and the TS bit so its first FPU instruction traps.  All
 * of those hypercalls wait in the ring and go to the Host together. */
int run_init_process(void)
{
	u32 size = user_image_end - user_image_start;
	u32 off, n, flags;
	u32 *tls;
	u8 *page;
	int code;

	current_pid = 1;
	mm_create(&user_mm);

	pv.set_lazy_mode(1);
	for (off = 0; off < size; off += PAGE_SIZE) {
		page = (u8 *)map_user_page(&user_mm, USER_CODE_ADDR + off);
		n = size - off < PAGE_SIZE ? size - off : PAGE_SIZE;
		memcpy(page, user_image_start + off, n);
	}
	page = (u8 *)map_user_page(&user_mm, USER_STACK_TOP - PAGE_SIZE);
	tls = (u32 *)(page + PAGE_SIZE - USER_TLS_SIZE);
	tls[USER_TLS_SELF / 4] = USER_TLS_ADDR;
	tls[USER_TLS_PID / 4] = current_pid;
	tls_array[0] = make_segment(USER_TLS_ADDR, USER_TLS_SIZE - 1, 0x40F2);

	pv.load_tls(tls_array);
	switch_mm(&user_mm);
	pv.load_esp0((u32)process_stack + THREAD_SIZE);
	pv.stts();
	pv.set_lazy_mode(0);

	printk("init: pid %d, %u bytes of code at %p, stack below %p, heap at %p (unmapped)\n",
	       current_pid, size, (void *)USER_CODE_ADDR, (void *)USER_TLS_ADDR,
	       (void *)USER_HEAP_START);

	/* Into ring 3, until the program exits (entry.S). */
	flags = pv.save_fl();
	code = enter_user_mode(&kernel_context, USER_CODE_ADDR, USER_TLS_ADDR);
	pv.restore_fl(flags);

	/* Back on the first task's stack, but still in the process's address
	 * space: give back the kernel stack, the FPU and the memory. */
	pv.load_esp0((u32)init_stack + THREAD_SIZE);
	pv.clts();
	mm_destroy(&user_mm);
	current_pid = 0;
	return code;
}

/* A process that does something it must not (a fault we cannot fix) is
 * killed: we leave user mode for good, as if it had called exit(). */
void kill_current_process(const char *why, struct trap_frame *frame)
{
	printk("init: killed: %s at %p\n", why, (void *)frame->eip);
	leave_user_mode(&kernel_context, -1);
}

/*: G:320 System calls.  The program puts the call number in %eax and the
 * arguments in %ebx, %ecx and %edx, and "int $0x80" brings it here, on the
 * process's kernel stack, without passing through the Host (traps.c set it
 * up as a direct trap).  What we put in frame->eax is what the program sees
 * in %eax after its "int".
 *
 * write() shows what a kernel must do with a pointer from user mode: check
 * that it is a user address at all, then find the memory behind it through
 * the process's page tables.  Here the console wants physical addresses
 * anyway, so the DMA goes straight from the program's pages. */
static int sys_write(u32 fd, u32 buf, u32 len)
{
	u32 done = 0, phys, piece;

	if (fd != 1 && fd != 2)
		return -EBADF;
	if (buf >= PAGE_OFFSET || len > PAGE_OFFSET - buf)
		return -EFAULT;
	while (done < len) {
		if (user_virt_to_phys(&user_mm, buf + done, &phys) != 0)
			return done ? (int)done : -EFAULT;
		piece = PAGE_SIZE - (phys & ~PAGE_MASK);
		if (piece > len - done)
			piece = len - done;
		console_write_phys(phys, piece);
		done += piece;
	}
	return len;
}

void do_syscall(struct trap_frame *frame)
{
	switch (frame->eax) {
	case __NR_write:
		frame->eax = sys_write(frame->ebx, frame->ecx, frame->edx);
		break;
	case __NR_getpid:
		frame->eax = current_pid;
		break;
	case __NR_exit:
		printk("init: exit(%d)\n", (int)frame->ebx);
		leave_user_mode(&kernel_context, frame->ebx);
	default:
		frame->eax = -ENOSYS;
		break;
	}
}

/*: G:330 The FPU, lazily.  The program's first FPU instruction traps with
 * "device not available" (vector 7), because we set TS before it ran.  The
 * Host sees the trap first: it makes sure the real FPU holds the Guest's
 * state, and passes the trap on only because our TS is set.  We clear TS
 * (one more hypercall), give the program a clean FPU the first time, and
 * return to run the same instruction again, which now works.  A kernel with
 * many processes would save the last user's FPU registers here and load
 * this one's, and set TS again on every task switch. */
void do_device_not_available(struct trap_frame *frame)
{
	if (!from_user_mode(frame))
		panic("the kernel used the FPU at %p", (void *)frame->eip);
	pv.clts();
	if (!fpu_ready) {
		asm volatile("fninit");
		fpu_ready = 1;
		printk("FPU: first use by pid %d at %p: TS cleared, FPU initialized\n",
		       current_pid, (void *)frame->eip);
	}
}
