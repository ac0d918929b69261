"""Closing a clearing day: which open days are due (their cut-off passed on every partition), and
the close itself — net the day, check the zero sum, draw the advances, flag anomalies, render and
sign every pool's files, record the statements and their events, all in one transaction; the files
move into place after it commits. Closing a closed day answers what the first close produced."""

from __future__ import annotations

import logging
import shutil
import time as _time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Mapping

from hub.clearing.adapters import files
from hub.clearing.adapters.repository import ClearingRepository, FundStatement, LedgerRow, Mark, Statement, Unit
from hub.clearing.domain.advance import AdvanceRule
from hub.clearing.domain.anomalies import AnomalyRule
from hub.clearing.domain.netting import NettingResult, net
from hub.clearing.service_layer import advances, anomaly_watch
from hub.clearing.service_layer.day_files import (PARALLEL_RENDER_LINES, Publishing, Renderer, manual_claims_by_home,
                                                  write_day_files)
from hub.clearing.service_layer.journal import Journal, statement_event
from hub.operations.metrics import ADVANCE_BALANCE, ADVANCE_REQUIRED, ADVANCE_WARNING, CLEARING_DAYS_CLOSED

log = logging.getLogger(__name__)


class DayBlocked(Exception):
    """A day cannot close while an event that may belong to it is quarantined."""

    def __init__(self, day: date, sources: list[str]):
        super().__init__(f"clearing day {day} cannot close: {len(sources)} quarantined event(s) may belong to it "
                         f"({', '.join(sources[:5])}{' ...' if len(sources) > 5 else ''}); resolve them with "
                         "'hub clearing quarantine resolve SOURCE --apply|--discard'")
        self.day = day
        self.sources = sources


@dataclass(frozen=True)
class CloseResult:
    clearing_date: date
    cycle_id: str
    already_closed: bool
    netting: NettingResult | None
    files: list[Path]
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the close
    advances: dict[str, dict] = field(default_factory=dict)  # pool -> its advance section


def day_end(day: date) -> datetime:
    """The first instant after `day` in Asia/Shanghai."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=files.SHANGHAI)


def due_days(repository: ClearingRepository, now: datetime, grace: timedelta,
             end_offsets: dict[tuple[str, int], int], committed: dict[tuple[str, int], int] | None = None) -> list[date]:
    """Open days whose cut-off has passed on every partition: the partition's newest consumed event
    is past the day's end plus grace, or the partition is fully consumed (by this service's marks, or
    by the group's `committed` offsets: a partition none of whose events was for this hub's group)
    and the clock is past it. A day a quarantined event may belong to is not due (the status page
    shows it; it closes once an operator resolves the quarantine)."""
    committed = committed or {}
    with repository.unit() as unit:
        open_days = unit.open_day_list()
        marks = unit.marks()
        blocked = {day for day in open_days if unit.blocking(day)}
    return [day for day in open_days if day not in blocked and now >= day_end(day) + grace
            and all(_past(marks.get(tp), end, committed.get(tp, -1), day_end(day) + grace)
                    for tp, end in end_offsets.items())]


def _past(mark: Mark | None, end: int, committed: int, cutoff: datetime) -> bool:
    if committed >= end:
        return True
    if mark is None:
        return end == 0
    return mark.max_event_time >= cutoff or mark.next_offset >= end


def close_day(repository: ClearingRepository, journal: Journal, publishing: Publishing, advance_rule: AdvanceRule,
              anomaly_rule: AnomalyRule, day: date, now: datetime,
              recorded: Mapping[str, LedgerRow] | None = None) -> CloseResult:
    """Raises DayBlocked while a quarantined event may belong to the day, ZeroSumViolated (nothing
    written) if the day's positions do not sum to zero. A rebuild passes the advance entries the
    close recorded (`recorded`, by pool) and the close's own time as `now`."""
    staging = publishing.out_dir / f".{day.isoformat()}.closing-{uuid.uuid4().hex[:8]}"
    try:
        with repository.unit() as unit:
            row = unit.day(day, lock=True)
            if row.status == "CLOSED":
                return CloseResult(day, row.cycle_id, True, None,
                                   write_day_files(repository, publishing, advance_rule, day))
            blocking = unit.blocking(day)
            if blocking:
                raise DayBlocked(day, blocking)
            result = _close(unit, journal, publishing, (advance_rule, anomaly_rule), day, now, staging, recorded)
    except BaseException:  # nothing of a close that did not commit
        shutil.rmtree(staging, ignore_errors=True)
        raise
    CLEARING_DAYS_CLOSED.inc()
    for pool, a in result.advances.items():
        ADVANCE_BALANCE.labels(pool).set(a["balance_fen"] / 100)
        ADVANCE_REQUIRED.labels(pool).set(a["required_fen"] / 100)
        ADVANCE_WARNING.labels(pool).set(1 if a["warning"] else 0)
    warned = sorted(pool for pool, a in result.advances.items() if a["warning"])
    if warned:
        log.warning("clearing day %s: the advance of %s is under %d%% of what it should hold", day,
                    ", ".join(warned), advance_rule.warn_pct)
    # The bytes rendered (and digested) inside the transaction are the ones written: no second netting.
    return CloseResult(day, result.cycle_id, False, result.netting,
                       files.move_files(staging, publishing.out_dir / day.isoformat()), result.phases, result.advances)


