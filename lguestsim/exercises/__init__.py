"""Exercises at the end of each chapter notebook, seeded per student.

Each notebook ends with a few questions whose answers a reader finds with the
views and the session (an address, a count, a register's value).  The
variant each reader gets depends on their name: ``Exercises("host", "ada")``
draws its numbers from a generator seeded by the chapter and the name, so two
students sitting side by side work on different addresses, but each gets the
same ones every time.  ``check`` compares an answer with the value the
simulation itself computes and says so, without raising: an unanswered
exercise (``None``) simply reports that it is waiting.

A chapter's questions and the code that computes their answers live in a
module of this package (``exercises.host``, ``exercises.switcher``, ...), one
``Chapter`` subclass each, so that reading a notebook does not give the
answers away: the notebook only shows the questions and calls ``check``.
"""

from __future__ import annotations

import hashlib
import html
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any


class Feedback:
    """The verdict on one answer, shown as a line of HTML in a notebook."""

    def __init__(self, number: int, status: str, message: str) -> None:
        self.number = number
        self.status = status          # "right", "wrong" or "waiting"
        self.message = message

    @property
    def ok(self) -> bool:
        return self.status == "right"

    def __repr__(self) -> str:
        return f"Exercise {self.number}: {self.status} - {self.message}"

    def _repr_html_(self) -> str:
        color = {"right": "#1e7d32", "wrong": "#b3261e"}.get(self.status, "#6b7280")
        mark = {"right": "&#10004;", "wrong": "&#10008;"}.get(self.status, "&#9675;")
        return (f'<div style="font-family:system-ui,sans-serif;color:{color}">'
                f"<b>{mark} Exercise {self.number}</b>: {html.escape(self.message)}</div>")


def _same(answer: Any, expected: Any) -> bool:
    if isinstance(expected, str):
        return str(answer).strip().lower() == expected.strip().lower()
    if isinstance(expected, (set, frozenset)):
        try:
            return set(answer) == set(expected)
        except TypeError:
            return False
    if isinstance(expected, (list, tuple)):
        try:
            return list(answer) == list(expected)
        except TypeError:
            return False
    if isinstance(expected, int) and isinstance(answer, str):
        try:
            return int(answer, 0) == expected
        except ValueError:
            return False
    return answer == expected


class Exercises:
    """The exercises of one chapter for one student."""

    # Set by variants(): which option each draw takes (by the draw's place),
    # instead of the student's generator; and every draw's options, in order.
    _pins: dict[int, int] | None = None
    _drawn: list[list[Any]]

    def __init__(self, chapter: str, student: str = "") -> None:
        self.chapter = chapter
        self.student = student.strip() or "anonymous"
        digest = hashlib.sha256(f"{chapter}:{self.student}".encode()).digest()
        self.seed = int.from_bytes(digest[:8], "little")
        self.random = random.Random(self.seed)
        self.results: dict[int, Feedback] = {}

    def choice(self, options: Sequence[Any]) -> Any:
        """One of ``options``: the same for this student every time (in call order)."""
        if self._pins is not None:
            self._drawn.append(list(options))
            return list(options)[self._pins.get(len(self._drawn) - 1, 0)]
        return self.random.choice(list(options))

    def randint(self, low: int, high: int) -> int:
        if self._pins is not None:
            return self.choice(range(low, high + 1))
        return self.random.randint(low, high)

    def check(self, number: int, answer: Any, expected: Any | Callable[[], Any],
              hint: str = "") -> Feedback:
        """Compare ``answer`` with ``expected`` (a value, or a function computing it)."""
        if answer is None or answer is ...:
            fb = Feedback(number, "waiting", "not answered yet: set the answer above and run "
                                             "this cell again.")
        else:
            value = expected() if callable(expected) else expected
            if _same(answer, value):
                fb = Feedback(number, "right", "right.")
            else:
                fb = Feedback(number, "wrong", "not yet." + (f" Hint: {hint}" if hint else ""))
        self.results[number] = fb
        return fb

    def summary(self) -> Feedback:
        done = sum(1 for f in self.results.values() if f.ok)
        return Feedback(0, "right" if done == len(self.results) and done else "waiting",
                        f"{done} of {len(self.results)} exercises right for {self.student}.")


class Chapter(Exercises, ABC):
    """The exercises of one chapter: the variant drawn, the questions, the answers.

    A subclass sets ``chapter``, draws its variant in ``draw()`` (always in
    the same order, so each student keeps theirs), and defines
    ``questions()`` and ``expected(number, *inputs)``.  ``inputs`` are
    objects of the chapter's own story that a question is about (a tiny
    Guest's source, a function that builds a pair of Guests), passed by the
    notebook as they stand, so a reader who changes them is judged by them.
    """

    chapter = ""
    hints: dict[int, str] = {}
    # Whether the chapter's answers, or its cells that read the variant,
    # assemble tiny Guests: the live book, which has no assembler, ships the
    # programs of every variant (``variants()``, run by book/build.py).
    assembles = False

    def __init__(self, student: str = "") -> None:
        super().__init__(self.chapter, student)
        self.draw()

    @classmethod
    def _pinned(cls, pins: dict[int, int]) -> Chapter:
        ex = cls.__new__(cls)
        ex._pins, ex._drawn = pins, []
        ex.__init__()
        return ex

    @classmethod
    def variants(cls) -> list[Chapter]:
        """Every option of every draw, each once, the other draws at their first
        option: every value a question or a cell may be built from."""
        first = cls._pinned({})
        found = [first]
        for place, options in enumerate(first._drawn):
            found += [cls._pinned({place: i}) for i in range(1, len(options))]
        return found

    def draw(self) -> None:
        """Draw this student's variant (numbers, names) from ``self.random``."""

    @abstractmethod
    def questions(self) -> list[str]:
        """The questions, in order, worded for this student's variant."""

    @abstractmethod
    def expected(self, number: int, *inputs: Any) -> Any:
        """The right answer to question ``number``, as the simulation computes it."""

    def check(self, number: int, answer: Any, *inputs: Any) -> Feedback:  # type: ignore[override]
        """Judge ``answer`` to question ``number`` against the simulation's own value."""
        if not 1 <= number <= len(self.questions()):
            raise ValueError(f"the {self.chapter} chapter has exercises 1 to "
                             f"{len(self.questions())}, not {number}")
        return super().check(number, answer, lambda: self.expected(number, *inputs),
                             self.hints.get(number, ""))

    def __str__(self) -> str:
        return "\n".join(f"{i}. {q}" for i, q in enumerate(self.questions(), 1))

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(q)}</li>" for q in self.questions())
        return (f'<div style="font-family:system-ui,sans-serif"><b>Exercises for '
                f"{html.escape(self.student)}</b><ol>{items}</ol></div>")


def cached(fn: Callable) -> Callable:
    """Answers are pure functions of the variant: compute each once per process."""
    return lru_cache(maxsize=None)(fn)


def nth(session: Any, kind: str, n: int,
        match: Callable[[Any], bool] | None = None) -> Any:
    """Step to the ``n``-th event of ``kind`` from now (1 is the next one)."""
    seen = []

    def counted(event) -> bool:
        if match is not None and not match(event):
            return False
        seen.append(event)
        return len(seen) == n
    return session.step_to(kind, match=counted)
