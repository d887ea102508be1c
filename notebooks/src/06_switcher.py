# %% [markdown]
# # Switcher: two worlds, one page of code
#
# The Host is a Linux kernel with its own page tables, GDT, IDT and TSS.  The
# Guest needs all four of its own, and the Guest runs at full speed on the same
# processor.  Moving between the two is the Switcher's job: a page of assembly
# (`lguestsim/switcher/switcher.S`) mapped at 0xFFC00000 in the Host's page
# tables *and* in every shadow page directory the Host builds for a Guest.  The
# Switcher can therefore load a new `cr3` and keep running: the next
# instruction is at the same virtual address in the other world.
#
# Two more pages follow the code: this CPU's `struct lguest_pages`.  The first
# holds the Guest's registers (`struct lguest_regs`) at its very end; the
# second, read-only to the Guest, holds the Host's saved GDT, IDT and stack
# pointer, and the GDT, IDT and TSS the processor uses while the Guest runs.
#
# In lguestsim every instruction of the switch runs on the simulated CPU.  This
# chapter steps through one round trip: Host to Guest, and back.

# %%
STUDENT = ""   # your name: it picks your variant of the exercises

from IPython.display import display

from lguestsim import views
from lguestsim.exercises.switcher import SwitcherExercises
from lguestsim.session import Session

ex = SwitcherExercises(STUDENT)
s = Session.boot()


def stop_before(session, text, limit=200):
    """Step until the next instruction starts with ``text``."""
    return session.step_until(lambda t: t.next_instruction().startswith(text), limit)


# %% [markdown]
# ## The Host's side of the door
#
# `run_guest_once` (host/core.py, S:011, after `copy_in_guest_info`, S:010) does what lguest's
# `pushf; lcall *lguest_entry` does: it pushes the Host's `eflags`, its code
# segment and a return address on its stack -- the frame an interrupt would
# push -- puts the address of `lguest_pages` in `%eax` and the shadow page
# directory in `%ebx`, and jumps to `switch_to_guest` (S:100).  The return address is
# 0x5000, where no x86 code lives: when the CPU gets there, Python takes over.
# Here is the first world switch, one step into the session:

# %%
stop = s.step_to("switch")
print(stop.event.data)
views.CodeView(s, before=0, after=16)

# %% [markdown]
# The listing's text comes from a disassembler.  On your own machine
# (`make lab`) the view asks capstone, the disassembly library.  The live
# book, which runs in your browser, has no capstone, so there lguestsim writes
# the text itself, from its own decoder and opcode map (x86/syntax.py, P:085),
# in capstone's spelling: the tests hold the two side by side on every
# instruction of the Switcher and of both Guests.  This page's listings come
# from:

# %%
from lguestsim.x86 import disasm

print(disasm.engine())

# %% [markdown]
# And the registers the Switcher starts from:

# %%
views.RegistersView(s)

# %% [markdown]
# Ring 0, the Host's stack (`esp` 0x7ff4, just below the return frame), the
# Host's page directory (`cr3` 0x8000), the Host's GDT and IDT.
#
# ## Saving the Host, becoming the Guest
#
# The Switcher pushes the Host's segment registers and frame pointer, saves the
# stack pointer in the read-only page, and makes `%esp` point at the Guest's
# saved registers -- it will *pop* the Guest's state off them.

# %%
stop_before(s, "lgdt")
print(f"esp = {s.cpu.esp:#x}: struct lguest_regs at the end of the regs page")
views.CodeView(s, before=4, after=3)

# %% [markdown]
# Now the tables.  `lgdt`, `lidt` and `ltr` load the Guest's GDT, IDT and TSS
# from the read-only page.  From here on, a trap would go through the Guest's
# IDT -- which sends nearly everything straight back to the Switcher.

# %%
stop_before(s, "movl %ebx, %cr3")
views.RegistersView(s)

# %%
views.GDTView(s)

# %%
views.TSSView(s)

# %% [markdown]
# The Guest's TSS says where the processor finds a stack when a trap takes it
# to ring 0: `ss0:esp0` is the end of the regs page, so the frame the processor
# pushes lands exactly in the last fields of `struct lguest_regs`.  `ss1:esp1`
# is the Guest kernel's own stack, used by direct traps into ring 1 (the Guest
# has not told the Host where it is yet).
#
# The last step of the switch proper: `cr3` becomes the shadow page directory.

# %%
s.step()
print(f"cr3 = {s.cpu.cr3:#x}; the next instruction is still at {s.cpu.eip:#x}")
views.PageDirectoryView(s)

# %% [markdown]
# Only one directory entry is present: 1023, the Switcher's.  The Guest's
# own memory is not mapped at all yet; every page will fault in on first use.
#
# The rest is pops: the Guest's general registers and segment registers come
# off `struct lguest_regs`, `addl $8, %esp` skips `trapnum` and `errcode`, and
# `iret` takes `eip`, `cs`, `eflags`, `esp` and `ss` -- and with them ring 1.

