/*: D:300 The Guest console driver (console.c).
 *
 * The simplest of the three drivers, and the one that must work first.
 * Output is a DMA sent to key 0, which is nobody's memory, so the Host hands
 * it to the Launcher, and the Launcher prints it on its standard output.
 * Input runs the other way: once the bus has found the console device we
 * bind a single buffer at key 0, and when someone types, the Launcher fills
 * that buffer and raises the console's interrupt.
 *
 * In Linux this driver is tiny because the generic "hvc" console layer does
 * the rest: the driver only supplies put_chars() and get_chars(), and a
 * terminal sits on top.  Our kernel has no terminal layer, so this file
 * ends with a very small one (D:610 onwards), which gathers what is typed
 * into lines, echoes it, and hands a program one line per read().
 */

#include "guest.h"
#include "lguest_launcher.h"

/*: D:310 Console output, one piece at a time: Linux's put_chars().  The
 * piece becomes a DMA with a single section, physical address and length,
 * and the second length, 0, ends the list.  Key 0 is LGUEST_CONSOLE_DMA_KEY:
 * a disk or a network uses an address in its own memory as its key, but the
 * console has no memory, so it gets the one key that is never a device
 * address.  Address 0 is in our private memory, where only our own Launcher
 * can be listening, so the Host stops running us until the Launcher has
 * read the DMA and printed the text: the words are out before SEND_DMA
 * returns.  The caller must
 * keep the piece inside one page; the write() system call (process.c)
 * calls this directly with the program's own pages, and so does
 * console_write() below. */
void console_write_phys(u32 phys, u32 len)
{
	struct lguest_dma dma = { .used_len = 0 };

	dma.addr[0] = phys;
	dma.len[0] = len;
	dma.len[1] = 0;
	lguest_send_dma(LGUEST_CONSOLE_DMA_KEY, &dma);
}

/*: D:320 Output needs nothing set up: no buffer to bind, no device to
 * find, not even our own page tables.  That is why printk() works from the
 * first line of start_kernel(), long before lguest_bus_init() has found the
 * console device, just as Linux registers its lguest console very early in
 * boot, output only, so the first boot messages are not lost.  All this
 * function adds is the rule put_chars() in Linux only hoped to keep: a
 * section may not cross a page, so a buffer that does is sent in two. */
void console_write(const char *buf, u32 len)
{
	u32 phys, piece;

	while (len) {
		phys = __pa(buf);
		piece = PAGE_SIZE - (phys & ~PAGE_MASK);
		if (piece > len)
			piece = len;
		console_write_phys(phys, piece);
		buf += piece;
		len -= piece;
	}
}

/*: D:340 Console input arrives in exactly one buffer, 256 bytes, described
 * by a "struct lguest_dma" with a single section.  The buffer is aligned
 * to its own size so it can never straddle a page, and console_probe()
 * fills in its physical address.  The Host (or, for the console, the
 * Launcher) writes the number of bytes it put there into used_len; setting
 * used_len back to 0 hands the buffer back for the next input. */
static char inbuf[256] __attribute__((aligned(256)));
static struct lguest_dma cons_input;

/* What arrived and nobody has read yet: a ring of characters, filled by
 * the interrupt handler and emptied by console_read().  The indices only
 * ever grow; the ring's size is a power of two. */
#define RING_SIZE	1024
static char ring[RING_SIZE];
static volatile u32 ring_in, ring_out;
static volatile int input_ended;

/*: D:350 The console's interrupt: the Launcher has put some input into our
 * buffer.  Linux's get_chars() is asked for a few bytes at a time and keeps
 * its place in the buffer between calls; we copy everything at once into
 * the ring and hand the buffer straight back (used_len = 0), so the next
 * keystrokes already have somewhere to go.  What does not fit in the ring
 * is lost, as on a real terminal whose reader falls behind.
 *
 * An interrupt with nothing in the buffer is how the Launcher says that its
 * own input has ended (its read of standard input returned nothing).
 * Linux's console just sees no characters; our terminal remembers it, so a
 * program reading the console gets end of file, and the shell quits. */
