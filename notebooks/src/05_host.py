# %% [markdown]
# # Host: the module that borrows the CPU
#
# The Host is `lg.ko`, a kernel module, and `/dev/lguest` is its door.  When
# the Launcher reads that file, the Host runs `run_guest()`: a loop that does
# whatever the Guest asked for, gives it any interrupt that is due, switches to
# it, and when the Guest comes back (the processor trapped), looks at why.
#
# In lguestsim the Host is Python (`lguestsim/host/`), working on the machine's
# RAM; each pass through `run_guest` between two trips into the Guest is one
# step of the session.  This chapter stops at the Host's main moments: a
# hypercall, a page fault it handles alone, a fault it passes to the Guest, an
# interrupt, and a Guest it kills.

# %%
STUDENT = ""   # your name: it picks your variant of the exercises

import inspect

from IPython.display import display

from lguestsim import views
from lguestsim.exercises.host import HostExercises
from lguestsim.host.core import Host
from lguestsim.session import Session

ex = HostExercises(STUDENT)
s = Session.boot()

# %% [markdown]
# ## The loop
#
# Here is the heart of it, `guest_steps` (what `run_guest` runs; passages H:030, H:031).  Read the
# body: hypercalls first (`do_hypercalls`), then pending DMA for the Launcher,
# then an interrupt (`maybe_do_interrupt`), then, unless the Guest is halted,
# the trip (`enter_guest`, the `yield` while the CPU runs, `leave_guest`), and
# after it the trap number decides: a page fault may be the Host's business
# (`demand_page`), an `in`/`out` is emulated, anything else is reflected to
# the Guest (`deliver_trap`) or kills it.

# %%
print(inspect.getsource(Host.guest_steps))

# %% [markdown]
# ## A hypercall, from the Host's side
#
# When the Guest traps, the Switcher saves its registers into the *regs page*,
# `struct lguest_regs`, and returns to the Host.  Let us stop just before the
# Host looks at the Guest's first hypercall: the session goes to the hypercall
# and one step back.

# %%
s.step_to("hypercall")
s.back(1)
print(s)
views.RegistersView(s)

# %% [markdown]
# The CPU is at the Host's return address (0x5000: no x86 code lives there;
# this is where Python takes over).  In the view's last table, `lguest_regs`,
# are the Guest's registers in its regs page: `trapnum` 0x1f (the hypercall
# vector), `eax` 1 (LGUEST_INIT), `edx` the address of `lguest_data`.  One
# step, and the Host does the call, sets `trapnum` to 0xff ("done") and
# switches back, which first marks it 0x100, an impossible vector, so that a
# fault on the way in would be noticed:

# %%
before = len(s.trace.events)
s.step()
for e in s.trace.events[before:]:
    print(e.cycle, e.kind, e.data)

# %% [markdown]
# ## Shadow page tables, filled on demand
#
# The Guest's page tables hold *Guest-physical* frame numbers, which mean
# nothing to the processor: the Guest's memory is somewhere else in the
# machine.  So the CPU never walks the Guest's tables.  The Host gives it a
# *shadow* page directory, starts it empty, and fills it one entry at a time
# when the CPU faults (`demand_page`, H:330): it reads the Guest's two entries for the
# address, and writes a shadow entry with the same flags (minus anything the
# Guest may not have) and the *host* frame behind the Guest's frame.
#
# The very first instruction of the Guest faults this way.  Here is the moment
# just before the Host handles it:

# %%
s.goto(0)
stop = s.step_to("pagefault")
fault = stop.event
s.back(1)
print(f"trap {s.lg.regs.trapnum}, errcode {s.lg.regs.errcode:#x}, cr2 {s.cpu.cr2:#x}")
views.PageWalkView(s, vaddr=fault.vaddr)

# %% [markdown]
# The Guest's tables (built by the Launcher) map the address; the shadow has no
# entry at all.  One step of Host work later:

# %%
s.step()
views.PageWalkView(s, vaddr=fault.vaddr)

# %% [markdown]
# The shadow entry now points at the host page that holds Guest-physical page
# 0x100 (the note under the table says where the Launcher's memory starts in
# the machine), and it is read-only:
# the Guest's entry was not dirty yet, and the Host keeps a shadow entry
# writable only once the Guest's is dirty, so the first write faults too and
# the Host can set the Guest's dirty bit.  Here is the whole shadow directory
# now, and later, once the Guest has its own page tables and a process:

# %%
views.PageDirectoryView(s)

# %%
stop = s.step_to("pagefault", match=lambda e: e.vaddr < 0xC0000000)
print(stop.event.data)
views.PageDirectoryView(s)

