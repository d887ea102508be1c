"""Exercises: each student's variant is stable, students differ, answers are judged."""

from __future__ import annotations

from lguestsim.exercises import Exercises


def test_variants_are_stable_per_student_and_differ_between_students():
    draws = lambda name: [Exercises("host", name).choice(range(1000)) for _ in range(3)]  # noqa: E731
    assert draws("ada") == draws("ada")
    picks = {tuple(Exercises("host", n).randint(0, 10**9) for _ in range(2)) for n in
             ("ada", "alan", "grace", "")}
    assert len(picks) == 4
    assert Exercises("host", "ada").seed != Exercises("switcher", "ada").seed


def test_answers_are_judged_without_raising():
    ex = Exercises("launcher", "ada")
    assert ex.check(1, None, 5).status == "waiting"
    assert ex.check(2, 5, 5).ok
    assert ex.check(3, "0x10", 16).ok                  # hex text for a number
    assert ex.check(4, [1, 2], (1, 2)).ok
    assert ex.check(5, "Bad Hypercall 7 ", "bad hypercall 7").ok
    wrong = ex.check(6, 4, lambda: 5, hint="count again")
    assert wrong.status == "wrong" and "count again" in wrong.message
    assert "Exercise 6" in wrong._repr_html_()
    assert not ex.check(7, "x", 5).ok
    summary = ex.summary()
    assert "4 of 7" in summary.message
