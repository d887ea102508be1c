/*
 * lguest.c: lguestsim's Launcher in C, for both generations of lguest.
 *
 * The Launcher is an ordinary program.  It makes the Guest's "physical"
 * memory out of its own (Guest-physical N is Launcher address guest_base +
 * N), loads the kernel there with the first page tables and the boot
 * header, describes the devices in the page above, and opens /dev/lguest to
 * tell the Host about it all.  From then on it is a loop: a read() of
 * /dev/lguest runs the Guest, and returns when the Guest has output for a
 * device or has died.  A second process, the Waker, watches the devices'
 * input and breaks the Guest out of that read() when there is some.
 *
 *   lguest [--verbose] [--virtio] [--block=FILE] [--sharenet=PATH] \
 *          [--dump=FILE] MEM_IN_MB KERNEL_IMAGE [kernel command line...]
 *
 * --virtio picks 2.6.25's ABI (virtio devices, the Guest starting at its
 * physical entry point, reboot); without it the Launcher speaks 2.6.23's
 * (the lguest bus and DMA).  --dump=FILE lays the Guest out, writes its
 * memory and device pages to FILE and stops there, without a Host: a way to
 * look at (or compare) the layout.  This is the same job lguestsim's Python
 * Launcher (lguestsim/launcher/) does, step for step; run it through the
 * native door: python -m lguestsim native [--virtio] -- ./lguest ...
 */
#define _GNU_SOURCE
#include "lguest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef ERESTART
#define ERESTART 85
#endif

u8 *guest_base;
unsigned long guest_limit, guest_max, guest_mem;
bool virtio, verbose;
int lguest_fd = -1;

static char **main_args;		/* for exec()ing ourselves on reboot */
static fd_set infds;			/* the input the Waker watches */
static int max_infd = -1;
static int waker_fd = -1;		/* our end of the pipe to the Waker */
static pid_t waker_pid;
static struct termios saved_term;
static bool term_saved;

void verbose_say(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void restore_terminal(void)
{
	if (term_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_term);
}

static void stop_waker(void)
{
	if (waker_pid > 0) {
		kill(waker_pid, SIGKILL);
		waitpid(waker_pid, NULL, 0);
		waker_pid = 0;
	}
}

/* Every way out of the Launcher goes through here: one line on standard
 * error (prefixed "lguest: ", written at once so that it cannot be mixed
 * with another Launcher's), the Waker stopped, the terminal restored. */
void die(int status, const char *fmt, ...)
{
	char line[1200] = "lguest: ";
	size_t len;
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	vsnprintf(line + 8, sizeof(line) - 9, fmt, ap);
	va_end(ap);
	len = strlen(line);
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, len) < 0)
		status = status ? status : 1;
	stop_waker();
	exit(status);
}

void write_console(const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(STDOUT_FILENO, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= n;
	}
}

/* The Guest hands us Guest-physical addresses, which are our addresses less
 * guest_base.  We never use one before checking it lies below guest_limit:
 * above that are the Launcher's own code and data, which a hostile Guest
 * would love us to scribble on.  Both ends are checked, since in C a huge
 * size could wrap the sum around. */
void *check_pointer(unsigned long addr, unsigned long size)
{
	if (addr >= guest_limit || size >= guest_limit || addr + size >= guest_limit)
		die(1, "the Guest handed over an invalid address %#lx (%lu bytes; its "
		    "memory ends at %#lx)", addr, size, guest_limit);
	return guest_base + addr;
}

u32 to_guest_phys(const void *addr)
{
	return (u32)((const u8 *)addr - guest_base);
}

/*
 * Guest memory.  The Launcher gets zeroed memory by mapping /dev/zero:
 * 2.6.23's Guest memory starts at our address 0 (so guest_base is 0 and
 * no address ever needs converting), which needs the right to map page 0;
 * 2.6.25 lets the kernel put it anywhere and tells the Host where
 * (guest_base).  Private mappings of /dev/zero are what lguest used; the
 * native door turns this one into memory it shares with the simulated Host.
 * We map all of it at once: the Guest's memory and the device pages above.
 * (mmap's address NULL with MAP_FIXED is address 0.)
 */
static void map_guest_memory(unsigned long mem, unsigned long size, bool at_zero)
{
	int zero_fd = open("/dev/zero", O_RDONLY);
	int flags = MAP_PRIVATE | (at_zero ? MAP_FIXED : 0);
	void *p;

	if (zero_fd < 0)
		die(2, "Failed to open /dev/zero: %s", strerror(errno));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE | PROT_EXEC, flags, zero_fd, 0);
	if (p == MAP_FAILED) {
		if (at_zero && (errno == EPERM || errno == EACCES))
			die(2, "cannot map Guest memory at address 0 (%s): 2.6.23's Guest "
			    "memory starts at the Launcher's page 0; run as root, or lower "
			    "vm.mmap_min_addr (sysctl vm.mmap_min_addr=0), or use --virtio",
			    strerror(errno));
		die(2, "mmap of %lu bytes of Guest memory failed: %s", size, strerror(errno));
	}
	close(zero_fd);
	guest_base = p;
	guest_mem = guest_limit = mem;
	guest_max = size;
	verbose_say("Guest memory: %#lx bytes at %p (%#lx with devices)\n", mem, p, size);
}

