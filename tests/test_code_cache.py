"""The code cache (lguestsim/x86/code_cache.py): blocks' compiled code kept on disk.

A second process booting the same Guest reads every block's code and
compiles none; a pack that is damaged, cut short or of another Python is
ignored, never trusted, and its code written again; processes writing and
merging at once leave a cache that reads back whole; turned off, it writes
nothing anywhere; where it cannot write, it runs in memory.  The in-process
tests point the module at a folder of their own and back again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lguestsim.x86 import code_cache as cc

ROOT = Path(__file__).resolve().parent.parent

# A child process: boots the shipped Guest as `python -m lguestsim 32` does
# (or compiles made-up sources), then prints the cache's figures as one json
# line on stderr.  The boot's report is registered with atexit before the
# cache's own handler, so it runs after that has written the pack.
BOOT = """
import atexit, json, sys
def report():
    print("STATS " + json.dumps({**vars(cc.stats), "status": status,
          "folder": str(cc.folder())}), file=sys.stderr)
atexit.register(report)
from lguestsim.__main__ import main
from lguestsim.x86 import code_cache as cc
status = main(["32"])
"""

COMPILE = """
import json, sys
from lguestsim.x86 import code_cache as cc
cc.FLUSH_EVERY, cc.MAX_PACKS = int(sys.argv[3]), int(sys.argv[4])
for i in range(int(sys.argv[1]), int(sys.argv[2])):
    ns = {}
    exec(cc.code(f"def f():\\n    return {i}\\n", f"<made-up {i}>"), ns)
    assert ns["f"]() == i
cc.flush()
print("STATS " + json.dumps(vars(cc.stats)), file=sys.stderr)
"""


def child(program: str, *args: str, **env: str) -> tuple[dict, str]:
    """Run ``program`` in a fresh Python: (its figures, its standard output)."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run([sys.executable, "-c", program, *args], cwd=ROOT, env=environ,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("STATS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    return json.loads(lines[-1][6:]), proc.stdout


@pytest.fixture
def folder(tmp_path):
    """The module pointed at a fresh folder under tmp_path; the session's folder after."""
    before = cc.folder()
    saved = (cc.FLUSH_EVERY, cc.MAX_PACKS, cc.MAX_BYTES)
    where = cc.use(tmp_path / "cache")
    yield where
    cc._pending.clear()
    cc.FLUSH_EVERY, cc.MAX_PACKS, cc.MAX_BYTES = saved
    cc.use(before.parent if before is not None else None)


def source(i: int) -> str:
    return f"def f():\n    x = {i}\n    return x * 2\n"


def run(code) -> int:
    ns: dict = {}
    exec(code, ns)      # noqa: S102 - the test's own source
    return ns["f"]()


def fill(where: Path, n: int) -> list[Path]:
    """Compile ``n`` sources and write them as a pack; the packs in the folder."""
    for i in range(n):
        cc.code(source(i), f"<t {i}>")
    cc.flush()
    return sorted(where.glob("*.pack"))


def fresh_lookups(where: Path, n: int) -> dict[str, int]:
    """Look ``n`` sources up as a fresh process would (index read anew); the counts."""
    cc.use(where.parent)
    before = vars(cc.stats).copy()
    for i in range(n):
        assert run(cc.code(source(i), f"<t {i}>")) == 2 * i
    return {k: v - before[k] for k, v in vars(cc.stats).items()}


def test_a_fresh_process_reads_the_boots_code_and_compiles_nothing(tmp_path):
    cache = str(tmp_path / "code")
    first, out1 = child(BOOT, LGUESTSIM_CODE_CACHE=cache)
    second, out2 = child(BOOT, LGUESTSIM_CODE_CACHE=cache)
    assert first["status"] == second["status"] == 0
    assert first["compiles"] > 300 and first["disk_hits"] == 0
    assert first["packs_written"] == 1
    assert second["compiles"] == 0 and second["disk_hits"] == first["compiles"]
    assert second["packs_written"] == 0 and second["rejected"] == 0
    assert out1 == out2                 # the same boot, to the byte on the console
    assert Path(first["folder"]).parent == Path(cache)


def test_a_second_lookup_reads_the_pack(folder):
    fill(folder, 20)
    assert fresh_lookups(folder, 20) == {"compiles": 0, "disk_hits": 20, "rejected": 0,
                                         "packs_written": 0, "merges": 0}


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_entry_is_compiled_again_and_replaced(folder):
    [pack] = fill(folder, 10)
    flip(pack, pack.stat().st_size - 5)         # inside the last entry's code
    got = fresh_lookups(folder, 10)
    assert got["rejected"] == 1 and got["compiles"] == 1 and got["disk_hits"] == 9
    cc.flush()                                  # the bad pack is merged away
    assert fresh_lookups(folder, 10) == {"compiles": 0, "disk_hits": 10, "rejected": 0,
                                         "packs_written": 0, "merges": 0}
    assert len(list(folder.glob("*.pack"))) == 1


