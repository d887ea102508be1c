# %% [markdown]
# # lguestsim: lguest, one instruction at a time
#
# lguest was "the world's simplest hypervisor": a few thousand lines of Linux
# (2.6.23 to 2.6.25) that ran other Linux kernels as paravirtualized Guests,
# and whose source told its own story in tagged comments, a journey in seven
# chapters. lguestsim rebuilds that system on a simulated i386 written in
# Python, so that every piece of it can be watched: the Launcher laying out
# a Guest's memory, the Host's shadow page tables, the Switcher's world
# switch executed instruction by instruction, the drivers' DMA between
# Guests.
#
# The book follows the journey's order. Each chapter has a notebook, where the
# simulation runs and the views show the machine at the moments that matter,
# and a page of the code's own passages, gathered from the source in number
# order as lguest's `make Host` gathered them. The topics page maps the
# original journey's 145 passages to the ones lguestsim tells.
#
# | chapter | what it tells |
# |---|---|
# | Preparation | the machine, the core, and the pieces of lguest |
# | Guest | how a kernel is paravirtualized: hypercalls, the lguest_data page |
# | Drivers | the lguest bus, DMA, console, block and network |
# | Launcher | loading a Guest and serving its devices |
# | Host | hypercalls, interrupts and traps, shadow page tables, segments |
# | Switcher | the page of assembler that moves between worlds |
# | Mastery | experiments: what each trick saves, in cycles |
#
# To run it all yourself: `make run` boots the teaching Guest, `make test`
# runs the tests, `make book` builds this book, and the notebooks in
# `notebooks/` open in Jupyter.

# %% [markdown]
# ## A first look
#
# The cell below boots the teaching Guest and runs it up to its first
# hypercall (the moment a paravirtualized kernel first asks the Host for
# help), then on through its first page fault, which the Host answers by
# filling in its shadow page tables, until the Switcher has brought the
# Guest back. The registers are the Guest's, in ring 1, with the Host's shadow page
# directory in `cr3`; the page walk follows the instruction pointer through
# the Guest's own page tables and through the shadow tables the Host built
# from them. These views are live in Jupyter (the buttons move the machine);
# in the book they show the machine as it stood when the page was built.

# %%
from lguestsim import views
from lguestsim.session import Session

s = Session.boot()
stop = s.step_to("hypercall")
print("the Guest's first hypercall:", stop.event.data["name"])
stop = s.step_to("pagefault")               # the shadow tables start empty
print("then its first page fault:", stop.event.data)
s.step_until(lambda t: t.where == "guest")   # the Host fills the shadow, back into the Guest
print("back in the Guest at", s.describe(s.cpu.eip))
views.dashboard(s, (views.RegistersView, views.PageWalkView))