/*
 * The input file descriptors.  The Launcher keeps the set, and the Waker a
 * copy made when it was forked; after that the Launcher tells it of every
 * change through a pipe: a number n >= 0 means "watch n again", -n-1 means
 * "stop watching n" (a console with no buffer to read into, a network whose
 * far end went away).
 */
void add_device_fd(int fd)
{
	FD_SET(fd, &infds);
	if (fd > max_infd)
		max_infd = fd;
}

static void tell_waker(int msg)
{
	if (waker_fd >= 0 && write(waker_fd, &msg, sizeof(msg)) != sizeof(msg))
		die(1, "telling the Waker: %s", strerror(errno));
}

void ignore_device_fd(int fd)
{
	if (!FD_ISSET(fd, &infds))
		return;
	FD_CLR(fd, &infds);
	tell_waker(-fd - 1);
}

void watch_device_fd_again(int fd)
{
	if (FD_ISSET(fd, &infds))
		return;
	add_device_fd(fd);
	tell_waker(fd);
}

/*
 * The Waker.  While the Guest runs, the Launcher sits inside read(), so a
 * second process must notice input: it sleeps in select() on the input and
 * on the pipe from the Launcher, and when input comes writes LHREQ_BREAK
 * {1}.  The Host then ends the Launcher's read() with EAGAIN, and holds the
 * Waker's write until the Launcher, having served the input, writes
 * LHREQ_BREAK {0}: so the Waker cannot break again for the same input.
 * When the pipe reaches its end the Launcher has gone, and so does it.
 */
static void __attribute__((noreturn)) wake_parent(int pipefd)
{
	u32 brk[2] = { LHREQ_BREAK, 1 };

	add_device_fd(pipefd);
	for (;;) {
		fd_set rfds = infds;

		if (select(max_infd + 1, &rfds, NULL, NULL, NULL) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (FD_ISSET(pipefd, &rfds)) {
			int msg;

			if (read(pipefd, &msg, sizeof(msg)) != sizeof(msg))
				_exit(0);
			if (msg >= 0)
				FD_SET(msg, &infds);
			else
				FD_CLR(-msg - 1, &infds);
		} else if (write(lguest_fd, brk, sizeof(brk)) < 0 && errno == ENOENT) {
			_exit(0);	/* the Guest is dead: nothing to wake */
		}
	}
}

static void setup_waker(void)
{
	int pipefd[2];

	if (pipe(pipefd) != 0)
		die(1, "pipe for the Waker: %s", strerror(errno));
	fflush(NULL);
	waker_pid = fork();
	if (waker_pid < 0)
		die(1, "forking the Waker: %s", strerror(errno));
	if (waker_pid == 0) {
		close(pipefd[1]);
		wake_parent(pipefd[0]);
	}
	close(pipefd[0]);
	waker_fd = pipefd[1];
}

/*
 * The console's terminal, if it is one, goes into raw mode: no signals for
 * ^C (the Guest gets the byte), no line editing, no echo (the Guest echoes).
 * The old settings come back however the Launcher ends.
 */
static void setup_terminal(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_term) != 0)
		return;
	term_saved = true;
	raw = saved_term;
	raw.c_lflag &= ~(ISIG | ICANON | ECHO);
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	atexit(restore_terminal);
}

/* Console input, both generations: from a terminal what is there (the Guest
 * echoes it), from anything else one line (or as much as fits).  Three ^C
 * within about a second stop the Launcher, since ^C sends no signal now;
 * lguest counted only reads of a lone ^C, we count every ^C of a read made
 * of nothing else (keys pressed quickly arrive together). */
