"""The register view: everything the processor holds, and what the last step changed.

General registers, EIP with its symbol, EFLAGS bit by bit, the six segment
registers with the hidden descriptor cache behind each selector (base, limit,
type, DPL), the control registers decoded, CPL, and the descriptor-table
registers.  Beside them, the Guest's registers as the Host keeps them in the
regs page (struct lguest_regs, where the Switcher saved them on the way out):
on the Host's side of a world switch that is where the Guest's state lives.
Anything that differs from before the last step is highlighted.
"""

from __future__ import annotations

from ..x86.segments import CODE, S_BIT
from .base import View, esc, h4, h8, table

EFLAGS_BITS = (("CF", 0), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9),
               ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18))
CR0_BITS = (("PE", 0), ("MP", 1), ("EM", 2), ("TS", 3), ("ET", 4), ("NE", 5), ("WP", 16),
            ("AM", 18), ("NW", 29), ("CD", 30), ("PG", 31))
CR4_BITS = (("VME", 0), ("PVI", 1), ("TSD", 2), ("DE", 3), ("PSE", 4), ("PAE", 5),
            ("MCE", 6), ("PGE", 7))
GPRS = ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp")
SEGS = ("cs", "ss", "ds", "es", "fs", "gs")


def flag_tags(value: int, bits: tuple[tuple[str, int], ...], changed: int = 0) -> str:
    """Each named bit as a tag: set bits bold, changed bits highlighted."""
    out = []
    for name, bit in bits:
        cls = "tag on" if value >> bit & 1 else "tag dim"
        if changed >> bit & 1:
            cls += " chg"
        out.append(f'<span class="{cls}">{name}</span>')
    return "".join(out)


def segment_type(access: int) -> str:
    """Code/data type letters from a descriptor's access byte."""
    if not access & S_BIT:
        return {0x9: "TSS", 0xB: "TSS busy", 0x2: "LDT"}.get(access & 0xF, f"sys {access & 0xF}")
    if access & CODE:
        return "code " + ("C" if access & 4 else "-") + ("R" if access & 2 else "-")
    return "data " + ("E" if access & 4 else "-") + ("W" if access & 2 else "-")


def describe_selector(sel: int) -> str:
    table_name = "LDT" if sel & 4 else "GDT"
    return f'{h4(sel)} <span class="dim">{table_name}[{sel >> 3}] RPL {sel & 3}</span>'


