/*
 * patch.c: rewriting the hottest paravirt call sites at boot.
 *
 * lguest_init() (boot.c) fills the `pv` table and then calls
 * apply_patches(), before anything else runs: every site guest.h's
 * PV_SITE() recorded in `.parainstructions` gets the matching sequence
 * from patch.S, unless the kernel command line holds the word "nopatch",
 * in which case every site keeps its indirect call.
 */
#include "guest.h"

extern const u8 lgstart_cli[], lgend_cli[], lgstart_sti[], lgend_sti[];
extern const u8 lgstart_pushf[], lgend_pushf[], lgstart_popf[], lgend_popf[];

/* Which replacement goes with which op. */
static const struct {
	const u8 *start, *end;
} replacements[NR_PATCHES] = {
	[PATCH_irq_disable] = { lgstart_cli, lgend_cli },
	[PATCH_irq_enable] = { lgstart_sti, lgend_sti },
	[PATCH_save_fl] = { lgstart_pushf, lgend_pushf },
	[PATCH_restore_fl] = { lgstart_popf, lgend_popf },
};

/* Linux's "generic" i386 nops: one instruction of n bytes that changes
 * nothing (mov or lea of %esi to itself), for n from 1 to 7. */
static const u8 nops[8][7] = {
	[1] = { 0x90 },					/* nop */
	[2] = { 0x89, 0xf6 },				/* mov %esi,%esi */
	[3] = { 0x8d, 0x76, 0x00 },			/* lea 0(%esi),%esi */
	[4] = { 0x8d, 0x74, 0x26, 0x00 },		/* lea 0(%esi,1),%esi */
	[5] = { 0x90, 0x8d, 0x74, 0x26, 0x00 },		/* nop; the 4-byte lea */
	[6] = { 0x8d, 0xb6, 0x00, 0x00, 0x00, 0x00 },	/* lea 0(%esi),%esi, disp32 */
	[7] = { 0x8d, 0xb4, 0x26, 0x00, 0x00, 0x00, 0x00 },
};

unsigned int patched_sites, unpatched_sites;

/*: G:060 apply_patches() walks the records PV_SITE() left in
 * `.parainstructions`.  For each it looks up the replacement for the op
 * the site calls, and if the replacement fits in the site's bytes it
 * copies it over the start of the site and fills the rest with nops, as
 * few as it can: each nop is an instruction the processor still has to
 * step over.  A replacement longer than its site is simply not used, and
 * the site keeps its indirect call, which is always correct, only slower;
 * the same goes for a record whose op has no replacement.  Linux's
 * lguest_patch() makes the same choice one site at a time.
 *
 * We patch ourselves while nothing else runs, before start_kernel(), so
 * no site is half-written when it executes; the processor fetches the new
 * bytes the next time it reaches them.  The word "nopatch" on the kernel
 * command line skips all this, and the kernel runs with every call in
 * place: boot it both ways and compare the instruction counts (M:040). */
void apply_patches(void)
{
	struct paravirt_patch_site *site;
	int off = cmdline_has("nopatch");

	for (site = __parainstructions; site < __parainstructions_end; site++) {
		const u8 *start;
		u32 len, gap;

		if (off || site->type >= NR_PATCHES) {
			unpatched_sites++;
			continue;
		}
		start = replacements[site->type].start;
		len = replacements[site->type].end - start;
		if (len > site->len) {
			unpatched_sites++;
			continue;
		}
		memcpy(site->instr, start, len);
		for (gap = site->len - len; gap; ) {
			u32 n = gap < 7 ? gap : 7;

			memcpy(site->instr + site->len - gap, nops[n], n);
			gap -= n;
		}
		patched_sites++;
	}
}
