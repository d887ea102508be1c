"""Views render without a kernel, show the machine's values, and follow the session.

Each view's HTML fallback is checked for the values the session itself
reports (registers, the walk through both sets of page tables, the tables,
events, DMA), before and after the session moves; the live widget must carry
the same HTML after every step, motion and replay.
"""

from __future__ import annotations

import re

import pytest
from asm import need_binutils

from lguestsim import views
from lguestsim.session import Session, TinyGuest, shared_key


def text(html: str) -> str:
    """The visible text of a view (tags dropped, entities kept)."""
    return re.sub(r"<[^>]+>", " ", html.split("</style>", 1)[-1])


@pytest.fixture()
def boot():
    return Session.boot()


def test_every_view_renders_at_every_kind_of_moment(boot):
    s = boot
    for move in (lambda: None, s.step, lambda: s.step_to("hypercall"),
                 lambda: s.run_to("start_kernel"), lambda: s.step_to("dma"),
                 s.finish):
        move()
        for cls in views.ALL_VIEWS:
            html = cls(s).html()
            assert html.startswith("<style>") and f'data-view="{cls(s).name}"' in html
            assert "cannot show this now" not in html, (cls.__name__, s.steps, html[-400:])


def test_registers_show_the_cpu_and_highlight_what_changed(boot):
    s = boot
    s.run_to("start_kernel")
    view = views.RegistersView(s)
    before = view.html()
    assert f"{s.cpu.eip:08x}" in before and "start_kernel" in before
    assert f"{s.cpu.esp:08x}" in before and f"{s.cpu.cr3:08x}" in before
    eip = s.cpu.eip
    s.step()
    after = view.html()
    assert after != before
    assert f'<span data-reg="eip" class="chg">{s.cpu.eip:08x}</span>' in after
    assert f"{eip:08x}" not in text(after).split("eflags")[0]
    # Segment caches and the Guest's saved registers are there too.
    assert "base 00000000 limit ffffffff code" in after
    assert f"Guest {s.lg.guestid}'s registers" in after


def test_code_shows_the_instruction_about_to_run(boot):
    s = boot
    s.run_to("start_kernel")
    html = views.CodeView(s).html()
    row = re.search(r'<tr class="cur">(.*?)</tr>', html).group(1)
    assert f"{s.cpu.eip:08x}" in row and s.next_instruction() in text(row)
    assert "start_kernel:" in html
    if s.run.symbols.has_lines:
        assert "main.c:" in html
    s.step()
    row2 = re.search(r'<tr class="cur">(.*?)</tr>', views.CodeView(s).html()).group(1)
    assert f"{s.cpu.eip:08x}" in row2 and row2 != row


def test_code_shows_each_instructions_cost_as_the_core_charges_it(boot):
    # The cycles column comes from the opcode table (x86/opcodes.py); for an
    # instruction with no memory operand and no transfer of control, nothing
    # else (page walks, taken branches, faults) adds to it, so it must be
    # exactly what the core charges for that step.
    s = boot
    s.run_to("start_kernel")
    compared = 0
    for _ in range(300):
        row = re.search(r'<tr class="cur">(.*?)</tr>', views.CodeView(s).html()).group(1)
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", row)]
        assert re.search(r'title="[a-z0-9_]+"', row), row   # the family, on hover
        shown, insn = cells[2], cells[3]
        before = s.cpu.cycles
        s.step()
        plain = "(" not in insn and not re.match(
            r"(j|call|ret|loop|int|iret|hlt|cli|sti|push|pop|out|in)", insn)
        if plain:
            assert int(shown) == s.cpu.cycles - before, insn
            compared += 1
    assert compared >= 30


def test_page_walk_before_and_after_a_demand_fault(boot):
    s = boot
    stop = s.step_to("pagefault")
    vaddr = stop.event.vaddr
    s.back(1)
    view = views.PageWalkView(s, vaddr=vaddr)
    before = view.html()
    assert "not in the shadow yet" in before
    s.step()
    after = view.html()
    walk = s.translate(vaddr)
    assert walk["host_phys"] == s.run.process.phys(walk["guest_phys"])
    assert f"host-phys {walk['host_phys']:08x}" in after
    assert f"guest-phys {walk['guest_phys']:08x}" in after
    assert "not in the shadow yet" not in after


def test_page_directory_map_and_tlb_follow_the_session(boot):
    s = boot
    s.step()
    shadow = views.PageDirectoryView(s)
    first = shadow.html()
    assert "1 of 1024 present" in first          # only the Switcher's entry
    s.run_to("start_kernel")
    later = shadow.html()
    n = int(re.search(r"(\d+) of 1024 present", later).group(1))
    assert n > 1
    guest = views.PageDirectoryView(s, which="guest").html()
    assert "768" in guest
    tlb = views.TLBView(s).html()
    assert f"{len(s.cpu.tlb.entries())} entries" in tlb


def test_descriptor_tables_show_both_sides_and_direct_traps(boot):
    s = boot
    s.run_to("system_call")
    gdt = views.GDTView(s).html()
    assert "Host's own" in gdt and "DPL 1" in gdt
    idt = views.IDTView(s).html()
    assert "system_call" in idt and "<b>direct</b>" in idt and 'class="direct"' in idt
    tss = views.TSSView(s).html()
    assert f"{s.lg.esp1:08x}" in tss


