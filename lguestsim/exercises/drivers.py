"""The Drivers chapter's exercises: DMA between two Guests, and the device page.

The first question is about the chapter's own pair of tiny Guests (a receiver
and a sender sharing a page), built by the function the notebook defines,
``pair(length)``, which the notebook hands to ``check``: a reader who changes
the programs is judged by what they changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..session import Session
from . import Chapter, cached

PAGE_OFFSET = 0xC0000000


@cached
def used_len(pair: Callable[[int], Session], length: int) -> int:
    """The receiver's used_len once the Host has copied the sender's DMA."""
    t = pair(length)
    t.step_to("dma", match=lambda e: e.data.get("to") != "launcher")
    receiver = t.runs[0]
    return receiver.process.read32(receiver.program.symbols["rx"] - PAGE_OFFSET)


@cached
def console_status() -> int:
    s = Session.boot()
    s.finish()
    return s.run.layout.devices.descriptor(0)["status"]


@cached
def send_dmas() -> int:
    s = Session.boot()
    s.finish()
    return sum(1 for e in s.trace.of("hypercall") if e.name == "SEND_DMA")


class DriversExercises(Chapter):
    chapter = "drivers"
    assembles = True               # pair(length)
    hints = {1: "step_to('dma') on the pair, then read the receiver's rx descriptor",
             2: "ACKNOWLEDGE 1, DRIVER 2, DRIVER_OK 4"}

    def draw(self) -> None:
        self.length = self.choice([3, 4, 6, 8, 9, 10, 11])

    def questions(self) -> list[str]:
        return [f"Make the receiver's buffers {self.length} bytes long "
                f"(pair(length={self.length})). How many bytes does the Host copy "
                "(the receiver's used_len)?",
                "What is the console descriptor's status (a number) once the Guest's bus "
                "driver is done with it?",
                "How many SEND_DMA hypercalls did the teaching Guest make in its whole life?"]

    def expected(self, number: int, *inputs: Any) -> Any:
        if number == 1:
            if len(inputs) != 1 or not callable(inputs[0]):
                raise TypeError("exercise 1 is about your pair of Guests: "
                                "ex.check(1, ANSWER_1, pair)")
            return used_len(inputs[0], self.length)
        return {2: console_status, 3: send_dmas}[number]()
