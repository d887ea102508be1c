"""Hostile 2.6.25 (virtio) Guests, each beside a neighbour that must finish.

Each hostile Guest is a few lines of assembly booted by the real --virtio
Launcher (physical entry point, identity page tables, 2.6.25's lguest_data):
it makes LGUEST_INIT, then mistreats its console's output virtqueue, its
device page or the hypercalls, and NOTIFYs.  The neighbour is the shipped
guest-virtio.elf, running its whole demonstration on the same Host at the
same time.  The hostile Guest must end with a clear reason (the Launcher's,
as its errx() gave, or the Host's), its Launcher must return no used buffer
for what it refused, the Host's own tables and the Switcher must be as they
were, and the neighbour must power off normally.
"""

from __future__ import annotations

import io

import pytest
from launcher_images import elf

from lguestsim.asm import assemble
from lguestsim.host import core
from lguestsim.launcher.main import Options, start_launchers
from lguestsim.launcher.run import run_many

MEM = 16 << 20
DESC_PAGE = MEM                       # the device page, just above RAM
OUT_VQ = MEM + 3 * 4096               # the console's output ring (queue 1)
OUT_AVAIL = OUT_VQ + 128 * 16
OUT_USED = OUT_VQ + 4096

PRELUDE = f"""
.macro HCALL n, a=0, b=0, c=0
        movl $\\n, %eax
        movl $\\a, %edx
        movl $\\b, %ebx
        movl $\\c, %ecx
        int $0x1f
.endm
.set OUT_VQ, {OUT_VQ:#x}
.set OUT_AVAIL, {OUT_AVAIL:#x}
.set DESC_PAGE, {DESC_PAGE:#x}
# desc i of the output ring: addr (64-bit), len, flags, next
.macro DESC i, addr, len, flags, next
        movl $\\addr, OUT_VQ + 16 * \\i
        movl $0, OUT_VQ + 16 * \\i + 4
        movl $\\len, OUT_VQ + 16 * \\i + 8
        movw $\\flags, OUT_VQ + 16 * \\i + 12
        movw $\\next, OUT_VQ + 16 * \\i + 14
.endm
# Offer head h in the output ring, with the console's status bits set.
.macro OFFER h
        movb $7, DESC_PAGE + 4
        movw $\\h, OUT_AVAIL + 4
        movw $1, OUT_AVAIL + 2
.endm
        movl $stack_top, %esp
        HCALL 1, lguest_data
        # The Launcher's page tables map only RAM: map the device page and the
        # console's rings too (directory entry 4, straight into the Guest's
        # directory; the Host builds the shadow when we first touch it).
        movl lguest_data + 1116, %esi
        movl $devptes + 7, 16(%esi)
"""

DATA = """
        HCALL 2, msg, 1
msg:    .asciz "survived"
        .p2align 12
lguest_data:
        .long 0x200, 0, 0, 0, 0           # irq_enabled, blocked, cr2, time
        .fill 64, 1, 0xff                 # hcall_status: all free
        .fill 64 * 16, 1, 0               # hcalls
        .long 0, 0, 0                     # reserve_mem, tsc_khz, pgdir (the Host's)
        .long 0, 0                        # noirq_start, noirq_end
        .long 0xc0000000, 0x80            # kernel_address, syscall_vec
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
text:   .ascii "hello"
        .p2align 12
devptes:                                  # the device page and four ring pages
        .long DESC_PAGE + 7, DESC_PAGE + 0x1007, DESC_PAGE + 0x2007
        .long DESC_PAGE + 0x3007, DESC_PAGE + 0x4007
        .fill 1019, 4, 0
"""

HOSTILE = {
    "looping_chain": ("DESC 0, 0x200000, 8, 1, 1\nDESC 1, 0x200000, 8, 1, 0\nOFFER 0\n"
                      "HCALL 17, OUT_VQ", "Looped descriptor"),
    "index_out_of_range": ("DESC 0, 0x200000, 8, 0, 0\nOFFER 200\nHCALL 17, OUT_VQ",
                           "Guest says index 200 is available"),
    "next_out_of_range": ("DESC 0, 0x200000, 8, 1, 128\nOFFER 0\nHCALL 17, OUT_VQ",
                          "Desc next is 128"),
    "buffer_past_memory": ("DESC 0, 0x1200000, 8, 0, 0\nOFFER 0\nHCALL 17, OUT_VQ",
                           "invalid address 0x1200000"),
    "length_overflows": ("DESC 0, 0x200000, 0xffffffff, 0, 0\nOFFER 0\nHCALL 17, OUT_VQ",
                         "invalid address 0x200000"),
    # The Guest moves its console's ring in the device page: the Launcher
    # keeps its own copy of where the ring is, so a NOTIFY there is unknown.
    "vring_pfn_outside_memory": ("movl $0x90000, DESC_PAGE + 5 + 8 + 4\n"
                                 "HCALL 17, 0x90000000", "Bad NOTIFY 0x90000000"),
    "notify_unknown_address": ("HCALL 17, 0x1800000", "Bad NOTIFY 0x1800000"),
    "bind_dma": ("HCALL 12, 0x1000, 0x2000, 0x101", "Bad hypercall 12: DMA is gone"),
    "send_dma": ("HCALL 13, 0x1000, 0x2000", "Bad hypercall 13: DMA is gone"),
}


