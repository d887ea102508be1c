"""Differential tests against unicorn: multiply and divide.

mul/imul (one-, two- and three-operand forms) and div/idiv, 8/16/32 bits;
most divisions are set up not to overflow, some take any operands and may
raise #DE, which both sides must report at the same EIP.
"""

from __future__ import annotations

import pytest
import x86env_unicorn as xu
from hypothesis import given


@pytest.fixture(autouse=True, scope="module")
def _count_cases(request: pytest.FixtureRequest) -> None:
    xu.register_summary(request.config)


@xu.examples(ci=700)
@given(xu.cases([xu.gen_mul], "mul"))
def test_mul(case: xu.Case) -> None:
    """mul and every imul form."""
    xu.check_case(case)


@xu.examples(ci=700)
@given(xu.cases([xu.gen_div], "div"))
def test_div(case: xu.Case) -> None:
    """div and idiv, #DE included."""
    xu.check_case(case)
