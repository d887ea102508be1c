"""Page-table views: one address through two sets of tables, whole directories, the TLB.

A Guest virtual address is translated twice in lguest.  The Guest's own page
tables, in its memory, say which *Guest-physical* page it means; the shadow
tables the Host built (and the CPU actually walks) say which *host-physical*
page holds it.  ``walk_both`` follows both walks entry by entry and puts them
side by side, so a reader can see the shadow entry copy the Guest's flags,
drop the ones it may not have, and replace the frame number; and see it
missing, before the first access faults and the Host fills it in.
"""

from __future__ import annotations

from ..pagewalk import run_of, walk_both
from ..x86 import paging
from .base import View, esc, h8, table

P, RW, US, A, D, PS, G = 1, 2, 4, 0x20, 0x40, 0x80, 0x100
SWITCHER_INDEX = 1023


def pte_flags(entry: int) -> str:
    if not entry & P:
        return "not present"
    bits = [("RW" if entry & RW else "RO"), ("user" if entry & US else "kernel")]
    for name, bit in (("A", A), ("D", D), ("PS", PS), ("G", G)):
        if entry & bit:
            bits.append(name)
    return " ".join(bits)


class PageWalkView(View):
    """One virtual address through the Guest's tables and the shadow tables."""

    title = "Page walk: Guest virtual -> Guest physical -> host physical"
    name = "pagewalk"

    def __init__(self, session, vaddr: int | None = None, guest: int | None = None) -> None:
        super().__init__(session)
        self.vaddr = vaddr
        self.guest = guest

    def address(self) -> int:
        if self.vaddr is not None:
            return self.vaddr
        s = self.session
        if s.in_trip and s.where in ("guest", "user"):
            return s.cpu.eip
        lg = s.lg
        return lg.regs.eip if lg is not None else 0

    def body(self) -> str:
        s = self.session
        v = self.address()
        d = walk_both(s, v, self.guest)
        pdi, pti, off = v >> 22, (v >> 12) & 0x3FF, v & 0xFFF
        head = (f"<div>virtual <b>{h8(v)}</b> = directory index {pdi}, table index {pti}, "
                f"offset {off:#x} &middot; Guest {d['guest']}</div>")

        def entry(addr, value, space):
            if addr is None:
                return ['<span class="dim">-</span>'] * 3
            if value is None:
                return [f"{space} {h8(addr)}", '<span class="bad">unreadable</span>', ""]
            return [f"{space} {h8(addr)}", h8(value), esc(pte_flags(value))]

        rows = [
            ["cr3 (page directory)", f"guest-phys {h8(d['gpgdir'])}", "", "",
             f"host-phys {h8(d['spgdir'])}", "", ""],
            ["directory entry", *entry(d["pde_addr"], d["pde"], "guest-phys"),
             *entry(d["spde_addr"], d["spde"], "host-phys")],
            ["table entry", *entry(d["pte_addr"], d["pte"], "guest-phys"),
             *entry(d["spte_addr"], d["spte"], "host-phys")],
        ]
        gpa, hpa = d["guest_phys"], d["host_phys"]
        if gpa is not None:
            res_g = f"<b>guest-phys {h8(gpa)}</b>"
        else:
            res_g = '<span class="bad">no mapping: the Guest would fault</span>'
        if hpa is not None:
            res_h = f"<b>host-phys {h8(hpa)}</b>"
        elif gpa is not None:
            res_h = ('<span class="bad">not in the shadow yet: the CPU faults, the Host '
                     'fills it (demand_page)</span>')
        else:
            res_h = '<span class="dim">not present</span>'
        rows.append(["result", res_g, "", "", res_h, "", ""])
        t = table(rows, ["", "Guest's tables: where", "entry", "flags",
                         "shadow tables: where", "entry", "flags"])
        notes = []
        if d["backing"] is not None:
            agree = hpa is None or hpa == d["backing"]
            base = run_of(s, self.guest).process.base
            notes.append(f"The Guest-physical page is host page {h8(d['backing'] & ~0xFFF)} "
                         f"(Launcher memory starts at host {h8(base)})"
                         + ("" if agree else
                            ' <span class="bad">but the shadow says otherwise</span>'))
        if d["pte"] is not None and d["spte"] is not None and d["spte"] & P:
            if d["pte"] & RW and not d["spte"] & RW:
                notes.append("The shadow entry is read-only although the Guest's is writable: "
                             "the first write faults so the Host can set the Guest's dirty bit.")
        tlb = s.cpu.tlb.map.get(v >> 12)
        if tlb is not None:
            notes.append(f"The TLB holds this page: physical {h8(tlb.page)}"
                         f"{' writable' if tlb.writable else ''}{' user' if tlb.user else ''}.")
        if s.in_trip:
            hp, _ = paging.probe(s.cpu, v)
            notes.append(f"The CPU's walk now (cr3 {h8(s.cpu.cr3)}): "
                         + (h8(hp) if hp is not None else "fault"))
        return head + t + "".join(f"<div>{n}</div>" for n in notes)


