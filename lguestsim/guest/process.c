/*
 * process.c: the one user program, from birth to exit.
 *
 * run_init_process() builds an address space for the program carried in the
 * kernel image (user_image.S), gives it a kernel stack, its arguments, a
 * thread-local storage segment and a lazily enabled FPU, and drops into
 * ring 3.  While it runs, it comes back to the kernel only through traps:
 * system calls (do_syscall), page faults on its heap (mm.c) and its first
 * FPU instruction (do_device_not_available).  Its exit system call ends
 * run_init_process(), and the kernel goes on.
 *
 * The system calls are where the program meets the devices: the console
 * (file descriptors 0 to 2), the disks (3 and up), and the network, which
 * has calls of its own.
 */
#include "guest.h"
#ifdef CONFIG_VIRTIO
#include "virtio.h"
#endif
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

#define MAX_ARGS	32

/*: G:315 The program's arguments.  Linux gives init the words of the
 * kernel command line it did not take for itself; ours takes none, so init
 * gets them all, after its own name.  They go where a C program's start-up
 * code looks for them: the strings near the top of the stack, and the stack
 * pointer at `argc`, followed by `argv[0]` to `argv[argc - 1]`, a NULL, and
 * an empty environment (one more NULL).  We build all that in the stack's
 * top page, below the thread block, writing through the kernel's mapping of
 * the page, and return the user address the stack pointer starts at. */
static u32 setup_arguments(u8 *page)
{
	const u32 base = USER_STACK_TOP - PAGE_SIZE;	/* user address of page[0] */
	u32 off = PAGE_SIZE - USER_TLS_SIZE;
	u32 argv[MAX_ARGS], len, *sp;
	unsigned int argc = 0, i;
	char *cmd, *p;

	len = strlen(boot_command_line) + 1;
	off -= len;
	cmd = (char *)page + off;
	memcpy(cmd, boot_command_line, len);
	off -= 5;
	memcpy(page + off, "init", 5);
	argv[argc++] = base + off;

	/* Cut the copy of the command line into words, in place. */
	for (p = cmd; *p; p++) {
		if (*p == ' ')
			*p = '\0';
		else if ((p == cmd || p[-1] == '\0') && argc < MAX_ARGS)
			argv[argc++] = base + (u32)((u8 *)p - page);
	}

	sp = (u32 *)(page + (off & ~3u)) - (argc + 3);
	sp[0] = argc;
	for (i = 0; i < argc; i++)
		sp[1 + i] = argv[i];
	sp[1 + argc] = 0;		/* the end of argv */
	sp[2 + argc] = 0;		/* and of the environment */
	return base + ((u8 *)sp - page);
}

/*: G:310 Making the process.  Its code is copied into fresh user pages
 * at USER_CODE_ADDR (where Linux puts an i386 program) through the kernel's
 * mapping of those pages; the stack pages follow, with the thread block and
 * the arguments at the top, while the heap stays unmapped.  Then the
 * switch: the process's page directory, its own kernel stack (the Host must
 * know where traps from user mode land), its TLS segment, and the TS bit so
 * its first FPU instruction traps.  All of these are made in lazy mode, so
 * they wait in the ring and reach the Host together.  `enter_user_mode()`
 * (entry.S) then runs the program until it exits, after which we put back
 * the first task's stack, clear TS and tear the address space down. */
