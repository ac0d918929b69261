"""The advance-fund rule on hand-computed figures."""

from __future__ import annotations

from hub.clearing.domain.advance import AdvanceRule, day_entry

RULE = AdvanceRule(months=2, window_days=90, warn_pct=50)


def test_two_months_of_average_daily_spending():
    # payable 1,000.00, 2,000.00 and 3,000.00 on three closed days: 2,000.00 a day x 60 days = 120,000.00
    assert RULE.required([100_000, 200_000, 300_000]) == 12_000_000
    # 1 fen over 3 days: 1/3 x 60 = 20 fen exactly; 2 fen over 3 days: 40 fen
    assert (RULE.required([1, 0, 0]), RULE.required([2, 0, 0])) == (20, 40)
    assert RULE.required([]) == 0


def test_a_draw_below_half_the_required_advance_warns_and_asks_for_the_difference():
    # balance 70,000.00, the day's net -15,000.00 -> 55,000.00; required 120,000.00: under 50% -> warn
    entry = day_entry(RULE, "360400", 7_000_000, -1_500_000, [100_000, 200_000, 300_000])
    assert (entry.kind, entry.amount_fen, entry.balance_fen, entry.warning) == ("DRAW", -1_500_000, 5_500_000, True)
    assert RULE.top_up(entry.balance_fen, entry.required_fen) == 6_500_000  # back up to 120,000.00


def test_a_credit_replenishes_and_exactly_half_does_not_warn():
    entry = day_entry(RULE, "440100", 5_000_000, 1_000_000, [200_000])  # required 120,000.00
    assert (entry.kind, entry.balance_fen, entry.warning) == ("CREDIT", 6_000_000, False)  # 50% is not under 50%
    assert RULE.top_up(6_000_000, 12_000_000) == 0