class Stream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()

    def text(self) -> str:
        return self.buffer.getvalue().decode("latin-1") + self.getvalue()


def hostile_image(tmp_path, code: str):
    prog = assemble(PRELUDE + code + DATA, base=0x100000)
    path = tmp_path / "hostile.elf"
    path.write_bytes(elf([(0x100000, prog.code, 0)], entry=0x100000))
    return path


def host_state(host) -> bytes:
    mem = host.mem
    return (mem.read(core.HOST_GDT, 0x3000) + mem.read(core.HOST_PGDIR, 0x2000)
            + mem.read(core.SWITCHER_PHYS, 0x2000))


def test_a_well_behaved_tiny_virtio_guest_survives(tmp_path):
    # The harness itself: with nothing hostile, the tiny Guest's console
    # output goes through and it ends with its own message.
    out = Stream()
    code = ("DESC 0, text, 5, 0, 0\nOFFER 0\nHCALL 17, OUT_VQ\n")
    [launcher] = start_launchers([Options(virtio=True, mem_mb=16,
                                          image=str(hostile_image(tmp_path, code)),
                                          console_out=out)])
    run_many([launcher], wait=0)
    assert launcher.reason == "CRASH: survived", launcher.reason
    assert "hello" in out.text()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_virtio_guest_dies_and_its_neighbour_finishes(name, tmp_path):
    code, reason = HOSTILE[name]
    outs = [Stream(), Stream()]
    group = start_launchers([
        Options(virtio=True, mem_mb=16, image=str(hostile_image(tmp_path, code)),
                console_out=outs[0]),
        Options(virtio=True, mem_mb=16, console_out=outs[1]),
    ])
    hostile, neighbour = group
    host = hostile.lguest.host
    before = host_state(host)
    hostile_memory = hostile.layout.memory
    run_many(group, wait=0)
    assert hostile.status == 1, (hostile.status, hostile.reason)
    assert reason in hostile.reason, hostile.reason
    assert "survived" not in hostile.reason
    # Nothing of what it offered was used: the used ring is untouched.
    assert hostile_memory.read(OUT_USED, 12) == bytes(12)
    assert host_state(host) == before
    assert neighbour.status == 0, (neighbour.reason, outs[1].text()[-1500:])
    assert neighbour.reason == "CRASH: Power down"
    assert "Goodbye from the Guest: powering off." in outs[1].text()


@pytest.mark.parametrize("poke, reason", [
    ("movl $0xffc00000, lguest_data + 1128", "bad kernel_address 0xffc00000"),
    ("movl $0x40, lguest_data + 1132", "syscall_vec 0x40"),
])
def test_lguest_data_the_guest_fills_in_is_checked(poke, reason, tmp_path):
    # 2.6.25's Guest tells the Host its kernel_address and syscall_vec at
    # LGUEST_INIT; values the Host cannot honour kill it there.
    source = PRELUDE.replace("        HCALL 1, lguest_data\n", f"        {poke}\n"
                             "        HCALL 1, lguest_data\n") + DATA
    prog = assemble(source, base=0x100000)
    path = tmp_path / "hostile.elf"
    path.write_bytes(elf([(0x100000, prog.code, 0)], entry=0x100000))
    [launcher] = start_launchers([Options(virtio=True, mem_mb=16, image=str(path),
                                          console_out=Stream())])
    run_many([launcher], wait=0)
    assert launcher.status == 1 and reason in launcher.reason, launcher.reason


def test_notify_is_not_a_2623_hypercall():
    # One Host, two ABIs: a 2.6.23 Guest that makes 2.6.25's NOTIFY is killed
    # like any Guest making an unknown call.
    from guestenv import boot, run_to_death
    _, dev, lg, _ = boot("movl $0xc0100000, %esp\nHCALL 1, lguest_data-PO\n"
                         "HCALL 17, 0x1000\nHCALL 2, 0\n")
    died, _ = run_to_death(dev)
    assert died.startswith("Bad hypercall 17") and not lg.virtio