static void console_interrupt(unsigned int irq)
{
	u32 len = cons_input.used_len, i;

	(void)irq;
	if (!len) {
		input_ended = 1;
		return;
	}
	for (i = 0; i < len && ring_in - ring_out < RING_SIZE; i++)
		ring[ring_in++ % RING_SIZE] = inbuf[i];
	barrier();
	cons_input.used_len = 0;
}

/*: M:002 A flood of input can still beat this driver.  There is one input
 * buffer, and while the Guest holds it the Launcher has nowhere to put more:
 * lguestsim's Launcher keeps it waiting in its pipe, but throws it away
 * ("console: no dma buffer!") if the Guest goes to sleep without a buffer
 * bound.  Then the ring drops whatever a slow reader leaves unread.  Two
 * improvements to try: bind an array of several input buffers at key 0
 * (BIND_DMA takes a count, and the Launcher's GETDMA picks the first free
 * one), and stop handing the buffer back while the ring is nearly full, so
 * that the Launcher, not the Guest, holds the backlog.  Pasting a few
 * kilobytes into the shell while it runs a command shows the difference. */

/*: D:370 The bus calls this when it finds the console device.  We take the
 * device's interrupt (its index plus one, D:380) for console_interrupt(),
 * and bind the input buffer at key 0 asking for that same interrupt.  Linux
 * first creates its hvc console instance here, telling it which interrupt
 * means "input waiting"; we have nothing to create.  If the Host refuses
 * the buffer, the probe fails, the descriptor never gets DRIVER_OK, and the
 * Guest can still write to the console: output never needed the device. */
static int console_probe(struct lguest_device *dev)
{
	cons_input.used_len = 0;
	cons_input.addr[0] = __pa(inbuf);
	cons_input.len[0] = sizeof(inbuf);
	cons_input.len[1] = 0;

	request_irq(lgdev_irq(dev), console_interrupt);
	if (lguest_bind_dma(LGUEST_CONSOLE_DMA_KEY, &cons_input, 1, lgdev_irq(dev)) != 0) {
		printk("console: the Host refused our input buffer\n");
		free_irq(lgdev_irq(dev));
		return -ENOMEM;
	}
	return 0;
}

/*: D:360 The driver, as the bus sees it: every lguest driver has this same
 * shape (D:092), a name, the device type it drives, and the function to call
 * when the bus finds one.  The console has no shutdown function, since
 * there is nothing to undo before power-off.  Linux drivers register their
 * "struct lguest_driver" at boot; ours is listed in lguest_bus.c's table. */
struct lguest_driver console_driver = {
	.name = "lguestcons",
	.device_type = LGUEST_DEVICE_T_CONSOLE,
	.probe = console_probe,
};

/*: D:610 A terminal in miniature, lguestsim's own.  The Launcher puts a
 * real terminal in raw mode, so every key reaches us as it is pressed and
 * nothing appears on the screen unless we echo it.  Like Linux's terminal
 * layer in its usual ("canonical") mode, we collect characters into a line,
 * echo them, let Backspace take back the last one, turn Enter (a carriage
 * return) into a newline, and give a reader nothing until the line is
 * complete.  Input from a pipe goes through the same steps.
 *
 * The work is done when a program asks for a line, not in the interrupt
 * handler, so input typed ahead while a command runs is echoed just before
 * the program reads it, and a transcript reads in order.  These are its
 * state: the line so far, whether it is complete, how many characters did
 * not fit in it, and where we are in an escape sequence. */
static char line[256];
static u32 line_len, line_dropped;
static int line_ready, last_was_cr;

/* A terminal sends the arrow keys (and Home, Delete, F1...) as escape
 * sequences: ESC [ then parameter bytes and one final byte, or ESC O and
 * one byte.  We have no cursor to move, so the whole sequence is ignored
 * rather than landing in the line as "[A". */
