/*
 * user_abi.h: what the kernel and its one user program agree on.
 *
 * The user program (user.c, shell.c, ulib.c, user.S) is built on its own,
 * linked to run at USER_CODE_ADDR, and carried inside the kernel image as
 * plain bytes.  It shares no code with the kernel, only these numbers and
 * structures: where things are in its address space, how to ask the kernel
 * for something, and what the kernel hands back.
 */
#ifndef USER_ABI_H
#define USER_ABI_H

/*: G:345 The user address space is everything below the kernel's
 * PAGE_OFFSET.  The program's code and data start at 0x08048000, where
 * Linux puts an i386 program; its stack is the two pages just below the
 * kernel; its heap is a 1 MiB range at 256 MiB that the kernel leaves
 * unmapped and fills in a page at a time, as the program first touches each
 * page (mm.c's page faults, G:230).  The rest is empty, and any access to
 * it kills the program. */
#define USER_CODE_ADDR		0x08048000
#define USER_STACK_TOP		0xC0000000
#define USER_STACK_PAGES	2
#define USER_HEAP_START		0x10000000
#define USER_HEAP_SIZE		0x00100000

/*: G:346 The system calls: `int $0x80` with the number in %eax and the
 * arguments in %ebx, %ecx and %edx; the result comes back in %eax, a
 * negative error number on failure.  The first five keep their Linux i386
 * numbers and meanings.  The last four are lguestsim's own, numbered well
 * clear of Linux's, and exist so the program can show the devices: the
 * descriptor page, the network's slots, promiscuous mode and a ping. */
#define SYSCALL_VECTOR		0x80
#define __NR_exit		1	/* exit(code): never returns */
#define __NR_read		3	/* read(fd, buf, len) -> bytes, 0 at the end */
#define __NR_write		4	/* write(fd, buf, len) -> bytes */
#define __NR_lseek		19	/* lseek(fd, offset, whence) -> new offset */
#define __NR_getpid		20	/* getpid() -> the process id */
#define __NR_reboot		88	/* reboot(): 2.6.25 Guests only; -ENOSYS before */
/* lguestsim's own, numbered well past Linux 2.6.23's last (324): */
#define __NR_lguest_devices	400	/* (struct lg_device[16]) -> 16 */
#define __NR_lguest_net		401	/* (struct net_peer *, max) -> how many */
#define __NR_lguest_promisc	402	/* (on) -> 0 */
#define __NR_lguest_ping	403	/* (struct lg_ping *) -> replies */

/* The files a process has open from the start: 0 is console input (a read
 * returns one line, as a terminal does), 1 and 2 console output, and 3 on
 * are the disks in the order the bus found them (3 is /dev/lgba).  A disk is
 * read and written in whole 512-byte sectors, at most 4096 bytes at a time,
 * at the offset lseek() set: SEEK_END gives its size. */
#define STDIN_FILENO		0
#define STDOUT_FILENO		1
#define FIRST_DISK_FD		3
#define SEEK_SET		0
#define SEEK_CUR		1
#define SEEK_END		2

/* Error numbers, Linux's. */
#define EIO			5
#define EBADF			9
#define ENOMEM			12
#define EFAULT			14
#define EBUSY			16
#define ENODEV			19
#define EINVAL			22
#define ENOSPC			28
#define ESPIPE			29
#define ENOSYS			38
#define ENETDOWN		100
#define EHOSTUNREACH		113

/*: G:347 Thread-local storage: the kernel puts a 16-byte block at the very
 * top of the user stack page and points GDT entry 6 at it (LHCALL_LOAD_TLS,
 * G:038), so the program finds it at %gs:0 after loading selector
 * USER_TLS_SEL (entry 6, ring 3) into %gs.  Its first word holds its own
 * address, as a C library's thread block does, and the second the process
 * id.  The program's arguments lie just below it. */
#define USER_TLS_SEL		((6 << 3) | 3)
#define USER_TLS_SIZE		16
#define USER_TLS_ADDR		(USER_STACK_TOP - USER_TLS_SIZE)
#define USER_TLS_SELF		0	/* offset: the block's own address */
#define USER_TLS_PID		4	/* offset: the process id */

#ifndef __ASSEMBLER__

#ifdef CONFIG_VIRTIO
/* lguest_devices() in the 2.6.25 (virtio) generation: one of these per
 * device on the page, up to 16, the rest zero. */
struct lg_device {
	unsigned char type;		/* virtio id: 1 network, 2 block, 3 console */
	unsigned char num_vq;
	unsigned char status;		/* bits: 1 ACKNOWLEDGE, 2 DRIVER, 4 DRIVER_OK,
					 * 0x80 FAILED */
	unsigned char features;		/* the first byte of the Launcher's offer */
	unsigned char accepted;		/* ... and of what we accepted */
	unsigned char config_len;
	unsigned short pad;
	struct {
		unsigned short num, irq;
		unsigned int pfn;
	} vq[2];			/* the first two virtqueues */
};
#else
/* lguest_devices(): the descriptor page as it is, 16 of these (the layout
 * of struct lguest_device_desc in lguest_launcher.h). */
struct lg_device {
	unsigned short type;		/* 0 none, 1 console, 2 network, 3 block */
	unsigned short features;
	unsigned short status;		/* bits: 1 ACKNOWLEDGE, 2 DRIVER, 4 DRIVER_OK,
					 * 8 REMOVED, 16 REMOVED_ACK, 128 FAILED */
	unsigned short num_pages;
	unsigned int pfn;
};
#endif


/* lguest_net(): one used slot of the network page. */
struct net_peer {
	unsigned int slot;
	unsigned char mac[6];		/* as published: mac[0] & 1 = promiscuous */
	unsigned char me;		/* 1 for our own slot */
	unsigned char pad;
};

/* lguest_ping(): the request going in, the replies coming out. */
#define PING_MAX_REPLIES	8
struct lg_ping {
	unsigned char dest[6];		/* in: an address, or ff:ff:ff:ff:ff:ff */
	unsigned short seq;		/* in: the sequence number to send */
	unsigned int sent_to;		/* out: how many peers took the request */
	unsigned int timeout_ns;	/* out: how long we waited at most */
	struct {
		unsigned char mac[6];	/* who answered */
		unsigned short seq;	/* the sequence number they echoed */
		unsigned int ns;	/* the round trip */
	} reply[PING_MAX_REPLIES];
};

#endif /* !__ASSEMBLER__ */
#endif /* USER_ABI_H */