# %%
stop_before(s, "iret")
views.CodeView(s, before=3, after=1)

# %%
s.step()
print(s.where, "CPL", s.cpu.cpl, "at", s.describe(s.cpu.eip))
views.RegistersView(s)

# %% [markdown]
# ## And back
#
# The Guest's first instruction fetch faults: the shadow directory is empty.
# The processor looks in the Guest's IDT (the Switcher's copy), finds the gate
# for vector 14 pointing at the Switcher's stub 14, switches to the ring-0
# stack from the TSS, pushes the Guest's `ss`, `esp`, `eflags`, `cs`, `eip` and
# the error code -- into the regs page -- and jumps.  One step:

# %%
s.step()
print(s.where, "at", s.describe(s.cpu.eip), f"esp = {s.cpu.esp:#x}")
views.CodeView(s, before=0, after=4)

# %% [markdown]
# The stub pushes its vector number (`trapnum`) and joins `return_to_host`,
# which pushes the Guest's other registers, completing `struct lguest_regs`,
# then restores the Host's world in the reverse order: `cr3` from the read-only
# page, the Host's GDT and IDT, its stack, its TSS, its segment registers.
# The final `iret` pops the frame the Host pushed before the switch and lands
# on 0x5000.

# %%
stop_before(s, "movl %edx, %cr3")
views.RegistersView(s)

# %%
start = s.cpu.instructions
stop_before(s, "iret")
s.step()
print(s, f"({s.cpu.instructions - start} more instructions)")
views.RegistersView(s)

# %% [markdown]
# ## A real interrupt on the way
#
# Not every trip ends because the Guest asked.  While a Guest runs, the Host's
# own timer may fire: the Host must get the CPU back even from a Guest that
# never traps.  Here is a Guest that asks for a clock event in 20 microseconds
# and then spins.  The session looks at the Host's clock every 1024
# instructions; once the deadline has passed, the timer interrupt (vector 32)
# is raised on the CPU.

# %%
spin = Session.tiny("""
        HCALL 1, lguest_data-PO
        HCALL 9, 20000                   # SET_CLOCKEVENT: a tick in 20 microseconds
1:      incl %eax                        # then spin, never trapping
        jmp 1b
""")
stop = spin.step_to("timer")
print(stop, "pending on the CPU:", spin.cpu.pending)
spin.step()
views.CodeView(spin, before=0, after=3)

# %% [markdown]
# The processor delivered it through the Guest's IDT to stub 32, which leads
# to `deliver_to_host` (S:300) rather than `return_to_host` (S:210): the same restoration of
# the Host's world, and then a jump to the handler the *Host's* IDT has for
# that vector, as if the interrupt had arrived in the Host.  That handler's
# `iret` returns to the Host's far call like any other trip.

# %%
stop_before(spin, "jmpl *")
views.CodeView(spin, before=6, after=1)

# %%
spin.step()
print(spin.where, "at", spin.describe(spin.cpu.eip), "->", spin.next_instruction())
spin.step()
print(spin)
spin.step()
back = [e for e in spin.trace.of("switch") if e.to == "host"][-1]
print("the Host sees trap", back.trapnum, "- a real interrupt, already handled:",
      "it goes straight back to the Guest" if spin.in_trip else "")

# %% [markdown]
# ## What a round trip costs
#
# Every hypercall and every page fault the Host handles pays for this.  The
# trace says how many cycles passed between the Host switching to the Guest and
# hearing back; the Mastery chapter measures how much the Guest saves where it
# can avoid the trip.

# %%
s.finish()
sw = s.trace.of("switch")
trips = [(b.cycle - a.cycle) for a, b in zip(sw, sw[1:], strict=False)
         if a.to == "guest" and b.to == "host"]
print(f"{len(trips)} trips into the Guest; the shortest took {min(trips)} cycles "
      f"(switch, a few Guest instructions, trap, switch back)")

# %% [markdown]
# ## Your turn
#
# Back to the first world switch: step through it with the buttons and watch
# `gdtr`, `idtr`, `tr`, `cr3` and CPL change.  Two buttons name a direction:
# "into the Guest" stops before `switch_to_guest` runs, "back to the Host"
# stops at the trap stub the processor entered, with `return_to_host` still
# ahead (`s.to_guest()` and `s.to_host()` in a cell do the same).

# %%
s.goto(1)
views.dashboard(s, (views.CodeView, views.RegistersView, views.PageDirectoryView))

# %% [markdown]
# ## Exercises

# %%
print(ex)

# %%
ANSWER_1 = None
ANSWER_2 = None
ANSWER_3 = None

display(ex.check(1, ANSWER_1))
display(ex.check(2, ANSWER_2))
display(ex.check(3, ANSWER_3))
