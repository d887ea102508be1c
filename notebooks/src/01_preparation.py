# %% [markdown]
# # Preparation: a hypervisor you can read, and a machine you can stop
#
# lguest was Rusty Russell's answer to a question: how little code does it take
# to run a second Linux kernel under the first one, on a plain 32-bit PC with no
# virtualization extensions?  In Linux 2.6.23 the answer was a few thousand
# lines, written to be read, with the tour through them ("the journey") woven
# into the comments.
#
# This book follows that journey with a simulator, **lguestsim**, in which every
# piece is real enough to step through:
#
# | piece | what it is in lguest | in lguestsim |
# |---|---|---|
# | the CPU | an i386 | `lguestsim.x86`: an interpreted i386 with paging, segments, rings, the TLB, a cycle count |
# | the Host | the `lg` kernel module | `lguestsim.host`: Python, working on the machine's RAM |
# | the Switcher | a page of assembly mapped in both worlds | `switcher.S`, assembled, executed instruction by instruction |
# | the Launcher | a user program reading `/dev/lguest` | `lguestsim.launcher` |
# | the Guest | a Linux kernel patched to run in ring 1 | a small teaching kernel in C (`lguestsim/guest`) |
#
# You know C and a little about operating systems: what a page table is, what
# happens on a system call.  That is enough.  Each chapter explains one part,
# runs the real simulation, stops it at the moments that matter, and shows the
# machine through a set of *views*.  Each ends with exercises that check your
# answers (the numbers are different for each reader: put your name below).

# %%
STUDENT = ""   # your name: it picks your variant of the exercises

from IPython.display import display

from lguestsim import views
from lguestsim.exercises.preparation import PreparationExercises
from lguestsim.session import Session

ex = PreparationExercises(STUDENT)

# %% [markdown]
# ## The privilege trick
#
# An x86 processor has four privilege rings.  Linux uses two: the kernel in
# ring 0, programs in ring 3.  lguest's idea is that a Guest kernel can live in
# ring 1.  It still runs at full speed, directly on the processor, but anything
# that would let it control the machine -- loading page tables, the GDT or the
# IDT, disabling interrupts for real, talking to devices -- is either a
# privileged instruction (which faults in ring 1) or something the Guest simply
# does not have.  Instead it asks the Host, with a *hypercall*: a software
# interrupt (`int $0x1f`) that lands in the Host.
#
# The Host in turn is just a kernel module.  It does not own the machine the way
# a classic hypervisor would; it borrows the CPU from Linux for a while, by way
# of a small piece of code called the Switcher, which is mapped at the same
# address (0xFFC00000) in the Host's address space and in the Guest's, so that
# it keeps running while the page tables change under it.
#
# ## A session
#
# A `Session` is one simulated PC with the Host loaded and the Launcher ready to
# start the Guest.  Nothing has run yet: it stands at step 0.

# %%
s = Session.boot()
print(s)

# %% [markdown]
# A *step* is one instruction of the CPU (or the delivery of one interrupt or
# exception), or one stretch of Host work done in Python between two trips
# into the Guest.  Let us take the first one: the Host's `run_guest` prepares
# the Guest and performs its half of the first world switch.

# %%
stop = s.step()
print(stop)
print("the CPU is now in:", s.where, "at", s.describe(s.cpu.eip))

# %% [markdown]
# The CPU is in the Switcher, at `switch_to_guest`, still with the Host's page
# tables and ring 0.  The Switcher chapter follows it from here, instruction
# by instruction.  For now, let the whole Guest run: it boots, sets up its own
# page tables, takes a few timer interrupts, runs a program in ring 3 and powers
# off.  `finish()` steps until every Guest has ended.

# %%
stop = s.finish()
print(stop)
print(s.console)

# %% [markdown]
# Everything the Guest printed went through its console driver, out of the
# Guest by DMA, through the Host, to the Launcher, which wrote it here.  The
# Host kept a trace of everything it did, each event stamped with the CPU cycle
# it happened at (one cycle is one nanosecond in this machine).  The timeline
# view draws the whole boot as a strip, then lists the last events:

# %%
views.TimelineView(s, last=12)

# %% [markdown]
# Let us count.  A *world switch* is a trip from the Host to the Guest or back;
# each is a few dozen instructions of the Switcher, plus the Host's bookkeeping.

# %%
from collections import Counter

kinds = Counter(e.kind for e in s.trace.events)
calls = Counter(e.name for e in s.trace.of("hypercall"))
print(f"{s.cpu.instructions} instructions, {s.cpu.cycles} cycles, {s.steps} steps")
print("events:", dict(kinds))
print("hypercalls by name:", dict(calls.most_common()))

# %% [markdown]
# Most trips back to the Host are hypercalls: the Guest kernel cannot touch
# its page tables, its descriptor tables or its stack pointer for traps
# without asking.  Page faults come next; the Host builds the page tables the
# CPU really uses ("shadow" page tables) lazily, one fault at a time.
# Interrupts are rare: this Guest mostly computes, and sleeps only while it
# waits for its three timer ticks.
#
# ## Going back
#
# Every step can be undone.  The simulation is deterministic -- the Host's
# random choices are seeded, time is counted in cycles -- so the state after
# step N is whatever N steps from the boot produce, and `back(n)` rebuilds it
# by replaying.  Here we go back to the moment the Guest made its third
# hypercall:

# %%
s.goto(0)
for _ in range(3):
    stop = s.step_to("hypercall")
print(stop.event.name, stop.event.data)
print(s)

# %% [markdown]
# The *code* view shows where the CPU is; here, back in the Switcher, about to
# enter the Guest again after the Host handled the hypercall.  The *registers*
# view shows the CPU's registers beside the Guest's registers as the Host saved
# them (`struct lguest_regs`): `trapnum` was 31, the hypercall vector, when the
# Guest trapped; the Host set it to 255 once it had done the call.  Values
# that changed in the last step are highlighted.

# %%
views.CodeView(s, before=2, after=6)

# %%
views.RegistersView(s)

# %% [markdown]
# ## Your turn
#
# Below are three live views under a row of buttons.  In a running notebook
# each button moves the session and the views redraw themselves; `s.step()`
# or `s.back()` in any cell does the same.  The views sit in cells that scroll
# on their own, so the whole dashboard fits on one screen.  (In the printed
# book they show the session as this chapter left it.)

# %%
views.dashboard(s)

# %% [markdown]
# ## The map of this book
#
# * **Guest**: what a kernel must change to run in ring 1 (paravirt ops,
#   hypercalls, lguest_data, the asynchronous hypercall ring, direct system calls).
# * **Drivers**: devices without devices: DMA buffers, keys, the lguest bus.
# * **Launcher**: the user program that lays out the Guest's memory and runs it.
# * **Host**: run_guest, hypercalls, shadow page tables, interrupts and traps,
#   and what happens to a Guest that misbehaves.
# * **Switcher**: the world switch, every instruction.
# * **Mastery**: experiments with the design's knobs.
#
# ## Exercises
#
# Use the session `s` (it can go anywhere: `s.goto(step)`, `s.step_to(kind)`,
# `s.back(n)`).  Replace each `None` with your answer and run the cell.

# %%
print(ex)

# %%
ANSWER_1 = None
ANSWER_2 = None
ANSWER_3 = None

display(ex.check(1, ANSWER_1))
display(ex.check(2, ANSWER_2))
display(ex.check(3, ANSWER_3))
