"""Differential tests against unicorn: bit operations and 486 additions.

bt/bts/btr/btc with register and immediate offsets (register offsets
reaching outside the addressed dword in memory), bsf/bsr (destination
masked when the source is zero), bswap, xadd, cmpxchg, setcc and cmovcc.
"""

from __future__ import annotations

import pytest
import x86env_unicorn as xu
from hypothesis import given


@pytest.fixture(autouse=True, scope="module")
def _count_cases(request: pytest.FixtureRequest) -> None:
    xu.register_summary(request.config)


@xu.examples(ci=700)
@given(xu.cases([xu.gen_bt], "bt"))
def test_bt(case: xu.Case) -> None:
    """bt/bts/btr/btc."""
    xu.check_case(case)


@xu.examples(ci=400)
@given(xu.cases([xu.gen_bsf, xu.gen_bswap], "bsf"))
def test_bsf_bsr(case: xu.Case) -> None:
    """bsf/bsr and bswap."""
    xu.check_case(case)


@xu.examples(ci=400)
@given(xu.cases([xu.gen_xadd_cmpxchg], "xadd"))
def test_xadd_cmpxchg(case: xu.Case) -> None:
    """xadd and cmpxchg."""
    xu.check_case(case)


@xu.examples(ci=400)
@given(xu.cases([xu.gen_setcc_cmov], "setcc"))
def test_setcc_cmov(case: xu.Case) -> None:
    """setcc and cmovcc on random flags."""
    xu.check_case(case)
