"""Differential tests against unicorn: random mixed instruction sequences.

Two to eight instructions from every family (with forward jumps among
them), so that the lazily computed flags of one instruction flow into the
next; operands an instruction needs with particular values are loaded by
``mov reg, imm32`` just before it. A flag reader that could read a flag left
undefined on some path is replaced by NOPs (see ``x86env_unicorn._flow``).
"""

from __future__ import annotations

import pytest
import x86env_unicorn as xu
from hypothesis import given


@pytest.fixture(autouse=True, scope="module")
def _count_cases(request: pytest.FixtureRequest) -> None:
    xu.register_summary(request.config)


@xu.examples(ci=1500)
@given(xu.cases(xu.SEQUENCE_GENS, "sequence", 2, 8))
def test_sequences(case: xu.Case) -> None:
    """Mixed sequences with flags flowing between instructions."""
    xu.check_case(case)
