"""Daily multilateral netting between pools (DESIGN.md section 6). Pure: no I/O.

An obligation runs from the patient's home pool (it pays) to the treatment pool (its hospitals
were paid at the counter), per insurance type and fund share (hub.clearing.domain.funds).
Reversals are negative obligations. Each fund nets on its own and sums to zero on its own: the
employees' and residents' money never offset each other. Memory is bounded by pools x pools x
insurance types: the input is already aggregated per (home, treatment, insurance type).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction
from typing import Iterable, NamedTuple

from hub.clearing.domain.funds import Fund, funds_of


class ZeroSumViolated(RuntimeError):
    """The net positions of a clearing day do not sum to zero: nothing may be published."""


@dataclass(frozen=True)
class Obligation:
    """What `home_pool` owes `treatment_pool` for one day, per share, in fen (may be negative)."""

    home_pool: str
    treatment_pool: str
    hifp_pay_fen: int
    hifmi_pay_fen: int
    maf_pay_fen: int
    settlement_count: int
    insurance_type: str = "RESIDENT"  # RESIDENT, EMPLOYEE

    @property
    def total_fen(self) -> int:
        return self.hifp_pay_fen + self.hifmi_pay_fen + self.maf_pay_fen


class Shares(NamedTuple):
    """Money per fund, in fen, under the names the settlement carries from the engine to the files."""

    hifp_pay_fen: int  # the basic fund (统筹基金)
    hifmi_pay_fen: int  # serious-illness insurance (大病保险)
    maf_pay_fen: int  # medical assistance (医疗救助)


@dataclass(frozen=True)
class BilateralLine:
    counterparty_pool: str
    receivable: Shares
    payable: Shares
    settlement_count: int
    insurance_type: str = "RESIDENT"

    @property
    def net_fen(self) -> int:
        return sum(self.receivable) - sum(self.payable)


@dataclass(frozen=True)
class FundPosition:
    """A pool's position in one fund: what it receives and pays from it, across counterparties."""

    fund: Fund
    receivable_fen: int
    payable_fen: int

    @property
    def net_fen(self) -> int:
        return self.receivable_fen - self.payable_fen


@dataclass(frozen=True)
class PoolPosition:
    pool: str
    receivable_fen: int
    payable_fen: int
    settlement_count: int
    bilateral: tuple[BilateralLine, ...]
    funds: tuple[FundPosition, ...] = ()

    @property
    def net_fen(self) -> int:
        """> 0: the pool's funds receive; < 0: they pay (the sum over its funds)."""
        return self.receivable_fen - self.payable_fen


@dataclass(frozen=True)
class NettingResult:
    positions: tuple[PoolPosition, ...]
    gross_fen: int  # sum of every pool's receivable plus payable
    obligations_fen: int  # sum of the bilateral obligations (each counted once)
    net_abs_fen: int  # sum of |net position| of every pool in every fund: twice what moves
    efficiency: Fraction  # 1 - net_abs / gross
    by_pool: dict[str, PoolPosition] = field(repr=False, default_factory=dict)


def net(obligations: Iterable[Obligation]) -> NettingResult:
    """Gross bilateral obligations per insurance type and share, each pool's multilateral net in
    total and per fund, the efficiency; raises ZeroSumViolated before returning anything whose
    nets do not sum to zero, in total or in any one fund."""
    pair = _pairs(obligations)
    flows: dict[str, dict[tuple[str, str], list]] = {}
    for (home, treat, kind), amounts in pair.items():
        flows.setdefault(treat, {}).setdefault((home, kind), [None, None])[0] = amounts
        flows.setdefault(home, {}).setdefault((treat, kind), [None, None])[1] = amounts
    positions = [_position(pool, flows[pool]) for pool in sorted(flows)]
    total_net = sum(p.net_fen for p in positions)
    if total_net != 0:
        raise ZeroSumViolated(f"net positions sum to {total_net} fen, not 0")
    per_fund: dict[Fund, int] = {}
    for p in positions:
        for f in p.funds:
            per_fund[f.fund] = per_fund.get(f.fund, 0) + f.net_fen
    unbalanced = {fund.key: total for fund, total in per_fund.items() if total != 0}
    if unbalanced:
        raise ZeroSumViolated(f"fund nets do not sum to zero: {unbalanced}")
    obligations_fen = sum(sum(v[:3]) for v in pair.values())
    gross = sum(p.receivable_fen + p.payable_fen for p in positions)
    net_abs = sum(abs(f.net_fen) for p in positions for f in p.funds)  # money moves fund by fund
    efficiency = Fraction(1) - Fraction(net_abs, gross) if gross else Fraction(0)
    result = NettingResult(tuple(positions), gross, obligations_fen, net_abs, efficiency)
    result.by_pool.update({p.pool: p for p in positions})
    return result


def position_of(pool: str, obligations: Iterable[Obligation]) -> PoolPosition:
    """One pool's position as `net` gives it, from the obligations that involve it: what a page
    shows of a closed day (netting every pool, and checking the sums, is the close's work)."""
    flows: dict[tuple[str, str], list] = {}
    for (home, treat, kind), amounts in _pairs(o for o in obligations if pool in (o.home_pool, o.treatment_pool)).items():
        flows.setdefault((home if treat == pool else treat, kind), [None, None])[0 if treat == pool else 1] = amounts
    return _position(pool, flows)


def _pairs(obligations: Iterable[Obligation]) -> dict[tuple[str, str, str], list[int]]:
    """The obligations summed per (home, treatment, insurance type): three shares and a count."""
    pair: dict[tuple[str, str, str], list[int]] = {}
    for o in obligations:
        if o.home_pool == o.treatment_pool:
            continue  # care inside the home pool is not interregion money
        acc = pair.setdefault((o.home_pool, o.treatment_pool, o.insurance_type), [0, 0, 0, 0])
        acc[0] += o.hifp_pay_fen
        acc[1] += o.hifmi_pay_fen
        acc[2] += o.maf_pay_fen
        acc[3] += o.settlement_count
    return pair


def _position(pool: str, flows: dict[tuple[str, str], list]) -> PoolPosition:
    """A pool's position from what it receives and pays per (counterparty, insurance type)."""
    zero = [0, 0, 0, 0]
    lines, count = [], 0
    funds: dict[Fund, list[int]] = {}
    for (other, kind) in sorted(flows):
        recv, pay = (amounts or zero for amounts in flows[(other, kind)])
        lines.append(BilateralLine(other, Shares(*recv[:3]), Shares(*pay[:3]), recv[3] + pay[3], kind))
        count += recv[3] + pay[3]
        for fund, r, p in zip(funds_of(kind), recv[:3], pay[:3]):
            f = funds.setdefault(fund, [0, 0])
            f[0] += r
            f[1] += p
    receivable = sum(sum(l.receivable) for l in lines)
    payable = sum(sum(l.payable) for l in lines)
    fund_positions = tuple(FundPosition(fund, r, p) for fund, (r, p) in sorted(funds.items()) if r or p)
    return PoolPosition(pool, receivable, payable, count, tuple(lines), fund_positions)


def clearing_day_for(business_date: date, closed: set[date]) -> tuple[date, bool]:
    """The day an event is cleared in: its own business date, or — when that day is already
    closed — the first open day after it (flagged late). Never a day before `business_date`."""
    if business_date not in closed:
        return business_date, False
    day = business_date + timedelta(days=1)
    while day in closed:
        day += timedelta(days=1)
    return day, True
