"""Differential tests against unicorn: shifts and rotates.

rol/ror/rcl/rcr/shl/sal/shr/sar by 1, by imm8 and by CL (counts 0, 1,
the operand size and beyond, above 31), and shld/shrd; OF is masked after
multi-bit shifts, CF after shl/shr by the operand size or more, AF always.
"""

from __future__ import annotations

import pytest
import x86env_unicorn as xu
from hypothesis import given


@pytest.fixture(autouse=True, scope="module")
def _count_cases(request: pytest.FixtureRequest) -> None:
    xu.register_summary(request.config)


@xu.examples(ci=1400)
@given(xu.cases([xu.gen_shift], "shift"))
def test_shifts(case: xu.Case) -> None:
    """The shift/rotate group."""
    xu.check_case(case)


@xu.examples(ci=600)
@given(xu.cases([xu.gen_shxd], "shxd"))
def test_double_shifts(case: xu.Case) -> None:
    """shld/shrd."""
    xu.check_case(case)
