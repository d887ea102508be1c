/*
 * lguest.h: what the parts of the C Launcher share.
 *
 * The Launcher is one program in four files, told in the order it works:
 * lguest.c (the command line, Guest memory, /dev/lguest, the run loop, the
 * Waker, reboot), load.c (the kernel, the first page tables, the boot
 * header), dma.c (2.6.23's devices on the lguest bus) and virtio.c
 * (2.6.25's virtio devices); net.c is the wire two Launchers' network
 * devices share.  Every number and layout here is lguest's own, as the
 * kernel's lguest_launcher.h has them; like the original we use the
 * kernel's short type names, since a Launcher and a Guest must agree on
 * every byte they share.
 */
#ifndef LAUNCHER_C_LGUEST_H
#define LAUNCHER_C_LGUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef uint64_t u64;
typedef uint32_t u32;
typedef uint16_t u16;
typedef uint8_t u8;

#define PAGE_SIZE	4096u
#define PAGE_PRESENT	0x7u	/* present, writable, user */

/* The requests a Launcher writes to /dev/lguest: the first word of a write. */
enum lguest_req {
	LHREQ_INITIALIZE,	/* 2.6.23: + pfnlimit, pgdir, start, page_offset;
				 * 2.6.25: + guest_base, pfnlimit, pgdir, start */
	LHREQ_GETDMA,		/* + key: a free buffer the Guest bound there (2.6.23) */
	LHREQ_IRQ,		/* + irq: make it pending in the Guest */
	LHREQ_BREAK,		/* + 1: stop the Guest; + 0: let it go again */
};

/* Both generations' Guests find their boot parameters at physical 0 and the
 * devices in the page just above their memory; 2.6.25 keeps this many pages
 * there for the device page and the vrings. */
#define DEVICE_PAGES	256u

/* How much memory: MEM_IN_MB unless told, the limit the Launcher's own code
 * sets (it lives at 0xB8000000 in lguest; below that is the Guest's). */
#define DEFAULT_MEM_MB	32u
#define MAX_MEM_MB	(0xB8000000u / (1u << 20) - 1)

/* The Launcher's view of Guest memory: Guest-physical address N is
 * Launcher address guest_base + N (guest_base is 0 in 2.6.23).  guest_limit
 * is how far the Guest may reach, its memory and its devices' pages; it
 * grows as devices are made and becomes pfnlimit. */
extern u8 *guest_base;
extern unsigned long guest_limit, guest_max, guest_mem;
extern bool virtio, verbose;
extern int lguest_fd;

/* Where output goes when the Guest's early console or console prints. */
void write_console(const void *buf, size_t len);

/* A Guest-physical range checked against guest_limit, as a pointer; a Guest
 * that hands over anything else is broken, and the Launcher stops it. */
void *check_pointer(unsigned long addr, unsigned long size);
u32 to_guest_phys(const void *addr);

/* Input file descriptors: the Waker sleeps in select() on these, and
 * handle_input() serves them when the Waker broke the Guest out. */
void add_device_fd(int fd);
void ignore_device_fd(int fd);
void watch_device_fd_again(int fd);
void trigger_irq(unsigned int irq);
bool console_has_input(void);

void verbose_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void die(int status, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 2, 3)));

/* load.c */
struct kernel {
	unsigned long start;		/* the Guest's first eip */
	unsigned long page_offset;	/* virtual - physical */
	unsigned long low, high;	/* the physical range it fills */
};
void load_kernel(const char *name, struct kernel *k);
unsigned long setup_pagetables(unsigned long mem, unsigned long map_offset,
			       unsigned long kernel_high);
void write_boot_header(unsigned long mem, char *words[]);

/* dma.c: 2.6.23's devices */
unsigned long dma_device_pages(int nblock, int nnet);
void dma_setup(void);
void dma_setup_block(const char *filename);
void dma_setup_net(const char *path);
void dma_setup_console(void);
void dma_handle_output(u32 dma, u32 key);
int open_disk(const char *filename, unsigned long *size);
size_t read_console(int fd, u8 *buf, size_t room);
bool dma_handle_input(int fd);

/* virtio.c: 2.6.25's devices */
void virtio_setup(void);
void virtio_setup_console(void);
void virtio_setup_block(const char *filename);
void virtio_setup_net(const char *path);
void virtio_handle_notify(u32 addr);
bool virtio_handle_input(int fd);

/* net.c: the wire between Launchers' network devices */
struct wire {
	int fd;			/* our datagram socket, watched for frames */
	int port;		/* our number on the wire: 1 .. WIRE_PORTS */
	char path[100];		/* the wire's name; ports are PATH.1, PATH.2 ... */
};
#define WIRE_PORTS	16
void wire_join(struct wire *w, const char *path);
void wire_send(struct wire *w, const void *frame, size_t len);
ssize_t wire_receive(struct wire *w, void *frame, size_t len);
void wire_leave(struct wire *w);

#endif