size_t read_console(int fd, u8 *buf, size_t room)
{
	static int abort_count;
	static struct timespec abort_start;
	struct timespec now;
	ssize_t n = 0;
	size_t len = 0, i;

	if (isatty(fd)) {
		n = read(fd, buf, room);
		len = n > 0 ? n : 0;
	} else {
		while (len < room && (n = read(fd, buf + len, 1)) == 1)
			if (buf[len++] == '\n')
				break;
	}
	for (i = 0; i < len && buf[i] == 3; i++)
		;
	if (!len || i < len) {
		abort_count = 0;
		return len;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (i = 0; i < len; i++) {
		if (!abort_count || now.tv_sec - abort_start.tv_sec > 1) {
			abort_count = 0;
			abort_start = now;
		}
		if (++abort_count == 3)
			die(130, "interrupted: three ^C");
	}
	return len;
}

/* A console reads standard input -- unless that is /dev/null, which here
 * means "this Guest has no input": its shell waits instead of hearing at
 * once that its input has ended (the way the Python Launcher's second and
 * later --guests have no input).  Useful for a Guest that only answers. */
bool console_has_input(void)
{
	struct stat in, null;

	return !(fstat(STDIN_FILENO, &in) == 0 && stat("/dev/null", &null) == 0 &&
		 S_ISCHR(in.st_mode) && in.st_rdev == null.st_rdev);
}

/* Set when a write to /dev/lguest says the Guest is dead (ENOENT). */
static bool guest_dead;

void trigger_irq(unsigned int irq)
{
	u32 req[2] = { LHREQ_IRQ, irq };

	if (write(lguest_fd, req, sizeof(req)) < 0) {
		if (errno != ENOENT)
			die(1, "Triggering irq %u: %s", irq, strerror(errno));
		guest_dead = true;
	}
}

/*
 * Telling the Host.  One write of LHREQ_INITIALIZE and four words: for
 * 2.6.23 the page frame limit, the page directory, the (virtual) start and
 * page_offset; for 2.6.25 guest_base first, then the limit, the directory
 * and the (physical) start: the Guest tells the Host its own page_offset.
 */
static void tell_kernel(unsigned long pgdir, const struct kernel *k)
{
	u32 args[5] = { LHREQ_INITIALIZE };

	lguest_fd = open("/dev/lguest", O_RDWR);
	if (lguest_fd < 0)
		die(2, "Failed to open /dev/lguest: %s", strerror(errno));
	if (virtio) {
		args[1] = (u32)(unsigned long)guest_base;
		args[2] = guest_limit / PAGE_SIZE;
		args[3] = pgdir;
		args[4] = k->start;
	} else {
		args[1] = guest_limit / PAGE_SIZE;
		args[2] = pgdir;
		args[3] = k->start;
		args[4] = k->page_offset;
	}
	verbose_say("Guest: %#x - %#lx (%#lx)%s\n", 0, guest_limit, guest_limit,
		    virtio ? ", virtio" : "");
	if (write(lguest_fd, args, sizeof(args)) < 0)
		die(2, "Writing to /dev/lguest: %s", strerror(errno));
}

/*
 * Input.  When read() fails with EAGAIN the Waker broke the Guest out: serve
 * every input that is ready, round after round until none is (a pipe may
 * hold several lots), then release the Waker.  A handler returning false
 * wants that input watched no more.
 */
static void handle_input(void)
{
	for (;;) {
		struct timeval none = { 0, 0 };
		fd_set rfds = infds;
		int fd, ready;

		ready = select(max_infd + 1, &rfds, NULL, NULL, &none);
		if (ready <= 0)
			return;
		for (fd = 0; fd <= max_infd; fd++) {
			if (!FD_ISSET(fd, &rfds))
				continue;
			if (!(virtio ? virtio_handle_input(fd) : dma_handle_input(fd)))
				ignore_device_fd(fd);
		}
	}
}

/*
 * Reboot (2.6.25): the Guest asked to be started again.  Like lguest we
 * let everything go -- the Waker, every file (closing /dev/lguest makes the
 * Host forget the Guest) -- and exec() ourselves with the same arguments,
 * so the new Guest is laid out from nothing.
 */
static void __attribute__((noreturn)) restart_guest(void)
{
	int fd;

	verbose_say("Guest: restarting\n");
	stop_waker();
	restore_terminal();
	fflush(NULL);
	for (fd = 3; fd < FD_SETSIZE; fd++)
		close(fd);
	execv(main_args[0], main_args);
	execv("/proc/self/exe", main_args);
	die(1, "Could not exec %s: %s", main_args[0], strerror(errno));
}

/* The Guest is dead: a read() now gives the reason.  The exit status says
 * how it ended, as lguestsim's Python Launcher's does: 0 when it powered
 * down, 1 when it died any other way. */
static void __attribute__((noreturn)) guest_died(void)
{
	char reason[1024] = { 0 };

	if (read(lguest_fd, reason, sizeof(reason) - 1) < 0)
		snprintf(reason, sizeof(reason), "the Guest died, and reading why failed: %s",
			 strerror(errno));
	die(strcmp(reason, "CRASH: Power down") == 0 ? 0 : 1, "%s", reason);
}

/*
 * The Launcher's life from here on: read() runs the Guest.  Output comes
 * back as a DMA address and key (2.6.23) or the address the Guest NOTIFYed
 * (2.6.25); ENOENT means the Guest is dead, and one more read gives the
 * reason; ERESTART (2.6.25) that it wants a reboot; EAGAIN that the Waker
 * broke it out.
 */
static void __attribute__((noreturn)) run_guest(void)
{
	u32 got[2];
	u32 brk[2] = { LHREQ_BREAK, 0 };

	for (;;) {
		ssize_t n;

		/* A Guest can die in the same trip that a break ends: read()
		 * then says EAGAIN, not ENOENT, and the next read() would hand
		 * us the reason it died as if it were output.  Our writes saw
		 * ENOENT meanwhile, so we ask for the reason ourselves. */
		if (guest_dead)
			guest_died();
		n = read(lguest_fd, got, virtio ? 4 : 8);
		if (n == (virtio ? 4 : 8)) {
			if (virtio)
				virtio_handle_notify(got[0]);
			else
				dma_handle_output(got[0], got[1]);
			continue;
		}
		if (n >= 0)
			die(1, "Running guest failed: read returned %zd bytes", n);
		if (errno == ENOENT)
			guest_died();
		if (errno == ERESTART && virtio)
			restart_guest();
		if (errno != EAGAIN && errno != EINTR)
			die(1, "Running guest failed: %s", strerror(errno));
		handle_input();
		if (write(lguest_fd, brk, sizeof(brk)) < 0) {
			if (errno != ENOENT)
				die(1, "Resetting break: %s", strerror(errno));
			guest_dead = true;
		}
	}
}

static void __attribute__((noreturn)) usage(const char *why)
{
	fprintf(stderr, "lguest: %s\nusage: lguest [--verbose] [--virtio] [--block=FILE] "
		"[--sharenet=PATH] [--dump=FILE] MEM_IN_MB KERNEL_IMAGE [kernel command "
		"line...]\n", why);
	exit(2);
}

/* --dump: the laid-out memory, up to guest_limit, into a file. */
static void __attribute__((noreturn)) dump_guest(const char *filename)
{
	int fd = open(filename, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	unsigned long done = 0;
	ssize_t n;

	if (fd < 0)
		die(2, "Failed to open %s: %s", filename, strerror(errno));
	while (done < guest_limit) {
		n = write(fd, guest_base + done, guest_limit - done);
		if (n <= 0)
			die(2, "Writing %s: %s", filename, strerror(errno));
		done += n;
	}
	close(fd);
	exit(0);
}

/* The devices, in command-line order (2.6.25 puts the console first, 2.6.23
 * last), so the first --block is the Guest's first disk. */
static void make_devices(int argc, char *argv[])
{
	int i;

	if (virtio)
		virtio_setup_console();
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strncmp(argv[i], "--block=", 8) == 0)
			(virtio ? virtio_setup_block : dma_setup_block)(argv[i] + 8);
		else if (strncmp(argv[i], "--sharenet=", 11) == 0)
			(virtio ? virtio_setup_net : dma_setup_net)(argv[i] + 11);
	}
	if (!virtio)
		dma_setup_console();
}

