"""Advance funds (预付金): each home bureau keeps money at the clearing centre, drawn on by its
daily net debits and replenished by its credits and deposits. Pure: no I/O.

The named rule: the required advance is `months` months (of 30 days) of the bureau's average
daily off-site spending — what its insured's bills cost it (its gross payable), averaged over
the closed days of the last `window_days` days. The bureau is warned when its balance falls
under `warn_pct` percent of that, and its monthly statement then requests the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Sequence


@dataclass(frozen=True)
class AdvanceRule:
    months: int = 2
    window_days: int = 90
    warn_pct: int = 50

    def required(self, payable_by_day: Sequence[int]) -> int:
        """The advance to hold, in fen, from the gross payable of each closed day in the window
        (rounded half-up to the fen)."""
        if not payable_by_day:
            return 0
        numerator = sum(payable_by_day) * self.months * 30
        return (2 * numerator + len(payable_by_day)) // (2 * len(payable_by_day))

    def warns(self, balance_fen: int, required_fen: int) -> bool:
        return required_fen > 0 and balance_fen * 100 < required_fen * self.warn_pct

    def top_up(self, balance_fen: int, required_fen: int) -> int:
        """What the statement requests: back up to the required advance, once the balance warns."""
        return max(0, required_fen - balance_fen) if self.warns(balance_fen, required_fen) else 0


@dataclass(frozen=True)
class LedgerEntry:
    """One movement of a bureau's advance: a day's net (DRAW when it paid, CREDIT when it
    received) or a DEPOSIT the centre recorded; `balance_fen` is after it."""

    pool: str
    kind: str  # DRAW, CREDIT, DEPOSIT
    amount_fen: int  # signed: a draw is negative
    balance_fen: int
    required_fen: int
    warning: bool


def day_entry(rule: AdvanceRule, pool: str, balance_before: int, net_fen: int,
              payable_by_day: Sequence[int]) -> LedgerEntry:
    """The entry a closed day's net position makes in the pool's advance."""
    balance = balance_before + net_fen
    required = rule.required(payable_by_day)
    return LedgerEntry(pool, "DRAW" if net_fen < 0 else "CREDIT", net_fen, balance, required,
                       rule.warns(balance, required))


def close_reference(day: date) -> str:
    """The ledger reference of a day's net drawn on (or credited to) an advance."""
    return f"close:{day.isoformat()}"
