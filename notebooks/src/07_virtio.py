# %% [markdown]
# # Virtio: the 2.6.25 generation
#
# The journey so far is lguest 2.6.23's.  Two kernels later, in 2.6.25, lguest
# threw away its own I/O scheme -- `BIND_DMA`, `SEND_DMA`, keys, the Host
# copying between Guests -- and took up **virtio**, the device interface
# Linux was growing for every hypervisor.  What changed:
#
# * A device is a set of **virtqueues**: rings in the *Guest's* memory, where
#   the Guest's driver offers buffers (`add_buf`) and the Launcher, which maps
#   that memory too, takes them, serves them and hands them back in a "used"
#   ring.  The Host copies nothing: it only carries the Guest's **kick**, the
#   `NOTIFY` hypercall, out of `read()` to the Launcher.
# * The device page above Guest memory holds virtio descriptors: type,
#   number of queues, feature bits, configuration, and a status byte the
#   driver writes.
# * The Guest boots through the standard x86 entry: the boot header's
#   `hardware_subarch` is 1, and `startup_32` jumps to lguest's entry.
# * A Guest can ask to be restarted: `SHUTDOWN` with "restart", and the
#   Launcher starts afresh.
#
# Both generations run on this simulator, with the same shell commands.  Let
# us run them side by side.

# %%
STUDENT = ""   # your name: it picks your variant of the exercises

import io
import os
import tempfile
from collections import Counter
from pathlib import Path

from IPython.display import HTML, display

from lguestsim import views
from lguestsim.exercises.virtio import VirtioExercises
from lguestsim.launcher.main import Options, start_launchers
from lguestsim.launcher.run import run_many
from lguestsim.session import Session

ex = VirtioExercises(STUDENT)


class Console(io.StringIO):
    """A Guest's console output (the Launcher writes bytes to .buffer)."""

    def __init__(self):
        super().__init__()
        self.buffer = io.BytesIO()

    def text(self):
        return self.buffer.getvalue().decode("latin-1") + self.getvalue()


# %% [markdown]
# ## The same work on both generations
#
# For each generation we start two Guests on one Host, the way `lguest
# --guests` would: the first has a disk and both share a network.  The first
# Guest runs its shell; we type `write 1 hello` (one block request) and then
# `ping PEER 1` (one echo request to the other Guest, whose address we learn
# from a broadcast first).  Around each command -- from the Guest idle at its
# prompt to the Guest idle again after the answer -- we read the first
# Guest's counters (hypercalls, world switches, its Launcher's trips round
# `read()`, cycles) and the Host's trace: that Guest's events, by kind.
# `dma` events are 2.6.23's SEND_DMA transfers; `notify` and `vring` events
# are virtio's kicks and the Launcher's ring work.

# %%
def type_and_wait(group, wfd, out, line, done):
    """Type ``line`` into the first Guest's console; run until ``done`` is printed
    and the Guest has gone idle again (halted, waiting for input)."""
    mark = len(out.text())
    os.write(wfd, f"{line}\n".encode())
    run_many(group, wait=0, until=lambda: done in out.text()[mark:] and "guest> " in
             out.text()[mark:].split(done, 1)[1] and group[0].lg.halted)
    return out.text()[mark:]


def in_guest(events):
    """Cycles spent running the Guest: from each switch into it to the switch out."""
    total, entered = 0, None
    for e in events:
        if e.kind == "switch" and e.data["to"] == "guest":
            entered = e.cycle
        elif e.kind == "switch" and entered is not None:
            total, entered = total + e.cycle - entered, None
    return total


def generation(virtio, tmp):
    """Run a block write and a ping on one generation; what each cost, measured."""
    disk = Path(tmp, f"disk-{virtio}.img")
    disk.write_bytes(bytes(64 * 1024))
    net = str(Path(tmp, f"net-{virtio}"))
    rfd, wfd = os.pipe()
    outs = [Console(), Console()]
    items = [Options(virtio=virtio, mem_mb=16, cmdline=["shell"],
                     devices=([("block", str(disk))] if i == 0 else []) + [("sharenet", net)],
                     console_out=outs[i], console_in=rfd if i == 0 else None)
             for i in range(2)]
    group = start_launchers(items)
    launcher = group[0]
    run_many(group, wait=0, until=lambda: "reading commands" in outs[0].text()
             and launcher.lg.halted)
    # The other Guest's address: the one that answers a broadcast (not measured:
    # after a broadcast a Guest waits the whole timeout for more answers).
    answer = type_and_wait(group, wfd, outs[0], "ping broadcast 1", "bytes from")
    peer = answer.split("bytes from ", 1)[1].split(": ", 1)[0]
    lg, cpu, trace = launcher.lg, launcher.machine.cpu, launcher.lguest.host.trace
    measured = {}
    for command, done in (("write 1 hello", "wrote"), (f"ping {peer} 1", "bytes from")):
        first = len(trace.events)
        before = (lg.hypercalls, lg.world_switches, launcher.turns, cpu.cycles)
        output = type_and_wait(group, wfd, outs[0], command, done)
        after = (lg.hypercalls, lg.world_switches, launcher.turns, cpu.cycles)
        events = [e for e in trace.events[first:] if e.data.get("guest", 0) == lg.guestid]
        counts = dict(zip(("hypercalls", "world switches", "Launcher round trips",
                           "cycles, idle included"),
                          (a - b for a, b in zip(after, before, strict=True)), strict=True))
        counts["cycles in the Guest"] = in_guest(events)
        measured[command.split()[0]] = {
            "counts": counts,
            "kinds": Counter(e.kind for e in events),
            "events": events,
            "output": output.strip()}
    os.write(wfd, b"quit\n")
    os.close(wfd)
    run_many(group, wait=5, until=lambda: launcher.ended)
    os.close(rfd)
    for other in group:
        other.finish(0, "the chapter is done with it")
    return measured