int run_init_process(void)
{
	u32 size = user_image_end - user_image_start;
	u32 off, n, flags, esp;
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
	for (n = 2; n <= USER_STACK_PAGES; n++)
		map_user_page(&user_mm, USER_STACK_TOP - n * PAGE_SIZE);
	page = (u8 *)map_user_page(&user_mm, USER_STACK_TOP - PAGE_SIZE);
	tls = (u32 *)(page + PAGE_SIZE - USER_TLS_SIZE);
	tls[USER_TLS_SELF / 4] = USER_TLS_ADDR;
	tls[USER_TLS_PID / 4] = current_pid;
	tls_array[0] = make_segment(USER_TLS_ADDR, USER_TLS_SIZE - 1, 0x40F2);
	esp = setup_arguments(page);

	pv.load_tls(tls_array);
	switch_mm(&user_mm);
	pv.load_esp0((u32)process_stack + THREAD_SIZE);
	pv.stts();
	pv.set_lazy_mode(0);

	printk("init: pid %d, %u bytes of code at %p, stack below %p, heap at %p (unmapped)\n",
	       current_pid, size, (void *)USER_CODE_ADDR, (void *)USER_TLS_ADDR,
	       (void *)USER_HEAP_START);

	/* Into ring 3, until the program exits (entry.S). */
	flags = save_fl();
	code = enter_user_mode(&kernel_context, USER_CODE_ADDR, esp);
	restore_fl(flags);

	/* Back on the first task's stack, but still in the process's address
	 * space: give back the kernel stack, the FPU and the memory. */
	pv.load_esp0((u32)init_stack + THREAD_SIZE);
	pv.clts();
	mm_destroy(&user_mm);
	current_pid = 0;
	return code;
}

/*: G:316 A process that does something it must not (a fault we cannot
 * fix, an instruction it may not run) is killed.  There is nothing to clean
 * up on its kernel stack, so we leave user mode for good with code -1, as
 * if it had called exit(-1), and `run_init_process()` carries on from
 * there. */
void kill_current_process(const char *why, struct trap_frame *frame)
{
	printk("init: killed: %s at %p\n", why, (void *)frame->eip);
	leave_user_mode(&kernel_context, -1);
}

/*: G:321 A pointer from user mode must be checked before the kernel uses
 * it.  The first check: is the whole range below PAGE_OFFSET?  It is
 * written so that a huge `len` cannot wrap around past the top of the
 * address space and look small. */
static int user_range_ok(u32 uaddr, u32 len)
{
	return uaddr < PAGE_OFFSET && len <= PAGE_OFFSET - uaddr;
}

/* The next piece of a user buffer that lies within one page: its physical
 * address, and how long it is (at most "len"); -EFAULT if nothing is mapped
 * there. */
static int user_piece(u32 uaddr, u32 len, u32 *phys, u32 *piece)
{
	if (user_virt_to_phys(&user_mm, uaddr, phys) != 0)
		return -EFAULT;
	*piece = PAGE_SIZE - (*phys & ~PAGE_MASK);
	if (*piece > len)
		*piece = len;
	return 0;
}

/*: G:322 The second check is whether there is memory behind the pointer.
 * We answer it by walking the process's page tables (G:226) a page at a
 * time, and use each piece by its physical address, through the kernel's
 * own linear mapping of RAM.  So a bad pointer is the program's error,
 * -EFAULT, and never a page fault in the kernel.  Linux does it the other
 * way round, touching user memory directly and fixing up faults afterwards,
 * which is faster but needs exception tables. */
static int copy_user(u32 uaddr, void *kbuf, u32 len, int to_user)
{
	u8 *k = kbuf;
	u32 phys, piece;

	if (!user_range_ok(uaddr, len))
		return -EFAULT;
	while (len) {
		if (user_piece(uaddr, len, &phys, &piece) != 0)
			return -EFAULT;
		if (to_user)
			memcpy(__va(phys), k, piece);
		else
			memcpy(k, __va(phys), piece);
		uaddr += piece;
		k += piece;
		len -= piece;
	}
	return 0;
}

#define copy_to_user(uaddr, kbuf, len)		copy_user(uaddr, kbuf, len, 1)
#define copy_from_user(kbuf, uaddr, len)	copy_user(uaddr, kbuf, len, 0)

/*: G:323 Console output goes straight from the program's pages, with no
 * copy.  Each piece's physical address is exactly what a DMA to the
 * Launcher wants (console.c), and the Launcher reads the bytes out of Guest
 * memory itself.  A bad pointer part-way through ends the write early, and
 * the program is told how much got out. */
