/*
 * load.c: the Guest laid out in its memory -- the kernel, the first page
 * tables, the boot header.
 *
 * Only ELF images (a vmlinux, such as the shipped teaching Guest) are
 * loaded here: lguestsim's Python Launcher also unpacks a bzImage and
 * places an initrd, which a C exercise can add.  The layout is the Python
 * Launcher's byte for byte (tests/test_native_launcher.py compares them).
 */
#define _GNU_SOURCE
#include "lguest.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* The 2.6.23 Guest's boot code follows this string. */
static const char lguest_magic[] = "GenuineLguest";

/* Where the Guest starts, 2.6.23's way: just after "GenuineLguest", found by
 * scanning the loaded bytes; the Guest starts with paging on, so the
 * address is a virtual one, page_offset above where the marker lies. */
static unsigned long entry_point(const char *name, unsigned long start, unsigned long end,
				 unsigned long page_offset)
{
	size_t len = strlen(lguest_magic);
	unsigned long i, stop = end + len - 1;

	if (stop > guest_mem)
		stop = guest_mem;
	for (i = start; i + len <= stop; i++)
		if (memcmp(guest_base + i, lguest_magic, len) == 0)
			return (i + len + page_offset) & 0xFFFFFFFFul;
	die(2, "%s: no \"GenuineLguest\" marker in the loaded image between %#lx and %#lx: "
	    "is this image a genuine lguest?", name, start, end);
}

static void read_at(int fd, const char *name, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);

	if (n < 0 || (size_t)n != len)
		die(2, "%s: reading %zu bytes at offset %#lx failed: %s", name, len,
		    (unsigned long)off, n < 0 ? strerror(errno) : "the file is too short");
}

/*
 * An ELF vmlinux says what goes where: each PT_LOAD program header names a
 * stretch of the file, the physical address it belongs at, and the virtual
 * address the kernel was linked for.  Every segment must show the same
 * virtual - physical difference: that is page_offset.  lguest mapped the
 * file over Guest memory privately (and fell back to reading it in); we
 * read it in, which puts exactly the file's bytes in the memory the Host
 * shares, and leaves each segment's bss as the zeroes already there.
 */
void load_kernel(const char *name, struct kernel *k)
{
	Elf32_Ehdr eh;
	Elf32_Phdr ph[64];
	unsigned long end = 0, off;
	bool have_offset = false;
	int fd = open(name, O_RDONLY), i;

	if (fd < 0)
		die(2, "Failed to open %s: %s", name, strerror(errno));
	read_at(fd, name, &eh, sizeof(eh), 0);
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		die(2, "%s: not an ELF vmlinux (this Launcher loads only ELF images)", name);
	if (eh.e_ident[EI_CLASS] != ELFCLASS32 || eh.e_type != ET_EXEC ||
	    eh.e_machine != EM_386 || eh.e_phentsize != sizeof(Elf32_Phdr) ||
	    eh.e_phnum < 1 || eh.e_phnum > 64)
		die(2, "%s: malformed ELF header: not a 32-bit i386 executable with "
		    "1 to 64 program headers", name);
	read_at(fd, name, ph, eh.e_phnum * sizeof(ph[0]), eh.e_phoff);

	k->low = 0xFFFFFFFFul;
	k->high = 0;
	for (i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		verbose_say("Section %d: size %u addr %#x\n", i, ph[i].p_memsz, ph[i].p_paddr);
		if (ph[i].p_filesz > ph[i].p_memsz ||
		    (unsigned long)ph[i].p_paddr + ph[i].p_memsz > guest_mem)
			die(2, "%s: segment %d: physical %#x - %#lx is outside the Guest's "
			    "memory (0 - %#lx)", name, i, ph[i].p_paddr,
			    (unsigned long)ph[i].p_paddr + ph[i].p_memsz, guest_mem);
		off = (ph[i].p_vaddr - ph[i].p_paddr) & 0xFFFFFFFFul;
		if (have_offset && off != k->page_offset)
			die(2, "%s: segment %d: page offset %#lx is different from the earlier "
			    "segments' %#lx", name, i, off, k->page_offset);
		k->page_offset = off;
		have_offset = true;
		if (ph[i].p_paddr < k->low)
			k->low = ph[i].p_paddr;
		if (ph[i].p_paddr + ph[i].p_filesz > end)
			end = ph[i].p_paddr + ph[i].p_filesz;
		if (ph[i].p_paddr + ph[i].p_memsz > k->high)
			k->high = ph[i].p_paddr + ph[i].p_memsz;
		read_at(fd, name, guest_base + ph[i].p_paddr, ph[i].p_filesz, ph[i].p_offset);
	}
	close(fd);
	if (!have_offset)
		die(2, "%s: no loadable (PT_LOAD) segment", name);

	/* 2.6.25's Guest boots like any kernel: at the ELF entry point, which
	 * in a vmlinux is the physical address of startup_32. */
	if (virtio) {
		if (eh.e_entry < k->low || eh.e_entry >= k->high)
			die(2, "%s: entry point %#x is not in the loaded kernel (%#lx - %#lx)",
			    name, eh.e_entry, k->low, k->high);
		k->start = eh.e_entry;
		return;
	}
	k->start = entry_point(name, k->low, end, k->page_offset);
}