with tempfile.TemporaryDirectory() as tmp:
    runs = {"2.6.23 (DMA)": generation(False, tmp), "2.6.25 (virtio)": generation(True, tmp)}


def comparison(runs):
    names = list(runs)
    rows = []
    for command in runs[names[0]]:
        kinds = sorted(set().union(*(runs[n][command]["kinds"] for n in names)))
        for what in list(runs[names[0]][command]["counts"]) + [f"{k} events" for k in kinds]:
            cells = []
            for n in names:
                r = runs[n][command]
                value = (r["counts"][what] if what in r["counts"]
                         else r["kinds"].get(what.removesuffix(" events"), 0))
                cells.append(f"<td style='text-align:right'>{value:,}</td>")
            rows.append(f"<tr><td>{command}</td><td>{what}</td>{''.join(cells)}</tr>")
    head = "".join(f"<th>{n}</th>" for n in names)
    return HTML(f"<table><tr><th>command</th><th>measured</th>{head}</tr>{''.join(rows)}"
                "</table>")


display(comparison(runs))
for name, r in runs.items():
    print(f"{name}: {r['write']['output']!r} / {r['ping']['output']!r}")

# %% [markdown]
# Read the `dma` row against the `notify` and `vring` rows.  In 2.6.23 every
# block request, console line and packet is a `SEND_DMA` the Host checks
# section by section: one meant for the Launcher comes out of `read()` and
# the Launcher reads the sections itself; one meant for another Guest the
# Host copies straight into a buffer that Guest bound.  In 2.6.25 the Host
# copies nothing and checks nothing but the hypercall: a request is a chain
# of descriptors in the Guest's own memory, the kick is a `NOTIFY` that
# leaves `read()`, and the Launcher reads and writes the buffers itself
# before putting the chain in the used ring; a packet for the other Guest
# goes through both Launchers.  The work moves from the Host to the
# Launchers: more round trips through `read()` and more world switches.
# "Cycles, idle included" runs from typing the line to the Guest idle again,
# so it is mostly the Guest halted, waiting for its Launcher's next turn;
# "cycles in the Guest" counts only the stretches between a switch into the
# Guest and the switch out (the trace's `switch` events).  The ping's own
# `time=` is the round trip as the Guest's clock saw it.
#
# Here is the block write on each generation, event by event, side by side:

# %%
def side_by_side(runs, command, kinds=("hypercall", "dma", "notify", "vring", "interrupt")):
    columns = []
    for name, r in runs.items():
        lines = [f"{e.cycle:>10,}  {e.kind:<9} {dict(e.data)}"
                 for e in r[command]["events"] if e.kind in kinds]
        columns.append(f"<td style='vertical-align:top'><b>{name}</b><pre>"
                       + "\n".join(lines) + "</pre></td>")
    return HTML(f"<table><tr>{''.join(columns)}</tr></table>")


side_by_side(runs, "write")

# %% [markdown]
# ## One request through a virtqueue
#
# The 2.6.25 block write above went: the driver's `add_buf` put a chain of
# three descriptors in the ring (the request header, the data, the status
# byte the Launcher writes); `kick` made a `NOTIFY` hypercall with the
# queue's address; the Host left `read()` with it (the `notify` event); the
# Launcher took the chain (`vring` op `avail`), wrote the sector, put the
# head in the used ring (`vring` op `used`) and raised the queue's
# interrupt; the Guest's interrupt handler ran `get_buf` and found its reply.
#
# Now the same steps with the ring in view, in a session of the virtio Guest
# given a disk (`Session.boot(virtio=True, block=FILE)`, the session's
# `--block`).  Without `shell` on its command line the Guest's program reads
# sector 0 of its first disk by itself, so there is one block request to
# follow.  Not every NOTIFY is a kick: before its console driver is up, the
# Guest prints through NOTIFY with the address of a string in its own memory
# (the early console, D:820), and the Launcher prints it.  A kick names a
# page of a vring, above the Guest's memory.  We step to the kick of the
# disk's queue:

# %%
disk = Path(tempfile.mkdtemp()) / "disk.img"
disk.write_bytes(b"sector zero, read through a virtqueue".ljust(64 * 1024, b"\0"))
s = Session.boot(virtio=True, block=disk)
rings = {vq.ring.base: f"{dev.name} queue {q}" for dev in s.run.layout.devices.devices
         for q, vq in enumerate(dev.vqs)}
