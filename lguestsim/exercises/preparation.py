"""The Preparation chapter's exercises: reading the trace, and what a step is.

The questions are about the shipped Guest's whole life as the trace records
it: how often it made one hypercall, when an event first happened, and how
many steps of the session lie before the first hypercall.
"""

from __future__ import annotations

from typing import Any

from ..session import Session
from . import Chapter, cached

NAMES = ("LOAD_IDT_ENTRY", "SET_PTE", "NEW_PGTABLE", "SET_CLOCKEVENT", "SEND_DMA")
KINDS = ("pagefault", "interrupt", "timer")


@cached
def hypercalls_named(name: str) -> int:
    s = Session.boot()
    s.finish()
    return sum(1 for e in s.trace.of("hypercall") if e.name == name)


@cached
def first_cycle(kind: str) -> int:
    return Session.boot().step_to(kind).event.cycle


@cached
def steps_to_first_hypercall() -> int:
    return Session.boot().step_to("hypercall").steps


class PreparationExercises(Chapter):
    chapter = "preparation"
    hints = {1: "count the hypercall events with that name in s.trace",
             2: "s.goto(0), then s.step_to(kind); the event has a cycle",
             3: "the Stop that step_to returns counts the steps it took"}

    def draw(self) -> None:
        self.name = self.choice(NAMES)
        self.kind = self.choice(KINDS)

    def questions(self) -> list[str]:
        return [f"How many {self.name} hypercalls did the Guest make in its whole life?",
                f"At which cycle did the Host record the first '{self.kind}' event?",
                "How many steps does the machine take from step 0 until the Host's trace "
                "shows the first hypercall (the step that records it included)?"]

    def expected(self, number: int, *inputs: Any) -> Any:
        return {1: lambda: hypercalls_named(self.name),
                2: lambda: first_cycle(self.kind),
                3: steps_to_first_hypercall}[number]()
