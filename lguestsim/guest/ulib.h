/*
 * ulib.h: the user program's own little C library (ulib.c).
 *
 * There is no libc in ring 3 either: the program makes its system calls
 * through syscall3() in user.S, and builds each line of output in a buffer
 * with a few helpers before sending it with one write().
 */
#ifndef ULIB_H
#define ULIB_H

#include "user_abi.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

/* System calls (user_abi.h has the numbers and what they do). */
int syscall3(int nr, int a, int b, int c);
int read(int fd, void *buf, u32 len);
int write(int fd, const void *buf, u32 len);
int lseek(int fd, int offset, int whence);
int getpid(void);
void exit(int code) __attribute__((noreturn));
int lguest_devices(struct lg_device *table);
int lguest_net(struct net_peer *peers, u32 max);
int lguest_promisc(int on);
int lguest_ping(struct lg_ping *ping);
#ifdef CONFIG_VIRTIO
int reboot(void);
#endif

/* Strings and memory. */
u32 strlen(const char *s);
int streq(const char *a, const char *b);
void *memset(void *dst, int c, u32 n);
void *memcpy(void *dst, const void *src, u32 n);

/* A line of output. */
struct line {
	char text[120];
	u32 len;
};
void add(struct line *l, const char *s);
void add_char(struct line *l, char c);
void add_number(struct line *l, u32 v, u32 base);	/* base 16 adds "0x" */
void add_signed(struct line *l, int v);
void add_hex(struct line *l, u32 v, u32 digits);	/* zero-padded, no "0x" */
void add_mac(struct line *l, const u8 *mac);
void send(struct line *l);				/* adds the newline */
void say(const char *s);				/* one whole line */

/* Reading words: the next word of *p (which moves past it), or NULL. */
char *next_word(char **p);
int parse_number(const char *s, u32 *v);		/* decimal, or 0x hex */
int parse_mac(const char *s, u8 mac[6]);		/* xx:xx:xx:xx:xx:xx */

/* shell.c */
int run_command(char *cmdline);				/* 0 once told to quit */
void shell(void);
void device_demo(void);

#endif /* ULIB_H */
