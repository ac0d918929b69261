"""The monthly statement's line rules."""

from __future__ import annotations

from datetime import date

import pytest

from hub.clearing.domain.statements import LineState as S
from hub.clearing.domain.refusals import ClearingRefused
from hub.clearing.domain.statements import after, month_days


@pytest.mark.parametrize("action,before,expected", [
    ("confirm", S.PENDING, S.CONFIRMED), ("confirm", S.CONFIRMED, S.CONFIRMED),
    ("unconfirm", S.CONFIRMED, S.PENDING), ("dispute", S.PENDING, S.DISPUTED), ("dispute", S.DISPUTED, S.DISPUTED),
    ("withdraw", S.DISPUTED, S.PENDING),
])
def test_what_a_bureau_can_do_to_a_line(action, before, expected):
    assert after(action, before, "e1") is expected


@pytest.mark.parametrize("action,before,code", [
    ("confirm", S.DISPUTED, "invalid_transition"), ("dispute", S.CONFIRMED, "invalid_transition"),
    ("confirm", S.RESOLVED, "invalid_transition"), ("approve", S.PENDING, "invalid_action"),
])
def test_what_it_cannot(action, before, code):
    with pytest.raises(ClearingRefused) as err:
        after(action, before, "e1")
    assert err.value.code == code


def test_months():
    assert month_days("2026-02") == (date(2026, 2, 1), date(2026, 2, 28))
    assert month_days("2028-02") == (date(2028, 2, 1), date(2028, 2, 29))
    assert month_days("2026-12") == (date(2026, 12, 1), date(2026, 12, 31))
    for bad in ("2026-13", "2026-1", "March", ""):
        with pytest.raises(ClearingRefused):
            month_days(bad)
