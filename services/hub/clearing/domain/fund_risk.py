"""The fund-risk watch (基金运行风险预警): a home bureau's off-site spending per fund against the
pro-rata share of its yearly off-site budget. Pure: no I/O.

One of the documents (000_…, a 江西 county's 2018 half-year report) shows a fund spending at 140 %
of plan by mid-year. The watch says so as it happens: after each closed day, spending so far this
year is compared with the budget × the share of the year gone (days elapsed / days in the year).
At `warn_pct` of that pro-rata budget or more the fund is at WARN, at `alarm_pct` at ALARM.
"""

from __future__ import annotations

from calendar import isleap
from dataclasses import dataclass
from datetime import date
from fractions import Fraction


@dataclass(frozen=True)
class RiskRule:
    warn_pct: int = 100
    alarm_pct: int = 120

    def level(self, ratio: Fraction) -> str:
        if ratio * 100 >= self.alarm_pct:
            return "ALARM"
        if ratio * 100 >= self.warn_pct:
            return "WARN"
        return "OK"


@dataclass(frozen=True)
class FundRisk:
    fund_pay_type: str
    budget_fen: int  # the year's
    prorata_fen: int  # of it, by the day
    spent_fen: int  # this year so far
    level: str

    @property
    def ratio(self) -> Fraction:
        return Fraction(self.spent_fen, self.prorata_fen) if self.prorata_fen else Fraction(0)


def prorata(budget_fen: int, day: date) -> int:
    """The budget's share by the end of `day` (half-up to the fen)."""
    days = 366 if isleap(day.year) else 365
    elapsed = day.timetuple().tm_yday
    return (2 * budget_fen * elapsed + days) // (2 * days)


def assess(rule: RiskRule, budgets: dict[str, int], spent: dict[str, int], day: date) -> list[FundRisk]:
    """Each budgeted fund's position by `day`."""
    out = []
    for fund, budget in sorted(budgets.items()):
        share = prorata(budget, day)
        used = spent.get(fund, 0)
        ratio = Fraction(used, share) if share else Fraction(0)
        out.append(FundRisk(fund, budget, share, used, rule.level(ratio)))
    return out
