"""The 2.6.25 (virtio) generation end to end: the shipped guest-virtio.elf on the
real Host, laid out and served by the real Launcher with --virtio.

Acceptance 1 of issue 12: boot, ``devices`` (virtio ids and status bits),
``read 0`` of a disk the test wrote, ``write 1 TEXT`` found in the file
afterwards (never resized), ``reboot`` followed by ``read 1`` still showing
TEXT, ``quit`` with exit status 0; and two virtio Guests on one --sharenet
network pinging each other.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lguestsim import guest
from lguestsim.host.lg import HCALL_NAMES_2625, LHCALL_NOTIFY
from lguestsim.launcher.main import Options, start_launchers
from lguestsim.launcher.run import run_many

ROOT = Path(__file__).resolve().parent.parent


class Stream(io.StringIO):
    """A text stream with a binary buffer behind it, like sys.stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()

    def text(self) -> str:
        return self.buffer.getvalue().decode("latin-1") + self.getvalue()


def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    data = bytearray(64 * 1024)
    data[:11] = b"hello disk!"
    path.write_bytes(data)
    return path


def test_shipped_virtio_image_is_an_elf_entered_at_its_physical_start():
    image = guest.VIRTIO_IMAGE.read_bytes()
    assert image[:4] == b"\x7fELF"
    assert int.from_bytes(image[0x18:0x1C], "little") == 0x100000
    assert b"GenuineLguest" not in image


def test_boot_devices_block_reboot_quit(tmp_path):
    path = disk(tmp_path)
    rfd, wfd = os.pipe()
    out = Stream()
    opts = Options(virtio=True, mem_mb=16, cmdline=["shell"], devices=[("block", str(path))],
                   console_out=out, console_in=rfd)
    [launcher] = start_launchers([opts])
    host_guest = launcher.lg
    assert host_guest.virtio
    try:
        os.write(wfd, b"devices\nread 0\nwrite 1 TEXT\nreboot\n")
        # Run until the rebooted Guest asks for its first command.
        run_many([launcher], wait=0, until=lambda: launcher.restarts == 1
                 and out.text().count("reading commands from the console") == 2)
        assert launcher.restarts == 1 and not launcher.ended
        # The Host forgot the first Guest: a new struct lguest runs now.
        assert launcher.lg is not host_guest and host_guest.restart
        assert [e.data["reason"] for e in launcher.lguest.host.trace.of("restart")] == \
            ["Restarting system"]
        os.write(wfd, b"read 1\nquit\n")
        os.close(wfd)
        wfd = -1
        run_many([launcher], wait=5)
    finally:
        if wfd >= 0:
            os.close(wfd)
        os.close(rfd)
    text = out.text()
    assert launcher.status == 0, (launcher.reason, text[-2000:])
    assert launcher.reason == "CRASH: Power down"
    # devices: virtio ids and status bits.
    assert "device 0: virtio id 3 (console)" in text
    assert "device 1: virtio id 2 (block), features 0x4 accepted 0x4, status 0x7 " \
           "ACKNOWLEDGE DRIVER DRIVER_OK" in text
    # read 0 shows what the test wrote.
    assert "|hello disk!.....|" in text
    # The write went to the file, which kept its size, and survived the reboot.
    data = path.read_bytes()
    assert len(data) == 64 * 1024
    assert data[512:516] == b"TEXT" and data[516:1024] == bytes(508)
    after = text[text.index("Restarting the Guest."):]
    assert "sector 1 of lgba:" in after and "|TEXT............|" in after


def two_guests_on_one_network(tmp_path, script: bytes):
    """Two virtio shell Guests on one --sharenet; the first reads ``script``
    from a pipe; run until it ends. Returns the Launchers and their consoles."""
    net = str(tmp_path / "net")
    rfd, wfd = os.pipe()
    outs = [Stream(), Stream()]
    items = [Options(virtio=True, mem_mb=16, cmdline=["shell"], devices=[("sharenet", net)],
                     console_out=outs[i], console_in=rfd if i == 0 else None)
             for i in range(2)]
    group = start_launchers(items)
    try:
        os.write(wfd, script)
        os.close(wfd)
        wfd = -1
        run_many(group, wait=5, until=lambda: group[0].ended)
    finally:
        if wfd >= 0:
            os.close(wfd)
        os.close(rfd)
        for launcher in group:
            launcher.finish(1, "test over")
    return group, outs


