"""Multilateral netting on hand-made days, and its invariants as properties."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.clearing.domain.netting import Obligation, clearing_day_for, net


def ob(home, treat, fund, serious=0, assistance=0, n=1, kind="RESIDENT"):
    return Obligation(home, treat, fund, serious, assistance, n, kind)


def test_three_pools_in_a_cycle_net_to_almost_nothing():
    # A owes B 100, B owes C 100, C owes A 100 (yuan, as fen below): every net is 0.
    result = net([ob("A", "B", 10000), ob("B", "C", 10000), ob("C", "A", 10000)])
    assert {p.pool: p.net_fen for p in result.positions} == {"A": 0, "B": 0, "C": 0}
    assert result.gross_fen == 60000 and result.obligations_fen == 30000
    assert result.efficiency == 1


def test_an_uneven_cycle():
    # A->B 300, B->C 100, C->A 200: A receives 200 pays 300 (-100); B +300 -100 (+200); C +100 -200 (-100)
    result = net([ob("A", "B", 30000), ob("B", "C", 10000), ob("C", "A", 20000)])
    assert {p.pool: p.net_fen for p in result.positions} == {"A": -10000, "B": 20000, "C": -10000}
    # gross = 2 x 600 = 1200; sum|net| = 400; efficiency = 1 - 400/1200 = 2/3
    assert result.efficiency == Fraction(2, 3)


def test_one_pool_only_paying():
    result = net([ob("A", "B", 5000, serious=1000), ob("A", "C", 2500)])
    by = {p.pool: p for p in result.positions}
    assert (by["A"].net_fen, by["B"].net_fen, by["C"].net_fen) == (-8500, 6000, 2500)
    assert by["A"].receivable_fen == 0 and by["A"].payable_fen == 8500
    line = next(l for l in by["B"].bilateral if l.counterparty_pool == "A")
    assert line.receivable == (5000, 1000, 0) and line.payable == (0, 0, 0)
    assert result.efficiency == 0  # nothing nets out when one pool only pays


def test_reversals_are_negative_obligations_and_in_pool_care_is_left_out():
    result = net([ob("A", "B", 10000), ob("A", "B", -10000, n=1), ob("B", "B", 777)])
    by = {p.pool: p for p in result.positions}
    assert by["A"].net_fen == 0 and by["B"].net_fen == 0
    assert by["A"].settlement_count == 2
    assert "B" in by and all(l.counterparty_pool != "B" for l in by["B"].bilateral)


def test_employees_and_residents_funds_never_offset():
    # A's residents owe B 100; B's employees owe A 100: in total both nets are 0, but each fund
    # moves its own money — A's 390100 pays 100, B's 310100 pays 100.
    result = net([ob("A", "B", 10000), ob("B", "A", 10000, kind="EMPLOYEE")])
    by = {p.pool: p for p in result.positions}
    assert (by["A"].net_fen, by["B"].net_fen) == (0, 0)
    assert {f.fund.key: f.net_fen for f in by["A"].funds} == {"310-310100": 10000, "390-390100": -10000}
    assert {f.fund.key: f.net_fen for f in by["B"].funds} == {"310-310100": -10000, "390-390100": 10000}
    assert result.net_abs_fen == 40000 and result.efficiency == 0  # nothing nets across funds
    assert [(l.counterparty_pool, l.insurance_type) for l in by["A"].bilateral] == [("B", "EMPLOYEE"), ("B", "RESIDENT")]


def test_each_share_is_its_own_fund():
    result = net([ob("A", "B", 5000, serious=2000, assistance=300, kind="EMPLOYEE"), ob("A", "B", 100, assistance=7)])
    funds = {f.fund.key: (f.receivable_fen, f.payable_fen) for f in result.by_pool["B"].funds}
    assert funds == {"310-310100": (5000, 0), "310-330100": (2000, 0), "310-610100": (300, 0),
                     "390-390100": (100, 0), "390-610100": (7, 0)}  # a fund with nothing either way is left out


def test_a_reversal_arriving_after_its_day_closed_goes_to_the_next_open_day():
    closed = {date(2026, 3, 14), date(2026, 3, 15)}
    assert clearing_day_for(date(2026, 3, 14), closed) == (date(2026, 3, 16), True)
    assert clearing_day_for(date(2026, 3, 16), closed) == (date(2026, 3, 16), False)


pools = st.sampled_from(["110000", "310000", "360400", "440100", "999903", "230800"])
obligations = st.lists(st.builds(ob, pools, pools, st.integers(-10**7, 10**9), st.integers(0, 10**8),
                                 st.integers(0, 10**6), st.integers(1, 50), st.sampled_from(["RESIDENT", "EMPLOYEE"])),
                       max_size=60)


@settings(max_examples=300, deadline=None)
@given(obligations, st.randoms())
def test_net_positions_sum_to_zero_equal_receivable_minus_payable_and_ignore_order(obs, rnd):
    result = net(obs)
    assert sum(p.net_fen for p in result.positions) == 0
    for p in result.positions:
        assert p.net_fen == p.receivable_fen - p.payable_fen
        assert p.net_fen == sum(l.net_fen for l in p.bilateral) == sum(f.net_fen for f in p.funds)
    fund_totals: dict = {}
    for p in result.positions:
        for f in p.funds:
            fund_totals[f.fund] = fund_totals.get(f.fund, 0) + f.net_fen
    assert set(fund_totals.values()) <= {0}  # every fund sums to zero on its own
    shuffled = list(obs)
    rnd.shuffle(shuffled)
    again = net(shuffled)
    assert [(p.pool, p.net_fen, p.bilateral) for p in again.positions] == [
        (p.pool, p.net_fen, p.bilateral) for p in result.positions]


def test_one_pools_position_alone_is_the_one_netting_every_pool_gives():
    """position_of (a page's view of a closed day) agrees with net for every pool, on random days."""
    import random

    from hub.clearing.domain.netting import position_of

    rnd = random.Random(11)
    pools = [f"{n:06d}" for n in range(100100, 100112)]
    for _ in range(30):
        obligations = []
        for _ in range(rnd.randint(1, 80)):
            home, treat = rnd.sample(pools, 2)
            obligations.append(Obligation(home, treat, rnd.randint(-500, 5000), rnd.randint(0, 900), rnd.randint(0, 50),
                                          rnd.randint(1, 4), rnd.choice(["RESIDENT", "EMPLOYEE"])))
        whole = net(obligations)
        for pool, position in whole.by_pool.items():
            assert position_of(pool, obligations) == position