block_vq = next(vq for dev in s.run.layout.devices.devices if dev.name == "block"
                for vq in dev.vqs)
block_ring = block_vq.ring.base
stop = s.step_to("notify", match=lambda e: e.data["addr"] == block_ring)
early = [e for e in s.trace.of("notify") if e.data["addr"] not in rings]
print(f"{len(early)} early-console NOTIFYs first (strings at {early[0].data['addr']:#x});",
      f"then {len(s.trace.of('notify')) - len(early) - 1} console kicks; then")
print(stop, "->", rings[block_ring])

# %% [markdown]
# That one step of the session is the whole round trip on the Launcher's
# side: the Host left `read()` with the ring's address, and the Launcher took
# the chain the Guest offered (`vring` op `avail`: three pieces, the
# request header, the 512-byte sector and the status byte), read the sector
# from the file into the Guest's buffer, and gave the chain back in the used
# ring with the length it wrote (`used`: 512 data bytes and the status
# byte), then raised the queue's interrupt (the `irq` of its
# `lguest_vqconfig`).  The events of that step, from the trace, from the
# Guest's NOTIFY hypercall on:

# %%
events = list(s.trace.events)
kick = max(i for i, e in enumerate(events) if e.kind == "hypercall" and e.data["call"] == 17)
for e in events[kick:]:
    if e.kind != "vring" or e.data["ring"] == block_ring:
        print(f"{e.cycle:>10,}  {e.kind:<9} {dict(e.data)}")

# %% [markdown]
# The ring as it stands now: the disk's queue has its `avail` and `used`
# indices equal again (nothing is waiting), and the descriptors still hold
# the chain the Launcher has just returned.  The console's input queue keeps
# its empty buffers offered to the Launcher (the view's "owner" column) until
# a key is typed.

# %%
views.VirtqueueView(s)

# %% [markdown]
# The interrupt and the switch back are the last events above: the Guest
# resumes in its handler for that line, which runs `get_buf`, finds the used
# entry, and the driver wakes the program waiting for the sector, which
# prints it:

# %%
s.finish()
print(s.run.console.text[s.run.console.text.index("sector 0"):][:160])

# %% [markdown]
# ## The device page, as the Guest reads it
#
# Above the Guest's memory the Launcher wrote one descriptor per device: its
# virtio type, its number of virtqueues (each a `lguest_vqconfig`: size,
# interrupt, ring page), its feature bits (the device's, then the ones the
# driver accepts), its configuration bytes, and the status byte the driver
# writes as it goes: ACKNOWLEDGE 1, DRIVER 2, DRIVER_OK 4.  The session's
# Guest has finished its drivers' setup by now:

# %%
views.DevicePageView(s)

# %% [markdown]
# And the boot: the Launcher wrote `hardware_subarch` = 1 at offset 0x23c of
# the boot header; the Guest's `startup_32` reads it and jumps to lguest's
# entry.  The header is at Guest-physical 0, where `%esi` points as the Guest
# starts:

# %%
t = Session.boot(virtio=True)
t.step_to("switch")
entry = t.trace.of("switch")[0]
print(f"first entry into the Guest at {entry.data['eip']:#x} ({t.describe(entry.data['eip'])}), "
      f"%esi = {t.cpu.esi:#x}")
print("hardware_subarch =", t.run.process.read32(t.cpu.esi + 0x23c))

# %% [markdown]
# ## A restart
#
# In 2.6.25 a Guest can ask for a reboot: `SHUTDOWN` with `LGUEST_SHUTDOWN_RESTART`.
# The Host ends the Guest's `read()` with an error the Launcher recognizes,
# and the Launcher starts afresh: the real one closes its files and exec()s
# itself; ours lays the Guest out again on the same Host and attaches to it.
# We type `reboot`, wait for the new Guest's prompt, and type `quit`:

# %%
rfd, wfd = os.pipe()
out = Console()
[launcher] = start_launchers([Options(virtio=True, mem_mb=16, cmdline=["shell"],
                                      console_out=out, console_in=rfd)])
first = launcher.lg
run_many([launcher], wait=0, until=lambda: "reading commands" in out.text())
os.write(wfd, b"reboot\n")
run_many([launcher], wait=0, until=lambda: launcher.restarts == 1
         and out.text().count("reading commands") == 2)
trace = launcher.lguest.host.trace
os.write(wfd, b"quit\n")
os.close(wfd)
run_many([launcher], wait=5, until=lambda: launcher.ended)
os.close(rfd)
print("restart events:", [dict(e.data) for e in trace.of("restart")])
print("Launcher restarts:", launcher.restarts, "/ a new struct lguest:", launcher.lg is not first)
print("boots of the Guest seen on its console:", out.text().count("lguestsim teaching Guest"))
print("exit:", launcher.status, launcher.reason)

# %% [markdown]
# ## Your turn
#
# The session `s` stands at the Launcher's first returned chain.  Step on
# (`s.step_to("notify")`, `s.step_to("vring")`) and watch the rings.

# %%
views.dashboard(s, (views.VirtqueueView, views.TimelineView))

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
