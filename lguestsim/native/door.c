/* The door: a /dev/lguest for a native Launcher, served by lguestsim's Host.
 *
 * This small library is preloaded (LD_PRELOAD) into an ordinary i386 C
 * program, a Launcher written to lguest's ABI.  It catches the few calls by
 * which a Launcher meets lguest -- open() of /dev/lguest, then read(),
 * write(), pread(), pwrite() and close() on it, mmap() of /dev/zero for the
 * Guest's memory, and fork() for the Waker -- and carries each to the
 * simulated Host over a Unix socket (LGUESTSIM_DOOR names it).  Everything
 * else goes straight to the C library.  lguestsim/native/door.py is the other
 * end, and wire.py there describes the messages.
 *
 * Built by lguestsim/native/build.py with gcc -m32 -shared -fPIC.
 */
#define _GNU_SOURCE
#ifdef __x86_64__
/* Built with -m64 too, so that a 64-bit program started under the door (a
 * shell script, a tool) loads something: this half only says why a 64-bit
 * Launcher gets no /dev/lguest.  lguest's Launchers were i386 programs. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

static int refuse(const char *path)
{
	if (!path || strcmp(path, "/dev/lguest") != 0)
		return 0;
	fprintf(stderr, "lguestsim door: /dev/lguest is served to i386 programs only: "
		"build the Launcher with gcc -m32\n");
	errno = ENOEXEC;
	return 1;
}

#define PASS(name, ...) \
	mode_t mode = 0; \
	if (flags & (O_CREAT | O_TMPFILE)) { \
		va_list ap; \
		va_start(ap, flags); \
		mode = va_arg(ap, mode_t); \
		va_end(ap); \
	} \
	if (refuse(path)) \
		return -1; \
	int (*real)() = (int (*)())dlsym(RTLD_NEXT, name); \
	return real(__VA_ARGS__, flags, mode)

int open(const char *path, int flags, ...) { PASS("open", path); }
int open64(const char *path, int flags, ...) { PASS("open64", path); }
int openat(int dirfd, const char *path, int flags, ...) { PASS("openat", dirfd, path); }
int openat64(int dirfd, const char *path, int flags, ...) { PASS("openat64", dirfd, path); }
#else
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

/* The messages, as wire.py has them: a request is five words (op, a, b, c,
 * len) and len bytes; an answer is three (ret, errno, len) and len bytes. */
enum { OP_HELLO_MM = 1, OP_JOIN_MM = 2, OP_OPEN = 3, OP_JOIN_FILE = 4, OP_MAP = 5,
       OP_WRITE = 6, OP_READ = 7 };
#define WRITE_MAX 4096          /* no request is longer; the Host sees no more */
#define MAX_FILES 16
#define PRIVATE_FD_MIN 900      /* the door's own sockets live up here, out of the way */

/*: L:510 Three kinds of object cross the door.  The Launcher's memory: the
 * first time it maps /dev/zero, the library opens a connection for this
 * process (its "mm") and the Host hands back, with SCM_RIGHTS, a memfd that
 * is this Guest's window of the simulated machine's RAM (and nothing else);
 * the Launcher's mapping becomes a shared mapping of it, so the Launcher
 * writes Guest memory and the Host reads it, byte for byte the same.  Each open of
 * /dev/lguest: a connection of its own, whose descriptor is the very file
 * descriptor the Launcher gets back, so select(), dup() and close() work on
 * it.  And each task: a forked Waker gets connections of its own, so the
 * Host can tell it from the Launcher (only LHREQ_BREAK is allowed from
 * anyone else, as in lguest). */
static int mm_fd = -1;          /* this process's memory connection */
static int mem_fd = -1;         /* our Guest's memory, a file from the Host */
static uint32_t mm_token;
static int virtio;              /* which generation's /dev/lguest (LGUESTSIM_DOOR_VIRTIO) */
static uintptr_t win_lo, win_hi, win_end;   /* Guest memory: mapped [lo, end), room to hi */
static int win_set;
static struct { int fd; uint32_t token; } files[MAX_FILES];
static int nfiles;