static int console_write_user(u32 buf, u32 len)
{
	u32 done = 0, phys, piece;

	while (done < len) {
		if (user_piece(buf + done, len - done, &phys, &piece) != 0)
			return done ? (int)done : -EFAULT;
		console_write_phys(phys, piece);
		done += piece;
	}
	return len;
}

/* Console input: one line (console.c), copied out. */
static int console_read_user(u32 buf, u32 len)
{
	char line[256];
	int n;

	if (len > sizeof(line))
		len = sizeof(line);
	n = console_read(line, len);
	if (n > 0 && copy_to_user(buf, line, n) != 0)
		return -EFAULT;
	return n;
}

/* The position of each open disk (G:324). */
#define MAX_DISK_FDS	4
static u32 disk_pos[MAX_DISK_FDS];

static int is_disk_fd(u32 fd, u32 *num_sectors)
{
	return fd >= FIRST_DISK_FD && fd < FIRST_DISK_FD + MAX_DISK_FDS &&
	       lgb_num_sectors(fd - FIRST_DISK_FD, num_sectors) == 0;
}

/*: G:324 The disks: file descriptor 3 is the first disk the bus found, 4
 * the second, and so on; each has a position, which lseek() sets and each
 * read or write moves on.  Transfers go in whole sectors and at most a page
 * at a time, so a request is never more than two pieces of memory, well
 * under the 16 sections one DMA can hold.  The pieces are the program's own
 * pages: the block driver (block.c) hands their physical addresses to the
 * Launcher, which copies straight into them or out of them. */
static int disk_rw(u32 fd, u32 buf, u32 len, int write)
{
	struct blk_request req;
	u32 sectors, sector, phys, piece, done;
	int err;

	if (!is_disk_fd(fd, &sectors))
		return -EBADF;
	if (disk_pos[fd - FIRST_DISK_FD] % SECTOR_SIZE || len % SECTOR_SIZE || len > PAGE_SIZE)
		return -EINVAL;
	if (!user_range_ok(buf, len))
		return -EFAULT;
	sector = disk_pos[fd - FIRST_DISK_FD] / SECTOR_SIZE;
	if (sector >= sectors || !len)
		return write && len ? -ENOSPC : 0;
	if (len / SECTOR_SIZE > sectors - sector)
		len = (sectors - sector) * SECTOR_SIZE;

	req.write = write;
	req.sector = sector;
	req.pieces = 0;
	for (done = 0; done < len; done += piece) {
		if (user_piece(buf + done, len - done, &phys, &piece) != 0)
			return -EFAULT;
		req.phys[req.pieces] = phys;
		req.len[req.pieces] = piece;
		req.pieces++;
	}
	err = lgb_do_request(fd - FIRST_DISK_FD, &req);
	if (err)
		return err;
	disk_pos[fd - FIRST_DISK_FD] += len;
	return len;
}

static int sys_read(u32 fd, u32 buf, u32 len)
{
	if (fd == STDIN_FILENO)
		return console_read_user(buf, len);
	return disk_rw(fd, buf, len, 0);
}

static int sys_write(u32 fd, u32 buf, u32 len)
{
	if (fd == 1 || fd == 2) {
		if (!user_range_ok(buf, len))
			return -EFAULT;
		return console_write_user(buf, len);
	}
	return disk_rw(fd, buf, len, 1);
}

static int sys_lseek(u32 fd, int offset, u32 whence)
{
	u32 sectors, *pos;
	int base;

	if (fd < FIRST_DISK_FD)
		return -ESPIPE;
	if (!is_disk_fd(fd, &sectors))
		return -EBADF;
	pos = &disk_pos[fd - FIRST_DISK_FD];
	if (whence == SEEK_SET)
		base = 0;
	else if (whence == SEEK_CUR)
		base = *pos;
	else if (whence == SEEK_END)
		base = sectors * SECTOR_SIZE;
	else
		return -EINVAL;
	if (base + offset < 0)
		return -EINVAL;
	*pos = base + offset;
	return *pos;
}

