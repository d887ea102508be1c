"""DMA I/O between Guests and with the Launcher (2.6.23's io.c).

In the DMA generation a Guest reaches devices through two hypercalls only.
BIND_DMA offers an array of receive buffers (struct lguest_dma) under a key;
SEND_DMA sends a buffer list to a key.  A key is an address, but it is not
compared as one: lguest turns it into the identity of the memory it names, the
way futexes do, so that two Guests whose Launchers map the same shared memory
agree on a key even when each maps that memory somewhere else.  A send to a
key in shared memory goes to the first *other* Guest bound to it; a send to a
key in private memory can only be for the Guest's own Launcher, and read() of
/dev/lguest hands it over.

A struct lguest_dma is 100 bytes: used_len (the Host fills it in), then up to
16 sections as Guest-physical addresses and 16-bit lengths (a zero length ends
the list).  Every section is checked before a byte is copied: at most a page,
not crossing a page, below the Guest's pfn_limit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .lg import (
    LGUEST_IRQS,
    LGUEST_MAX_DMA,
    PAGE_SIZE,
    Lguest,
    kill_guest,
    lgread,
    lguest_address_ok,
    lgwrite_u32,
)

LGUEST_MAX_DMA_SECTIONS = 16
DMA_SIZE = 100
HASH_BUCKETS = 61


@dataclass
class Dma:
    """A struct lguest_dma as read from Guest memory."""
    used_len: int
    addr: tuple[int, ...]
    len: tuple[int, ...]

    @classmethod
    def unpack(cls, raw: bytes) -> Dma:
        used = struct.unpack_from("<I", raw, 0)[0]
        return cls(used, struct.unpack_from("<16I", raw, 4), struct.unpack_from("<16H", raw, 68))

    def sections(self) -> list[tuple[int, int]]:
        out = []
        for a, n in zip(self.addr, self.len, strict=True):
            if n == 0:
                break
            out.append((a, n))
        return out


@dataclass
class DmaInfo:
    """One BIND_DMA: where the array is, under which key, which irq to raise."""
    lg: Lguest
    key: tuple
    dmas: int            # Guest-physical address of the array
    num_dmas: int
    next_dma: int
    interrupt: int


class IO:
    def __init__(self, host) -> None:
        self.host = host
        self.dma_hash: list[list[DmaInfo]] = [[] for _ in range(HASH_BUCKETS)]

    # -- keys
    def get_key(self, lg: Lguest, ukey: int) -> tuple | None:
        """The identity of the memory a key names; None for a bad (unaligned,
        out of range) key, like get_futex_key() failing."""
        if ukey % 4 or not lguest_address_ok(lg, ukey, 4):
            return None
        return lg.launcher.key_identity(ukey)

    @staticmethod
    def hash(key: tuple) -> int:
        return hash(key) % HASH_BUCKETS

    @staticmethod
    def shared(key: tuple) -> bool:
        return key[0] == 1

    # -- binding receive buffers
    def unlink(self, info: DmaInfo) -> None:
        self.dma_hash[self.hash(info.key)].remove(info)
        info.lg.dma.remove(info)

    #: H:400 bind_dma
    def bind_dma(self, lg: Lguest, ukey: int, dmas: int, numdmas: int, interrupt: int) -> int:
        """BIND_DMA (interrupt 0 unbinds); returns 1 on success, 0 on failure."""
        if interrupt >= LGUEST_IRQS:
            return 0
        key = self.get_key(lg, ukey)
        if key is None:
            kill_guest(lg, f"bad dma key {ukey:#x}")
            return 0
        if interrupt == 0:
            found = [i for i in lg.dma if i.key == key and i.dmas == dmas]
            for info in found:
                self.unlink(info)
            return 1 if found else 0
        if len(lg.dma) >= LGUEST_MAX_DMA:
            return 0
        info = DmaInfo(lg, key, dmas, numdmas, 0, interrupt)
        lg.dma.append(info)
        self.dma_hash[self.hash(key)].append(info)
        return 1

    def release_all_dma(self, lg: Lguest) -> None:
        for info in list(lg.dma):
            self.unlink(info)

    # -- sending
    def read_dma(self, lg: Lguest, addr: int) -> Dma:
        return Dma.unpack(lgread(lg, self.host.mem, addr, DMA_SIZE))

    def check_dma_list(self, lg: Lguest, dma: Dma) -> bool:
        for addr, length in dma.sections():
            if (not lguest_address_ok(lg, addr, length) or length > PAGE_SIZE
                    or addr % PAGE_SIZE + length > PAGE_SIZE):
                kill_guest(lg, f"bad DMA entry: {length}@{addr:#x}")
                return False
        return True

    #: H:420 copy_data
    @staticmethod
    def copy_data(src: list[tuple[int, int]], dst: list[tuple[int, int]],
                  read, write) -> int:
        """Copy section by section until either list runs out; returns the bytes moved."""
        total = si = di = srcoff = dstoff = 0
        while si < len(src) and di < len(dst):
            n = min(src[si][1] - srcoff, dst[di][1] - dstoff)
            write(dst[di][0] + dstoff, read(src[si][0] + srcoff, n))
            total += n
            srcoff += n
            dstoff += n
            if srcoff == src[si][1]:
                si, srcoff = si + 1, 0
            if dstoff == dst[di][1]:
                di, dstoff = di + 1, 0
        return total

    def do_dma(self, srclg: Lguest, src: Dma, dstlg: Lguest, dst: Dma) -> int:
        if not self.check_dma_list(dstlg, dst) or not self.check_dma_list(srclg, src):
            return 0
        return self.copy_data(src.sections(), dst.sections(), srclg.launcher.read,
                              dstlg.launcher.write)

    #: H:430 dma_transfer
    def dma_transfer(self, srclg: Lguest, udma: int, dst: DmaInfo) -> bool:
        """Into the first free buffer of ``dst``; True if it had none."""
        dstlg = dst.lg
        src = self.read_dma(srclg, udma)
        found = None
        for i in range(dst.num_dmas):
            n = (dst.next_dma + i) % dst.num_dmas
            addr = dst.dmas + n * DMA_SIZE
            if not lguest_address_ok(dstlg, addr, DMA_SIZE):
                kill_guest(dstlg, f"bad dma array {dst.dmas:#x}")
                break
            d = self.read_dma(dstlg, addr)
            if d.used_len == 0:
                found = (addr, d)
                break
        moved = 0
        if found is not None:
            addr, d = found
            moved = self.do_dma(srclg, src, dstlg, d)
            lgwrite_u32(srclg, self.host.mem, udma, moved)
            if not (moved == 0 and src.len[0] != 0):
                lgwrite_u32(dstlg, self.host.mem, addr, moved)
                dst.next_dma += 1
        self.host.charge("dma")
        self.host.trace.emit("dma", guest=srclg.guestid, key=dst.key, to=dstlg.guestid,
                             sections=src.sections(), bytes=moved, irq=dst.interrupt,
                             received=found is not None)
        # The receiver hears about it even with nothing moved: a chance to restock.
        dstlg.irqs_pending |= 1 << dst.interrupt
        if dstlg.halted:
            dstlg.halted = False
        return found is None

    #: H:410 send_dma
    def send_dma(self, lg: Lguest, ukey: int, udma: int) -> None:
        key = self.get_key(lg, ukey)
        if key is None:
            kill_guest(lg, "bad sending DMA key")
            return
        if not self.shared(key):
            # Private memory: only our Launcher can be listening; read() tells it.
            lg.pending_dma, lg.pending_key, lg.dma_is_pending = udma, ukey, True
            self.host.charge("dma")
            sections = self.read_dma(lg, udma).sections() if lguest_address_ok(
                lg, udma, DMA_SIZE) else []
            self.host.trace.emit("dma", guest=lg.guestid, key=ukey, dma=udma, to="launcher",
                                 sections=sections, bytes=sum(n for _, n in sections))
            return
        for attempt in range(2):
            for info in self.dma_hash[self.hash(key)]:
                if info.lg is lg or info.key != key or info.lg.dead is not None:
                    continue
                empty = self.dma_transfer(lg, udma, info)
                break
            else:
                return      # nobody bound there
            if not empty or attempt:
                return
            # The receiver had no free buffer: lguest gives it one chance to
            # restock (it runs its interrupt handler) before trying again.
            self.host.let_run(info.lg)

    def get_dma(self, lg: Lguest, ukey: int) -> int:
        """LHREQ_GETDMA: the first free buffer the Guest bound at ``ukey``, for its
        Launcher; its used_len is set to the binding's irq, which the Launcher
        raises once it has filled the buffer."""
        import errno
        key = self.get_key(lg, ukey)
        if key is None:
            kill_guest(lg, "bad registered DMA buffer")
            raise OSError(errno.ENOENT, "bad key")
        for info in self.dma_hash[self.hash(key)]:
            if info.lg is not lg or info.key != key:
                continue
            for j in range(info.num_dmas):
                addr = info.dmas + j * DMA_SIZE
                if not lguest_address_ok(lg, addr, DMA_SIZE):
                    break
                if lg.launcher.read32(addr) == 0:
                    lg.launcher.write32(addr, info.interrupt)
                    return addr
            break
        raise OSError(errno.ENOENT, "no free buffer bound at that key")
