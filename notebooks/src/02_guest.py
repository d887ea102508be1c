# %% [markdown]
# # Guest: a kernel that knows it is not alone
#
# A kernel that runs under lguest is an ordinary kernel with one difference:
# every operation only ring 0 may do goes through a table of function
# pointers, and lguest fills that table with its own versions.  Linux calls
# the table *paravirt ops*; the teaching Guest calls it `pv`.  Disabling
# interrupts becomes a write to a shared variable; loading a page table becomes
# a hypercall; `iret` becomes a short sequence the Host promises not to
# interrupt.
#
# This chapter follows the teaching Guest (sources in `lguestsim/guest/`, read
# `boot.c` beside this notebook) from its first instruction to its first system
# call.

# %%
STUDENT = ""   # your name: it picks your variant of the exercises

import re
from pathlib import Path

from IPython.display import display

import lguestsim.guest
from lguestsim import views
from lguestsim.exercises.guest import GuestExercises
from lguestsim.session import Session

ex = GuestExercises(STUDENT)
s = Session.boot()
PAGE_OFFSET = s.run.page_offset
syms = s.run.symbols

# %% [markdown]
# ## The first instruction, in ring 1
#
# The Launcher does not use the ELF entry point.  It looks for the string
# "GenuineLguest" in the image and starts the Guest just after it: that is
# `startup_32` in `head.S`.  The Host's first world switch `iret`s into it with
# a code segment whose privilege level is 1.

# %%
stop = s.run_to("startup_32")
print(stop)
views.RegistersView(s)

# %% [markdown]
# Look at `cs`: selector 0x61 is GDT entry 12 (the kernel's code segment) with
# requested privilege 1, and CPL is 1.  Paging is already on (`cr0.PG`), with
# `cr3` pointing at a page directory the Guest never made: it is the Host's
# *shadow* of the tables the Launcher built.  `gdtr` and `idtr` point into the
# Switcher's page at 0xFFC00000, where the Host keeps the tables the processor
# really uses.
#
# ## The first hypercall: "here is my lguest_data"
#
# The very first thing `head.S` does is `LHCALL_LGUEST_INIT`, with the physical
# address of `struct lguest_data` in `%edx`.  A hypercall is `int $0x1f` with
# the call number in `%eax` and up to three arguments in `%edx`, `%ebx` and
# `%ecx`.  Let us stop on the `int` itself and look:

# %%
s.step_until(lambda s: s.next_instruction().startswith("int $0x1f"), max_steps=200)
print(s.describe(s.cpu.eip), "->", s.next_instruction())
print(f"eax = {s.cpu.eax} (LHCALL_LGUEST_INIT), edx = {s.cpu.edx:#x}")
print(f"lguest_data is at virtual {syms.address('lguest_data'):#x}, "
      f"physical {syms.address('lguest_data') - PAGE_OFFSET:#x}")
views.CodeView(s, before=4, after=3)

# %% [markdown]
# One more step and the processor takes the trap: through the Switcher's IDT
# to the stub for vector 31, and back to the Host.  The Host records the
# address and from then on reads and writes that page.

# %%
stop = s.step_to("hypercall")
print(stop.event.name, [hex(a) for a in stop.event.args])
views.LguestDataView(s)

# %% [markdown]
# The Host already filled in its part: how much memory to leave free at the top
# of the address space for the Switcher (`reserve_mem`), the Guest's id, the
# speed of the time stamp counter, the time.
#
# ## Paravirt ops
#
# `lguest_init()` (boot.c, passage G:030) fills the `pv` table.  Here it is, read out of the
# Guest's memory and matched with the Guest's symbols and the field names in
# `guest.h`:

# %%
header = (Path(lguestsim.guest.__file__).parent / "guest.h").read_text()
body = header[header.index("struct pv_ops {"):]
fields = re.findall(r"\(\*(\w+)\)", body[:body.index("};")])
s.run_to("start_kernel")
pv = syms.address("pv") - PAGE_OFFSET
for i, field in enumerate(fields, start=1):
    target = s.run.process.read32(pv + 4 * i)
    print(f"pv.{field:18} -> {s.describe(target)}")