class RegistersView(View):
    """The CPU's registers, and the Guest's in the regs page."""

    title = "Registers"
    name = "registers"

    def body(self) -> str:
        s = self.session
        cpu = s.cpu
        now = cpu.state()
        before = s.before or {}

        def cell(key: str, value: int, width: int = 8) -> str:
            text = h8(value) if width == 8 else h4(value)
            cls = ' class="chg"' if key in before and before[key] != value else ""
            return f'<span data-reg="{key}"{cls}>{text}</span>'

        where = s.where
        eip = now["eip"]
        label = s.describe(eip) if s.in_trip else "(the Host's return address: Python runs)"
        head = (f'<div>step <b>{s.steps}</b> &middot; <b>{esc(where)}</b> &middot; '
                f'CPL <b class="{"chg" if before.get("cpl") != now["cpl"] else ""}">'
                f'{now["cpl"]}</b>'
                f' &middot; {cpu.instructions} instructions &middot; {cpu.cycles} cycles</div>')
        # Four rows of two registers, then eip and eflags across: narrow enough
        # to sit beside the code on one screen.
        rows = [f"<tr><td>{a}</td><td>{cell(a, now[a])}</td><td>{b}</td><td>{cell(b, now[b])}"
                "</td></tr>" for a, b in zip(GPRS[:4], GPRS[4:], strict=True)]
        ef = now["eflags"]
        efc = ef ^ before.get("eflags", ef)
        rows.append(f'<tr><td>eip</td><td colspan="3">{cell("eip", eip)} '
                    f'<span class="dim">{esc(label)}</span></td></tr>')
        rows.append(f'<tr><td>eflags</td><td colspan="3">{cell("eflags", ef)} '
                    f'{flag_tags(ef, EFLAGS_BITS, efc)} <span class="tag">IOPL {ef >> 12 & 3}'
                    "</span></td></tr>")
        left = "<table>" + "".join(rows) + "</table>"

        segrows = []
        for name in SEGS:
            c = cpu.segs[name]
            key = f"{name}.cache"
            changed = before.get(name) != c.selector or before.get(key) != (
                c.base, c.limit, c.access, c.valid)
            cls = "chg" if changed and key in before else ""
            if not c.valid:
                desc = '<span class="dim">null (unusable)</span>'
            else:
                desc = (f"base {h8(c.base)} limit {h8(c.limit)} {esc(segment_type(c.access))} "
                        f"DPL {c.access >> 5 & 3}{'' if c.access & 0x80 else ' not-present'}"
                        f"{' 32-bit' if c.big else ''}")
            segrows.append([name, f'<span class="{cls}">{describe_selector(c.selector)}</span>',
                            desc])
        segs = table(segrows, ["seg", "selector", "hidden descriptor cache"])

        cr0, cr4 = now["cr0"], now["cr4"]
        ctl = [
            ["cr0", f'{cell("cr0", cr0)} {flag_tags(cr0, CR0_BITS, cr0 ^ before.get("cr0", cr0))}'],
            ["cr2", cell("cr2", now["cr2"]) + ' <span class="dim">last page-fault address</span>'],
            ["cr3", cell("cr3", now["cr3"])
             + ' <span class="dim">page directory (physical)</span>'],
            ["cr4", f'{cell("cr4", cr4)} {flag_tags(cr4, CR4_BITS, cr4 ^ before.get("cr4", cr4))}'],
            ["gdtr", self._pair("gdtr", cpu.gdtr, before)],
            ["idtr", self._pair("idtr", cpu.idtr, before)],
            ["tr", f'<span data-reg="tr">{describe_selector(cpu.tr)}</span>'],
            ["ldtr", f'<span data-reg="ldtr">{describe_selector(cpu.ldtr)}</span>'],
        ]
        right = table(ctl)
        guest = self._guest_regs(before)
        return f"{head}{left}{right}{segs}{guest}"

    @staticmethod
    def _pair(key: str, value: tuple[int, int], before: dict) -> str:
        cls = ' class="chg"' if key in before and before[key] != value else ""
        return f'<span data-reg="{key}"{cls}>base {h8(value[0])} limit {h4(value[1])}</span>'

    def _guest_regs(self, before: dict) -> str:
        s = self.session
        lg = s.lg
        if lg is None:
            return ""
        regs = lg.regs.as_dict()
        cells, notes = [], []
        for k, v in regs.items():
            key = f"guest.{k}"
            cls = ' class="chg"' if key in before and before[key] != v else ""
            cells.append(f'<td>{k}</td><td><span data-reg="{key}"{cls}>{h8(v)}</span></td>')
            if k == "trapnum":
                what = {0x1F: "hypercall", 14: "page fault", 13: "general protection",
                        7: "device not available", 256: "set before entry",
                        255: "hypercall done", 0x20: "Host timer"}.get(v)
                if what:
                    notes.append(f"trapnum: {what}")
            if k == "eip" and v and s.run.symbols:
                notes.append(f"eip: {s.run.symbols.describe(v)}")
        third = (len(cells) + 2) // 3
        rows = ["<tr>" + "".join(cells[i::third]) + "</tr>" for i in range(third)]
        title = (f"<div>Guest {lg.guestid}'s registers in its regs page, "
                 f"<b>lguest_regs</b> (host {h8(lg.regs.base)})</div>")
        note = f'<div class="dim">{esc("; ".join(notes))}</div>' if notes else ""
        return title + "<table>" + "".join(rows) + "</table>" + note