#ifdef CONFIG_VIRTIO
/* 2.6.25: the devices as lguest_device.c found them (user_abi.h). */
static int sys_lguest_devices(u32 buf)
{
	struct lg_device table[LGUEST_MAX_DEVICES];
	int n = lguest_devices_table(table, LGUEST_MAX_DEVICES);

	if (copy_to_user(buf, table, sizeof(table)))
		return -EFAULT;
	return n;
}

/* 2.6.25: reboot() resets the devices and asks the Host to restart us. */
static int sys_reboot(void)
{
	printk("init: reboot()\n");
	lguest_devices_shutdown();
	printk("Restarting the Guest.\n");
	pv.restart("Restarting system");
	return -EIO;
}
#else
/* The descriptor page, as it is: the program shows the status bits. */
static int sys_lguest_devices(u32 buf)
{
	if (copy_to_user(buf, lguest_devices, LGUEST_MAX_DEVICES * sizeof(*lguest_devices)))
		return -EFAULT;
	return LGUEST_MAX_DEVICES;
}
_Static_assert(sizeof(struct lg_device) == sizeof(struct lguest_device_desc), "lg_device");
#endif


static int sys_lguest_net(u32 buf, u32 max)
{
	struct net_peer peers[16];
	int n;

	n = net_peers(peers, max < ARRAY_SIZE(peers) ? max : ARRAY_SIZE(peers));
	if (n > 0 && copy_to_user(buf, peers, n * sizeof(peers[0])))
		return -EFAULT;
	return n;
}

static int sys_lguest_ping(u32 uping)
{
	struct lg_ping ping;
	int n;

	if (copy_from_user(&ping, uping, sizeof(ping)))
		return -EFAULT;
	n = net_ping(ping.dest, ping.seq, &ping);
	if (copy_to_user(uping, &ping, sizeof(ping)))
		return -EFAULT;
	return n;
}

/*: G:320 System calls.  The program puts the call number in %eax and
 * its arguments in %ebx, %ecx and %edx, and `int $0x80` brings it here on
 * its kernel stack, without passing through the Host: traps.c made 0x80 a
 * trap gate the Host could hand to the processor.  Whatever we put in
 * `frame->eax` is what the program finds in %eax after its `int`, a
 * negative error number on failure.  The first five calls are Linux's
 * i386 ones; the four numbered from 400 are lguestsim's, so the program can
 * show the devices (user_abi.h lists them all).  exit() does not return: it
 * leaves user mode for good. */
void do_syscall(struct trap_frame *frame)
{
	switch (frame->eax) {
	case __NR_read:
		frame->eax = sys_read(frame->ebx, frame->ecx, frame->edx);
		break;
	case __NR_write:
		frame->eax = sys_write(frame->ebx, frame->ecx, frame->edx);
		break;
	case __NR_lseek:
		frame->eax = sys_lseek(frame->ebx, frame->ecx, frame->edx);
		break;
	case __NR_getpid:
		frame->eax = current_pid;
		break;
	case __NR_lguest_devices:
		frame->eax = sys_lguest_devices(frame->ebx);
		break;
	case __NR_lguest_net:
		frame->eax = sys_lguest_net(frame->ebx, frame->ecx);
		break;
	case __NR_lguest_promisc:
		frame->eax = net_set_promisc(frame->ebx);
		break;
	case __NR_lguest_ping:
		frame->eax = sys_lguest_ping(frame->ebx);
		break;
#ifdef CONFIG_VIRTIO
	case __NR_reboot:
		frame->eax = sys_reboot();
		break;
#endif
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
 * registers, and passes the trap on only because our TS is set.  We clear
 * TS (one more hypercall), give the program a freshly initialized FPU the
 * first time, and return to run the same instruction again, which now
 * works.  A kernel with many processes would save the previous owner's FPU
 * registers here and load this one's, and set TS again at every switch. */
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
