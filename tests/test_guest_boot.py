"""The shipped teaching Guest boots on the simulated Host and does everything it shows.

These run the committed images (no compiler needed) through the Launcher, in
this process, and read both the Guest's console and the Host's trace.
"""

import io
from types import SimpleNamespace

import pytest

from lguestsim import guest
from lguestsim.launcher import main


class Stream(io.StringIO):
    """A text stream with a binary buffer behind it, like sys.stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()


def boot(image, mem_mb=32, cmdline=()):
    api = main.load_host_api()
    hosts = []

    class RecordingHost(api.Host):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            hosts.append(self)

    opts = main.Options(mem_mb=mem_mb, image=str(image), cmdline=list(cmdline))
    out = Stream()
    status = main.launch(opts, SimpleNamespace(Machine=api.Machine, Host=RecordingHost,
                                               HOST_AREA=api.HOST_AREA), console_out=out)
    return status, out.buffer.getvalue().decode(), hosts[0]


@pytest.fixture(scope="module")
def elf_run():
    return boot(guest.ELF_IMAGE, cmdline=["hello", "world"])


def test_guest_powers_off(elf_run):
    status, console, _host = elf_run
    assert status == main.EXIT_POWER_DOWN
    assert console.endswith("Goodbye from the Guest: powering off.\n")
    assert "Kernel command line: hello world" in console


def test_guest_console_shows_each_step(elf_run):
    _status, console, _host = elf_run
    lines = console.splitlines()
    assert lines[0] == "lguestsim teaching Guest: running on lguest, in ring 1"
    expected = [
        "Memory: 32768 KiB of RAM, 32768 KiB mapped at 0xc0000000",
        "Paging: our own page directory at",
        "lguest bus: device 0 is a console device, irq 1, driver lguestcons",
        "timer: tick 1 ", "timer: tick 2 ", "timer: tick 3 ",
        "user: hello from ring 3",
        "user: my arguments: hello world",
        "user: getpid() = 1, pid in my TLS block = 1 (block at 0xbffffff0)",
        "user: 1*1 + 2*2 + ... + 100*100 = 338350",
        "page fault: write to 0x10000000 by user mode",
        "page fault: write to 0x10001000 by user mode",
        "page fault: write to 0x10003ffc by user mode",
        "page fault: read of 0x10002000 by user mode",
        "user: heap words 0xc0ffee 338350 0x5eed, checksum 0xc68889",
        "heap ok",
        "user: write() of kernel memory returned -14",
        "FPU: first use by pid 1",
        "user: fpu: (1 + 2.5) * 4 = 14 (bits 0x41600000)",
        "user: goodbye",
        "init: exit(0)",
        "init exited with code 0",
    ]
    at = 0
    for want in expected:
        found = [i for i in range(at, len(lines)) if lines[i].startswith(want)]
        assert found, f"{want!r} missing (after line {at}):\n{console}"
        at = found[0] + 1


def test_guest_uses_every_hypercall_it_teaches(elf_run):
    _status, _console, host = elf_run
    calls = {e.name for e in host.trace.of("hypercall")}
    assert calls >= {
        "LGUEST_INIT", "FLUSH_ASYNC", "CRASH", "LOAD_GDT", "NEW_PGTABLE", "FLUSH_TLB",
        "LOAD_IDT_ENTRY", "SET_STACK", "TS", "SET_CLOCKEVENT", "HALT", "BIND_DMA",
        "SEND_DMA", "SET_PTE", "SET_PMD", "LOAD_TLS",
    }


def test_traps_and_interrupts_take_the_expected_paths(elf_run):
    _status, _console, host = elf_run
    # Three timer interrupts; the Host reflects four heap page faults and the
    # one #NM, while system calls go straight to the Guest (direct traps).
    assert [e.irq for e in host.trace.of("interrupt")] == [0, 0, 0]
    reflected = [e.vector for e in host.trace.of("trap") if e.data.get("reflected")]
    assert sorted(reflected) == [7, 14, 14, 14, 14]
    assert 0x80 not in {e.vector for e in host.trace.of("trap")}


def test_guest_boot_is_small(elf_run):
    _status, _console, host = elf_run
    assert host.machine.cpu.instructions < 1_000_000


def test_bzimage_boots_with_more_memory():
    status, console, _host = boot(guest.BZIMAGE, mem_mb=64)
    assert status == main.EXIT_POWER_DOWN
    assert "Memory: 65536 KiB of RAM, 65536 KiB mapped at 0xc0000000" in console
    assert "16 page tables" in console
    assert "user: fpu: (1 + 2.5) * 4 = 14 (bits 0x41600000)" in console
