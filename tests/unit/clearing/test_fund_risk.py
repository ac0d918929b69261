"""The fund-risk watch on hand-computed figures."""

from __future__ import annotations

from datetime import date

import pytest

from hub.clearing.domain.fund_risk import RiskRule, assess, prorata
from hub.reference.budget import Budget, in_force
from pydantic import ValidationError


def test_the_pro_rata_budget_by_the_day():
    # 2026 has 365 days; 30 June is day 181: 3,650,000.00 x 181/365 = 1,810,000.00
    assert prorata(365_000_000, date(2026, 6, 30)) == 181_000_000
    assert prorata(365_000_000, date(2026, 12, 31)) == 365_000_000
    assert prorata(366_000_000, date(2028, 12, 31)) == 366_000_000  # a leap year
    assert prorata(1, date(2026, 1, 1)) == 0  # 1/365 of a fen rounds to none


def test_the_county_at_140_percent_of_plan_by_mid_year_is_alarmed():
    # budget 10,000,000.00 a year; by 30 June the pro-rata is 4,958,904.11; spent 6,942,465.75 -> 140 %
    rule = RiskRule(warn_pct=100, alarm_pct=120)
    [risk] = assess(rule, {"390100": 1_000_000_000}, {"390100": 694_246_575}, date(2026, 6, 30))
    assert risk.prorata_fen == 495_890_411 and risk.level == "ALARM"
    assert round(float(risk.ratio) * 100) == 140


@pytest.mark.parametrize("spent,level", [(495_890_410, "OK"), (495_890_411, "WARN"), (595_068_492, "WARN"),
                                         (595_068_494, "ALARM")])
def test_the_thresholds_and_their_near_misses(spent, level):
    [risk] = assess(RiskRule(100, 120), {"390100": 1_000_000_000}, {"390100": spent}, date(2026, 6, 30))
    assert risk.level == level, (risk.ratio, float(risk.ratio))


def test_budgets_are_validated_and_the_newest_version_wins():
    b1 = Budget(pool_code="371525", budget_version="371525-2026.1", year=2026, funds={"390100": "1000"}, source="x")
    b2 = Budget(pool_code="371525", budget_version="371525-2026.2", year=2026, funds={"390100": 2000}, source="x")
    assert in_force([b1, b2], "371525", 2026).funds == {"390100": 200_000}
    assert in_force([b1, b2], "371525", 2027) is None
    with pytest.raises(ValidationError):
        Budget(pool_code="371525", budget_version="v", year=2026, funds={"999999": 1}, source="x")
