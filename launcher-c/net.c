/*
 * net.c: the wire between Launchers' network devices.
 *
 * A wire is a name, PATH, and up to WIRE_PORTS Unix datagram sockets beside
 * it, PATH.1, PATH.2 ...: each Launcher naming PATH binds the first free
 * one, and that number is its port.  A frame sent down the wire goes to
 * every other port, whole, as one datagram, like a hub; each Launcher
 * keeps only the frames for its own Guest.  No privileges and no real
 * network are needed, and a Launcher that goes away leaves nothing behind
 * but a socket file the next one to find it dead reuses.
 */
#define _GNU_SOURCE
#include "lguest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct wire *joined[4];

static void port_address(struct sockaddr_un *addr, const char *path, int port)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	snprintf(addr->sun_path, sizeof(addr->sun_path), "%s.%d", path, port);
}

/* Is anyone listening on that port?  A socket file whose Launcher died
 * refuses connections. */
static bool port_is_dead(const struct sockaddr_un *addr)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	bool dead = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0 &&
		    errno == ECONNREFUSED;

	close(fd);
	return dead;
}

static void leave_all(void)
{
	unsigned int i;

	for (i = 0; i < sizeof(joined) / sizeof(joined[0]); i++)
		if (joined[i])
			wire_leave(joined[i]);
}

void wire_join(struct wire *w, const char *path)
{
	struct sockaddr_un addr;
	unsigned int i;
	int port;

	if (strlen(path) + 1 > sizeof(w->path))
		die(2, "--sharenet=%s: the name is too long for a socket", path);
	snprintf(w->path, sizeof(w->path), "%s", path);
	w->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (w->fd < 0)
		die(2, "--sharenet: socket: %s", strerror(errno));
	for (port = 1; port <= WIRE_PORTS; port++) {
		port_address(&addr, path, port);
		if (bind(w->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			break;
		if (errno == EADDRINUSE && port_is_dead(&addr)) {
			unlink(addr.sun_path);
			if (bind(w->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
				break;
		}
		if (errno != EADDRINUSE)
			die(2, "--sharenet=%s: cannot make %s: %s", path, addr.sun_path,
			    strerror(errno));
	}
	if (port > WIRE_PORTS)
		die(2, "--sharenet=%s: all %d ports are taken", path, WIRE_PORTS);
	w->port = port;
	for (i = 0; i < sizeof(joined) / sizeof(joined[0]); i++) {
		if (!joined[i]) {
			joined[i] = w;
			break;
		}
	}
	if (i == 0)
		atexit(leave_all);
}

/* To every other port; one that is not there, or full, simply misses it,
 * as a frame on a busy network may be lost. */
void wire_send(struct wire *w, const void *frame, size_t len)
{
	struct sockaddr_un addr;
	int port;

	for (port = 1; port <= WIRE_PORTS; port++) {
		if (port == w->port)
			continue;
		port_address(&addr, w->path, port);
		sendto(w->fd, frame, len, MSG_DONTWAIT, (struct sockaddr *)&addr, sizeof(addr));
	}
}

ssize_t wire_receive(struct wire *w, void *frame, size_t len)
{
	return recv(w->fd, frame, len, MSG_DONTWAIT);
}

void wire_leave(struct wire *w)
{
	struct sockaddr_un addr;

	if (w->fd < 0)
		return;
	port_address(&addr, w->path, w->port);
	unlink(addr.sun_path);
	close(w->fd);
	w->fd = -1;
}