# %% [markdown]
# ## Interrupts without `cli`
#
# The Guest may not clear the real interrupt flag: in ring 1 `cli` faults,
# and even if it did not, a Guest that could block the Host's timer could keep
# the machine forever.  So "interrupts enabled" is a word in `lguest_data`,
# `irq_enabled`, that the Guest writes and the Host reads before it delivers an
# interrupt.  `lguest_irq_disable` and `lguest_irq_enable` are single stores.
# Let us watch that word: the session stops after any step that changes it.

# %%
ld = syms.address("lguest_data") - PAGE_OFFSET
wp = s.watch(ld, 4, label="lguest_data.irq_enabled")
stop = s.cont()
print(stop)
print("changed to", hex(s.mem.read32(wp.start)), "while the machine was in:", s.where)
views.CodeView(s, before=5, after=2)

# %% [markdown]
# The instruction before the arrow made the store.  (If the session stopped in
# the Host instead, the Host itself wrote the word: it turns "interrupts" off
# for the Guest when it delivers an interrupt through an interrupt gate, just
# as the processor clears IF.)
#
# ## Lazy mode and the asynchronous hypercall ring
#
# Every hypercall is a round trip through the Switcher: hundreds of cycles.
# When the Guest knows it is about to make many page-table changes in a row
# (building a process's address space, say) it enters *lazy mode*: `lazy_hcall`
# then writes each call into a ring of 64 slots in `lguest_data` instead of
# trapping.  Leaving lazy mode makes one real hypercall, `LHCALL_FLUSH_ASYNC`,
# which does nothing itself -- but every time the Host gets control it first
# runs whatever waits in the ring.  Here is the ring just before the Guest's
# first flush:

# %%
s.unwatch()
stop = s.step_to("hypercall", match=lambda e: e.name == "FLUSH_ASYNC")
s.back(1)
print(s)
views.LguestDataView(s)

# %% [markdown]
# The CPU stands at the Host's return address: the Guest has trapped, the Host
# has not looked yet.  One step (the Host's) runs the ring, then the flush:

# %%
before = len(s.trace.events)
s.step()
for e in s.trace.events[before:]:
    print(e.cycle, e.kind, e.data.get("name", e.data.get("to", "")))

# %% [markdown]
# ## A system call with no Host at all
#
# A system call from a user program is `int $0x80`.  If the Guest's gate for
# vector 0x80 is a *trap gate*, the Host copies it into the real IDT as it is:
# the processor can then deliver the system call straight to the Guest's
# handler, in ring 1, on the Guest's kernel stack (from the TSS's `ss1:esp1`),
# without a world switch.  That is a *direct trap*.  The IDT view marks it:

# %%
stop = s.run_to("system_call")
views.IDTView(s, vectors=[13, 14, 31, 32, 0x80])

# %% [markdown]
# We stopped at the kernel's entry point for system calls.  One step back is the
# `int $0x80` in the user program, in ring 3:

# %%
s.back(1)
print(s.where, "CPL", s.cpu.cpl, "->", s.next_instruction(), " eax =", s.cpu.eax)
events_before = len(s.trace.events)
s.step()
print(s.where, "CPL", s.cpu.cpl, "at", s.describe(s.cpu.eip))
print("events the Host recorded during that step:", len(s.trace.events) - events_before)
views.RegistersView(s)

# %% [markdown]
# In one instruction the CPU went from ring 3 to ring 1: `cs` and `ss` changed,
# `esp` is now the Guest kernel's stack (the TSS's `esp1`, which the Guest set
# with `LHCALL_SET_STACK`), and the Host heard nothing.  Everything else -- page
# faults, general protection faults, interrupts -- still goes through the Host;
# the Host chapter shows why.
#
# ## Your turn
#
# The session stands in the Guest's system call handler.  Step on through it
# (the buttons, or `s.step()`), or go back into the user program.

# %%
views.dashboard(s, (views.CodeView, views.RegistersView, views.LguestDataView))

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
