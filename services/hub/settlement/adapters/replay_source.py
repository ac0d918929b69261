"""The settled bills a what-if replay re-prices, read from the settlement database in the order
they were settled: each with its visit and fee lines, in chunks (a server-side cursor), so a
million bills stream through in bounded memory; and the paid manual claims (零星报销), which count
in the same accumulators, in the order they were decided."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Iterator

import sqlalchemy as sa

from hub.business_day import SHANGHAI
from hub.settlement.adapters import database as db
from hub.settlement.adapters.postgres import CLAIM_COLUMNS
from hub.settlement.adapters.repository import StoredClaim


@dataclass(frozen=True)
class SettledBill:
    setl_id: str
    person_ref: str
    hospital_code: str
    home_pool: str
    treatment_pool: str
    insutype: str  # 390 / 310, as the settlement answered it
    business_date: date
    med_type: str
    begntime: date
    endtime: date | None
    accident_injury: bool
    diagnoses: str
    medfee_sumamt_fen: int
    hifp_pay_fen: int
    hifmi_pay_fen: int
    maf_pay_fen: int
    psn_part_amt_fen: int
    lines: tuple[tuple[str, Decimal, int, int], ...]  # (item code, quantity, unit price fen, amount fen), by feedetl_sn
    at: datetime | None = None  # settled (or, for a manual claim, decided): the replay's order
    # a manual claim: the hospital's level and kind as the claim gave them (it need not be connected)
    manual: bool = False
    level: str | None = None
    kind: str | None = None




def _paid_claims(pool: str, first: date, last: date):
    c = db.manual_claims.c
    since, until = (datetime.combine(d, time.min, SHANGHAI) for d in (first, last + timedelta(days=1)))
    return sa.and_(c.status == "SETTLED", c.home_pool == pool, c.decided_at >= since, c.decided_at < until)


def count_bills(engine: sa.Engine, pool: str, first: date, last: date) -> int:
    """Settlements and paid manual claims in the window."""
    s = db.settlements.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(
            s.status == "SETTLED", s.home_pool == pool, s.business_date.between(first, last))).scalar_one() + \
            conn.execute(sa.select(sa.func.count()).select_from(db.manual_claims)
                         .where(_paid_claims(pool, first, last))).scalar_one()


def settled_bills(engine: sa.Engine, pool: str, first: date, last: date, chunk: int = 2_000) -> Iterator[SettledBill]:
    """The pool's insured's standing settlements with business dates in [first, last], oldest first."""
    s, v, f = db.settlements.c, db.visits.c, db.fee_details.c
    query = (sa.select(s.setl_id, s.person_ref, s.hospital_code, s.home_pool, s.treatment_pool,
                       s.output["setlinfo"]["insutype"].astext, s.business_date, v.med_type, v.begntime, v.endtime,
                       v.accident_injury, v.diagnoses, s.medfee_sumamt_fen, s.hifp_pay_fen, s.hifmi_pay_fen,
                       s.maf_pay_fen, s.psn_part_amt_fen, s.mdtrt_id, s.settled_at)
             .join(db.visits, v.mdtrt_id == s.mdtrt_id)
             .where(s.status == "SETTLED", s.home_pool == pool, s.business_date.between(first, last))
             .order_by(s.settled_at, s.setl_id))
    with engine.connect() as conn, engine.connect() as lines_conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
        for rows in result.partitions(chunk):
            ids = [r.mdtrt_id for r in rows]
            lines: dict[str, list] = {}
            for r in lines_conn.execute(sa.select(f.mdtrt_id, f.feedetl_sn, f.med_list_codg, f.cnt, f.pric_fen,
                                                  f.amount_fen).where(f.mdtrt_id.in_(ids))
                                        .order_by(f.mdtrt_id, f.feedetl_sn)):
                lines.setdefault(r.mdtrt_id, []).append((r.med_list_codg, r.cnt, r.pric_fen, r.amount_fen))
            for r in rows:
                yield SettledBill(*r[:17], tuple(lines.get(r.mdtrt_id, ())), at=r.settled_at)


def paid_manual_claims(engine: sa.Engine, pool: str, first: date, last: date) -> Iterator[StoredClaim]:
    """The pool's manual claims paid (decided) on Shanghai days [first, last], oldest first, as kept."""
    c = db.manual_claims.c
    query = (sa.select(*(c[name.strip()] for name in CLAIM_COLUMNS.split(",")))
             .where(_paid_claims(pool, first, last)).order_by(c.decided_at, c.claim_no))
    with engine.connect() as conn:
        for r in conn.execution_options(stream_results=True, yield_per=2_000).execute(query):
            yield StoredClaim(*r)
