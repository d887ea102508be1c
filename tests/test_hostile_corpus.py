"""The hostile-Guest corpus: each case runs beside a neighbour that must not notice.

tests/hostile.py holds the corpus (1,579 cases) and the harness.  The
normal suite runs every case of the small categories and a seeded sample of
40 of each large one (``int n`` from ring 1 and 3, a fault at each Switcher
instruction and in each trap stub): 248 cases, about half a minute.  ``make
hostile`` runs all of them and prints the report.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hostile import CORPUS, category, judge, run_case, sample

PER_CATEGORY = 40
NAMES = sample(sorted(CORPUS), PER_CATEGORY)


def test_the_corpus_has_every_category_and_over_200_cases():
    counts = Counter(category(n) for n in CORPUS)
    assert set(counts) == {"hypercall", "int-ring1", "int-ring3", "int-ring3-handler",
                           "switcher", "switcher-stub", "hoarder", "gdt"}
    assert counts["int-ring1"] == counts["int-ring3"] == 256
    assert counts["switcher-stub"] > 2 * 256          # every instruction of every stub
    assert sum(counts.values()) >= 200
    assert len(NAMES) >= 200


@pytest.mark.parametrize("name", NAMES)
def test_hostile_guest_hurts_no_neighbour(name):
    case = CORPUS[name]
    outcome = run_case(case)
    problems = judge(case, outcome)
    assert not problems, problems