def test_two_virtio_guests_ping_each_other(tmp_path):
    group, outs = two_guests_on_one_network(
        tmp_path, b"net\nping 02:00:00:00:00:02 2\nping broadcast\nquit\n")
    first, second = outs[0].text(), outs[1].text()
    assert group[0].status == 0, (group[0].reason, first[-2000:])
    assert "slot 0: 02:00:00:00:00:01 (this Guest)" in first
    assert first.count("60 bytes from 02:00:00:00:00:02: seq=") == 3
    assert second.count("echo request from 02:00:00:00:00:01") == 3
    # Every I/O was a NOTIFY: the trace shows them, and no DMA at all.
    trace = group[0].lguest.host.trace
    assert trace.of("notify") and not trace.of("dma")


def test_the_command_line_runs_a_piped_script_across_a_reboot(tmp_path):
    # A pipe is typed a line at a time, when the Guest waits (L:239), so the
    # lines after "reboot" reach the rebooted Guest.
    path = disk(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "lguestsim", "--virtio", f"--block={path}", "16",
         str(guest.VIRTIO_IMAGE), "shell"],
        input=b"devices\nread 0\nwrite 1 TEXT\nreboot\nread 1\nquit\n",
        capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT)
    out = proc.stdout.decode("latin-1")
    assert proc.returncode == 0, proc.stderr.decode()
    assert "virtio id 2 (block)" in out and "|hello disk!.....|" in out
    after = out[out.index("Restarting the Guest."):]
    assert "guest> read 1" in after and "|TEXT............|" in after
    assert proc.stderr.decode().strip().endswith("CRASH: Power down")
    assert path.read_bytes()[512:516] == b"TEXT" and path.stat().st_size == 64 * 1024


def test_notify_is_named_in_the_2625_table():
    assert HCALL_NAMES_2625[LHCALL_NOTIFY] == "NOTIFY"
    assert HCALL_NAMES_2625[2] == "SHUTDOWN"


def test_a_session_steps_through_the_virtio_guest_and_the_views_show_it():
    from lguestsim.session import Session
    from lguestsim.views import ALL_VIEWS, LguestDataView, VirtqueueView

    s = Session.boot(virtio=True, mem_mb=16)
    stop = s.step_to("notify")
    assert stop.event.kind == "notify"
    # The first NOTIFY is the early console: a string in the Guest's RAM.
    assert stop.event.data["addr"] < 16 << 20
    s.step_to("vring")
    html = VirtqueueView(s).html()
    assert "console queue 1" in html and "avail idx" in html
    assert "kernel_address" in LguestDataView(s).html()
    for view in ALL_VIEWS:
        assert view(s).html()
    s.step_to("kill")
    assert s.runs[0].ended == "CRASH: Power down"
    assert "Goodbye from the Guest: powering off." in s.runs[0].console.text


@pytest.mark.parametrize("virtio", [True, False])
def test_a_session_guest_with_a_disk_reads_it_through_its_queue(tmp_path, virtio):
    """Session.boot(block=FILE) is the session's --block: without `shell` the
    Guest reads sector 0 by itself; on 2.6.25 that is one chain of three
    pieces through the disk's virtqueue, answered with 513 bytes and its irq."""
    from lguestsim.session import Session

    disk = tmp_path / "disk.img"
    disk.write_bytes(b"a sector for the session".ljust(64 * 1024, b"\0"))
    s = Session.boot(virtio=virtio, mem_mb=16, block=disk)
    s.finish()
    text = s.runs[0].console.text
    assert "|a sector for the|" in text
    assert disk.stat().st_size == 64 * 1024
    events = list(s.trace.events)
    if not virtio:
        assert not s.trace.of("notify")
        assert s.trace.of("dma")
        return
    (vq,) = [vq for dev in s.runs[0].layout.devices.devices if dev.name == "block"
             for vq in dev.vqs]
    kicks = [i for i, e in enumerate(events)
             if e.kind == "notify" and e.data["addr"] == vq.ring.base]
    assert len(kicks) == 1
    after = events[kicks[0]:]
    avail = next(e for e in after if e.kind == "vring" and e.data["ring"] == vq.ring.base)
    used = next(e for e in after if e.kind == "vring" and e.data["op"] == "used"
                and e.data["ring"] == vq.ring.base)
    assert (avail.data["op"], avail.data["pieces"]) == ("avail", 3)
    assert used.data["len"] == 512 + 1
    assert any(e.kind == "interrupt" and e.data["irq"] == vq.irq for e in after)