int main(int argc, char *argv[])
{
	unsigned long mem, size, mb, pgdir;
	int i, nblock = 0, nnet = 0;
	struct kernel k;
	char *end, *dump = NULL;

	main_args = argv;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--verbose") == 0)
			verbose = true;
		else if (strcmp(argv[i], "--virtio") == 0)
			virtio = true;
		else if (strncmp(argv[i], "--block=", 8) == 0 && argv[i][8])
			nblock++;
		else if (strncmp(argv[i], "--sharenet=", 11) == 0 && argv[i][11])
			nnet++;
		else if (strncmp(argv[i], "--dump=", 7) == 0 && argv[i][7])
			dump = argv[i] + 7;
		else
			usage("unknown option");
	}
	if (argc - i < 2)
		usage("MEM_IN_MB and KERNEL_IMAGE are needed");
	errno = 0;
	mb = strtoul(argv[i], &end, 10);
	if (errno || *end || mb < 1 || mb > MAX_MEM_MB)
		usage("MEM_IN_MB must be a whole number of MiB, 1 to 2943");
	mem = mb << 20;

	/* Guest memory, then the devices above it, then the kernel. */
	size = mem + (virtio ? DEVICE_PAGES * PAGE_SIZE : dma_device_pages(nblock, nnet));
	/* (--dump needs no Host, so it needs no page 0 either.) */
	map_guest_memory(mem, size, !virtio && !dump);
	if (virtio)
		virtio_setup();
	else
		dma_setup();
	make_devices(argc, argv);
	load_kernel(argv[i + 1], &k);

	/* The first page tables go at the top of memory, clear of the kernel;
	 * 2.6.25's map virtual = physical, 2.6.23's map memory at page_offset. */
	pgdir = setup_pagetables(mem, virtio ? 0 : k.page_offset, k.high);
	write_boot_header(mem, argv + i + 2);
	if (dump)
		dump_guest(dump);

	tell_kernel(pgdir, &k);
	setup_terminal();
	setup_waker();
	run_guest();
}
