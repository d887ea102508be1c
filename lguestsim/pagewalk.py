"""Reading memory the way the machine sees it: through page tables.

A Guest-virtual address means something different to each party.  The Guest's
own page tables (in its memory) say which *Guest-physical* page it names; the
Host's shadow tables, which the CPU really walks, say which *host-physical*
page holds it.  ``guest_walk`` and ``shadow_walk`` follow the two walks entry
by entry without touching accessed bits; ``walk_both`` puts them side by side;
``read_code`` fetches instruction bytes as the CPU would now (or, between
trips, as the Guest will when it resumes).  The session and the views read
the machine through these; none of it draws anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .x86 import CPU, PhysicalMemory, paging

if TYPE_CHECKING:
    from .world import Run

P, PS = 1, 0x80
M32 = 0xFFFFFFFF


class Watched(Protocol):
    """What the walks read: the machine, and the Guests run on it.

    A ``lguestsim.session.Session`` is one, and so is the ``World`` it steps;
    naming only what is read keeps this module below the session, which
    uses it.
    """

    @property
    def cpu(self) -> CPU: ...
    @property
    def mem(self) -> PhysicalMemory: ...
    @property
    def runs(self) -> list[Run]: ...
    @property
    def run(self) -> Run: ...
    @property
    def in_trip(self) -> bool: ...


def run_of(session: Watched, guest: int | None) -> Run:
    """The Launcher and Guest numbered ``guest``, or the current one."""
    return session.run if guest is None else session.runs[guest]


def guest_walk(session: Watched, run: Run, vaddr: int) -> dict:
    """The Guest's own walk of ``vaddr``: Guest-physical addresses all the way."""
    lg = run.lg
    proc = run.process
    out = {"vaddr": vaddr, "gpgdir": None, "pde_addr": None, "pde": None, "pte_addr": None,
           "pte": None, "guest_phys": None}
    if lg is None:
        return out
    pgdir = lg.pgdirs[lg.pgdidx]
    out["gpgdir"] = gpgdir = pgdir.gpgdir
    pde_addr = gpgdir + (vaddr >> 22) * 4
    out["pde_addr"] = pde_addr
    try:
        pde = proc.read32(pde_addr)
    except ValueError:
        return out
    out["pde"] = pde
    if not pde & P:
        return out
    pte_addr = (pde & 0xFFFFF000) + ((vaddr >> 12) & 0x3FF) * 4
    out["pte_addr"] = pte_addr
    try:
        pte = proc.read32(pte_addr)
    except ValueError:
        return out
    out["pte"] = pte
    if pte & P:
        out["guest_phys"] = (pte & 0xFFFFF000) | (vaddr & 0xFFF)
    return out


def shadow_walk(session: Watched, run: Run, vaddr: int) -> dict:
    """The walk the CPU makes through the Host's shadow tables: host-physical."""
    lg = run.lg
    mem = session.mem
    out = {"spgdir": None, "spde_addr": None, "spde": None, "spte_addr": None, "spte": None,
           "host_phys": None}
    if lg is None:
        return out
    out["spgdir"] = base = lg.pgdirs[lg.pgdidx].page
    out["spde_addr"] = a = base + (vaddr >> 22) * 4
    out["spde"] = spde = mem.read32(a)
    if not spde & P:
        return out
    if spde & PS:
        out["host_phys"] = (spde & 0xFFC00000) | (vaddr & 0x3FFFFF)
        return out
    out["spte_addr"] = b = (spde & 0xFFFFF000) + ((vaddr >> 12) & 0x3FF) * 4
    out["spte"] = spte = mem.read32(b)
    if spte & P:
        out["host_phys"] = (spte & 0xFFFFF000) | (vaddr & 0xFFF)
    return out


def walk_both(session: Watched, vaddr: int, guest: int | None = None) -> dict:
    """Guest virtual -> Guest physical (Guest's tables) -> host physical (shadow tables)."""
    run = run_of(session, guest)
    d = guest_walk(session, run, vaddr)
    d.update(shadow_walk(session, run, vaddr))
    gpa = d["guest_phys"]
    d["backing"] = run.process.phys(gpa) if gpa is not None and gpa < run.process.size else None
    d["guest"] = run.index
    return d


def read_code(session: Watched, la: int, n: int) -> bytes | None:
    """``n`` bytes at linear ``la`` as the machine sees them now (None where unmapped)."""
    out = b""
    while n > 0:
        chunk = min(n, 0x1000 - (la & 0xFFF))
        if session.in_trip:
            pa, _ = paging.probe(session.cpu, la)
            if pa is None or pa + chunk > session.mem.size:
                return out or None
            out += session.mem.read(pa, chunk)
        else:
            run = session.run
            gpa = guest_walk(session, run, la)["guest_phys"]
            if gpa is None or gpa + chunk > run.process.size:
                return out or None
            out += run.process.read(gpa, chunk)
        la = (la + chunk) & M32
        n -= chunk
    return out
