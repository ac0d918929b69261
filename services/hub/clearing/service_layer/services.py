"""The clearing service as its entrypoints call it: each method one use case of its own module —
applying events (applying.py), closing a day (closing.py) and its files (day_files.py), advances
(advances.py), anomaly flags (anomaly_watch.py), the fund-risk watch (fund_watch.py), quarantine
(quarantine.py), what bureaus read (queries.py) and the monthly statements (statements.py) — given
the repository and what each needs. The wire's translation into records is an adapter
(adapters/wire.py): the consumer reads through it, and re-applying a quarantined event decodes its
bytes with it again."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from hub.clearing.adapters import wire
from hub.clearing.adapters.repository import ClearingRepository, Quarantined
from hub.clearing.domain.advance import AdvanceRule
from hub.clearing.domain.anomalies import AnomalyRule
from hub.clearing.domain.fund_risk import RiskRule
from hub.clearing.service_layer import (advances, anomaly_watch, applying, closing, day_files, fund_watch, queries,
                                        quarantine, statements)
from hub.clearing.domain.events import Record
from hub.clearing.service_layer.closing import CloseResult
from hub.clearing.service_layer.day_files import Publishing
from hub.clearing.service_layer.journal import Journal
from hub.messaging import AvroCodec
from hub.messaging.topics import CLEARING_STATEMENTS
from hub.reference.budget import Budget
from hub.signing import Signer


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ClearingService:
    def __init__(self, repository: ClearingRepository, codec: AvroCodec, out_dir: Path, grace: timedelta,
                 signer: Signer, pool_names: dict[str, str] | None = None, clock: Callable[[], datetime] = _now,
                 advance_rule: AdvanceRule | None = None, budgets: list[Budget] | None = None,
                 risk_rule: RiskRule | None = None, anomaly_rule: AnomalyRule | None = None,
                 statements_topic: str = CLEARING_STATEMENTS.name):
        self.repository, self.codec, self.grace, self.clock = repository, codec, grace, clock
        self.journal = Journal(codec, statements_topic)
        self.publishing = Publishing(out_dir, signer, pool_names or {})
        # Settlement events are read without Avro logical types (the wire adapter makes the few
        # dates it needs): the consumer and re-applying a quarantined event decode with this.
        self.events = AvroCodec(codec.registry, logical_types=False)
        self.decode: Callable[[Quarantined], list[Record]] = wire.decoder(self.events)
        self.advance_rule = advance_rule or AdvanceRule()
        self.budgets = budgets or []
        self.risk_rule = risk_rule or RiskRule()
        self.anomaly_rule = anomaly_rule or AnomalyRule()
        self.months = MonthlyStatements(self)

    @property
    def signer(self) -> Signer:
        return self.publishing.signer

    @property
    def out_dir(self) -> Path:
        return self.publishing.out_dir

    # applying and closing
    def apply(self, records: Sequence[Record]) -> int:
        return applying.apply(self.repository, records)

    def due_days(self, end_offsets: dict[tuple[str, int], int],
                 committed: dict[tuple[str, int], int] | None = None) -> list[date]:
        return closing.due_days(self.repository, self.clock(), self.grace, end_offsets, committed)

    def close_day(self, day: date) -> CloseResult:
        result = closing.close_day(self.repository, self.journal, self.publishing, self.advance_rule, self.anomaly_rule,
                                   day, self.clock())
        for pool in result.advances:
            fund_watch.watch(self.repository, self.risk_rule, self.budgets, pool, day)
        return result

    # a day's files
    def render_day(self, day: date) -> dict[str, bytes]:
        return day_files.render_day(self.repository, self.publishing, self.advance_rule, day)

    def write_day_files(self, day: date) -> list[Path]:
        return day_files.write_day_files(self.repository, self.publishing, self.advance_rule, day)

    def pool_file(self, day: date, pool: str, suffix: str) -> bytes | None:
        return day_files.pool_file(self.repository, self.publishing, self.advance_rule, day, pool, suffix)

    # what bureaus and operators read
    def confirm(self, day: date, pool: str, who: str) -> bool:
        return queries.confirm(self.repository, self.journal, self.clock(), day, pool, who)

    def day_summary(self, day: date, pool: str) -> dict[str, Any] | None:
        return queries.day_summary(self.repository, self.publishing.pool_names, day, pool)

    def days_of(self, pool: str, limit: int = 62) -> list[dict[str, Any]]:
        return queries.days_of(self.repository, pool, limit)

    def unconfirmed(self) -> list[dict[str, Any]]:
        return queries.unconfirmed(self.repository)

    def hospital_month(self, month: str, treatment_pool: str) -> dict[str, Any]:
        return queries.hospital_month(self.repository, month, treatment_pool)

    def anomalies(self, pool: str, day: date | None = None) -> dict[str, Any] | None:
        return anomaly_watch.anomalies(self.repository, pool, day)

    def fund_risk(self, pool: str, day: date | None = None) -> dict[str, Any] | None:
        return fund_watch.fund_risk(self.repository, self.risk_rule, self.budgets, pool, day)

    def fund_risk_overview(self) -> list[dict[str, Any]]:
        return fund_watch.overview(self.repository, self.risk_rule, self.budgets)

    # advances
    def deposit(self, pool: str, reference: str, amount_fen: int, who: str, note: str = "") -> dict[str, Any]:
        return advances.deposit(self.repository, self.journal, self.advance_rule, self.clock(), pool, reference,
                                amount_fen, who, note)

    def advance(self, pool: str, limit: int = 120) -> dict[str, Any] | None:
        return advances.advance(self.repository, pool, limit)

    def advances_overview(self, per_pool: int = 60) -> list[dict[str, Any]]:
        return advances.overview(self.repository, per_pool)

    # quarantine
    def quarantine(self, row: Quarantined) -> None:
        quarantine.keep(self.repository, row)

    def quarantined(self, include_resolved: bool = False) -> list[dict[str, Any]]:
        return quarantine.listed(self.repository, include_resolved)

    def resolve(self, source: str, action: str, who: str, note: str = "") -> dict[str, Any]:
        return quarantine.resolve(self.repository, lambda row: self.apply(self.decode(row)), self.clock(), source,
                                  action, who, note)


class MonthlyStatements:
    """The monthly statements' use cases (statements.py) as `ClearingService.months`. Their changes
    happen at whole milliseconds: the time a MonthlyStatementChanged carries (timestamp-millis) is
    then the change's own, and a rebuild makes it again at exactly that time."""

    def __init__(self, clearing: ClearingService):
        self.c = clearing

    def _now(self) -> datetime:
        now = self.c.clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def issue(self, month: str, who: str) -> list[dict[str, Any]]:
        return statements.issue(self.c.repository, self.c.journal, self.c.advance_rule, self._now(), month, who)

    def act(self, month: str, pool: str, action: str, event_ids: list[str] | None, reason: str, who: str,
            all_pending: bool = False) -> dict[str, Any]:
        return statements.act(self.c.repository, self.c.journal, self._now(), month, pool, action, event_ids, reason,
                              who, all_pending)

    def resolve(self, month: str, pool: str, event_id: str, note: str, who: str) -> dict[str, Any]:
        return statements.resolve(self.c.repository, self.c.journal, self._now(), month, pool, event_id, note, who)

    def close(self, month: str, pool: str, who: str) -> dict[str, Any]:
        return statements.close(self.c.repository, self.c.journal, self.c.publishing, self._now(), month, pool, who)

    def still_open(self) -> list[dict[str, Any]]:
        return statements.still_open(self.c.repository)

    def show(self, month: str, pool: str, filters: dict[str, str] | None = None, limit: int | None = None,
             offset: int = 0) -> dict[str, Any] | None:
        return statements.show(self.c.repository, month, pool, filters, limit, offset)

    def statement_file(self, month: str, pool: str, suffix: str) -> bytes | None:
        return statements.statement_file(self.c.repository, self.c.publishing, month, pool, suffix)
