"""The Mastery chapter's exercises: the three knobs, measured.

The questions are about the chapter's own tiny Guests (the system-call loop,
the synchronous SET_PTE loop, the address-space round robin), whose sources
the notebook hands to ``check``: what is measured is what the reader ran.
Each measurement counts between the Guest's labels ``begin`` and ``end``.
"""

from __future__ import annotations

from typing import Any

from ..session import Session
from . import Chapter, cached

CALLS = 32                       # the chapter's SET_PTE loop
K, ROUNDS, MEM = 6, 6, 8 << 20   # the chapter's address-space experiment


def between_labels(session: Session) -> tuple[int, dict[str, int]]:
    """Cycles and events of each kind from ``begin`` to ``end``."""
    session.run_to("begin")
    c0, n0 = session.cpu.cycles, len(session.trace.events)
    session.run_to("end")
    counts: dict[str, int] = {}
    for e in session.trace.events[n0:]:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    return session.cpu.cycles - c0, counts


@cached
def switches_without_direct_traps(source: str, n: int) -> int:
    return between_labels(Session.tiny(source.format(n=n), direct_traps=False))[1]["switch"]


@cached
def faults_with_slots(source: str, slots: int, seed: int) -> int:
    s = Session.tiny(source.format(k=K, rounds=ROUNDS, mem=MEM), pgdir_cache=slots, seed=seed)
    return between_labels(s)[1].get("pagefault", 0)


@cached
def cycles_per_sync_call(source: str) -> int:
    return between_labels(Session.tiny(source.format(n=CALLS)))[0] // CALLS


class MasteryExercises(Chapter):
    chapter = "mastery"
    assembles = True               # the chapter's loops, per variant
    hints = {1: "measure() counts the events between the labels",
             2: "spaces(slots, seed) builds that Guest",
             3: "the cycles of measure() on SYNC, divided by the number of calls"}

    def draw(self) -> None:
        self.n = self.choice([5, 8, 12, 20])
        self.slots = self.choice([1, 2, 3, 5])
        self.seed = self.randint(0, 9)

    def questions(self) -> list[str]:
        return [f"With direct traps off, how many world switches do {self.n} system calls of "
                "the first Guest cost (count the 'switch' events between begin and end)?",
                f"With {self.slots} shadow directory slot(s) and seed {self.seed}, how many "
                "page faults does the Host handle between begin and end in the address-space "
                "experiment?",
                "How many cycles does one synchronous SET_PTE round trip cost? (The loop of "
                f"{CALLS} calls in SYNC, integer division.)"]

    def expected(self, number: int, *inputs: Any) -> Any:
        if len(inputs) != 1 or not isinstance(inputs[0], str):
            raise TypeError(f"exercise {number} is about the chapter's Guest: pass its source, "
                            "e.g. ex.check(1, ANSWER_1, SYSCALLS)")
        source = inputs[0]
        if number == 1:
            return switches_without_direct_traps(source, self.n)
        if number == 2:
            return faults_with_slots(source, self.slots, self.seed)
        return cycles_per_sync_call(source)