enum { ESC_NONE, ESC_SEEN, ESC_CSI, ESC_SS3 };
static int esc_state;

/* Is this character part of an escape sequence (and so to be ignored)? */
static int in_escape(char c)
{
	switch (esc_state) {
	case ESC_SEEN:
		esc_state = c == '[' ? ESC_CSI : c == 'O' ? ESC_SS3 : ESC_NONE;
		return 1;
	case ESC_CSI:
		/* Parameter and intermediate bytes go on; a final byte ends it. */
		if ((u8)c < 0x40 || (u8)c > 0x7E)
			return (u8)c >= 0x20;
		esc_state = ESC_NONE;
		return 1;
	case ESC_SS3:
		esc_state = ESC_NONE;
		return 1;
	}
	if (c == 0x1B) {
		esc_state = ESC_SEEN;
		return 1;
	}
	return 0;
}

#define LINE_CUT	"console: line too long: characters past the 255th were dropped\n"

/* Echoed characters are gathered and sent in one DMA. */
static char echo_buf[64];
static u32 echo_len;

static void echo(const char *s, u32 n)
{
	while (n--) {
		if (echo_len == sizeof(echo_buf)) {
			console_write(echo_buf, echo_len);
			echo_len = 0;
		}
		echo_buf[echo_len++] = *s++;
	}
}

/*: D:620 Cooking: move characters from the ring into the line until the
 * line is complete, echoing as we go, and say whether a reader can have
 * something now.  It can when a whole line is there, or when the input has
 * ended (D:350) and nothing is left to cook: then the reader gets what
 * there is, or 0 for end of file.  It is called with interrupts off, by the
 * wait_event() in console_read(), so the ring cannot change under it.
 * The echo is gathered in echo_buf and goes out in DMAs of up to 64
 * characters, not one per keystroke.  Escape sequences (arrow keys) are
 * skipped, and a line longer than 255 characters is cut there, with a
 * line of its own saying so once it ends. */
static int cook_input(void)
{
	char c;

	while (!line_ready && ring_out != ring_in) {
		c = ring[ring_out++ % RING_SIZE];
		if (in_escape(c))
			continue;
		/* "\r\n" is one end of line, not two. */
		if (c == '\n' && last_was_cr) {
			last_was_cr = 0;
			continue;
		}
		last_was_cr = (c == '\r');
		if (c == '\r')
			c = '\n';
		if (c == '\b' || c == 0x7F) {
			if (line_len) {
				line_len--;
				echo("\b \b", 3);
			}
			continue;
		}
		/* Other control characters are ignored. */
		if (c != '\n' && c != '\t' && (u8)c < ' ')
			continue;
		/* Past the end of a full line only its end gets in; what was
		 * dropped is counted, and the line's end says so. */
		if (c != '\n' && line_len == sizeof(line) - 1) {
			line_dropped++;
			continue;
		}
		line[line_len++] = c;
		echo(&c, 1);
		if (c == '\n') {
			line_ready = 1;
			if (line_dropped)
				echo(LINE_CUT, sizeof(LINE_CUT) - 1);
			line_dropped = 0;
		}
	}
	if (echo_len) {
		console_write(echo_buf, echo_len);
		echo_len = 0;
	}
	return line_ready || (input_ended && ring_out == ring_in);
}

/*: D:630 The read() system call on file descriptor 0 comes here (through
 * process.c).  We sleep until cook_input() has something for us, halting
 * like every wait in this kernel: the Host wakes us for the console's
 * interrupt, which fills the ring.  Then we hand over up to "len" bytes of
 * the line and keep the rest for the next read.  A return of 0 means the
 * input has ended; a last line cut short by the end still comes first. */
int console_read(char *buf, u32 len)
{
	u32 n;

	wait_event(cook_input());
	n = line_len < len ? line_len : len;
	memcpy(buf, line, n);
	line_len -= n;
	memcpy(line, line + n, line_len);	/* copies forwards: overlap is fine */
	if (!line_len)
		line_ready = 0;
	return n;
}