# %% [markdown]
# ## A fault that is the Guest's business
#
# Sometimes the Guest's own tables have no mapping: the user program touched
# its heap, which the Guest maps lazily.  `demand_page` then returns false,
# the Host writes the address into `lguest_data.cr2` (the Guest cannot read the
# real `cr2`) and *reflects* the trap: it pushes an exception frame on the
# Guest's stack by hand and points the Guest's `eip` at its page-fault handler.

# %%
stop = s.step_to("trap", match=lambda e: e.data.get("reflected"))
print(stop.event.data, "->", s.describe(stop.event.eip))
print("lguest_data.cr2 =", hex(s.run.process.read32(s.lg.lguest_data + 8)))
views.TimelineView(s, last=5)

# %% [markdown]
# ## Interrupts
#
# The Guest's timer is a hypercall too: `SET_CLOCKEVENT` asks for an interrupt
# so many nanoseconds from now, and `HALT` says "nothing to do until then".
# The Host sets a timer; a halted Guest costs no CPU (the Host lets the clock
# jump to the deadline); when it fires, interrupt 0 becomes pending, and at the
# top of the loop `maybe_do_interrupt` (H:200) delivers it -- if the Guest's
# `irq_enabled` allows, and the Guest is not inside its own `iret` sequence --
# by building the frame on the Guest's stack, as for a reflected trap.

# %%
s.goto(0)
stop = s.step_to("hypercall", match=lambda e: e.name == "SET_CLOCKEVENT")
delay = stop.event.args[0]
print(f"SET_CLOCKEVENT({delay:#x}): a tick in {delay:,} ns")
mark = s.trace.events.index(stop.event)
s.step_to("interrupt")
for e in s.trace.events[mark:]:
    print(f"cycle {e.cycle:8}  {e.kind:9} {e.data}")
print("the Guest resumes at", s.describe(s.lg.regs.eip))
views.RegistersView(s)

# %% [markdown]
# Look at the cycle stamps: the Guest asked for a tick in 0xf4240 = 1,000,000 ns
# (the hypercall's first argument; a cycle is a nanosecond here), ran on a
# little and halted; the Host let the clock jump a whole millisecond, fired
# the timer, and delivered interrupt 0 (vector 32), all in the one step of
# Host work that followed the `HALT` hypercall.  The Guest's saved `eip` now points at its
# interrupt stub, and its stack holds the frame the Host pushed.

# %% [markdown]
# ## A Guest that misbehaves dies
#
# The Host trusts nothing a Guest says.  Every address is checked against the
# Guest's memory; a hypercall it does not know is not an error code, it is the
# end: `kill_guest()` records a reason, the loop stops, and the Launcher's next
# read fails with `ENOENT` and then returns the reason.  Here is a Guest of
# four lines, written in assembly, that makes one valid hypercall and then an
# invalid one.

# %%
BAD = ex.bad
bad = Session.tiny(f"""
        HCALL 1, lguest_data-PO        # LGUEST_INIT: the first hypercall must be this one
        HCALL 5                        # FLUSH_TLB: fine
        HCALL {BAD}                    # no such hypercall
        HCALL 2, msg-PO                # CRASH: we never get here
msg:    .asciz "still alive"
""")
stop = bad.step_to("kill")
print(stop)
print("the Launcher was told:", bad.runs[0].ended if bad.finish() else "")
views.TimelineView(bad, last=8)

# %% [markdown]
# Only this Guest is gone: its memory, its shadow tables and its regs page go
# back to the Host when the Launcher closes `/dev/lguest`.
#
# ## Who holds the Host's frames
#
# Shadow page directories and page tables are frames of the Host's own pool
# (H:015), and one Guest must not be able to take them all.  The Host keeps
# an account per Guest (H:311): the frames it holds now, the most it ever
# held, how many it was given, and how many were taken back from it.  A Guest
# at its quota (a quarter of the pool) pays for each new table with one of
# its own; an empty pool takes a table from whoever holds most (H:455 to
# H:457).  Any shadow table may go, since the next fault rebuilds it: the
# hoarder only slows itself down.  Here is the pool after the boot so far:

# %%
acct = s.host.page_tables.accounting()
print(f"pool: {acct.pool} frames, {acct.free} free; quota {acct.quota} frames per Guest")
for guestid, account in acct.guests.items():
    print(f"Guest {guestid}: {account}")

# %% [markdown]
# The teaching Guest holds a handful of frames: a shadow directory for each
# address space it used lately, and the page tables under them.  The hostile
# Guests of `tests/hostile.py` include a hoarder that points every entry of
# three page directories at its memory and touches every 4 MiB; beside it, its
# account stops at the quota and `reclaimed` climbs into the thousands.
#
# ## Your turn
#
# The boot session is back at a timer interrupt.  Step to the next page fault
# and watch the shadow tables: the page-walk view follows the Guest's `eip`.

# %%
views.dashboard(s, (views.CodeView, views.PageWalkView, views.RegistersView))

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
