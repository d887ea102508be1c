# %% [markdown]
# # Drivers: devices made of buffers
#
# A Guest has no hardware.  In lguest 2.6.23 it has two hypercalls instead:
#
# * `BIND_DMA(key, dmas, num, irq)`: "here is an array of `num` receive buffers;
#   when something is sent to `key`, put it in the first free one and raise
#   interrupt `irq`";
# * `SEND_DMA(key, dma)`: "send this buffer to whoever listens on `key`".
#
# A buffer is a `struct lguest_dma`: a `used_len` the receiver's side fills in,
# and up to 16 sections (a Guest-physical address and a length each).  A key is
# an address.  The Host does not compare keys as numbers but as *memory*: two
# Guests whose Launchers map the same shared file agree on a key there, even
# at different addresses -- that is how Guests talk to each other.  A key in
# memory no one else shares can only be meant for the Guest's own Launcher,
# whose `read()` of `/dev/lguest` returns with it.
#
# On top of that, the lguest bus: a page of device descriptors the Launcher
# writes above the Guest's memory, which the Guest's drivers find and answer.

# %%
STUDENT = ""   # your name: it picks your variant of the exercises

from IPython.display import display

from lguestsim import views
from lguestsim.exercises.drivers import DriversExercises
from lguestsim.session import Session, TinyGuest, shared_key

ex = DriversExercises(STUDENT)
s = Session.boot()

# %% [markdown]
# ## The lguest bus
#
# The Launcher put one descriptor in the device page: a console, type 1, with
# status 0.  The Guest's bus driver reads the page and, as it goes, writes
# status bits back into each descriptor: ACKNOWLEDGE ("I saw it"), DRIVER ("a
# driver has it"), DRIVER_OK ("it works").  Let us watch the console's status
# field (two bytes, at offset 4 of the descriptor) and stop on every change.

# %%
desc = s.run.layout.devices.descs
s.watch(desc + 4, 2, label="console status")
for _ in range(3):
    stop = s.cont()
    print(f"step {s.steps}: status = {s.run.process.read16(desc + 4)} at {s.describe(s.cpu.eip)}")
s.unwatch()
views.DevicePageView(s)

# %% [markdown]
# ## The console: output to the Launcher, input bound
#
# The console driver prints by `SEND_DMA` to key 0 -- an address in the
# Guest's private memory, so the Host hands the buffer to the Launcher, which
# writes it out.  For input, the driver binds a receive buffer at key 0 with
# the console's interrupt (device index + 1).  Here are the console's first
# transfers and its bound buffer:

# %%
s.goto(0)
s.step_to("hypercall", match=lambda e: e.name == "BIND_DMA")
views.DMAView(s, last=4)

# %% [markdown]
# ## Guest to Guest
#
# Two Guests now, each a few lines of assembly, on one Host.  Their Launchers
# share one page, mapped just above each Guest's memory, and the key is a word
# in it.  The *receiver* binds two 16-byte buffers there (irq 3), tells its
# Launcher it is ready, and crashes politely; the *sender* sends "hello" and
# ", world" as two sections.  The session runs the two Launchers in turn, as a
# Host's scheduler would.

# %%
KEY = shared_key()

RECEIVER = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 12, {key}, rx-PO, 0x0203     # BIND_DMA(key, rx, 2 buffers, irq 3)
        HCALL 13, 0, hello-PO              # SEND_DMA to key 0: tell our Launcher
        HCALL 2, msg-PO                    # CRASH("receiver done")
msg:    .asciz "receiver done"
        .p2align 2
hello:  .long 0, msg-PO
        .fill 15, 4, 0
        .short 1
        .fill 15, 2, 0
rx:     .long 0, rxbuf-PO                  # buffer 0: used_len, one section...
        .fill 15, 4, 0
        .short {length}                    # ... of this many bytes
        .fill 15, 2, 0
        .long 0, rxbuf2-PO                 # buffer 1
        .fill 15, 4, 0
        .short {length}
        .fill 15, 2, 0
rxbuf:  .fill 16, 1, 0
rxbuf2: .fill 16, 1, 0
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""

SENDER = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 13, {key}, tx-PO             # SEND_DMA(key, tx)
        HCALL 2, msg-PO
msg:    .asciz "sender done"
        .p2align 2
tx:     .long 0, txbuf1-PO, txbuf2-PO      # used_len, two sections
        .fill 14, 4, 0
        .short 5, 7
        .fill 14, 2, 0
txbuf1: .ascii "hello"
txbuf2: .ascii ", world"
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""


def pair(length=16):
    return Session([TinyGuest(RECEIVER.format(key=KEY, length=length), share=True,
                              name="receiver"),
                    TinyGuest(SENDER.format(key=KEY), share=True, name="sender")])


g = pair()
stop = g.step_to("dma", match=lambda e: e.data.get("to") != "launcher")
transfer_step = g.steps
print(stop)
views.DMAView(g)

# %% [markdown]
# The Host found the receiver's binding under the same key (the same word of
# shared memory), took its first free buffer, checked every section of both
# sides (at most a page, not crossing a page, inside the Guest's memory), and
# copied section by section: 5 + 7 bytes into one 16-byte section.  It wrote
# 12 into both `used_len`s and raised interrupt 3 in the receiver.  The
# receiver has not even run meanwhile: it is still waiting for its Launcher's
# next `read()`.

# %%
print("receiver's pending interrupts:", bin(g.runs[0].lg.irqs_pending))
g.finish()
views.TimelineView(g, last=12)

# %% [markdown]
# ## Your turn
#
# The two-Guest session `g` has run to its end; go back to the transfer
# (`g.goto(...)`, or the buttons) and watch the buffers fill.

# %%
g.goto(transfer_step)
views.dashboard(g, (views.DMAView, views.CodeView, views.TimelineView))

# %% [markdown]
# ## Exercises

# %%
print(ex)

# %%
ANSWER_1 = None
ANSWER_2 = None
ANSWER_3 = None

display(ex.check(1, ANSWER_1, pair))
display(ex.check(2, ANSWER_2))
display(ex.check(3, ANSWER_3))