/*
 * The first page tables.  The Guest starts with paging on, so it needs
 * tables before it can build its own: a linear map in which physical page
 * i appears at virtual map_offset + i * 4096, every entry present, writable
 * and user.  The directory takes the last page of memory and the page-table
 * pages sit under it; they must not land on the kernel.  Only what fits
 * between map_offset and 4 GiB is mapped (1 GiB at 0xC0000000).
 */
unsigned long setup_pagetables(unsigned long mem, unsigned long map_offset,
			       unsigned long kernel_high)
{
	unsigned long long room = (1ull << 32) - map_offset;
	unsigned long mapped = (mem <= room ? mem : (unsigned long)room) / PAGE_SIZE;
	unsigned long ptes_pages = (mapped + 1023) / 1024;
	unsigned long pgdir = mem - PAGE_SIZE, linear = pgdir - ptes_pages * PAGE_SIZE, i;
	u32 *dir = (u32 *)(guest_base + pgdir), *pte = (u32 *)(guest_base + linear);

	if (map_offset % (1024 * PAGE_SIZE))
		die(2, "page offset %#lx is not a multiple of 4 MiB", map_offset);
	if (linear < kernel_high)
		die(2, "too little memory (%#lx bytes): the initial page tables (from %#lx) "
		    "would overlap the kernel (up to %#lx): give the Guest more memory",
		    mem, linear, kernel_high);
	for (i = 0; i < mapped; i++)
		pte[i] = i * PAGE_SIZE | PAGE_PRESENT;
	for (i = 0; i < mapped; i += 1024)
		dir[(map_offset / PAGE_SIZE + i) / 1024] = (linear + 4 * i) | PAGE_PRESENT;
	verbose_say("Linear mapping of %lu pages in %lu pte pages at %#lx\n", mapped,
		    ptes_pages, linear);
	return pgdir;
}

/* Offsets in the boot header at Guest-physical 0 (Linux's "zero page"). */
#define E820NR			0x1E8
#define CMD_LINE_PTR		0x228
#define HARDWARE_SUBARCH	0x23C
#define E820MAP			0x2D0
#define COMMAND_LINE		0x1000

/*
 * The boot header: a memory map of one region, all of it RAM; the kernel's
 * command line in the page after the header, each word followed by a space
 * as lguest's concat() does, with its pointer; and hardware_subarch 1, which
 * is what sends the kernel down the lguest path when it boots.
 */
void write_boot_header(unsigned long mem, char *words[])
{
	char *line = (char *)guest_base + COMMAND_LINE;
	u64 e820[2] = { 0, mem };
	u32 ram = 1, subarch = 1, ptr = COMMAND_LINE;
	size_t used = 0, len;
	int i;

	guest_base[E820NR] = 1;
	memcpy(guest_base + E820MAP, e820, sizeof(e820));
	memcpy(guest_base + E820MAP + 16, &ram, 4);
	for (i = 0; words[i]; i++) {
		len = strlen(words[i]);
		if (used + len + 2 > PAGE_SIZE)
			die(2, "the kernel command line is too long: at most %u bytes fit "
			    "in its page", PAGE_SIZE - 1);
		memcpy(line + used, words[i], len);
		line[used + len] = ' ';
		used += len + 1;
	}
	line[used] = '\0';
	memcpy(guest_base + CMD_LINE_PTR, &ptr, 4);
	memcpy(guest_base + HARDWARE_SUBARCH, &subarch, 4);
}