#define REAL(ret, name, args) \
	static ret (*real_##name) args; \
	if (!real_##name) real_##name = (ret (*) args)dlsym(RTLD_NEXT, #name)


static int file_index(int fd)
{
	for (int i = 0; i < nfiles; i++)
		if (files[i].fd == fd)
			return i;
	return -1;
}

static ssize_t real_write_all(int fd, const void *buf, size_t n)
{
	REAL(ssize_t, write, (int, const void *, size_t));
	const char *p = buf;
	while (n) {
		ssize_t k = real_write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "lguestsim door: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)real_write_all(2, buf, n);
}

/* Receive exactly n bytes, and a descriptor if one rides along. */
static int recv_all(int fd, void *buf, size_t n, int *passed)
{
	char *p = buf;
	while (n) {
		char ctl[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { p, n };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = ctl, .msg_controllen = sizeof(ctl) };
		ssize_t k = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && passed)
				memcpy(passed, CMSG_DATA(c), sizeof(int));
		p += k;
		n -= k;
	}
	return 0;
}

/* One request and its answer.  The answer's bytes (at most max) go to out;
 * the return value is the Host's, or -1 with the Host's errno. */
static long ask(int fd, uint32_t op, uint32_t a, uint32_t b, uint32_t c,
		const void *data, uint32_t len, void *out, uint32_t max, int *passed)
{
	uint32_t head[5] = { op, a, b, c, len };
	int32_t ans[3];
	if (real_write_all(fd, head, sizeof(head)) < 0
	    || (len && real_write_all(fd, data, len) < 0)
	    || recv_all(fd, ans, sizeof(ans), passed) < 0) {
		errno = EIO;      /* the Host has gone */
		return -1;
	}
	uint32_t got = (uint32_t)ans[2];
	char sink[256];
	for (uint32_t done = 0; done < got;) {
		uint32_t k = got - done;
		char *to;
		if (done < max) {
			to = (char *)out + done;
			if (k > max - done)
				k = max - done;
		} else {
			to = sink;
			if (k > sizeof(sink))
				k = sizeof(sink);
		}
		if (recv_all(fd, to, k, NULL) < 0) {
			errno = EIO;
			return -1;
		}
		done += k;
	}
	if (ans[0] < 0) {
		errno = ans[1];
		return -1;
	}
	return ans[0];
}

/* A new connection to the Host, kept high and closed on exec. */
static int dial(void)
{
	const char *path = getenv("LGUESTSIM_DOOR");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!path || strlen(path) >= sizeof(sa.sun_path)) {
		say("LGUESTSIM_DOOR does not name the Host's socket: run me under "
		    "`python -m lguestsim native -- PROGRAM`");
		errno = ENODEV;
		return -1;
	}
	strcpy(sa.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		say("cannot reach the Host at %s: %s", path, strerror(e));
		close(s);
		errno = ENODEV;
		return -1;
	}
	int high = fcntl(s, F_DUPFD_CLOEXEC, PRIVATE_FD_MIN);
	if (high >= 0) {
		close(s);
		s = high;
	}
	return s;
}

/* This process's memory connection, made on first need. */
static int mm(void)
{
	if (mm_fd >= 0)
		return mm_fd;
	const char *v = getenv("LGUESTSIM_DOOR_VIRTIO");
	virtio = v && *v == '1';
	int s = dial();
	if (s < 0)
		return -1;
	long token = ask(s, OP_HELLO_MM, virtio, getpid(), 0, NULL, 0, NULL, 0, NULL);
	if (token < 0) {
		close(s);
		errno = ENODEV;
		return -1;
	}
	mm_token = token;
	mm_fd = s;
	return mm_fd;
}

static int is_dev_lguest(const char *path)
{
	return path && strcmp(path, "/dev/lguest") == 0;
}

/*: L:520 open("/dev/lguest") never reaches the kernel: there is no such
 * device here.  The library opens a connection, tells the Host which
 * process's memory the new file belongs to, and moves the connection to the
 * lowest free descriptor, as a real open would give. */
static int open_lguest(void)
{
	if (nfiles == MAX_FILES) {
		errno = EMFILE;
		return -1;
	}
	if (mm() < 0)
		return -1;
	int s = dial();
	if (s < 0)
		return -1;
	long token = ask(s, OP_OPEN, mm_token, virtio, 0, NULL, 0, NULL, 0, NULL);
	if (token < 0) {
		int e = errno;
		close(s);
		errno = e;
		return -1;
	}
	int fd = fcntl(s, F_DUPFD, 3);
	close(s);
	if (fd < 0)
		return -1;
	files[nfiles].fd = fd;
	files[nfiles].token = token;
	nfiles++;
	return fd;
}

/* open()'s third argument is there only when the flags create a file. */
#define OPEN_MODE(flags) ({						\
	mode_t mode_ = 0;						\
	if ((flags) & (O_CREAT | O_TMPFILE)) {				\
		va_list ap;						\
		va_start(ap, flags);					\
		mode_ = va_arg(ap, mode_t);				\
		va_end(ap);						\
	}								\
	mode_;								\
})

int open(const char *path, int flags, ...)
{
	REAL(int, open, (const char *, int, ...));
	mode_t mode = OPEN_MODE(flags);
	if (is_dev_lguest(path))
		return open_lguest();
	return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	REAL(int, open64, (const char *, int, ...));
	mode_t mode = OPEN_MODE(flags);
	if (is_dev_lguest(path))
		return open_lguest();
	return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	REAL(int, openat, (int, const char *, int, ...));
	mode_t mode = OPEN_MODE(flags);
	if (is_dev_lguest(path))
		return open_lguest();
	return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	REAL(int, openat64, (int, const char *, int, ...));
	mode_t mode = OPEN_MODE(flags);
	if (is_dev_lguest(path))
		return open_lguest();
	return real_openat64(dirfd, path, flags, mode);
}

