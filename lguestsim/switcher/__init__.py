"""The Switcher: real x86 code, mapped at 0xFFC00000 in the Host and every Guest.

``load()`` gives the shipped bytes and the addresses of its entry points; the
source is switcher.S beside this file and build.py rebuilds it.  The Host
(host/x86_core.py) maps these pages into its own address space and every
Guest's, and enters the Switcher for each trip into a Guest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SWITCHER_ADDR = 0xFFC00000
TEXT_PAGES = 2            # the code; this CPU's lguest_pages follow it


@dataclass(frozen=True)
class SwitcherImage:
    code: bytes
    switch_to_guest: int
    return_to_host: int
    deliver_to_host: int
    trap_stubs: int

    def stub(self, vector: int) -> int:
        """Address of the trap stub for ``vector`` (16 bytes apart)."""
        return self.trap_stubs + 16 * vector


def load() -> SwitcherImage:
    code = (HERE / "switcher.bin").read_bytes()
    sym = {k: int(v, 16) for k, v in json.loads((HERE / "switcher.json").read_text()).items()}
    if len(code) > TEXT_PAGES * 4096:
        raise RuntimeError("the Switcher no longer fits its pages")
    return SwitcherImage(code, sym["switch_to_guest"], sym["return_to_host"],
                         sym["deliver_to_host"], sym["trap_stubs"])