def test_a_changed_byte_that_still_unmarshals_is_caught_by_its_checksum(folder):
    text = "def f():\n    return 'value-1'\n"
    ns: dict = {}
    exec(cc.code(text, "<t>"), ns)      # noqa: S102 - the test's own source
    cc.flush()
    [pack] = folder.glob("*.pack")
    data = pack.read_bytes()
    assert data.count(b"value-1") == 1
    pack.write_bytes(data.replace(b"value-1", b"value-2"))
    cc.use(folder.parent)
    before = cc.stats.rejected
    exec(cc.code(text, "<t>"), ns)      # noqa: S102
    assert ns["f"]() == "value-1" and cc.stats.rejected == before + 1


@pytest.mark.parametrize("damage", ["truncated in the code", "truncated in the index",
                                    "foreign magic", "other format", "empty", "garbage"])
def test_a_bad_pack_is_ignored_and_its_code_written_again(folder, damage):
    [pack] = fill(folder, 10)
    data = pack.read_bytes()
    if damage == "truncated in the code":
        pack.write_bytes(data[:len(data) - 100])
    elif damage == "truncated in the index":
        pack.write_bytes(data[:cc.HEADER.size + 3 * cc.ENTRY.size + 5])
    elif damage == "foreign magic":
        pack.write_bytes(data[:12] + b"\x00\x0d\x0d\x0a" + data[16:])   # Python's magic
    elif damage == "other format":
        pack.write_bytes(data[:8] + (cc.FORMAT + 1).to_bytes(4, "little") + data[12:])
    elif damage == "empty":
        pack.write_bytes(b"")
    else:
        pack.write_bytes(os.urandom(len(data)))
    got = fresh_lookups(folder, 10)
    assert got["rejected"] >= 1 and got["compiles"] >= 1
    assert got["compiles"] + got["disk_hits"] == 10
    cc.flush()
    again = fresh_lookups(folder, 10)
    assert again["compiles"] == 0 and again["disk_hits"] == 10 and again["rejected"] == 0


def test_an_entry_that_is_not_code_is_not_trusted(folder):
    import hashlib
    import marshal
    key = hashlib.blake2b(source(7).encode(), digest_size=16).digest()
    (folder / "0-1-0.pack").write_bytes(cc._pack([(key, marshal.dumps(12345))]))
    got = fresh_lookups(folder, 8)      # source 7 finds an int under its key
    assert got["rejected"] == 1 and got["compiles"] == 8


def test_two_processes_writing_and_merging_at_once_leave_a_whole_cache(tmp_path):
    cache = str(tmp_path / "code")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LGUESTSIM_CODE_CACHE": cache}
    # Each flushes every 15 sources and merges past 2 packs, so the two
    # write, merge and remove packs under each other's feet; they overlap by 100.
    procs = [subprocess.Popen([sys.executable, "-c", COMPILE, a, b, "15", "2"], cwd=ROOT,
                              env=env, stderr=subprocess.PIPE, text=True)
             for a, b in (("0", "300"), ("200", "500"))]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        assert '"rejected": 0' in err, err[-2000:]
    reader, _ = child(COMPILE, "0", "500", "100000", "100000", LGUESTSIM_CODE_CACHE=cache)
    assert reader["compiles"] == 0 and reader["disk_hits"] == 500 and reader["rejected"] == 0
    folder = next(Path(cache).iterdir())
    assert not list(folder.glob("*.tmp"))


@pytest.mark.parametrize("setting", ["off", ""])
def test_turned_off_it_writes_nothing(tmp_path, setting):
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    home.mkdir()
    xdg.mkdir()
    env = {"LGUESTSIM_CODE_CACHE": setting, "HOME": str(home), "XDG_CACHE_HOME": str(xdg)}
    stats, _ = child(COMPILE, "0", "30", "10", "16", **env)
    again, _ = child(COMPILE, "0", "30", "10", "16", **env)
    assert stats["compiles"] == again["compiles"] == 30 and stats["packs_written"] == 0
    assert not list(home.iterdir()) and not list(xdg.iterdir())


def test_where_it_cannot_make_its_folder_it_runs_in_memory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    stats, _ = child(COMPILE, "0", "30", "10", "16",
                     LGUESTSIM_CODE_CACHE=str(blocker / "code"))
    assert stats["compiles"] == 30 and stats["packs_written"] == 0


def test_where_it_cannot_write_it_goes_on_in_memory(folder):
    folder.rmdir()
    folder.write_text("the folder became a file")   # what a read-only folder makes of a write
    written = cc.stats.packs_written
    for i in range(5):
        assert run(cc.code(source(i), f"<t {i}>")) == 2 * i
    cc.flush()
    assert not cc._writable and cc.stats.packs_written == written
    assert run(cc.code(source(99), "<t 99>")) == 198
    folder.unlink()