/* _FORTIFY_SOURCE routes open() with O_CREAT-less flags through these. */
int __open_2(const char *path, int flags)
{
	return open(path, flags);
}

int __open64_2(const char *path, int flags)
{
	return open64(path, flags);
}

int __openat_2(int dirfd, const char *path, int flags)
{
	return openat(dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	return openat64(dirfd, path, flags);
}

/*: L:530 A write is a request, as it is to lguest: the bytes go to the Host
 * as they are (up to a page: no request is longer, and the Host reads only the
 * words it needs), with the file offset that 2.6.24 made the CPU number.
 * write() on a character device does not move its offset, so a plain write
 * is CPU 0; pwrite() names the CPU itself. */
static ssize_t door_write(int i, const void *buf, size_t n, uint32_t offset)
{
	if (!buf && n) {
		errno = EFAULT;
		return -1;
	}
	uint32_t len = n > WRITE_MAX ? WRITE_MAX : n;
	return ask(files[i].fd, OP_WRITE, offset, n > 0xFFFFFFFFu ? 0xFFFFFFFFu : n, 0,
		   buf, len, NULL, 0, NULL);
}

/* A read runs the Guest: it returns when the Host has something for us. */
static ssize_t door_read(int i, void *buf, size_t n, uint32_t offset)
{
	if (!buf && n) {
		errno = EFAULT;
		return -1;
	}
	return ask(files[i].fd, OP_READ, n > 0xFFFFFFFFu ? 0xFFFFFFFFu : n, offset, 0,
		   NULL, 0, buf, n, NULL);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	REAL(ssize_t, write, (int, const void *, size_t));
	int i = file_index(fd);
	return i < 0 ? real_write(fd, buf, n) : door_write(i, buf, n, 0);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	REAL(ssize_t, pwrite, (int, const void *, size_t, off_t));
	int i = file_index(fd);
	return i < 0 ? real_pwrite(fd, buf, n, off) : door_write(i, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	REAL(ssize_t, pwrite64, (int, const void *, size_t, off64_t));
	int i = file_index(fd);
	return i < 0 ? real_pwrite64(fd, buf, n, off) : door_write(i, buf, n, off);
}

ssize_t read(int fd, void *buf, size_t n)
{
	REAL(ssize_t, read, (int, void *, size_t));
	int i = file_index(fd);
	return i < 0 ? real_read(fd, buf, n) : door_read(i, buf, n, 0);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	REAL(ssize_t, pread, (int, void *, size_t, off_t));
	int i = file_index(fd);
	return i < 0 ? real_pread(fd, buf, n, off) : door_read(i, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
	REAL(ssize_t, pread64, (int, void *, size_t, off64_t));
	int i = file_index(fd);
	return i < 0 ? real_pread64(fd, buf, n, off) : door_read(i, buf, n, off);
}

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		abort();
	return read(fd, buf, n);
}

ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		abort();
	return pread(fd, buf, n, off);
}

ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
	if (n > buflen)
		abort();
	return pread64(fd, buf, n, off);
}

/* Closing /dev/lguest closes the connection, and the Host closes the file.
 * The door's own descriptors cannot be closed from outside: a Launcher that
 * closes everything above stderr before exec (2.6.25's restart does) keeps
 * its memory until the exec drops them. */
int close(int fd)
{
	REAL(int, close, (int));
	int i = file_index(fd);
	if (i >= 0) {
		files[i] = files[--nfiles];
		return real_close(fd);
	}
	if (fd >= 0 && (fd == mm_fd || fd == mem_fd))
		return 0;
	return real_close(fd);
}

/*: L:540 fork() is how both generations' Launchers start their Waker, which
 * sits in select() on the input devices and writes LHREQ_BREAK while the
 * Launcher is inside read().  A child that kept the parent's connections
 * would talk over the parent's requests, so it gets its own: each joins the
 * same file (or memory) as a new task, and takes the same descriptor number.
 * The Host then knows the Waker is not the Launcher, as lguest knew by
 * `current`. */
pid_t fork(void)
{
	REAL(pid_t, fork, (void));
	pid_t pid = real_fork();
	if (pid != 0)
		return pid;
	for (int i = 0; i < nfiles; i++) {
		int s = dial();
		if (s < 0 || ask(s, OP_JOIN_FILE, files[i].token, 0, 0, NULL, 0, NULL, 0, NULL) < 0)
			_exit(127);
		dup2(s, files[i].fd);
		close(s);
	}
	if (mm_fd >= 0) {
		int s = dial();
		if (s < 0 || ask(s, OP_JOIN_MM, mm_token, 0, 0, NULL, 0, NULL, 0, NULL) < 0)
			_exit(127);
		dup3(s, mm_fd, O_CLOEXEC);
		close(s);
	}
	return 0;
}

