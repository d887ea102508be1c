/* A small native Launcher for tests/test_native_door.py: it boots a prepared
 * image of Guest memory (a tiny 2.6.23 Guest and its page tables, laid out
 * by the test) through the door and prints what the Guest sends it.
 *
 *   neighbour IMAGE MEM PGDIR START PAGE_OFFSET [spin | patch=ADDR:BYTE]
 *
 * Guest memory goes at our address 0, as 2.6.23's Launcher had it; the image
 * is mapped privately over it, as lguest's Launcher mapped the kernel, which
 * the door turns into a copy into the shared pages.  Each read() that returns
 * DMA (address and key) prints the DMA's first section; when the Guest dies
 * it prints the reason.  With "spin" it forks a Waker that writes LHREQ_BREAK
 * every few milliseconds, and serves each EAGAIN with LHREQ_BREAK {0}.  With
 * "patch=ADDR:BYTE" it writes BYTE at Guest-physical ADDR after the first
 * DMA, over code the Guest has already run.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LHREQ_INITIALIZE 0
#define LHREQ_BREAK 3

int main(int argc, char *argv[])
{
	if (argc < 6) {
		fprintf(stderr, "usage: neighbour IMAGE MEM PGDIR START PAGE_OFFSET [spin]\n");
		return 2;
	}
	unsigned long mem = strtoul(argv[2], NULL, 0);
	uint32_t init[5] = { LHREQ_INITIALIZE, mem / 4096, strtoul(argv[3], NULL, 0),
			     strtoul(argv[4], NULL, 0), strtoul(argv[5], NULL, 0) };
	int spin = argc > 6 && strcmp(argv[6], "spin") == 0;
	unsigned long patch_at = 0, patch_byte = 0;
	if (argc > 6 && strncmp(argv[6], "patch=", 6) == 0) {
		char *colon;
		patch_at = strtoul(argv[6] + 6, &colon, 0);
		patch_byte = strtoul(colon + 1, NULL, 0);
	}
	int zero = open("/dev/zero", O_RDONLY);
	char *base = mmap((void *)0, mem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, zero, 0);
	if (base != (void *)0) {
		perror("neighbour: mapping Guest memory at 0");
		return 1;
	}
	int img = open(argv[1], O_RDONLY);
	if (img < 0 || mmap(base, mem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, img, 0)
	    != base) {
		perror("neighbour: mapping the image");
		return 1;
	}
	int fd = open("/dev/lguest", O_RDWR);
	if (fd < 0 || write(fd, init, sizeof(init)) < 0) {
		perror("neighbour: /dev/lguest");
		return 1;
	}
	pid_t waker = -1;
	if (spin) {
		waker = fork();
		if (waker == 0) {
			uint32_t brk[2] = { LHREQ_BREAK, 1 };
			for (;;) {
				usleep(5000);
				if (write(fd, brk, sizeof(brk)) < 0)
					_exit(errno == ENOENT ? 0 : 1);
			}
		}
	}
	printf("ready to run\n");
	fflush(stdout);
	int breaks = 0;
	for (;;) {
		uint32_t got[2];
		ssize_t n = read(fd, got, sizeof(got));
		if (n == 8) {
			/* struct lguest_dma: used_len, addr[16], len[16] */
			uint32_t *dma = (uint32_t *)(base + got[0]);
			uint16_t *len = (uint16_t *)(base + got[0] + 68);
			printf("dma %.*s\n", (int)len[0], base + dma[1]);
			fflush(stdout);
			dma[0] = len[0];
			if (patch_at) {
				base[patch_at] = patch_byte;
				patch_at = 0;
			}
		} else if (n < 0 && errno == EAGAIN) {
			uint32_t brk[2] = { LHREQ_BREAK, 0 };
			breaks++;
			if (write(fd, brk, sizeof(brk)) < 0) {
				perror("neighbour: BREAK {0}");
				return 1;
			}
		} else if (n < 0 && errno == ENOENT) {
			char why[200] = "";
			n = read(fd, why, sizeof(why) - 1);
			printf("dead: %s\n", n > 0 ? why : "(no reason)");
			if (spin)
				printf("breaks: %s\n", breaks ? "some" : "none");
			if (waker > 0)
				kill(waker, SIGKILL);
			return 0;
		} else {
			fprintf(stderr, "neighbour: read gave %zd: %s\n", n, strerror(errno));
			return 1;
		}
	}
}
