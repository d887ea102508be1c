# %% [markdown]
# # Launcher: an ordinary program that makes a machine
#
# The Host module does not know how to start a Guest.  A user program does:
# the *Launcher*.  It maps a large, empty stretch of its own address space and
# declares it the Guest's physical memory -- Guest-physical address N is simply
# Launcher address N.  Into it goes everything a boot loader would prepare:
# the kernel, a boot header, first page tables, a description of the devices.
# Then it opens `/dev/lguest`, writes four numbers, and from then on its life is
# a loop: `read()` runs the Guest until it has something for the Launcher.
#
# In lguestsim the Launcher is `lguestsim.launcher`; the Launcher's address
# space is a range of the machine's RAM handed out by the Host.

# %%
STUDENT = ""   # your name: it picks your variant of the exercises

from IPython.display import display

from lguestsim import views
from lguestsim.exercises.launcher import LauncherExercises
from lguestsim.launcher import boot as bootheader
from lguestsim.session import Session

ex = LauncherExercises(STUDENT)
s = Session.boot(cmdline=["hello", "from", "the", "launcher"])
run = s.run
layout = run.layout

# %% [markdown]
# ## The layout
#
# `lay_out_guest()` (launcher/main.py) did all of this before the Host saw
# anything.  Here is what it decided for a Guest with 32 MiB:

# %%
k = layout.kernel
rows = [
    ("Guest memory", 0, layout.mem, "zeroed, then filled"),
    ("boot header ('zero page')", 0, 0x1000, "memory map, command line pointer, subarch"),
    ("kernel command line", bootheader.COMMAND_LINE, bootheader.COMMAND_LINE + len(layout.cmdline),
     repr(layout.cmdline)),
    (f"kernel ({k.kind})", k.low, k.high, f"entry {k.start:#x}, page_offset {k.page_offset:#x}"),
    ("first page tables", layout.pgdir - 0x1000 * ((layout.mem // 0x1000 + 1023) // 1024),
     layout.pgdir + 0x1000, f"directory at {layout.pgdir:#x}"),
    ("device descriptor page", layout.devices.descs, layout.devices.descs + 0x1000, "one console"),
]
print(f"{'what':28} {'from':>10} {'to':>10}   notes")
for what, lo, hi, note in rows:
    print(f"{what:28} {lo:#10x} {hi:#10x}   {note}")
print(f"\nthe Launcher's memory is host-physical {run.process.base:#x} .. "
      f"{run.process.base + run.process.size:#x}")

# %% [markdown]
# The kernel goes at 1 MiB, as on a PC.  The page tables go at the top of
# memory: a page directory and, below it, enough page-table pages to map all of
# the Guest's memory at `page_offset` (0xC0000000).  The Guest's virtual
# address 0xC0000000 + N is its physical N; the kernel is linked to run there.
# The device page sits just above the Guest's memory, so the Guest can reach it
# but it is not RAM.  Everything past the device pages is out of bounds: the
# Launcher tells the Host the first page the Guest may not touch (*pfnlimit*).
#
# Here is the page directory the Launcher built, in the Guest's memory:

# %%
views.PageDirectoryView(s, which="guest")

# %% [markdown]
# Eight entries from index 768 (0xC0000000): 8 x 4 MiB = 32 MiB, all of
# memory.  The boot header holds the rest of what the Guest needs to know:

# %%
mem = run.process
print("E820 entries:", mem.read(bootheader.E820NR, 1)[0])
print("cmd_line_ptr:", hex(mem.read32(bootheader.CMD_LINE_PTR)),
      "->", mem.read(bootheader.COMMAND_LINE, 40).split(b"\0")[0])
print("hardware_subarch:", mem.read32(bootheader.HARDWARE_SUBARCH), "(1 = lguest)")

# %% [markdown]
# And the devices: one descriptor per device, in the page above memory.  The
# console is always there; the Guest's bus driver will read it and write its
# own status bits back.

# %%
views.DevicePageView(s)

# %% [markdown]
# ## Four numbers
#
# `LHREQ_INITIALIZE` gives the Host the first page the Guest may not touch,
# where its page directory is, where it starts and its `page_offset`.  The
# session did that when it made the world; the Host answered by creating a
# `struct lguest` with a shadow page directory and a registers page:

# %%
lg = s.lg
print(f"pfnlimit  {lg.pfn_limit:#x} pages (= {lg.pfn_limit * 4096:#x} bytes)")
print(f"pgdir     {lg.pgdirs[0].gpgdir:#x} (Guest-physical), shadowed at host {lg.pgdirs[0].page:#x}")
print(f"start     {lg.regs.eip:#x} ({s.describe(lg.regs.eip)})")
print(f"offset    {lg.page_offset:#x}")

# %% [markdown]
# ## read() runs the Guest
#
# The Launcher now reads `/dev/lguest`.  The read does not return until the
# Guest has something the Launcher must handle.  Inside it the Host runs its
# `run_guest` loop, and the first thing that loop does is switch to the Guest.
# That is the first step of the session: the *first world switch*.

# %%
stop = s.step_to("switch")
print(stop.event.kind, stop.event.data, "at cycle", stop.event.cycle)
views.CodeView(s, before=0, after=8)

# %% [markdown]
# The Launcher is blocked in `read()` the whole time the Guest runs.  What makes
# the read return?  Output: the Guest's console driver sends its text with a
# `SEND_DMA` hypercall to key 0.  No other Guest listens on a key in private
# memory, so the Host ends the read with 8 bytes: the address of the Guest's
# `struct lguest_dma`, and the key.

# %%
stop = s.step_to("dma")
print(stop.event.data)
print("the Launcher's log:", s.world.launcher_log[-1])
print("console so far:", repr(s.console))
views.DMAView(s)

# %% [markdown]
# In the same step of the session the read returned and the Launcher did its
# part (the session counts the Host's work and the Launcher's as one step: the
# Guest is not running meanwhile).  The Launcher checked every address in that
# `lguest_dma` against the top of Guest memory (the Guest is not trusted),
# gathered the sections, wrote them to standard output, and put the number of
# bytes into the buffer's `used_len` so the Guest knows it was consumed.  Its
# next read runs the Guest again.
#
# When the Guest dies the read fails with `ENOENT`, and one more read gives the
# reason, which the Launcher prints:

# %%
s.finish()
print(s.world.launcher_log[-1])
views.TimelineView(s, last=6)

# %% [markdown]
# ## The same Launcher in C (optional)
#
# lguest's Launcher is a C program, and so is lguestsim's second one:
# `launcher-c/` in the project, a few hundred lines that do what
# `lguestsim.launcher` does, for both generations (`--virtio` for 2.6.25).
# It runs as a real process, and the *native door* gives it a `/dev/lguest`
# served by lguestsim's Host: `python -m lguestsim native -- ./lguest ...`.
# Its Guest memory comes from mapping `/dev/zero`, and the door shares those
# pages with the simulated machine, so the Guest's physical address N is the
# C program's address `guest_base + N`, as in lguest.  Here is its heart, the
# same loop as `Launcher.turn()` above:

# %%
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import lguestsim
from lguestsim.launcher.main import SHIPPED_GUEST_VIRTIO

C_SOURCE = Path(lguestsim.__file__).resolve().parent.parent / "launcher-c"
if (C_SOURCE / "lguest.c").is_file():
    text = (C_SOURCE / "lguest.c").read_text()
    start = text.index("static void __attribute__((noreturn)) run_guest(void)")
    print(text[start:text.index("\n}\n", start) + 2])
else:
    print("launcher-c/ is not beside this lguestsim (it comes with a checkout of the project)")

# %% [markdown]
# Where gcc (with 32-bit support) is there, the next cell builds the C
# Launcher and boots the 2.6.25 Guest through the door, typing two shell
# commands into its console.  It is the same Guest, the same Host and the same
# trace; only the Launcher is a different program.

# %%
missing = [tool for tool in ("gcc", "make") if shutil.which(tool) is None]
if not (C_SOURCE / "lguest.c").is_file() or missing:
    print("Not run here: this needs the project's checkout with gcc and make "
          "(the live book in the browser has neither): open the chapter with `make lab`.")
else:
    build = Path(tempfile.mkdtemp())
    subprocess.run(["make", "-s", "-C", str(C_SOURCE), f"O={build}"], check=True)
    done = subprocess.run([sys.executable, "-m", "lguestsim", "native", "--virtio", "--",
                           str(build / "lguest"), "--virtio", "32", str(SHIPPED_GUEST_VIRTIO),
                           "shell"], input=b"devices\nquit\n", capture_output=True,
                          timeout=300)
    console = done.stdout.decode("utf-8", "replace")
    print(console[console.find("user: reading commands"):])
    print(done.stderr.decode("utf-8", "replace").strip(), "/ exit status", done.returncode)

# %% [markdown]
# ## Your turn
#
# The buttons drive the same session; the console view shows what the
# Launcher printed for the Guest so far.

# %%
s.goto(1)
views.dashboard(s, (views.CodeView, views.ConsoleView, views.TimelineView))

# %% [markdown]
# ## Exercises
#
# The exercises use a Guest with a different amount of memory.

# %%
print(ex)

# %%
ANSWER_1 = None
ANSWER_2 = None
ANSWER_3 = None

display(ex.check(1, ANSWER_1))
display(ex.check(2, ANSWER_2))
display(ex.check(3, ANSWER_3))
