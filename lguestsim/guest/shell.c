/*
 * shell.c: commands a reader can type at the Guest's console.
 *
 * With "shell" on the kernel command line, the user program ends by
 * reading lines from the console (file descriptor 0) and running them,
 * until "quit" or the end of the input.  Every command is a system call or
 * two away from a driver: "read" and "write" go to the block driver, "ping"
 * and "net" to the network driver, "devices" shows the descriptor page the
 * bus reads.  Without "shell", device_demo() runs a few of the same
 * commands by itself, if there are devices to show.
 */
#include "ulib.h"

#define DISK_FD		FIRST_DISK_FD	/* the first disk, /dev/lgba */

#ifdef CONFIG_VIRTIO
/* 2.6.25: virtio ids, and the virtio status bits. */
static const char *const type_names[] = { "(empty)", "network", "block", "console" };

static const struct {
	u32 bit;
	const char *name;
} status_bits[] = {
	{ 1, "ACKNOWLEDGE" }, { 2, "DRIVER" }, { 4, "DRIVER_OK" }, { 0x80, "FAILED" },
};
#else
static const char *const type_names[] = { "(empty)", "console", "network", "block" };

/* The status bits, named as in lguest_launcher.h. */
static const struct {
	u32 bit;
	const char *name;
} status_bits[] = {
	{ 1, "ACKNOWLEDGE" }, { 2, "DRIVER" }, { 4, "DRIVER_OK" },
	{ 8, "REMOVED" }, { 16, "REMOVED_ACK" }, { 128, "FAILED" },
};
#endif

/* A device's status byte as the names of its bits. */
static void add_status(struct line *l, u32 status)
{
	u32 b;

	for (b = 0; b < sizeof(status_bits) / sizeof(status_bits[0]); b++) {
		if (status & status_bits[b].bit) {
			add(l, " ");
			add(l, status_bits[b].name);
		}
	}
}

#ifdef CONFIG_VIRTIO
static void cmd_devices(char *args)
{
	struct lg_device table[16];
	struct line l = { .len = 0 };
	u32 i, q, n;

	(void)args;
	n = lguest_devices(table);
	for (i = 0; i < n && i < 16; i++) {
		if (!table[i].type)
			continue;
		add(&l, "device ");
		add_number(&l, i, 10);
		add(&l, ": virtio id ");
		add_number(&l, table[i].type, 10);
		add(&l, " (");
		add(&l, table[i].type < 4 ? type_names[table[i].type] : "unknown");
		add(&l, "), features ");
		add_number(&l, table[i].features, 16);
		add(&l, " accepted ");
		add_number(&l, table[i].accepted, 16);
		add(&l, ", status ");
		add_number(&l, table[i].status, 16);
		add_status(&l, table[i].status);
		send(&l);
		add(&l, "  ");
		for (q = 0; q < table[i].num_vq && q < 2; q++) {
			add(&l, q ? ", vq" : "vq");
			add_number(&l, q, 10);
			add(&l, " irq ");
			add_number(&l, table[i].vq[q].irq, 10);
			add(&l, " at pfn ");
			add_number(&l, table[i].vq[q].pfn, 16);
		}
		send(&l);
	}
}

static void cmd_reboot(char *args)
{
	(void)args;
	say("rebooting");
	reboot();
	say("reboot failed");
}
#else
static void cmd_devices(char *args)
{
	struct lg_device table[16];
	struct line l = { .len = 0 };
	u32 i, n;

	(void)args;
	n = lguest_devices(table);
	for (i = 0; i < n; i++) {
		if (!table[i].type)
			continue;
		add(&l, "device ");
		add_number(&l, i, 10);
		add(&l, ": ");
		add(&l, table[i].type < 4 ? type_names[table[i].type] : "unknown");
		add(&l, ", irq ");
		add_number(&l, i + 1, 10);
		add(&l, ", features ");
		add_number(&l, table[i].features, 16);
		add(&l, ", ");
		add_number(&l, table[i].num_pages, 10);
		add(&l, table[i].num_pages == 1 ? " page" : " pages");
		if (table[i].num_pages) {
			add(&l, " at pfn ");
			add_number(&l, table[i].pfn, 16);
		}
		add(&l, ", status ");
		add_number(&l, table[i].status, 16);
		add_status(&l, table[i].status);
		send(&l);
	}
}

#endif

