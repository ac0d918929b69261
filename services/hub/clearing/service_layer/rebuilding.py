"""Clearing rebuilt from the log (`hub clearing rebuild`), into an empty database: what clearing
published on its statements topic is carried out again in the order it happened, and between
those steps the settlement events are applied exactly as far as each close had read them.

- a **close** applies every settlement event below the offsets its statements name (the events
  the original close had applied; any later one of that day was late, and is again), then closes
  the day at its own time, booking the advance entries it recorded (not working them out again):
  its files come back byte for byte, and each pool's manifest digest is checked against the one
  its statement published;
- a **deposit** is booked as the ledger recorded it; a **confirmation** confirmed again, at its time;
- a **monthly statement's change** is made again by its actor at its time (issue, confirm,
  unconfirm, dispute, withdraw, resolve, close);
- last, the rest of the settlement events (the days still open).

Nothing is published: the log already holds every event the rebuild derives again (a Silent
journal). What a rebuild cannot know — how an operator resolved a quarantined event — stops it
with the event named."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from hub.clearing.adapters import wire
from hub.clearing.adapters.journal_log import Close, Confirmation, Deposit, Entry, MonthChange
from hub.clearing.adapters.repository import ClearingRepository
from hub.clearing.domain.events import EventRefused
from hub.clearing.domain.refusals import ClearingRefused
from hub.clearing.domain.statements import EVENT_ACTION
from hub.clearing.service_layer import applying, closing, quarantine, queries, statements
from hub.clearing.service_layer.day_files import Publishing
from hub.clearing.service_layer.journal import Silent
from hub.clearing.domain.advance import AdvanceRule
from hub.clearing.domain.anomalies import AnomalyRule
from hub.messaging import AvroCodec, Message

BUREAU_ACTION = {event: action for action, event in EVENT_ACTION.items()}


class RebuildRefused(Exception):
    """The rebuild cannot go on (the message says why and what to do)."""


class SettlementLog(Protocol):
    def until(self, targets: Mapping[tuple[str, int], int]) -> Iterator[list[Message]]:
        """Batches of the messages not yet read that lie below each partition's target."""

    def rest(self) -> Iterator[list[Message]]:
        """Batches of the messages not yet read, up to the ends the log had when the rebuild began."""


@dataclass
class Rebuilt:
    days_closed: int = 0
    events: int = 0  # settlement events read (applied, or counted again by id: none twice)
    deposits: int = 0
    confirmations: int = 0
    month_changes: int = 0
    quarantined: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # "<day> <pool>": files whose digest differs
    refused: list[str] = field(default_factory=list)  # monthly changes refused when made again


@dataclass(frozen=True)
class Rebuilder:
    repository: ClearingRepository
    codec: AvroCodec
    publishing: Publishing
    advance_rule: AdvanceRule
    anomaly_rule: AnomalyRule

    def run(self, entries: Sequence[Entry], log: SettlementLog,
            progress: Callable[[str, int], None] = lambda _what, _n: None) -> Rebuilt:
        self._check_empty()
        done = Rebuilt()
        journal = Silent(self.codec)
        for entry in entries:
            if isinstance(entry, Close):
                self._apply(log.until(entry.inputs), done, entry.at, progress)
                self._close(entry, journal, done)
                progress("days", 1)
            elif isinstance(entry, Deposit):
                self._deposit(entry, done)
            elif isinstance(entry, Confirmation):
                done.confirmations += queries.confirm(self.repository, journal, entry.at, entry.day, entry.pool,
                                                      entry.who)
            elif isinstance(entry, MonthChange):
                self._month_change(entry, journal, done)
        self._apply(log.rest(), done, None, progress)
        return done

    def _check_empty(self) -> None:
        with self.repository.unit() as unit:
            if unit.marks() or unit.all_advances() or unit.open_day_list():
                raise RebuildRefused("clearing's database is not empty: a rebuild fills an empty one (drop the "
                                     "clearing database and let the service's schema be made again, then rebuild)")

    def _apply(self, batches: Iterable[list[Message]], done: Rebuilt, at: datetime | None,
               progress: Callable[[str, int], None]) -> None:
        for batch in batches:
            records, failed = [], []
            for m in batch:
                try:
                    records.append((m, wire.record(m)))
                except EventRefused as exc:
                    failed.append((m, exc))
            try:
                applying.apply(self.repository, [r for _, r in records])
            except EventRefused:  # as the consumer does: one at a time, and the one that fails is kept aside
                for m, r in records:
                    try:
                        applying.apply(self.repository, [r])
                    except EventRefused as exc:
                        failed.append((m, exc))
            for m, exc in failed:
                quarantine.keep(self.repository, wire.quarantined(m, exc, at or datetime.now().astimezone()))
                done.quarantined.append(f"{m.topic}:{m.partition}:{m.offset}")
            done.events += len(batch)
            progress("events", len(batch))

    def _close(self, close: Close, journal: Silent, done: Rebuilt) -> None:
        try:
            closing.close_day(self.repository, journal, self.publishing, self.advance_rule, self.anomaly_rule,
                              close.day, close.closed_at, close.recorded)
        except closing.DayBlocked as exc:
            raise RebuildRefused(
                f"{exc}. The original close had them resolved by an operator, which only the database kept: "
                "resolve them again (hub clearing quarantine resolve), then run the rebuild again on an empty "
                "database") from None
        done.days_closed += 1
        with self.repository.unit() as unit:
            for pool, digest in sorted(close.digests.items()):
                st = unit.statement(close.day, pool)
                if st is None or st.manifest_sha256 != digest:
                    done.mismatched.append(f"{close.day.isoformat()} {pool}")

    def _deposit(self, deposit: Deposit, done: Rebuilt) -> None:
        row = deposit.row
        with self.repository.unit() as unit:
            unit.lock_advances([row.pool_code], row.recorded_at)
            if unit.ledger_entry(row.pool_code, row.reference) is None:
                unit.record_ledger([row], row.recorded_at)
                done.deposits += 1

    def _month_change(self, change: MonthChange, journal: Silent, done: Rebuilt) -> None:
        r, month, pool, who, at = self.repository, change.month, change.pool, change.actor, change.at
        try:
            if change.action == "ISSUED":
                statements.issue(r, journal, self.advance_rule, at, month, who)
            elif change.action in BUREAU_ACTION:
                statements.act(r, journal, at, month, pool, BUREAU_ACTION[change.action],
                               list(change.line_event_ids), change.reason, who)
            elif change.action == "RESOLVED":
                statements.resolve(r, journal, at, month, pool, change.line_event_ids[0], change.reason, who)
            elif change.action == "CLOSED":
                statements.close(r, journal, self.publishing, at, month, pool, who)
            else:
                done.refused.append(f"{month} {pool} {change.action}: an action this version does not know")
                return
        except ClearingRefused as exc:
            done.refused.append(f"{month} {pool} {change.action}: {exc}")
            return
        done.month_changes += 1
