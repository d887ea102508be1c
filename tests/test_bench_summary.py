"""make bench's summary: each figure beside its goal, from the benchmarks' json,
and a figure whose benchmark did not run named as not measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import summary  # noqa: E402


def write(out: Path, name: str, data) -> None:
    (out / f"{name}.json").write_text(json.dumps(data))


def test_figures_are_judged_against_their_goals_and_missing_ones_named(tmp_path):
    write(tmp_path, "bench_core", {"results": [
        {"program": "workload", "engine": "lguestsim", "mips": 9.0, "error": None},
        {"program": "workload", "engine": "unicorn", "mips": 270.0, "error": None},
        {"program": "alu-loop", "engine": "lguestsim", "mips": 12.0, "error": None}]})
    write(tmp_path, "bench_memory", [{"guest_mib": 512, "peak_rss_mb": 26.0},
                                     {"guest_mib": 2048, "peak_rss_mb": 700.0},
                                     {"guest_mib": 32, "peak_rss_mb": 20.0}])
    assert summary.main(["--out", str(tmp_path)]) == 1        # most figures are missing
    got = json.loads((tmp_path / "summary.json").read_text())
    rows = {r["figure"]: r for r in got["rows"]}
    assert rows["workload (gcc -O2, paging on)"]["verdict"] == "met"
    assert rows["unicorn / lguestsim, workload, same run"]["measured"] == "30x by wall"
    assert rows["unicorn / lguestsim, workload, same run"]["verdict"] == "NOT met"
    assert rows["ALU loop"]["verdict"] == "NOT met"
    assert rows["peak RSS, boot of a 512 MiB Guest"]["verdict"] == "met"
    assert rows["peak RSS, boot of a 2048 MiB Guest"]["verdict"] == "NOT met"
    assert not any("32 MiB" in f for f in rows)                # no goal, not a row here
    missing = {r["figure"] for r in got["rows"] if r["verdict"] == "not measured"}
    assert missing == {"boot, both generations", "SMC ratio", "rep movs/stos MB/s", "back(n)",
                       "lguest's figures", "scaling table"}
    assert "| ALU loop | 12.00 MIPS by wall | >= 20 MIPS | NOT met | bench_core.json |" in \
        (tmp_path / "summary.md").read_text()
    assert got["sources"]["bench_memory"][0]["guest_mib"] == 512


def test_a_run_with_every_figure_exits_0(tmp_path):
    # Wall time on a busy machine says little: CPU time decides where given.
    write(tmp_path, "bench_core", {"results": [
        {"program": "workload", "engine": "lguestsim", "mips": 2.0, "cpu_mips": 9.0,
         "error": None},
        {"program": "workload", "engine": "lguestsim-warm", "mips": 3.0, "cpu_mips": 11.5,
         "error": None},
        {"program": "workload", "engine": "unicorn", "mips": 90.0, "cpu_mips": 180.0,
         "error": None},
        {"program": "alu-loop", "engine": "lguestsim", "mips": 5.0, "cpu_mips": 21.0,
         "error": None}]})
    write(tmp_path, "bench_strings", [{"case": "rep stosb", "MB/s": 120.0, "ok": True}])
    write(tmp_path, "bench_smc", [{"case": "shared", "x_separate": 1.1},
                                  {"case": "smc", "x_separate": 5.0}])
    write(tmp_path, "bench_memory", [{"guest_mib": 512, "peak_rss_mb": 26.0},
                                     {"guest_mib": 2048, "peak_rss_mb": 33.0}])
    write(tmp_path, "bench_scaling", {
        "boot": [{"generation": g, "seconds": [0.5, 0.7], "best_s": 0.5} for g in "ab"]
        + [{"generation": "c", "seconds": [0.7], "best_s": 0.7, "warm_seconds": [0.4],
            "warm_best_s": 0.4, "warm_best_cpu_s": 0.38, "code_cache_kib": 1030}],
        "guests": [{"guests": 2, "guest_mib": 32, "wall_s": 2.0, "peak_rss_mb": 30.0}],
        "ram": [{"guest_mib": 2048, "wall_s": 3.0, "peak_rss_mb": 33.0}]})
    write(tmp_path, "bench_back", {"results": [
        {"n": 10000, "generation": "2.6.23", "seconds": [0.5], "worst_s": 1.5, "goal_s": 1.0,
         "snapshot_bytes": 12000},
        {"n": 10000, "generation": "2.6.25", "seconds": [2.5], "worst_s": 2.5, "goal_s": 1.0,
         "worst_cpu_s": 0.8, "snapshot_bytes": 12000}]})
    write(tmp_path, "bench_figures", {"figures": [
        {"name": "direct traps", "measured": "9.8x", "lguest": "6.5x"}]})
    assert summary.main(["--out", str(tmp_path)]) == 0
    rows = {r["figure"]: r for r in json.loads((tmp_path / "summary.json").read_text())["rows"]}
    assert rows["self-modifying code, cost vs separate pages"]["verdict"] == "NOT met"
    assert rows["back(10000) in the 2.6.23 boot, worst of 1"]["verdict"] == "NOT met"
    assert rows["back(10000) in the 2.6.25 boot, worst of 1"]["verdict"] == "met"
    assert rows["workload (gcc -O2, paging on)"]["measured"] == \
        "9.00 MIPS by CPU time, 2.00 wall"
    warm = rows["workload, fresh process, code cache warm"]       # beside it, not the verdict
    assert (warm["measured"], warm["verdict"]) == ("11.50 MIPS by CPU time, 3.00 wall", "reported")
    assert rows["unicorn / lguestsim, workload, same run"]["verdict"] == "met"     # 20x
    assert rows["ALU loop"]["verdict"] == "met"
    assert rows["lguest's figure: direct traps"]["goal"] == "lguest: 6.5x"
    assert rows["boot of the shipped Guest, c (best of 1)"]["verdict"] == "NOT met"   # cold
    warm = rows["boot of the shipped Guest, c, code cache warm (best of 1)"]
    assert (warm["measured"], warm["verdict"]) == \
        ("0.40 s wall (0.38 s CPU), 1030 KiB cached", "reported")
    assert "boot of the shipped Guest, a, code cache warm (best of 0)" not in rows