def test_timeline_lists_events_with_their_cycles(boot):
    s = boot
    stop = s.step_to("hypercall")
    html = views.TimelineView(s).html()
    assert "LGUEST_INIT(" in html and str(stop.event.cycle) in html
    s.step_to("pagefault")
    html2 = views.TimelineView(s).html()
    assert "pagefault" in html2 and html2 != html


def test_lguest_data_device_page_and_console(boot):
    s = boot
    assert "not yet" in views.LguestDataView(s).html()
    s.step_to("hypercall")
    data = views.LguestDataView(s).html()
    assert f"{s.lg.lguest_data:08x}" in data and "reserve_mem" in data
    s.step_to("dma")
    assert "console" in views.DevicePageView(s).html()
    assert "running on lguest" in views.ConsoleView(s).html()
    dma = views.DMAView(s).html()
    assert "to the Launcher" in dma
    s.finish()
    assert "DRIVER_OK" in views.DevicePageView(s).html()


def test_dma_view_shows_a_guest_to_guest_transfer():
    need_binutils()
    from test_session import RECEIVER, SENDER
    key = shared_key()
    s = Session([TinyGuest(RECEIVER.format(key=key), share=True),
                 TinyGuest(SENDER.format(key=key), share=True)])
    view = views.DMAView(s)
    assert "none yet" in view.html()
    s.step_to("dma", guest=1)
    html = view.html()
    assert "hello again" in html and "shared memory +0x8" in html and "irq 3" in html


def test_widgets_redraw_after_every_motion(boot):
    s = boot
    regs = views.RegistersView(s)
    code = views.CodeView(s)
    w1, w2 = regs.widget(), code.widget()
    for move in (s.step, lambda: s.step_to("hypercall"), lambda: s.run_to("start_kernel"),
                 lambda: s.back(3)):
        old = w1.value
        move()
        assert w1.value == regs.html() and w2.value == code.html()
        assert w1.value != old


def test_dashboard_buttons_move_the_session(boot):
    s = boot
    panel = views.dashboard(s)
    buttons = {b.description: b for b in panel.children[0].children}
    buttons["step"].click()
    assert s.steps == 1
    buttons["next hypercall"].click()
    assert s.trace.of("hypercall")
    at = s.steps
    buttons["back"].click()
    assert s.steps == at - 1
    assert views.RegistersView(s).html() in panel.children[1].value
    assert views.CodeView(s).html() in panel.children[1].value


def test_dashboard_steps_both_ways_through_a_world_switch(boot):
    """Issue 11: "next switch" stopped with the CPU already back in switch_to_guest,
    so return_to_host could never be watched.  Each direction has its button."""
    s = boot
    panel = views.dashboard(s)
    buttons = {b.description: b for b in panel.children[0].children}
    into = next(b for name, b in buttons.items() if "into the Guest" in name)
    back = next(b for name, b in buttons.items() if "back to the Host" in name)
    into.click()
    assert s.describe(s.cpu.eip).startswith("switch_to_guest") and s.where == "switcher"
    assert s.lg.regs.trapnum == 256 and s.cpu.cpl == 0          # still the Host's world
    back.click()
    assert s.describe(s.cpu.eip).startswith("trap stub 14") and s.cpu.cr3 != 0x8000
    seen = []
    while s.cpu.eip != 0x5000:                                 # the whole way back, watched
        seen.append(s.describe(s.cpu.eip).split(" (")[0].split("+")[0])
        s.step()
    assert "return_to_host" in seen and s.cpu.cr3 == 0x8000
    assert s.lg.regs.trapnum == 14                              # and the Host has not run yet
    into.click()
    assert s.describe(s.cpu.eip).startswith("switch_to_guest")
    html = views.dashboard_html(s)
    assert "into the Guest (switch_to_guest)" in html and "back to the Host (trap stub)" in html


def test_charts_are_svg():
    svg = views.bar_chart({"a": 1, "b": 3}, "title", "cycles")
    assert svg.startswith("<svg") and "3 cycles" in svg and "title" in svg
    assert "<svg" in views.Chart(svg)._repr_html_()


def test_the_host_chapter_says_what_its_outputs_show():
    """Issue 11: the text promised a 1,000,000 ns tick the output did not show, and
    put the Guest's registers "on the right" of a view that draws them last."""
    from pathlib import Path
    src = (Path(__file__).resolve().parent.parent / "notebooks/src/05_host.py").read_text()
    assert "on the right" not in src.lower() and "last table, `lguest_regs`" in src
    s = Session.boot()
    stop = s.step_to("hypercall", match=lambda e: e.name == "SET_CLOCKEVENT")
    assert stop.event.args[0] == 1_000_000 and "1,000,000 ns" in src and "0xf4240" in src
    assert "mark = s.trace.events.index(stop.event)" in src     # the call itself is printed
    html = views.RegistersView(s).html()
    assert html.rindex("lguest_regs") > html.rindex("ldtr")       # the Guest's table is last
