# %% [markdown]
# # Mastery: turning the knobs
#
# lguest is small because it makes a few careful choices, and each has a
# price or a payoff you can measure.  This chapter measures three of them,
# with Guests small enough to read in full:
#
# 1. **direct traps**: system calls that go straight to the Guest's handler
#    instead of through the Host;
# 2. **the asynchronous hypercall ring**: batching hypercalls so that many
#    cost one trip;
# 3. **the shadow page-directory cache**: how many address spaces the Host
#    keeps shadows for, and what a miss costs;
#
# and then looks at a fourth, a check lguest 2.6.23 left out.
#
# Times are in cycles of the simulated machine (1 cycle = 1 ns here).  The
# Switcher and the Guest are counted instruction by instruction; the Host's
# work in Python is charged by the cost model in `lguestsim/host/cost.py`.

# %%
STUDENT = ""   # your name: it picks your variant of the exercises

from IPython.display import display

from lguestsim.exercises.mastery import MasteryExercises
from lguestsim.session import Session
from lguestsim.views import Chart, TimelineView, bar_chart

ex = MasteryExercises(STUDENT)


def measure(session):
    """Cycles and events between the labels `begin` and `end` of a tiny Guest."""
    session.run_to("begin")
    c0, n0 = session.cpu.cycles, len(session.trace.events)
    session.run_to("end")
    events = session.trace.events[n0:]
    count = {k: sum(1 for e in events if e.kind == k) for k in ("switch", "hypercall", "pagefault")}
    return session.cpu.cycles - c0, count


# %% [markdown]
# ## 1. Direct traps
#
# This Guest installs a handler for vector 0x80 as a *trap gate* usable from
# ring 3 (`LOAD_IDT_ENTRY`), then makes 50 system calls (`int $0x80`); the
# handler counts them and returns.  With direct traps the Host copies that gate
# into the real IDT; without them, every `int $0x80` goes through the Switcher
# to the Host, which reflects it to the Guest by hand.

# %%
SYSCALLS = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        movl $handler, %ebx               # the gate: selector 0x60, the handler...
        andl $0xffff, %ebx
        orl $0x00600000, %ebx
        movl $handler, %ecx
        andl $0xffff0000, %ecx
        orl $0xef00, %ecx                 # ...present, DPL 3, 32-bit trap gate
        movl $6, %eax                     # LOAD_IDT_ENTRY(0x80, lo, hi)
        movl $0x80, %edx
        int $0x1f
        movl ${n}, %esi
begin:
1:      int $0x80
        decl %esi
        jnz 1b
end:
        HCALL 2, msg-PO
handler:
        incl calls
        iret
msg:    .asciz "done"
        .p2align 2
calls:  .long 0
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""
N = 50
direct = {}
for on in (True, False):
    cycles, count = measure(Session.tiny(SYSCALLS.format(n=N), direct_traps=on))
    direct[on] = cycles / N
    print(f"direct traps {'on ' if on else 'off'}: {cycles / N:7.1f} cycles per system call, "
          f"{count['switch']} world switches for {N} calls")
display(Chart(bar_chart({"direct traps on": direct[True], "direct traps off": direct[False]},
                        "One system call", "cycles")))

# %% [markdown]
# The few switches left with direct traps on are the Guest's first touches of
# its stack and data pages (page faults the Host handles).  Without direct
# traps each call costs two world switches and the Host's trap reflection:
# several times the cost.  Why then does lguest not make every trap direct?
# Because the Host must see some of them: a page fault may be the *shadow*
# page table's business (`demand_page`), a general protection fault may be an
# `in` or `out` to emulate, and interrupts belong to the Host.  And a direct
# trap pushes its frame on the Guest's kernel stack with no Host to catch a
# fault, which is why the Host *pins* those stack pages (`SET_STACK`).
#
# The teaching Guest makes only a handful of system calls, so for it the
# difference is small but visible:

# %%
whole = {}
for on in (True, False):
    g = Session.boot(direct_traps=on)
    g.finish()
    whole[on] = (g.cpu.cycles, len(g.trace.of("switch")))
    print(f"direct traps {'on ' if on else 'off'}: {whole[on][0]} cycles, "
          f"{whole[on][1]} world switches for the whole boot")

