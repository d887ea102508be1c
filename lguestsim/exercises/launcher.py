"""The Launcher chapter's exercises: a Guest laid out in a different amount of memory.

Each student boots the shipped Guest with their own memory size and finds
where the Launcher put the page directory, the page-frame limit it told the
Host, and the size of the Guest's first console output.
"""

from __future__ import annotations

from typing import Any

from ..session import Session
from . import Chapter, cached


@cached
def pgdir(mem_mb: int) -> int:
    return Session.boot(mem_mb=mem_mb).run.layout.pgdir


@cached
def pfn_limit(mem_mb: int) -> int:
    return Session.boot(mem_mb=mem_mb).lg.pfn_limit


@cached
def first_output(mem_mb: int) -> int:
    s = Session.boot(mem_mb=mem_mb)
    s.step_to("dma")    # the same step ends the read() and lets the Launcher write it out
    return len(s.run.outputs[0][1])


class LauncherExercises(Chapter):
    chapter = "launcher"
    hints = {1: "the directory is the top page of memory that is not the initrd",
             2: "memory, plus the device page, in pages",
             3: "s.run.outputs holds (key, bytes) pairs"}

    def draw(self) -> None:
        self.mem_mb = self.choice([12, 16, 24, 40, 48, 64])

    def questions(self) -> list[str]:
        boot = f"Session.boot(mem_mb={self.mem_mb})"
        return [f"Boot the shipped Guest with {self.mem_mb} MiB ({boot}). At which "
                "Guest-physical address does the Launcher put the page directory?",
                "What pfnlimit does the Launcher give the Host (a number of pages)?",
                "How many bytes long was the Guest's first console output (its first DMA "
                "to key 0)?"]

    def expected(self, number: int, *inputs: Any) -> Any:
        fn = {1: pgdir, 2: pfn_limit, 3: first_output}[number]
        return fn(self.mem_mb)