/* The disk's size in sectors, or a message and -1 if there is no disk. */
static int disk_sectors(u32 *sectors)
{
	int size = lseek(DISK_FD, 0, SEEK_END);

	if (size < 0) {
		say("there is no disk (start the Launcher with --block=FILE)");
		return -1;
	}
	*sectors = (u32)size / 512;
	return 0;
}

/* Which sector: a number, and on the disk (offsets are 32-bit, so at most
 * 2 GiB in). */
static int sector_arg(char **args, u32 *sector)
{
	u32 sectors;
	char *word = next_word(args);
	struct line l = { .len = 0 };

	if (!word || parse_number(word, sector) != 0) {
		say("which sector? (a number)");
		return -1;
	}
	if (disk_sectors(&sectors) != 0)
		return -1;
	if (*sector >= sectors || *sector >= 0x400000) {
		add(&l, "sector ");
		add_number(&l, *sector, 10);
		add(&l, " is past the end of the disk (");
		add_number(&l, sectors, 10);
		add(&l, " sectors)");
		send(&l);
		return -1;
	}
	return 0;
}

static void report_error(const char *what, int err)
{
	struct line l = { .len = 0 };

	add(&l, what);
	add(&l, " failed: error ");
	add_signed(&l, err);
	send(&l);
}

/* A sector in hex and as text, 16 bytes a line, as "hexdump -C" shows it:
 * a line the same as the one before is shown as a "*". */
static void hexdump(const u8 *buf, u32 len)
{
	struct line l = { .len = 0 };
	u32 off, i;
	int same, starred = 0;

	for (off = 0; off < len; off += 16) {
		same = off > 0 && off + 16 < len;
		for (i = 0; same && i < 16; i++)
			same = buf[off + i] == buf[off - 16 + i];
		if (same) {
			if (!starred)
				say("*");
			starred = 1;
			continue;
		}
		starred = 0;
		add_hex(&l, off, 3);
		add(&l, " ");
		for (i = 0; i < 16; i++) {
			add(&l, i == 8 ? "  " : " ");
			add_hex(&l, buf[off + i], 2);
		}
		add(&l, "  |");
		for (i = 0; i < 16; i++)
			add_char(&l, buf[off + i] >= ' ' && buf[off + i] < 0x7F ? buf[off + i] : '.');
		add(&l, "|");
		send(&l);
	}
}

static u8 sector_buf[512];

static void cmd_read(char *args)
{
	struct line l = { .len = 0 };
	u32 sector;
	int n;

	if (sector_arg(&args, &sector) != 0)
		return;
	lseek(DISK_FD, sector * 512, SEEK_SET);
	n = read(DISK_FD, sector_buf, 512);
	if (n != 512) {
		report_error("read", n);
		return;
	}
	add(&l, "sector ");
	add_number(&l, sector, 10);
	add(&l, " of lgba:");
	send(&l);
	hexdump(sector_buf, 512);
}

/* The rest of the line, spaces and all, is the text to write. */
static void cmd_write(char *args)
{
	struct line l = { .len = 0 };
	u32 sector, len;
	int n;

	if (sector_arg(&args, &sector) != 0)
		return;
	while (*args == ' ')
		args++;
	len = strlen(args);
	if (len > 512)
		len = 512;
	memset(sector_buf, 0, 512);
	memcpy(sector_buf, args, len);
	lseek(DISK_FD, sector * 512, SEEK_SET);
	n = write(DISK_FD, sector_buf, 512);
	if (n != 512) {
		report_error("write", n);
		return;
	}
	add(&l, "wrote ");
	add_number(&l, len, 10);
	add(&l, " bytes of text (and zeros to 512) to sector ");
	add_number(&l, sector, 10);
	send(&l);
}

/* blkbench KIB: the benchmark's block workload (benchmarks/bench_virtio.py),
 * the same on both generations: KIB KiB written from sector 0 in 4 KiB
 * requests, then read back in 4 KiB requests and compared. */
static u8 bench_buf[4096];

