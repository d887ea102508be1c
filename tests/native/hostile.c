/* Hostile native Launchers for tests/test_native_door.py: each case does one
 * thing lguest refuses and prints what the door answered, one line:
 *
 *   CASE: ret=N errno=NAME
 *
 *   hostile [--virtio] CASE
 *
 * Guest memory (4 MiB and a page, zeroed) is mapped where each generation's
 * Launcher has it: at address 0 for 2.6.23, anywhere for 2.6.25.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MEM (4 << 20)
#define PAGES (MEM / 4096)
enum { INITIALIZE, GETDMA, IRQ, BREAK };

static int virtio;
static char *base;

static const char *name(int e)
{
	switch (e) {
	case 0: return "0";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case ENOENT: return "ENOENT";
	case EPERM: return "EPERM";
	case EBUSY: return "EBUSY";
	case EAGAIN: return "EAGAIN";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	default: return strerror(e);
	}
}

static void show(const char *what, long ret)
{
	printf("%s: ret=%ld errno=%s\n", what, ret, name(ret < 0 ? errno : 0));
	fflush(stdout);
}

static void map_memory(void)
{
	int zero = open("/dev/zero", O_RDONLY);
	void *want = virtio ? NULL : (void *)0;
	base = mmap(want, MEM + 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | (virtio ? 0 : MAP_FIXED), zero, 0);
	if (base == MAP_FAILED) {
		perror("hostile: mapping Guest memory");
		exit(1);
	}
	close(zero);
}

/* A good INITIALIZE, but for what the case changes: a zeroed page directory
 * at the top of memory and a start the Guest never reaches. */
static long initialize(uint32_t pfnlimit, uint32_t pgdir, uint32_t start, uint32_t extra)
{
	uint32_t w[5] = { INITIALIZE };
	int fd = 3;
	if (virtio) {
		w[1] = (uint32_t)(uintptr_t)base + extra;
		w[2] = pfnlimit;
		w[3] = pgdir;
		w[4] = start;
	} else {
		w[1] = pfnlimit;
		w[2] = pgdir;
		w[3] = start;
		w[4] = extra ? extra : 0xC0000000;
	}
	return write(fd, w, sizeof(w));
}

static long request(uint32_t req, uint32_t arg)
{
	uint32_t w[2] = { req, arg };
	return write(3, w, sizeof(w));
}

int main(int argc, char *argv[])
{
	int i = 1;
	if (argc > 1 && strcmp(argv[1], "--virtio") == 0) {
		virtio = 1;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: hostile [--virtio] CASE\n");
		return 2;
	}
	const char *c = argv[i];
	map_memory();
	if (open("/dev/lguest", O_RDWR) != 3) {
		perror("hostile: /dev/lguest is not fd 3");
		return 1;
	}
	uint32_t pgdir = MEM - 4096, start = virtio ? 0x100000 : 0xC0100000;
	char buf[256];
	if (!strcmp(c, "before-initialize")) {
		show("irq", request(IRQ, 1));
		show("read", read(3, buf, sizeof(buf)));
	} else if (!strcmp(c, "twice-initialize")) {
		show("first", initialize(PAGES, pgdir, start, 0));
		show("second", initialize(PAGES, pgdir, start, 0));
	} else if (!strcmp(c, "bad-irq")) {
		show("init", initialize(PAGES, pgdir, start, 0));
		show("irq", request(IRQ, 99));
	} else if (!strcmp(c, "short-write")) {
		uint32_t w[5] = { INITIALIZE, PAGES, pgdir, start, 0 };
		show("two-bytes", write(3, w, 2));
		show("short-initialize", write(3, w, 8));
	} else if (!strcmp(c, "oversized-write")) {
		static uint32_t w[16384];
		show("init", initialize(PAGES, pgdir, start, 0));
		w[0] = IRQ;
		w[1] = 1;
		show("irq", write(3, w, sizeof(w)));
	} else if (!strcmp(c, "garbage-request")) {
		show("init", initialize(PAGES, pgdir, start, 0));
		show("request", request(0x7777, 1));
	} else if (!strcmp(c, "pfnlimit-beyond-memory")) {
		show("init", initialize(PAGES + 1024, pgdir, start, 0));
	} else if (!strcmp(c, "pgdir-outside-memory")) {
		show("init", initialize(PAGES, MEM + (64 << 20), start, 0));
		long n = read(3, buf, sizeof(buf));
		show("read", n);
		n = read(3, buf, sizeof(buf) - 1);
		printf("reason: %.*s\n", n > 0 ? (int)n : 0, buf);
	} else if (!strcmp(c, "start-outside-memory")) {
		show("init", initialize(PAGES, pgdir, virtio ? 0x7000000 : 0xC7000000, 0));
		long n = read(3, buf, sizeof(buf));
		show("read", n);
		n = read(3, buf, sizeof(buf) - 1);
		printf("reason: %.*s\n", n > 0 ? (int)n : 0, buf);
	} else if (!strcmp(c, "guest-base-elsewhere")) {
		show("init", initialize(PAGES, pgdir, start, 0x10000));
	} else if (!strcmp(c, "page-offset-over-switcher")) {
		show("init", initialize(PAGES, pgdir, start, 0xFFC00000));
	} else if (!strcmp(c, "waker-not-launcher")) {
		show("init", initialize(PAGES, pgdir, start, 0));
		pid_t child = fork();
		if (child == 0) {
			show("child-irq", request(IRQ, 1));
			show("child-read", read(3, buf, sizeof(buf)));
			_exit(0);
		}
		waitpid(child, NULL, 0);
		show("parent-irq", request(IRQ, 1));
	} else if (!strcmp(c, "door-files")) {
		/* What files the door left us: our Guest's memory, nothing more. */
		show("init", initialize(PAGES, pgdir, start, 0));
		for (int fd = 4; fd < 1024; fd++) {
			struct stat st;
			if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
				printf("file: size=%lld\n", (long long)st.st_size);
		}
	} else {
		fprintf(stderr, "hostile: no case %s\n", c);
		return 2;
	}
	return 0;
}