# %% [markdown]
# ## 2. The asynchronous hypercall ring
#
# Two Guests make the same 32 `SET_PTE` hypercalls.  The first traps for each.
# The second writes each call into a free slot of the ring in `lguest_data`
# (the four registers, then the slot's status byte 0: "waiting") and makes one
# `FLUSH_ASYNC` at the end; the Host runs everything in the ring before it
# looks at the hypercall that brought it there.

# %%
SYNC = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        movl ${n}, %esi
begin:
1:      HCALL 14, 0, 0x1000, 0            # SET_PTE: one trip each
        decl %esi
        jnz 1b
end:
        HCALL 2, msg-PO
msg:    .asciz "done"
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""
ASYNC = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
begin:
        movl $lguest_data+84, %ebx        # hcalls[0]
        movl $lguest_data+20, %edi        # hcall_status[0]
        movl ${n}, %esi
1:      movl $14, 0(%ebx)                 # eax: SET_PTE
        movl $0, 4(%ebx)                  # edx
        movl $0x1000, 8(%ebx)             # ebx
        movl $0, 12(%ebx)                 # ecx
        movb $0, (%edi)                   # status: waiting
        addl $16, %ebx
        incl %edi
        decl %esi
        jnz 1b
        HCALL 0                           # FLUSH_ASYNC: one trip for them all
end:
        HCALL 2, msg-PO
msg:    .asciz "done"
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""
CALLS = 32
ring = {}
for name, src in (("one trap per call", SYNC), ("async ring + FLUSH_ASYNC", ASYNC)):
    cycles, count = measure(Session.tiny(src.format(n=CALLS)))
    ring[name] = cycles
    print(f"{name:26}: {cycles:6} cycles, {count['switch']:3} world switches, "
          f"{count['hypercall']} hypercalls run")
display(Chart(bar_chart(ring, f"{CALLS} SET_PTE hypercalls", "cycles")))

# %% [markdown]
# The Host does the same work either way (it still runs 32 `SET_PTE`s); what
# the ring saves is the trips.  The teaching Guest uses it when it builds an
# address space (`lguest_set_lazy_mode`, boot.c).
#
# ## 3. The shadow page-directory cache
#
# The Host keeps shadow page directories for a few of the Guest's address
# spaces (four in lguest).  When the Guest loads a directory the Host has no
# shadow for (`NEW_PGTABLE`), it picks a slot *at random*; if the slot is in use
# it throws away that shadow's user mappings, and the next time that address
# space runs, every page it touches faults into the Host again.
#
# This Guest makes six address spaces, each mapping one page at 4 MiB, and
# visits them in turn, touching the page each time.  We vary the number of
# slots and count the Host's page faults (three seeds each: the choice is
# random).

# %%
SPACES = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        # K address spaces: each directory gets the kernel's two entries
        # (768 and 769, from the Launcher's directory at the top of memory)
        # and entry 1, a page table of its own mapping one page at 4 MiB.
        movl $pgdirs, %edi
        movl $tables - PO + 7, %edx
        movl $frames - PO + 7, %ebx
        movl $tables, %ebp
        movl ${k}, %ecx
1:      movl INITPGD + 768 * 4, %eax
        movl %eax, 768 * 4(%edi)
        movl INITPGD + 769 * 4, %eax
        movl %eax, 769 * 4(%edi)
        movl %edx, 4(%edi)
        movl %ebx, (%ebp)
        addl $4096, %edi
        addl $4096, %edx
        addl $4096, %ebx
        addl $4096, %ebp
        loop 1b
        movl ${rounds}, %esi
begin:
2:      movl $pgdirs - PO, %ebx           # round robin over the address spaces
        movl ${k}, %ebp
3:      movl $4, %eax                     # NEW_PGTABLE(its physical address)
        movl %ebx, %edx
        int $0x1f
        movl 0x400000, %eax               # touch its own page at 4 MiB
        addl $4096, %ebx
        decl %ebp
        jnz 3b
        decl %esi
        jnz 2b
end:
        HCALL 2, msg-PO
msg:    .asciz "done"
        .set INITPGD, PO + {mem} - 4096
        .p2align 12