def test_the_2625_abi_of_dev_lguest():
    import errno
    import struct

    import pytest

    from lguestsim.insmod import insmod_lg
    from lguestsim.launcher.abi import LHREQ_GETDMA, LHREQ_INITIALIZE

    host = insmod_lg(4 << 20)
    proc = host.new_process(2 << 20)
    dev = host.open(proc, virtio=True)
    # guest_base must be where this Launcher keeps Guest memory: 0.
    with pytest.raises(OSError) as err:
        dev.write(struct.pack("<5I", LHREQ_INITIALIZE, 0x1000, 256, 0x1000, 0x100000))
    assert err.value.errno == errno.EINVAL
    assert dev.write(struct.pack("<5I", LHREQ_INITIALIZE, 0, 256, 0x1000, 0x100000)) == 16
    assert dev.lg.virtio and dev.lg.page_offset == 0 and dev.lg.regs.eip == 0x100000
    # GETDMA is "no longer used".
    with pytest.raises(OSError) as err:
        dev.write(struct.pack("<2I", LHREQ_GETDMA, 0))
    assert err.value.errno == errno.EINVAL
    # A Guest that asked to restart: every read() says ERESTART.
    dev.lg.dead, dev.lg.restart = "CRASH: Restarting system", True
    for _ in range(2):
        with pytest.raises(OSError) as err:
            dev.read(4)
        assert err.value.errno == errno.ERESTART
    dev.close()


def test_what_virtio_guests_are_not_offered(tmp_path):
    import pytest

    from lguestsim.launcher.report import LauncherError

    with pytest.raises(LauncherError, match="--tunnet is not offered to virtio Guests"):
        start_launchers([Options(virtio=True, mem_mb=16, devices=[("tunnet", "10.0.0.1")])])
    with pytest.raises(LauncherError, match="not an ELF vmlinux"):
        start_launchers([Options(virtio=True, mem_mb=16, image=str(guest.BZIMAGE))])


def test_a_guest_has_one_lg_cpu_and_the_offset_names_it():
    import errno
    import struct

    import pytest

    from lguestsim.host.lg import NR_CPUS, LgCpu
    from lguestsim.insmod import insmod_lg
    from lguestsim.launcher.abi import LHREQ_INITIALIZE, LHREQ_IRQ

    host = insmod_lg(4 << 20)
    proc = host.new_process(2 << 20)
    dev = host.open(proc, virtio=True)
    dev.write(struct.pack("<5I", LHREQ_INITIALIZE, 0, 256, 0x1000, 0x100000))
    lg = dev.lg
    assert NR_CPUS == 1 and lg.nr_cpus == 1 and len(lg.cpus) == 1
    cpu = lg.cpus[0]
    assert isinstance(cpu, LgCpu) and cpu.id == 0 and cpu.lg is lg and lg.cpu is cpu
    # The per-CPU state lives in struct lg_cpu; the Guest's names reach it.
    assert lg.regs is cpu.regs and cpu.regs.eip == 0x100000
    dev.write(struct.pack("<2I", LHREQ_IRQ, 3), offset=0)
    assert cpu.irqs_pending == 1 << 3 and lg.irqs_pending == 1 << 3
    for call in (lambda: dev.write(struct.pack("<2I", LHREQ_IRQ, 3), offset=1),
                 lambda: dev.read(4, offset=1)):
        with pytest.raises(OSError) as err:
            call()
        assert err.value.errno == errno.EINVAL
    dev.close()


def test_a_rebooted_guest_rejoins_the_network_with_a_new_address(tmp_path):
    # A pipe is typed a line at a time as the Guest asks (L:239).
    group, outs = two_guests_on_one_network(tmp_path, b"reboot\nnet\nping broadcast\nquit\n")
    first = outs[0].text()
    assert group[0].status == 0 and group[0].restarts == 1, (group[0].reason, first[-1500:])
    after = first[first.index("Restarting the Guest."):]
    assert "slot 0: 02:00:00:00:00:03 (this Guest)" in after
    assert "60 bytes from 02:00:00:00:00:02: seq=1" in after
    assert "echo request from 02:00:00:00:00:03" in outs[1].text()
