"""DMA I/O between a Guest and the world (2.6.23).

In the DMA generation a Guest reaches devices through two hypercalls only.
BIND_DMA offers an array of receive buffers (struct lguest_dma) under a key;
SEND_DMA sends a buffer list to a key.  A key names memory: lguest turns it
into the same identity the kernel's futexes use, so two Guests that share a
page share the keys on it, wherever each maps it, while a key in a Guest's
private memory means nobody but its own Launcher.  A send to such a key is
handed to the Launcher by the read() of /dev/lguest.

Transfers between Guests over shared memory arrive with the devices issue;
what is here is the Launcher path the console uses and the bookkeeping of
bound buffers.
"""

from __future__ import annotations

from .lg import LGUEST_IRQS, LGUEST_MAX_DMA, DmaBinding, Lguest, kill_guest, lguest_address_ok


class IO:
    def __init__(self, host) -> None:
        self.host = host

    def key_identity(self, lg: Lguest, ukey: int) -> tuple:
        """What a key names: private Guest memory belongs to its Launcher's process."""
        return ("private", id(lg.launcher), ukey)

    #: H:400 bind_dma
    def bind_dma(self, lg: Lguest, ukey: int, dmas: int, numdmas: int, interrupt: int) -> int:
        if interrupt >= LGUEST_IRQS:
            return 0
        if ukey % 4:
            kill_guest(lg, f"Bad alignment {ukey:#x}")
            return 0
        if not lguest_address_ok(lg, ukey, 4):
            kill_guest(lg, f"bad dma key {ukey:#x}")
            return 0
        key = self.key_identity(lg, ukey)
        if interrupt == 0:
            # Unbind: forget the binding of this array under this key.
            for b in lg.dma:
                if b.key == key and b.dmas == dmas:
                    lg.dma.remove(b)
                    return 1
            return 0
        if not lguest_address_ok(lg, dmas, numdmas * 100):
            kill_guest(lg, f"bad dma array {dmas:#x}")
            return 0
        if len(lg.dma) >= LGUEST_MAX_DMA:
            return 0
        lg.dma.append(DmaBinding(key, dmas, numdmas, 0, interrupt))
        return 1

    #: H:410 send_dma
    def send_dma(self, lg: Lguest, ukey: int, udma: int) -> None:
        if ukey % 4:
            kill_guest(lg, f"Bad alignment {ukey:#x}")
            return
        # A key in private memory can only be our own Launcher's (shared
        # memory, where another Guest could have bound the same key, comes
        # with the devices issue): read() will tell the Launcher.
        lg.pending_dma = udma
        lg.pending_key = ukey
        lg.dma_is_pending = True
        self.host.trace.emit("dma", guest=lg.guestid, key=ukey, dma=udma, to="launcher")

    def release_all_dma(self, lg: Lguest) -> None:
        lg.dma.clear()

    def get_dma(self, lg: Lguest, ukey: int) -> int:
        """LHREQ_GETDMA: the first free buffer the Guest bound at ``ukey`` (for the Launcher).

        Its used_len is set to the binding's irq, so the Launcher knows which
        interrupt to send once it has filled the buffer.
        """
        import errno
        key = self.key_identity(lg, ukey)
        mem = self.host.mem
        for b in lg.dma:
            if b.key != key:
                continue
            for i in range(b.num_dmas):
                addr = b.dmas + i * 100
                if not lguest_address_ok(lg, addr, 100):
                    break
                if mem.read32(lg.mem_base + addr) == 0:
                    mem.write32(lg.mem_base + addr, b.interrupt)
                    return addr
        raise OSError(errno.ENOENT, "no buffer bound at that key")
