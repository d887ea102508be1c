"""Build the Switcher: switcher.S -> switcher.bin (+ switcher.json, its symbols).

The Switcher is linked to run at SWITCHER_ADDR (0xFFC00000), where the Host
maps it.  The built bytes ship with the package so that running lguestsim needs
no assembler; ``python -m lguestsim.switcher.build`` rebuilds them, and a test
checks the rebuild is byte-for-byte the shipped file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SWITCHER_ADDR = 0xFFC00000
SYMBOLS = ("switch_to_guest", "return_to_host", "deliver_to_host", "trap_stubs", "switcher_end")


def build(out_dir: Path = HERE) -> tuple[Path, Path]:
    """Assemble and link the Switcher into ``out_dir``; returns (bin, json)."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        obj, elf = Path(tmp) / "switcher.o", Path(tmp) / "switcher.elf"
        subprocess.run(["as", "--32", "-o", str(obj), str(HERE / "switcher.S")], check=True)
        subprocess.run(["ld", "-m", "elf_i386", "-Ttext", hex(SWITCHER_ADDR), "-e",
                        "switch_to_guest", "--build-id=none", "-o", str(elf), str(obj)], check=True)
        binary = out_dir / "switcher.bin"
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(elf), str(binary)],
                       check=True)
        nm = subprocess.run(["nm", str(elf)], check=True, capture_output=True, text=True).stdout
    symbols = {}
    for line in nm.splitlines():
        addr, _, name = line.split()
        if name in SYMBOLS:
            symbols[name] = int(addr, 16)
    missing = set(SYMBOLS) - set(symbols)
    if missing:
        raise RuntimeError(f"switcher symbols missing: {sorted(missing)}")
    info = out_dir / "switcher.json"
    info.write_text(json.dumps({k: hex(v) for k, v in sorted(symbols.items())}, indent=1) + "\n")
    return binary, info


if __name__ == "__main__":
    b, j = build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"built {b} ({b.stat().st_size} bytes) and {j}")
