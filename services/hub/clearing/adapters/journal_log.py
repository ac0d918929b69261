"""What clearing published on its statements topic, read back for `hub clearing rebuild`: each
message as the typed entry the rebuild carries out again — a day's close (from its pools'
ClearingStatement v4: the close's time, the settlement offsets it had read, each pool's advance
entry and file digest), an advance deposit, a bureau's confirmation, a monthly statement's change.
The entries come in the order they happened: by time, then as the log holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterable, Union

from hub.clearing.adapters.repository import LedgerRow
from hub.clearing.domain.advance import close_reference
from hub.messaging import Message


class JournalRefused(Exception):
    """The statements topic holds something a rebuild cannot carry out as it happened."""


@dataclass
class Close:
    day: date
    cycle_id: str
    closed_at: datetime
    inputs: dict[tuple[str, int], int]  # (topic, partition) -> the next offset the close had not read
    recorded: dict[str, LedgerRow] = field(default_factory=dict)  # pool -> the advance entry it booked
    digests: dict[str, str] = field(default_factory=dict)  # pool -> its files' manifest SHA-256

    @property
    def at(self) -> datetime:
        return self.closed_at


@dataclass(frozen=True)
class Deposit:
    row: LedgerRow

    @property
    def at(self) -> datetime:
        return self.row.recorded_at


@dataclass(frozen=True)
class Confirmation:
    day: date
    pool: str
    at: datetime
    who: str


@dataclass(frozen=True)
class MonthChange:
    month: str
    pool: str
    action: str  # ISSUED, CONFIRMED, UNCONFIRMED, DISPUTED, WITHDRAWN, RESOLVED, CLOSED
    line_event_ids: tuple[str, ...]
    reason: str
    actor: str
    at: datetime


Entry = Union[Close, Deposit, Confirmation, MonthChange]
_ORDER = {Deposit: 0, Close: 1, Confirmation: 2, MonthChange: 3}  # at one instant (never seen): a stable order


def entries(messages: Iterable[Message]) -> list[Entry]:
    """The topic's messages (in the order read) as entries in the order they happened."""
    closes: dict[tuple[date, str], Close] = {}
    out: list[tuple[int, Entry]] = []
    seen: set[str] = set()
    for n, m in enumerate(messages):
        v, name = m.value, m.record_name.rsplit(".", 1)[-1]
        if str(v["event_id"]) in seen:  # published again by the outbox's relay (at least once)
            continue
        seen.add(str(v["event_id"]))
        if name == "ClearingStatement":
            close = _close_part(closes, m, v)
            if close is not None:
                out.append((n, close))
        elif name == "AdvanceDeposited":
            out.append((n, Deposit(LedgerRow(
                v["pool_code"], v["reference"], v["clearing_date"], "DEPOSIT", v["amount_fen"], v["balance_fen"],
                v["required_fen"], v["warning"], v["recorded_at"], v["recorded_by"], v["note"]))))
        elif name == "ClearingStatementConfirmed":
            out.append((n, Confirmation(v["clearing_date"], v["pool_code"], v["confirmed_at"], v["confirmed_by"])))
        elif name == "MonthlyStatementChanged":
            out.append((n, MonthChange(v["month"], v["bureau_pool"], v["action"], tuple(v["line_event_ids"]),
                                       v["reason"], v["actor"], v["event_time"])))
    return [e for _, e in sorted(out, key=lambda ne: (ne[1].at, _ORDER[type(ne[1])], ne[0]))]


def _close_part(closes: dict[tuple[date, str], Close], m: Message, v: dict) -> Close | None:
    """Adds a pool's statement to its close; the close itself the first time it is met."""
    if v.get("closed_at") is None:
        raise JournalRefused(
            f"{m.topic}:{m.partition}:{m.offset}: the statement of {v['pool_code']} for {v['clearing_date']} was "
            f"written before ClearingStatement v4 (it does not say which settlement events its close had read): "
            "restore clearing's database from its backup instead")
    key = (v["clearing_date"], v["cycle_id"])
    close = closes.get(key)
    new = close is None
    if new:
        close = closes[key] = Close(v["clearing_date"], v["cycle_id"], v["closed_at"],
                                    {(i["topic"], i["partition"]): i["next_offset"] for i in v["inputs"]})
    a = v.get("advance")
    if a is not None:
        day = v["clearing_date"]
        close.recorded[v["pool_code"]] = LedgerRow(
            v["pool_code"], close_reference(day), day, a["kind"], a["amount_fen"], a["balance_fen"],
            a["required_fen"], a["warning"], a["recorded_at"], "clearing", "")
    close.digests[v["pool_code"]] = v["file_sha256"]
    return close if new else None