def _close(unit: Unit, journal: Journal, publishing: Publishing, rules: tuple[AdvanceRule, AnomalyRule], day: date,
           now: datetime, staging: Path, recorded: Mapping[str, LedgerRow] | None) -> CloseResult:
    advance_rule, anomaly_rule = rules
    phases, t0 = {}, _time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        phases[name], t0 = _time.perf_counter() - t0, _time.perf_counter()

    result = net(unit.obligations(day))  # raises ZeroSumViolated: nothing is written
    lap("netting")
    cycle_id = f"{day.isoformat()}.1"
    header = files.DayHeader(day, cycle_id, now, publishing.pool_names)
    unnamed = sorted(p.pool for p in result.positions if not publishing.pool_names.get(p.pool))
    if unnamed:  # the files still say the code; a reader should not meet a blank name unwarned
        log.warning("clearing day %s: no reference name for pools %s (add their policy files to the reference "
                    "directory)", day, ", ".join(unnamed))
    inputs = unit.marks()  # every event below these offsets is in, every one at or above is not
    entries = advances.draw(unit, advance_rule, day, result.positions, now, recorded)
    drawn = {pool: advances.view(advance_rule, e) for pool, e in entries.items()}
    lap("advances")
    flags = anomaly_watch.flag_day(unit, anomaly_rule, day)
    lap("anomaly flags")
    manual = manual_claims_by_home(unit, day)
    # Each pool's files are rendered once, digested and written to a staging directory at once
    # (memory: one pool's lines at a time), while this process reads the next pools' lines.
    parallel = sum(p.settlement_count for p in result.positions) >= PARALLEL_RENDER_LINES
    with Renderer(staging, header, publishing.signer, parallel) as render:
        shas = render.all((position, unit.lines(day, position.pool), drawn[position.pool],
                           flags.get(position.pool, []), manual.get(position.pool, []))
                          for position in result.positions)
    for p in result.positions:
        unit.record_day_statement(
            Statement(day, p.pool, cycle_id, p.receivable_fen, p.payable_fen, p.net_fen, p.settlement_count,
                      shas[p.pool]),
            [FundStatement(day, p.pool, f.fund.insutype, f.fund.fund_pay_type, f.receivable_fen, f.payable_fen,
                           f.net_fen) for f in p.funds])
        journal.record(unit, "ClearingStatement", p.pool,
                       statement_event(day, cycle_id, now, p, shas[p.pool], inputs, entries.get(p.pool)))
    lap("files")
    unit.mark_closed(day, cycle_id, now, result.gross_fen, result.net_abs_fen,
                     f"{result.efficiency.numerator}/{result.efficiency.denominator}")
    files.write_files(staging, {f"summary_{day.isoformat()}.html": files.render_summary(
        header, result.positions, result.gross_fen, result.net_abs_fen, result.efficiency,
        {p.pool: False for p in result.positions})})  # no statement is confirmed yet
    return CloseResult(day, cycle_id, False, result, [], phases, drawn)
