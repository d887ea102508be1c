"""Differential tests against unicorn: ALU instructions and their flags.

add/or/adc/sbb/and/sub/xor/cmp, test, inc/dec/neg/not, 8/16/32-bit
operands, register, immediate and ModRM/SIB memory forms; mov and the
conversions cbw/cwde/cwd/cdq, lea, xchg, movzx/movsx, and the BCD adjusts
(daa/das/aaa/aas/aam/aad) with their undefined flags masked.
"""

from __future__ import annotations

import pytest
import x86env_unicorn as xu
from hypothesis import given


@pytest.fixture(autouse=True, scope="module")
def _count_cases(request: pytest.FixtureRequest) -> None:
    xu.register_summary(request.config)


@xu.examples(ci=1500)
@given(xu.cases([xu.gen_alu], "alu"))
def test_alu(case: xu.Case) -> None:
    """Two-operand ALU forms."""
    xu.check_case(case)


@xu.examples(ci=700)
@given(xu.cases([xu.gen_test, xu.gen_unary], "unary"))
def test_test_unary(case: xu.Case) -> None:
    """test, inc, dec, neg, not."""
    xu.check_case(case)


@xu.examples(ci=600)
@given(xu.cases([xu.gen_mov, xu.gen_movx, xu.gen_lea, xu.gen_xchg, xu.gen_convert, xu.gen_xlat],
                "moves"))
def test_moves(case: xu.Case) -> None:
    """mov, movzx/movsx, lea, xchg, cbw/cwde/cwd/cdq, xlat."""
    xu.check_case(case)


@xu.examples(ci=500)
@given(xu.cases([xu.gen_bcd], "bcd"))
def test_bcd(case: xu.Case) -> None:
    """daa/das/aaa/aas/aam/aad (aam 0: #DE)."""
    xu.check_case(case)


@xu.examples(ci=200)
@given(xu.cases([xu.gen_flagops], "flagops"))
def test_flag_ops(case: xu.Case) -> None:
    """clc/stc/cmc/cld/std/lahf/sahf."""
    xu.check_case(case)
