"""What clearing publishes on its statements topic (clearing.statements): each change the log must
hold for `hub clearing rebuild` — a closed day's statements, an advance deposit, a bureau's
confirmation, a monthly statement's change — written to the outbox in the transaction of the change,
so the topic carries exactly what committed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Mapping

from hub.clearing.adapters.repository import LedgerRow, Mark, Unit
from hub.clearing.domain.netting import PoolPosition
from hub.messaging import AvroCodec
from hub.messaging.topics import CLEARING_STATEMENTS

PRODUCER = "interregion-clearing"


@dataclass(frozen=True)
class Journal:
    codec: AvroCodec
    topic: str = CLEARING_STATEMENTS.name

    def record(self, unit: Unit, record_name: str, key: str, event: dict[str, Any]) -> None:
        unit.add_outbox(self.topic, key, self.codec.encode(record_name, event))


class Silent(Journal):
    """The journal of a rebuild: the log already holds every event the rebuild derives again."""

    def record(self, unit: Unit, record_name: str, key: str, event: dict[str, Any]) -> None:
        self.codec.encode(record_name, event)  # still a valid event, published never


def statement_event(day: date, cycle_id: str, now: datetime, p: PoolPosition, sha: str,
                    inputs: Mapping[tuple[str, int], Mark], advance: LedgerRow | None) -> dict[str, Any]:
    """A pool's ClearingStatement (v4) for clearing.statements: its position, and what a rebuild
    needs to close the day again as it was — the close's time, the settlement offsets it had read,
    the pool's advance entry."""
    return {
        "event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"clearing:{cycle_id}:{p.pool}"), "event_time": now,
        "producer": PRODUCER, "schema_version": 4, "cycle_id": cycle_id, "clearing_date": day,
        "pool_code": p.pool, "receivable_fen": p.receivable_fen, "payable_fen": p.payable_fen,
        "net_position_fen": p.net_fen, "settlement_count": p.settlement_count,
        "bilateral": [{"counterparty_pool": b.counterparty_pool, "receivable_hifp_pay_fen": b.receivable.hifp_pay_fen,
                       "receivable_hifmi_pay_fen": b.receivable.hifmi_pay_fen, "payable_hifp_pay_fen": b.payable.hifp_pay_fen,
                       "payable_hifmi_pay_fen": b.payable.hifmi_pay_fen, "receivable_maf_pay_fen": b.receivable.maf_pay_fen,
                       "payable_maf_pay_fen": b.payable.maf_pay_fen, "settlement_count": b.settlement_count,
                       "insurance_type": b.insurance_type}
                      for b in p.bilateral],
        "funds": [{"insutype": f.fund.insutype, "fund_pay_type": f.fund.fund_pay_type,
                   "receivable_fen": f.receivable_fen, "payable_fen": f.payable_fen, "net_fen": f.net_fen}
                  for f in p.funds],
        "file_sha256": sha, "generated_at": now, "closed_at": now,
        "inputs": [{"topic": t, "partition": part, "next_offset": m.next_offset}
                   for (t, part), m in sorted(inputs.items())],
        "advance": None if advance is None else {
            "kind": advance.kind, "amount_fen": advance.amount_fen, "balance_fen": advance.balance_fen,
            "required_fen": advance.required_fen, "warning": advance.warning, "recorded_at": advance.recorded_at},
    }


def deposit_event(e: LedgerRow) -> dict[str, Any]:
    """An AdvanceDeposited for the deposit's ledger row (its id: the pool's reference, once)."""
    return {"event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"clearing:deposit:{e.pool_code}:{e.reference}"),
            "event_time": e.recorded_at, "producer": PRODUCER, "schema_version": 1, "pool_code": e.pool_code,
            "reference": e.reference, "clearing_date": e.clearing_date, "amount_fen": e.amount_fen,
            "balance_fen": e.balance_fen, "required_fen": e.required_fen, "warning": e.warning,
            "recorded_at": e.recorded_at, "recorded_by": e.recorded_by, "note": e.note}


def confirmation_event(day: date, pool: str, at: datetime, who: str) -> dict[str, Any]:
    return {"event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"clearing:confirmed:{day.isoformat()}:{pool}"),
            "event_time": at, "producer": PRODUCER, "schema_version": 1, "clearing_date": day, "pool_code": pool,
            "confirmed_at": at, "confirmed_by": who}
