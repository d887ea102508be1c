/*: D:300
 * console.c: the Guest's console.
 *
 * The simplest device there is.  Output is a DMA to the special key 0,
 * which the Host hands to the Launcher, which writes it to its standard
 * output.  Input comes the other way: once the bus has found the console
 * device, we bind one buffer to key 0 and the Launcher fills it when
 * someone types, and interrupts us.
 *
 * Linux puts the generic "hvc" console layer and a terminal on top of
 * those two directions; its lguest driver only supplies put_chars() and
 * get_chars().  Our kernel has no terminal layer, so the bottom of this
 * file is a very small one: it collects what arrives into lines, echoes
 * them as a terminal would, and hands one line at a time to a program that
 * reads file descriptor 0.
 */
#include "guest.h"
#include "lguest_launcher.h"

/*: D:310 Output.  The Host wants physical addresses, and no piece of a DMA
 * may cross a page boundary or be longer than a page.  So we cut the output
 * where it crosses a page and send each piece as a DMA of its own, with one
 * section (the second length, 0, ends the list).  The Host hands it to the
 * Launcher, who writes it out before we run again. */
void console_write_phys(u32 phys, u32 len)
{
	struct lguest_dma dma = { .used_len = 0 };

	dma.addr[0] = phys;
	dma.len[0] = len;
	dma.len[1] = 0;
	lguest_send_dma(LGUEST_CONSOLE_DMA_KEY, &dma);
}

/*: D:320 Output needs no set-up at all: no buffer to bind, no device to
 * find.  That is why printk() works from the first line of start_kernel(),
 * long before the bus has found the console device (Linux registers its
 * lguest console that early, output-only, for the same reason). */
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

/*: D:340 Input.  One buffer, described by a "struct lguest_dma" with a
 * single section.  The buffer is aligned so it cannot cross a page.  The
 * Host writes the number of bytes it put there into used_len; we set it
 * back to 0 when we have taken them, which tells the Host it may use the
 * buffer again. */
static char inbuf[256] __attribute__((aligned(256)));
static struct lguest_dma cons_input;

/* What arrived and nobody has read yet: a ring of characters, filled by
 * the interrupt handler and emptied by console_read().  The indices only
 * ever grow; the ring's size is a power of two. */
#define RING_SIZE	1024
static char ring[RING_SIZE];
static volatile u32 ring_in, ring_out;
static volatile int input_ended;

/*: D:350 The console interrupt: the Launcher has put input in our buffer.
 * Linux's get_chars() is asked for a few bytes at a time and keeps its
 * place in the buffer between calls; we take everything at once into the
 * ring and hand the buffer straight back (used_len = 0), so the next
 * keystrokes have somewhere to go.  Anything beyond the ring's room is
 * lost, as on a real terminal whose reader is too slow.
 *
 * An interrupt with nothing in the buffer is how the Launcher says that its
 * own input has ended (it read nothing from its standard input).  Linux's
 * console simply sees no characters; our terminal treats it as the end of
 * the input, so a program reading the console is told so. */
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

/*: D:370 The bus calls us when it finds the console device.  We bind the
 * input buffer at key 0, asking for the device's interrupt (its index plus
 * one: interrupt 0 is the timer) when input arrives. */
static int console_probe(struct lguest_device *dev)
{
	cons_input.used_len = 0;
	cons_input.addr[0] = __pa(inbuf);
	cons_input.len[0] = sizeof(inbuf);
	cons_input.len[1] = 0;

	request_irq(lgdev_irq(dev), console_interrupt);
	if (lguest_bind_dma(LGUEST_CONSOLE_DMA_KEY, &cons_input, 1, lgdev_irq(dev)) != 0) {
		printk("console: the Host refused our input buffer\n");
		return -ENOMEM;
	}
	return 0;
}

/*: D:360 The driver, as the bus sees it: a name, the type of device it
 * drives, and the function to call when the bus finds one. */
struct lguest_driver console_driver = {
	.name = "lguestcons",
	.device_type = LGUEST_DEVICE_T_CONSOLE,
	.probe = console_probe,
};

/*
 * A terminal in miniature.  The Launcher puts a real terminal in raw mode,
 * so every key comes to us as it is pressed and nothing is shown unless we
 * show it: like Linux's terminal layer in its usual ("canonical") mode, we
 * collect characters into a line, echo them, let Backspace take back the
 * last one, turn Enter (a carriage return) into a newline, and only hand a
 * line to a reader once it is complete.  Input from a pipe works the same
 * way.
 *
 * The work happens when a program asks for a line, not in the interrupt,
 * so input typed ahead while a command runs is echoed just before the
 * program reads it, and a transcript reads in order.
 */
static char line[256];
static u32 line_len;
static int line_ready, last_was_cr;

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

/* Move characters from the ring into the line until it is complete; say
 * whether a reader can have it now (or has to be told the input ended).
 * Called with interrupts off, so the ring holds still. */
static int cook_input(void)
{
	char c;

	while (!line_ready && ring_out != ring_in) {
		c = ring[ring_out++ % RING_SIZE];
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
		/* Other control characters are ignored; so is anything past
		 * the end of a full line, except its end. */
		if ((c != '\n' && c != '\t' && (u8)c < ' ') ||
		    (c != '\n' && line_len == sizeof(line) - 1))
			continue;
		line[line_len++] = c;
		echo(&c, 1);
		if (c == '\n')
			line_ready = 1;
	}
	if (echo_len) {
		console_write(echo_buf, echo_len);
		echo_len = 0;
	}
	return line_ready || (input_ended && ring_out == ring_in);
}

/* read() of the console: sleep until a whole line has arrived (halting, as
 * every wait in this kernel does), then hand over up to "len" bytes of it.
 * 0 means the input has ended; a line cut short by the end comes first. */
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
