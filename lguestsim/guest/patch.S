/*
 * patch.S: the instructions that replace the hottest paravirt calls.
 *
 * guest.h's PV_SITE() marks the call sites of the four interrupt flag ops;
 * patch.c copies one of the sequences below over each of them at boot.
 * None of this code is ever run where it stands: it is a template, kept
 * with the read-only data, and only its copies execute.
 */
#include "guest.h"

/*: G:055 The replacements.  Each is what the Guest's C version of the op
 * comes down to once the call and return are gone: boot.c's
 * `lguest_irq_disable()` is a store of 0 to `lguest_data.irq_enabled`, so
 * that store is the whole of its replacement, and so on for the other
 * three.  `save_fl` returns its value in %eax and `restore_fl` takes its
 * argument there (the sites agree, PV_REGPARM in guest.h), so those two
 * are single moves.
 *
 * Each sequence sits between a start and an end label, so patch.c can
 * tell its length and check that it fits the site.  The stores are the
 * long form, an absolute address and a 32-bit immediate, ten bytes, which
 * is why a site is ten bytes too; the two moves through %eax have a short
 * form of five. */
	.section .rodata
	.globl	lgstart_cli, lgend_cli, lgstart_sti, lgend_sti
	.globl	lgstart_pushf, lgend_pushf, lgstart_popf, lgend_popf

lgstart_cli:	movl	$0, lguest_data + LGUEST_DATA_irq_enabled
lgend_cli:
lgstart_sti:	movl	$X86_EFLAGS_IF, lguest_data + LGUEST_DATA_irq_enabled
lgend_sti:
lgstart_pushf:	movl	lguest_data + LGUEST_DATA_irq_enabled, %eax
lgend_pushf:
lgstart_popf:	movl	%eax, lguest_data + LGUEST_DATA_irq_enabled
lgend_popf:
