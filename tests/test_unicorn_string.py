"""Differential tests against unicorn: string instructions, stack, jumps.

movs/stos/lods/cmps/scas (b/w/d) with rep/repe/repne, DF both ways,
counts from 0; push/pop (registers, immediates, memory, 16-bit forms,
pop into [esp+d], pop esp, pusha/popa, enter/leave), pushf/popf; forward
jcc/jmp/jecxz/loop/call.
"""

from __future__ import annotations

import pytest
import x86env_unicorn as xu
from hypothesis import given


@pytest.fixture(autouse=True, scope="module")
def _count_cases(request: pytest.FixtureRequest) -> None:
    xu.register_summary(request.config)


@xu.examples(ci=800)
@given(xu.cases([xu.gen_string], "string"))
def test_string(case: xu.Case) -> None:
    """String instructions."""
    xu.check_case(case)


@xu.examples(ci=500)
@given(xu.cases([xu.gen_stack], "stack"))
def test_stack(case: xu.Case) -> None:
    """push/pop/pushf/popf."""
    xu.check_case(case)


@xu.examples(ci=400)
@given(xu.cases([xu.gen_jcc, xu.gen_alu, xu.gen_unary, xu.gen_flagops, xu.gen_mov], "jcc", 2, 6))
def test_jumps(case: xu.Case) -> None:
    """Forward jumps over other instructions, taken and not taken."""
    xu.check_case(case)
