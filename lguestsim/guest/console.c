/*
 * console.c: the Guest's console.
 *
 * The simplest device there is.  Output is a DMA to the special key 0,
 * which the Host hands to the Launcher, which writes it to its standard
 * output.  That needs no set-up at all, so printk() works from the first
 * line of start_kernel(), long before the device scan.  Input comes the
 * other way: once the bus has found the console device, we bind a buffer to
 * key 0 and the Launcher fills it when someone types.
 */
#include "guest.h"
#include "lguest_launcher.h"

/*: D:310 Output.  The Host wants physical addresses, and no piece of a DMA
 * may cross a page boundary or be longer than a page.  So we cut the output
 * where it crosses a page and send each piece as a DMA of its own, with one
 * section (the second length, 0, ends the list). */
void console_write_phys(u32 phys, u32 len)
{
	struct lguest_dma dma = { .used_len = 0 };

	dma.addr[0] = phys;
	dma.len[0] = len;
	dma.len[1] = 0;
	lguest_send_dma(LGUEST_CONSOLE_DMA_KEY, &dma);
}

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
 * back to 0 when we have read them, which tells the Host it may use the
 * buffer again. */
static char inbuf[256] __attribute__((aligned(256)));
static struct lguest_dma cons_input;

/*: D:350 The console interrupt: something was typed (or the Launcher's
 * input ended, which it reports as an empty buffer).  This small kernel
 * has no terminal to hand the bytes to, so it only counts them and says
 * so. */
static void console_interrupt(unsigned int irq)
{
	u32 len = cons_input.used_len;

	(void)irq;
	if (!len)
		return;
	printk("console: %u bytes of input\n", len);
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
		return -1;
	}
	return 0;
}

/*: D:360 The driver, as the bus sees it. */
struct lguest_driver console_driver = {
	.name = "lguestcons",
	.device_type = LGUEST_DEVICE_T_CONSOLE,
	.probe = console_probe,
};