pgdirs: .fill {k} * 4096, 1, 0
tables: .fill {k} * 4096, 1, 0
frames: .fill {k} * 4096, 1, 0
stack:  .fill 4096, 1, 0
stack_top:
"""
K, ROUNDS, MEM = 6, 6, 8 << 20


def spaces(slots, seed):
    return Session.tiny(SPACES.format(k=K, rounds=ROUNDS, mem=MEM), pgdir_cache=slots, seed=seed)


faults, cost = {}, {}
for slots in (1, 2, 4, 8, 16):
    runs = [measure(spaces(slots, seed)) for seed in range(3)]
    faults[f"{slots} slots"] = sum(r[1]["pagefault"] for r in runs) / len(runs)
    cost[f"{slots} slots"] = sum(r[0] for r in runs) / len(runs)
    print(f"{slots:2} slots: {faults[f'{slots} slots']:5.1f} page faults, "
          f"{cost[f'{slots} slots']:8.0f} cycles for {K * ROUNDS} switches of address space")
display(Chart(bar_chart(faults, f"Host page faults, {K} address spaces x {ROUNDS} rounds",
                        "faults")))
display(Chart(bar_chart(cost, "Cycles for the whole loop", "cycles")))

# %% [markdown]
# With one slot, every switch of address space starts from an empty shadow.
# With more slots than address spaces, the faults should stop after the first
# round -- but the random choice sometimes lands on a slot in use even while
# others are free, so a few evictions remain.  Linux's lguest accepted that:
# real Guests switch among a handful of processes, and a fault costs a few
# hundred cycles.
#
# Here is the end of one run, to see the rhythm of hypercall, page fault,
# hypercall:

# %%
one = spaces(4, 0)
measure(one)
TimelineView(one, last=12, kinds=("hypercall", "pagefault"))

# %% [markdown]
# ## 4. What the 2.6.23 GDT rules let through
#
# The Guest hands the Host its whole GDT (LHCALL_LOAD_GDT), and lguest 2.6.23
# checked it lightly: every entry the Guest wrote was kept, except the four the
# Host owns; a privilege level of 0 was raised to 1, and bit 8 of the high
# word was set everywhere, meant as the "accessed" bit of a segment.  Nothing
# looked at the S bit, which tells a segment from a *system* descriptor.
# Every 386 has call gates, task gates and hardware task switches, and
# against those the rules leave a door open:
#
# - **A TSS descriptor.**  Type 9 survives the "accessed" bit unchanged, and
#   with DPL 1 the Guest may `ljmp` to it from ring 1.  A task switch loads
#   every register from the TSS, which the Guest wrote in its own memory:
#   `cs` may be entry 10, the Switcher's ring-0 code segment, which every
#   Guest GDT holds, and `cr3` the Host's own page directory.
# - **A task gate** (type 5, also unchanged) leads to the same task switch.
# - **A 16-bit call gate** (type 4) turns into type 5 when bit 8 is set: a
#   task gate again.  A 32-bit call gate (type 12) turns into 13, which is
#   reserved and only faults; an LDT descriptor (type 2) becomes a busy
#   16-bit TSS, which a jump refuses.
#
# What closes the door is an accident of layout.  Before it loads the new
# task, the processor saves the old one into the TSS that `tr` names, and the
# Guest's TSS lives in the Switcher's read-only page.  From the 486 on, with
# CR0.WP set, as Linux sets it, that write faults, and the Guest merely gets a
# page fault.  A 386 has no WP: ring 0 writes through read-only pages, the save
# succeeds, and the Guest runs its own code in ring 0 with the Host's page
# tables.  `tests/test_host_hostile.py` shows both, with 2.6.23's rules put
# back for the test: on a "386" the Guest writes a word into a Host frame.
#
# lguestsim's Host does not rely on the accident: a present system descriptor
# anywhere in the Guest's GDT, or in the three TLS entries, kills the Guest,
# and one that is not present is emptied (H:612).  The hostile corpus tries
# each type at DPL 0, 1 and 3 beside a neighbour Guest.

# %% [markdown]
# ## Your turn
#
# The last run (`one`) is live: step it, or change the sources above and run
# the experiments again.

# %%
from lguestsim import views

views.dashboard(one, (views.CodeView, views.TimelineView))

# %% [markdown]
# ## Exercises

# %%
print(ex)

# %%
ANSWER_1 = None
ANSWER_2 = None
ANSWER_3 = None

display(ex.check(1, ANSWER_1, SYSCALLS))
display(ex.check(2, ANSWER_2, SPACES))
display(ex.check(3, ANSWER_3, SYNC))
