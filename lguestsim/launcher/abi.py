"""What the Launcher shares with the Host and the Guest's drivers.

The real Launcher includes the kernel's own header for this
(``lguest_launcher.h``) so that both sides agree on every number and every
layout; it even borrows the kernel's terse type names (u8, u16, u32) so the
header compiles in user space. Here the same facts are Python constants and
``struct`` formats: little-endian, the sizes of i386.
"""

from __future__ import annotations

import struct

PAGE_SIZE = 4096

# A page table entry the Launcher writes: present, writable, user (and on
# this processor, with no NX bit, executable).
PAGE_PRESENT = 0x7

# Requests written to /dev/lguest: the first u32 of every write.
LHREQ_INITIALIZE = 0  # + pfnlimit, pgdir, start, page_offset
LHREQ_GETDMA = 1      # + key: the Guest-physical address of a free buffer
LHREQ_IRQ = 2         # + irq: make it pending in the Guest
LHREQ_BREAK = 3       # + 1: kick the Guest out of read(); + 0: let it go on

# Devices, described to the Guest in one page just above its memory.
LGUEST_MAX_DEVICES = 16
LGUEST_DEVICE_T_CONSOLE = 1
LGUEST_DEVICE_T_NET = 2
LGUEST_DEVICE_T_BLOCK = 3

# Feature bits of a descriptor (the low bits are the device's own: for a
# network device, the Guest's slot on the shared page).
LGUEST_NET_F_NOCSUM = 0x4000
LGUEST_DEVICE_F_RANDOMNESS = 0x8000

# Status bits the Guest's driver writes into its descriptor.
LGUEST_DEVICE_S_ACKNOWLEDGE = 1
LGUEST_DEVICE_S_DRIVER = 2
LGUEST_DEVICE_S_DRIVER_OK = 4
LGUEST_DEVICE_S_REMOVED = 8
LGUEST_DEVICE_S_REMOVED_ACK = 16
LGUEST_DEVICE_S_FAILED = 128

#: L:110 The Launcher and the Guest's drivers must agree on every byte they
# share, so the real Launcher includes the kernel's own header, and borrows the
# kernel's short type names (u8, u16, u32, u64) so that the header compiles in
# user space. Python's integers have no width at all; a `struct` format says the
# same thing with one letter per field: `B`, `H`, `I` and `Q` for 1, 2, 4 and 8
# bytes, and `<` for the i386's little-endian order. The device descriptor shows
# the idea: struct lguest_device_desc is four u16 fields (type, features,
# status, num_pages) and a u32 page frame number, 12 bytes that the Guest's bus
# driver reads from the page just above its memory.
DEVICE_DESC = struct.Struct("<HHHHI")
assert DEVICE_DESC.size == 12

# DMA: the Guest hands over buffers as a struct lguest_dma.
LGUEST_MAX_DMA = 32            # bound arrays per Guest
LGUEST_MAX_DMA_SECTIONS = 16   # pieces of one buffer
LGUEST_CONSOLE_DMA_KEY = 0     # the console's output goes to this key

# struct lguest_dma: u32 used_len @0 (0 while the buffer is free; whoever
# fills or consumes it writes the byte count), u32 addr[16] @4 (Guest-physical),
# u16 len[16] @68 (a 0 length ends the list) -- 100 bytes.
DMA_USED_LEN = 0
DMA_ADDR = 4
DMA_LEN = 4 + 4 * LGUEST_MAX_DMA_SECTIONS
DMA_SIZE = DMA_LEN + 2 * LGUEST_MAX_DMA_SECTIONS
DMA_ADDRS = struct.Struct(f"<{LGUEST_MAX_DMA_SECTIONS}I")
DMA_LENS = struct.Struct(f"<{LGUEST_MAX_DMA_SECTIONS}H")
assert (DMA_LEN, DMA_SIZE) == (68, 100)

# What a successful read() of /dev/lguest gives: {u32 dma, u32 key}.
READ_DMA = struct.Struct("<2I")

# struct lguest_block_page, the one page a block device shares with the
# Launcher: int type @0 (0 read, 1 write), u32 sector @4 (512-byte units),
# u32 bytes @8, int result @12 (0 pending, 1 done, 2 error), u32 num_sectors
# @16 (the Launcher sets it) -- 20 bytes.
BLOCK_PAGE = struct.Struct("<iIIiI")
BLOCK_TYPE, BLOCK_SECTOR, BLOCK_BYTES, BLOCK_RESULT, BLOCK_NUM_SECTORS = 0, 4, 8, 12, 16
BLOCK_READ, BLOCK_WRITE = 0, 1
BLOCK_DONE, BLOCK_ERROR = 1, 2
SECTOR_SIZE = 512
assert BLOCK_PAGE.size == 20

# struct lguest_net: one slot of a network page, a 6-byte Ethernet address.
# A slot whose first byte is 0 is free; bit 0x01 of that byte (the multicast
# bit of a real address) means "promiscuous: send me every packet".
NET_SLOT_SIZE = 6
NET_PROMISC = 0x01
# The tun device's Guest sits in slot NET_PEERNUM; the Launcher is slot 0.
NET_PEERNUM = 1