def test_where_the_environment_puts_it(monkeypatch, tmp_path):
    for name in ("LGUESTSIM_CODE_CACHE", "LGUESTSIM_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cc.default_root() == tmp_path / "home" / ".cache" / "lguestsim" / "code"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cc.default_root() == tmp_path / "xdg" / "lguestsim" / "code"
    monkeypatch.setenv("LGUESTSIM_CACHE", str(tmp_path / "mine"))
    assert cc.default_root() == tmp_path / "mine" / "code"
    monkeypatch.setenv("LGUESTSIM_CODE_CACHE", str(tmp_path / "this"))
    assert cc.default_root() == tmp_path / "this"
    monkeypatch.setenv("LGUESTSIM_CODE_CACHE", "off")
    assert cc.default_root() is None
    monkeypatch.setenv("LGUESTSIM_CODE_CACHE", str(tmp_path / "this"))
    monkeypatch.setattr(sys, "platform", "emscripten")     # Pyodide: no lasting disk
    assert cc.default_root() is None


def test_the_folder_is_named_by_the_interpreter():
    name = cc.folder_name()
    assert name.startswith(sys.implementation.cache_tag)
    assert cc.PY_MAGIC.hex() in name and f"-f{cc.FORMAT}" in name


def test_merging_keeps_within_its_bound_this_processs_code_first(folder):
    cc.MAX_PACKS = 100
    fill(folder, 200)                   # an older process's code
    cc.use(folder.parent)
    one = len(next(folder.glob("*.pack")).read_bytes()) // 200   # about an entry's size
    cc.MAX_BYTES = 50 * one
    for i in range(190, 200):           # this process uses ten of the old ones...
        cc.code(source(i), f"<t {i}>")
    for i in range(1000, 1020):         # ... and compiles twenty new ones
        cc.code(source(i), f"<t {i}>")
    cc.flush()                          # over the bound: merged
    assert cc.stats.merges >= 1
    [pack] = folder.glob("*.pack")
    count = cc._parse(pack.read_bytes(), pack.stat().st_size)
    assert 30 <= count < 200            # over its bound, it keeps three quarters of it
    assert pack.stat().st_size <= cc.MAX_BYTES * 3 // 4 + cc.HEADER.size + count * cc.ENTRY.size
    cc.use(folder.parent)
    before = vars(cc.stats).copy()
    for i in [*range(190, 200), *range(1000, 1020)]:
        cc.code(source(i), f"<t {i}>")
    assert cc.stats.compiles == before["compiles"]      # all thirty kept


def test_a_merge_sweeps_away_temporary_files_left_by_the_dead(folder):
    stale = folder / ".dead.tmp"
    stale.write_bytes(b"half a pack")
    os.utime(stale, (0, 0))
    fresh = folder / ".writing.tmp"
    fresh.write_bytes(b"being written")
    fill(folder, 3)
    cc.merge()
    assert not stale.exists() and fresh.exists()


def test_the_suite_keeps_its_code_out_of_the_users_cache():
    session = Path(os.environ["LGUESTSIM_CODE_CACHE"])      # conftest.py's, for this run
    assert session.name.startswith("lguestsim-code-cache-") and session.is_dir()
    assert cc.folder() is not None and cc.folder().parent == session


def test_a_long_process_holds_few_packs_open(folder):
    cc.FLUSH_EVERY, cc.MAX_PACKS = 5, 3
    for i in range(200):
        cc.code(source(i), f"<t {i}>")
        cc.code(source(i % 7), "<again>")       # some read back from packs
        assert len(cc._fds) <= cc.MAX_PACKS + 1
    assert cc.stats.merges > 0 and len(list(folder.glob("*.pack"))) <= cc.MAX_PACKS + 1


def test_a_forked_child_leaves_its_parents_code_to_the_parent(folder):
    cc.code(source(1), "<t 1>")
    assert cc._pending
    pid = os.fork()
    if pid == 0:                                 # the child: nothing of its own to write
        os._exit(0 if not cc._pending else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and cc._pending


def test_a_fault_in_code_read_from_disk_lands_where_a_compiled_one_does(folder):
    # A block faulting part-way (div by zero after three instructions) finds
    # its instruction from the line the fault came from: the code read back
    # must keep the compiled code's lines, so the state is the same.
    from x86env import Env

    from lguestsim.x86 import blocks
    program = (b"\xb8\x01\x00\x00\x00"      # mov eax, 1
               b"\x83\xc0\x02"              # add eax, 2
               b"\xb9\x00\x00\x00\x00"      # mov ecx, 0
               b"\xf7\xf1"                  # div ecx: #DE
               b"\x40\xf4")                 # inc eax; hlt (never reached)

    def faulting_run():
        env = Env()
        env.code(program)
        assert env.cpu.run(100) == "hlt"
        cpu = env.cpu
        return (cpu.eip, cpu.eax, cpu.ecx, cpu.esp, env.read32(cpu.esp), cpu.eflags,
                cpu.cycles, cpu.instructions, cpu.last_exception)

    blocks._CODE.clear()
    compiled_before = cc.stats.compiles
    first = faulting_run()
    assert cc.stats.compiles > compiled_before
    cc.flush()
    blocks._CODE.clear()                        # as in a fresh process
    cc.use(folder.parent)
    compiled_before, read_before = cc.stats.compiles, cc.stats.disk_hits
    assert faulting_run() == first
    assert cc.stats.compiles == compiled_before and cc.stats.disk_hits > read_before
    assert first[1] == 3 and first[8] == (0, None)
