"""The fund-risk watch (the rule in hub.clearing.domain.fund_risk): each pool's off-site spending
per fund this year — what it owed other pools on closed days and what it paid its insured in
manual claims — against the pro-rata share of its budget."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any, Sequence

from hub.clearing.adapters.repository import ClearingRepository, Unit
from hub.clearing.domain.fund_risk import RiskRule, assess
from hub.clearing.domain.funds import funds_of
from hub.operations.metrics import FUND_RISK_LEVEL, FUND_RISK_RATIO
from hub.reference.budget import Budget, in_force

LEVELS = ["OK", "WARN", "ALARM"]
log = logging.getLogger(__name__)


def fund_risk(repository: ClearingRepository, rule: RiskRule, budgets: Sequence[Budget], pool: str,
              day: date | None = None) -> dict[str, Any] | None:
    """The pool's watch by `day` (default: its latest closed day), with the months so far; None
    when the pool has no budget for that year or nothing closed."""
    with repository.unit() as unit:
        day = day or unit.latest_fund_day(pool)
        if day is None:
            return None
        budget = in_force(list(budgets), pool, day.year)
        if budget is None:
            return None
        first = date(day.year, 1, 1)
        rows = [*unit.fund_payables(pool, first, day), *manual_claims_spent(unit, pool, first, day)]
    spent: dict[str, int] = {}
    monthly: dict[str, dict[str, int]] = {}
    for fund, month, amount in rows:
        spent[fund] = spent.get(fund, 0) + amount
        monthly.setdefault(fund, {})[month] = monthly.get(fund, {}).get(month, 0) + amount
    risks = assess(rule, budget.funds, spent, day)
    return {"pool_code": pool, "as_of": day.isoformat(), "budget_version": budget.budget_version,
            "warn_pct": rule.warn_pct, "alarm_pct": rule.alarm_pct,
            "level": max((r.level for r in risks), key=LEVELS.index),
            "funds": [{"fund_pay_type": r.fund_pay_type, "budget_fen": r.budget_fen, "prorata_fen": r.prorata_fen,
                       "spent_fen": r.spent_fen, "ratio_pct": round(float(r.ratio) * 100, 1), "level": r.level,
                       "months": [{"month": m, "spent_fen": v} for m, v in sorted(monthly.get(r.fund_pay_type, {}).items())]}
                      for r in risks]}


def manual_claims_spent(unit: Unit, pool: str, first: date, last: date) -> list[tuple[str, str, int]]:
    """(fund_pay_type, yyyy-mm, fen) the pool's funds paid in manual claims cleared in [first, last]."""
    return [(fund.fund_pay_type, month, amount)
            for insurance, month, *amounts in unit.manual_claim_totals(pool, first, last)
            for fund, amount in zip(funds_of(insurance), amounts)]


def watch(repository: ClearingRepository, rule: RiskRule, budgets: Sequence[Budget], pool: str, day: date) -> None:
    """After a close: the pool's levels to the gauges, and a warning in the log. Never raises: the
    watch does not fail a close that committed."""
    try:
        found = fund_risk(repository, rule, budgets, pool, day)
    except Exception:
        log.exception("fund-risk watch of %s on %s", pool, day)
        return
    if found is None:
        return
    for f in found["funds"]:
        FUND_RISK_RATIO.labels(pool, f["fund_pay_type"]).set(f["ratio_pct"])
        FUND_RISK_LEVEL.labels(pool, f["fund_pay_type"]).set(LEVELS.index(f["level"]))
    if found["level"] != "OK":
        log.warning("fund risk %s: %s's off-site spending on %s is %s of its pro-rata budget", found["level"], pool,
                    day, ", ".join(f"{f['fund_pay_type']} {f['ratio_pct']}%" for f in found["funds"]))


def overview(repository: ClearingRepository, rule: RiskRule, budgets: Sequence[Budget]) -> list[dict[str, Any]]:
    """Every budgeted pool's watch at its latest closed day (the status page's panel)."""
    pools = sorted({b.pool_code for b in budgets})
    return [found for pool in pools if (found := fund_risk(repository, rule, budgets, pool)) is not None]
