"""The 387 against unicorn: a seeded sample of random x87 sequences.

The harness and what it compares (and why some things are settled by the
manual instead) are in x87env_unicorn.py.  This is the sample that runs with
every ``make test``; ``make x87-corpus`` runs the full corpus of 5,000
sequences and prints its figures.
"""

from __future__ import annotations

import pytest
import x87env_unicorn as xe87
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SAMPLE = settings(max_examples=200, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(autouse=True, scope="module")
def _figures(request: pytest.FixtureRequest):
    yield
    f = xe87.FIGURES
    print(f"\nx87 sample: {f['sequences']} sequences, {f['instructions']} instructions, "
          f"{f['agreements']} agreements")


@SAMPLE
@given(st.data())
def test_random_x87_sequences(data: st.DataObject) -> None:
    p = xe87.Picker(draw=data.draw)
    xe87.check_case(xe87.gen_sequence(p, p.int(4, 24)))


@settings(SAMPLE, max_examples=60)
@given(st.data())
def test_transcendental_functions(data: st.DataObject) -> None:
    xe87.check_trans(xe87.trans_case(xe87.Picker(draw=data.draw)))


@settings(SAMPLE, max_examples=30)
@given(st.data())
def test_unmasked_division_by_zero_raises_mf_at_fwait(data: st.DataObject) -> None:
    xe87.check_unmasked(xe87.unmasked_case(xe87.Picker(draw=data.draw)))


def test_the_sanitizer_settles_only_what_qemu_gets_wrong() -> None:
    """An SNaN loaded from a double is replaced (QEMU keeps it signalling);
    the same load of a QNaN is compared."""
    import struct
    for bits, settled in ((0x7FF0000000000001, True), (0x7FF8000000000001, False)):
        data = bytearray(xe87.xu.DATA_SIZE)
        struct.pack_into("<Q", data, 0, bits)
        struct.pack_into("<H", data, xe87.CWS - xe87.DATA, 0x037F)
        case = xe87.X87Case("sequence", [xe87.Item(xe87.FNINIT, "init"),
                                         xe87.Item(xe87.mem(0xD9, 5, xe87.CWS), "ldcw"),
                                         xe87.Item(xe87.mem(0xDD, 0, xe87.POOL), "ld:m64")],
                            data)
        code, _, _ = xe87.sanitize(case)
        assert (code[-6:] != case.code[-6:]) == settled
        xe87.check_case(case)