class PageDirectoryView(View):
    """A map of 1024 directory entries: the Guest's directory or its shadow."""

    name = "pagedir"

    def __init__(self, session, which: str = "shadow", guest: int | None = None) -> None:
        super().__init__(session)
        self.which = which
        self.guest = guest
        which_text = "shadow, host-physical" if which == "shadow" else "the Guest's own"
        self.title = f"Page directory map ({which_text})"

    def entries(self) -> tuple[int | None, list[int]]:
        s = self.session
        run = run_of(s, self.guest)
        lg = run.lg
        if lg is None:
            return None, []
        pg = lg.pgdirs[lg.pgdidx]
        if self.which == "shadow":
            base = pg.page
            raw = s.mem.read(base, 4096)
        else:
            base = pg.gpgdir
            raw = run.process.read(base, 4096)
        return base, [int.from_bytes(raw[i:i + 4], "little") for i in range(0, 4096, 4)]

    def body(self) -> str:
        base, ents = self.entries()
        if base is None:
            return "no Guest"
        cells = []
        present = 0
        for i, e in enumerate(ents):
            if i % 32 == 0:
                cells.append("<tr>")
            if e & P:
                present += 1
                color = "#f0a050" if i == SWITCHER_INDEX else ("#7cc47f" if e & US else "#6fa8dc")
                title = f"{i}: from {h8(i << 22)}, entry {h8(e)} {pte_flags(e)}"
                cells.append(f'<td style="background:{color}" title="{esc(title)}"></td>')
            else:
                cells.append('<td></td>')
            if i % 32 == 31:
                cells.append("</tr>")
        grid = f'<table class="grid">{"".join(cells)}</table>'
        used = [i for i, e in enumerate(ents) if e & P]
        rows = [[i, h8(i << 22), h8(e), esc(pte_flags(e))] for i in used for e in [ents[i]]][:40]
        legend = ('<div><span class="tag" style="background:#6fa8dc">kernel</span>'
                  '<span class="tag" style="background:#7cc47f">user</span>'
                  '<span class="tag" style="background:#f0a050">Switcher (1023)</span>'
                  f' {present} of 1024 present; directory at '
                  f'{"host" if self.which == "shadow" else "guest"}-phys {h8(base)}. '
                  'Each row of the grid is 32 entries, 128 MiB.</div>')
        return legend + f'<div class="flex"><div>{grid}</div><div>' + table(
            rows, ["index", "maps from", "entry", "flags"]) + "</div></div>"


class TLBView(View):
    """The TLB: the translations the CPU holds now."""

    title = "TLB"
    name = "tlb"

    def __init__(self, session, limit: int = 48) -> None:
        super().__init__(session)
        self.limit = limit

    def body(self) -> str:
        tlb = self.session.cpu.tlb
        ents = tlb.entries()
        rows = [[h8(e.vpn << 12), h8(e.page), "user" if e.user else "kernel",
                 "RW" if e.writable else "RO", "D" if e.dirty else "", "G" if e.glob else "",
                 "4M" if e.large else ""] for e in ents[:self.limit]]
        more = ""
        if len(ents) > self.limit:
            more = f"<div class='dim'>... and {len(ents) - self.limit} more</div>"
        return (f"<div>{len(ents)} entries &middot; {tlb.misses} misses (page walks)</div>"
                + table(rows, ["virtual page", "physical page", "", "", "", "", ""]) + more)
