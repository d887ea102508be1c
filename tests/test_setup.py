"""The project's set-up: the demo command runs, the benchmark workload builds."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_demo_prints_registers_and_cycles():
    proc = run("-m", "lguestsim.demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for reg in ("eax", "ebx", "ecx", "edx", "esi", "edi", "eip", "eflags"):
        assert f"{reg} = " in out
    assert "eax = 0x000013ba" in out  # 1 + 2 + ... + 100 = 5050
    assert "cycles = " in out and "instructions = " in out


def test_naming_a_missing_kernel_image_is_refused():
    proc = run("-m", "lguestsim", "64", "vmlinux")
    assert proc.returncode == 2
    assert "Failed to open vmlinux" in proc.stderr


def test_bad_option_is_an_argparse_error():
    proc = run("-m", "lguestsim", "--no-such-option")
    assert proc.returncode == 2
    assert "usage: lguest" in proc.stderr


def test_benchmark_workload_builds(tmp_path):
    missing = [t for t in ("gcc", "ld", "objcopy") if shutil.which(t) is None]
    assert not missing, f"{', '.join(missing)} not installed (.ci/run installs them in CI)"
    proc = run(str(ROOT / "benchmarks" / "bench_core.py"), "--build-only", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    binary = tmp_path / "workload.bin"
    assert binary.stat().st_size > 0
    assert binary.read_bytes()[:1] == b"\x50"  # _start: push eax