static void cmd_blkbench(char *args)
{
	struct line l = { .len = 0 };
	u32 kib, sectors, i, j, requests = 0;
	char *word = next_word(&args);
	int n;

	if (!word || parse_number(word, &kib) != 0 || kib == 0 || kib % 4) {
		say("blkbench KIB: a number of KiB, a multiple of 4");
		return;
	}
	if (disk_sectors(&sectors) != 0)
		return;
	if (kib * 2 > sectors) {
		say("blkbench: the disk is too small");
		return;
	}
	for (i = 0; i < kib / 4; i++) {
		for (j = 0; j < sizeof(bench_buf); j++)
			bench_buf[j] = (u8)(i * 7 + j);
		lseek(DISK_FD, i * 4096, SEEK_SET);
		n = write(DISK_FD, bench_buf, sizeof(bench_buf));
		requests++;
		if (n != (int)sizeof(bench_buf)) {
			report_error("blkbench write", n);
			return;
		}
	}
	for (i = 0; i < kib / 4; i++) {
		lseek(DISK_FD, i * 4096, SEEK_SET);
		n = read(DISK_FD, bench_buf, sizeof(bench_buf));
		requests++;
		if (n != (int)sizeof(bench_buf)) {
			report_error("blkbench read", n);
			return;
		}
		for (j = 0; j < sizeof(bench_buf); j++) {
			if (bench_buf[j] != (u8)(i * 7 + j)) {
				say("blkbench: what was read back differs");
				return;
			}
		}
	}
	add(&l, "blkbench: ");
	add_number(&l, kib, 10);
	add(&l, " KiB written and read back in ");
	add_number(&l, requests, 10);
	add(&l, " requests of 4 KiB, ok");
	send(&l);
}

static void cmd_net(char *args)
{
	struct net_peer peers[16];
	struct line l = { .len = 0 };
	u8 mac[6];
	int i, n;

	(void)args;
	n = lguest_net(peers, 16);
	if (n < 0) {
		say("there is no network device");
		return;
	}
	for (i = 0; i < n; i++) {
		memcpy(mac, peers[i].mac, 6);
		mac[0] &= ~1;		/* the promiscuous bit is not part of the address */
		add(&l, "slot ");
		add_number(&l, peers[i].slot, 10);
		add(&l, ": ");
		add_mac(&l, mac);
		if (peers[i].me)
			add(&l, " (this Guest)");
		if (peers[i].mac[0] & 1)
			add(&l, " promiscuous");
		send(&l);
	}
}

static void cmd_promisc(char *args)
{
	char *word = next_word(&args);
	int on;

	if (!word || (!streq(word, "on") && !streq(word, "off"))) {
		say("promisc on, or promisc off?");
		return;
	}
	on = streq(word, "on");
	if (lguest_promisc(on) != 0) {
		say("there is no network device");
		return;
	}
	say(on ? "promiscuous: this Guest now sees every frame on the network"
	       : "not promiscuous: only frames for this Guest (and broadcasts)");
}

/* Round trips are in nanoseconds; we show microseconds with three
 * decimals. */
static void add_time(struct line *l, u32 ns)
{
	add_number(l, ns / 1000, 10);
	add_char(l, '.');
	add_char(l, '0' + ns % 1000 / 100);
	add_char(l, '0' + ns % 100 / 10);
	add_char(l, '0' + ns % 10);
	add(l, " us");
}