static int is_dev_zero(int fd)
{
	struct stat st;
	return fd >= 0 && fstat(fd, &st) == 0 && S_ISCHR(st.st_mode)
		&& major(st.st_rdev) == 1 && minor(st.st_rdev) == 5;
}

/*: L:550 Guest memory.  The Launcher maps /dev/zero for it; the door asks
 * the Host for that much of the machine's RAM and maps the Host's pages in
 * its place, shared.  The first such mapping fixes where Guest memory starts
 * in the Launcher (address 0 for 2.6.23, anywhere for 2.6.25's guest_base);
 * later ones must lie in the room the Host keeps above it (2.6.23 maps its
 * device pages just above the Guest's RAM).  A Launcher that maps a file
 * privately over Guest memory, as lguest's loads the kernel, gets the file's
 * bytes copied in with pread() instead: a private mapping would be pages of
 * its own that the Host never sees. */
static void *map_guest(void *addr, size_t len, int prot, int flags)
{
	REAL(void *, mmap64, (void *, size_t, int, int, int, off64_t));
	uintptr_t want = (uintptr_t)addr;
	if (mm() < 0)
		return MAP_FAILED;
	len = (len + 4095) & ~(size_t)4095;
	if (!(flags & MAP_FIXED)) {
		if (win_set) {
			want = win_end;
		} else {
			/* Reserve the whole room, so later mappings fit above. */
			void *r = real_mmap64(addr, len + (16 << 20), PROT_NONE,
					      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (r == MAP_FAILED)
				return r;
			want = (uintptr_t)r;
		}
	}
	uint32_t room = 0;
	int passed = -1;
	long off = ask(mm_fd, OP_MAP, want, len, 0, NULL, 0, &room, sizeof(room), &passed);
	if (passed >= 0 && mem_fd < 0) {
		/* The window's own file: this process's Guest memory, and only that. */
		mem_fd = fcntl(passed, F_DUPFD_CLOEXEC, PRIVATE_FD_MIN);
		if (mem_fd < 0)
			mem_fd = passed;
		else
			close(passed);
	} else if (passed >= 0) {
		close(passed);
	}
	if (off < 0)
		return MAP_FAILED;
	if (mem_fd < 0) {
		errno = ENODEV;
		return MAP_FAILED;
	}
	void *got = real_mmap64((void *)want, len, prot | PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_FIXED, mem_fd, (off64_t)(uint32_t)off);
	if (got == MAP_FAILED) {
		int e = errno;
		if (want < 65536 && (e == EPERM || e == EACCES))
			say("cannot map Guest memory at address %#lx: the kernel keeps the "
			    "lowest pages from processes (vm.mmap_min_addr); 2.6.23's Launcher needs "
			    "them: run as root or `sysctl -w vm.mmap_min_addr=0`",
			    (unsigned long)want);
		errno = e;
		return MAP_FAILED;
	}
	if (!win_set) {
		win_set = 1;
		win_lo = want;
		win_end = want;
		win_hi = want + room;
	}
	if (want + len > win_end)
		win_end = want + len;
	return got;
}

static void *map_file_over_guest(void *addr, size_t len, int fd, off64_t off)
{
	REAL(ssize_t, pread64, (int, void *, size_t, off64_t));
	char *p = addr;
	size_t done = 0;
	while (done < len) {
		ssize_t k = real_pread64(fd, p + done, len - done, off + done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return MAP_FAILED;
		if (k == 0)
			break;
		done += k;
	}
	/* Past the end of the file a mapping reads zeros. */
	memset(p + done, 0, len - done);
	return addr;
}

static void *door_mmap(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	REAL(void *, mmap64, (void *, size_t, int, int, int, off64_t));
	uintptr_t a = (uintptr_t)addr;
	if (!(flags & MAP_ANONYMOUS) && is_dev_zero(fd))
		return map_guest(addr, len, prot, flags);
	if (win_set && (flags & MAP_FIXED) && a < win_end && a + len > win_lo) {
		if (a < win_lo || a + len > win_end || (flags & MAP_SHARED)) {
			errno = EINVAL;
			return MAP_FAILED;
		}
		if (flags & MAP_ANONYMOUS) {
			memset(addr, 0, len);
			return addr;
		}
		return map_file_over_guest(addr, len, fd, off);
	}
	return real_mmap64(addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return door_mmap(addr, len, prot, flags, fd, (off64_t)(uint32_t)off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	return door_mmap(addr, len, prot, flags, fd, off);
}
#endif