static void cmd_ping(char *args)
{
	static struct lg_ping ping;
	struct line l = { .len = 0 };
	u8 dest[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	char *word;
	u32 count = 1, seq;
	int i, n;

	word = next_word(&args);
	if (word && !streq(word, "broadcast") && parse_mac(word, dest) != 0) {
		say("ping whom? an address like 02:00:01:00:00:00, or broadcast");
		return;
	}
	word = next_word(&args);
	if (word && (parse_number(word, &count) != 0 || !count || count > 100)) {
		say("how many? (1 to 100)");
		return;
	}
	for (seq = 1; seq <= count; seq++) {
		memcpy(ping.dest, dest, 6);
		ping.seq = seq;
		n = lguest_ping(&ping);
		if (n == -ENETDOWN) {
			say("there is no network device");
			return;
		}
		if (n == -EHOSTUNREACH) {
			say("ping: no one else on the network has that address");
			return;
		}
		if (n < 0) {
			report_error("ping", n);
			return;
		}
		for (i = 0; i < n; i++) {
			add(&l, "60 bytes from ");
			add_mac(&l, ping.reply[i].mac);
			add(&l, ": seq=");
			add_number(&l, ping.reply[i].seq, 10);
			add(&l, " time=");
			add_time(&l, ping.reply[i].ns);
			send(&l);
		}
		if ((u32)n < ping.sent_to) {
			add(&l, "seq=");
			add_number(&l, seq, 10);
			add(&l, ": ");
			add_number(&l, ping.sent_to - n, 10);
			add(&l, " of ");
			add_number(&l, ping.sent_to, 10);
			add(&l, ping.sent_to == 1 ? " peer" : " peers");
			add(&l, " did not answer within ");
			add_number(&l, ping.timeout_ns / 1000000, 10);
			add(&l, " ms");
			send(&l);
		}
	}
}

static void cmd_help(char *args);

static const struct command {
	const char *name, *args, *help;
	void (*run)(char *args);
} commands[] = {
	{ "help", "", "this list", cmd_help },
	{ "devices", "", "the device descriptors and their status bits", cmd_devices },
	{ "read", "SECTOR", "show a sector of the disk, in hex and as text", cmd_read },
	{ "write", "SECTOR TEXT", "write TEXT into a sector (zeros after it)", cmd_write },
	{ "blkbench", "KIB", "write KIB KiB in 4 KiB requests, read them back", cmd_blkbench },
	{ "net", "", "the network page: who is in which slot", cmd_net },
	{ "ping", "[MAC|broadcast] [COUNT]", "echo requests; other Guests' kernels answer",
	  cmd_ping },
	{ "promisc", "on|off", "see every frame on the network, or not", cmd_promisc },
#ifdef CONFIG_VIRTIO
	{ "reboot", "", "restart the Guest (2.6.25)", cmd_reboot },
#endif
	{ "quit", "", "power off", 0 },
};
#define NUM_COMMANDS	(sizeof(commands) / sizeof(commands[0]))

static void cmd_help(char *args)
{
	struct line l = { .len = 0 };
	u32 i;

	(void)args;
	for (i = 0; i < NUM_COMMANDS; i++) {
		add(&l, "  ");
		add(&l, commands[i].name);
		if (*commands[i].args) {
			add(&l, " ");
			add(&l, commands[i].args);
		}
		while (l.len < 34)
			add_char(&l, ' ');
		add(&l, commands[i].help);
		send(&l);
	}
}

/*: G:361 Running one line: the first word names the command, and the
 * rest of the line is its business.  The table's "quit" entry has no
 * function, and that is how the shell learns to stop (the 0 return).  An
 * empty line is not an error; an unknown word is answered and ignored. */
int run_command(char *cmdline)
{
	struct line l = { .len = 0 };
	char *word = next_word(&cmdline);
	u32 i;

	if (!word)
		return 1;
	for (i = 0; i < NUM_COMMANDS; i++) {
		if (!streq(word, commands[i].name))
			continue;
		if (!commands[i].run)
			return 0;
		commands[i].run(cmdline);
		return 1;
	}
	add(&l, word);
	add(&l, ": no such command (try help)");
	send(&l);
	return 1;
}

#define PROMPT	"guest> "

/*: G:360 The shell: a prompt, a line read from file descriptor 0, the
 * command run, until "quit" or the end of the input.  A read() on the
 * console returns one line, as on a terminal: the kernel collects the
 * characters the Launcher sends, echoes them, and wakes us at the newline
 * (console.c).  When the Launcher's own input ends, it sends an interrupt
 * with nothing in the buffer, and read() then returns 0, end of file, which
 * ends the shell as "quit" would. */
void shell(void)
{
	static char buf[256];
	int n;

	say("user: reading commands from the console (help lists them)");
	for (;;) {
		write(STDOUT_FILENO, PROMPT, sizeof(PROMPT) - 1);
		n = read(STDIN_FILENO, buf, sizeof(buf) - 1);
		if (n <= 0) {
			say("");
			say("user: the console input has ended");
			return;
		}
		if (buf[n - 1] == '\n')
			n--;
		buf[n] = '\0';
		if (!run_command(buf))
			return;
	}
}

/* Without a shell: show the disk and the network, if there are any, with
 * the commands a reader could type. */
static void demo_command(const char *command)
{
	static char buf[64];
	const u32 plen = sizeof(PROMPT) - 1;
	u32 len = strlen(command);

	/* The prompt and the command, in one write, as if typed. */
	memcpy(buf, PROMPT, plen);
	memcpy(buf + plen, command, len);
	buf[plen + len] = '\n';
	write(STDOUT_FILENO, buf, plen + len + 1);
	buf[plen + len] = '\0';
	run_command(buf + plen);
}

void device_demo(void)
{
	struct lg_device table[16];
	int i, n, disk = 0, net = 0;

	n = lguest_devices(table);
	for (i = 0; i < n; i++) {
#ifdef CONFIG_VIRTIO
		disk |= table[i].type == 2;
		net |= table[i].type == 1;
#else
		disk |= table[i].type == 3;
		net |= table[i].type == 2;
#endif
	}
	if (!disk && !net)
		return;
	demo_command("devices");
	if (disk)
		demo_command("read 0");
	if (net) {
		demo_command("net");
		demo_command("ping broadcast");
	}
}
