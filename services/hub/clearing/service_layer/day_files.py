"""A closed day's files: rendered from the day's records (byte-identical every time), written, served
one at a time, and their statement events. Rendering is pure CPU (the workbook and the signature
most of it): a big day renders in worker processes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

from hub.clearing.adapters import files
from hub.clearing.adapters.repository import ClearingRepository, Unit
from hub.clearing.domain.advance import AdvanceRule
from hub.clearing.domain.funds import INSUTYPE_CODES
from hub.clearing.domain.netting import PoolPosition, net
from hub.clearing.service_layer import advances
from hub.signing import Signer

PARALLEL_RENDER_LINES = 50_000  # from this many settlements a day, its files render in worker processes


@dataclass(frozen=True)
class Publishing:
    """Where the files go, who signs them, and the pools' names their readers see."""
    out_dir: Path
    signer: Signer
    pool_names: dict[str, str]


def claim_dict(r: dict[str, Any]) -> dict[str, Any]:
    """A manual claim (零星报销) as the files show it."""
    return {"claim_no": r["claim_no"], "insutype": INSUTYPE_CODES[r["insurance_type"]],
            "treatment_pool": r["treatment_pool"], "hospital_code": r["hospital_code"], "lodged_by": r["lodged_by"],
            "reason": r["reason"], "person_id_masked": r["person_id_masked"], "visit_type": r["visit_type"],
            "begntime": r["begntime"].isoformat(), "endtime": r["endtime"].isoformat(),
            "medfee_sumamt_fen": r["medfee_sumamt_fen"], "hifp_pay_fen": r["hifp_pay_fen"],
            "hifmi_pay_fen": r["hifmi_pay_fen"], "maf_pay_fen": r["maf_pay_fen"],
            "psn_part_amt_fen": r["psn_part_amt_fen"], "event_id": r["event_id"]}


def manual_claims_by_home(unit: Unit, day: date) -> dict[str, list[dict[str, Any]]]:
    """The day's manual claims per home bureau: paid by the home fund to the patient, netted never."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in unit.manual_claims(day, day):
        out.setdefault(r["home_pool"], []).append(claim_dict(r))
    return out


def render_pool(staging: Path, header: files.DayHeader, signer: Signer, position: PoolPosition, rows, advance,
                flags, manual) -> tuple[str, str]:
    """One pool's file set rendered and written to the staging directory: (pool, manifest digest)."""
    rendered = files.render_pool_files(header, position, rows, signer, advance, flags, manual)
    files.write_files(staging, rendered)
    return position.pool, files.manifest_sha256(rendered)


class Renderer:
    """Renders the pools' file sets of a close in order, here or (a big day) in worker processes
    started fresh (spawn: no copy of this process's database connections), at most two pools' lines
    waiting per worker, so memory stays a few pools' lines."""

    def __init__(self, staging: Path, header: files.DayHeader, signer: Signer, parallel: bool):
        self.staging, self.header, self.signer = staging, header, signer
        self.workers = max(1, min(2, os.cpu_count() or 1)) if parallel else 0
        self.pool = None

    def __enter__(self) -> "Renderer":
        if self.workers:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def all(self, work: Iterable[tuple]) -> dict[str, str]:
        """pool -> manifest digest, for every (position, lines, advance, flags, manual claims)."""
        if self.pool is None:
            return dict(render_pool(self.staging, self.header, self.signer, *item) for item in work)
        shas, pending = {}, []
        for item in work:
            pending.append(self.pool.submit(render_pool, self.staging, self.header, self.signer, *item))
            while len(pending) > 2 * self.workers:
                pool, sha = pending.pop(0).result()
                shas[pool] = sha
        for future in pending:
            pool, sha = future.result()
            shas[pool] = sha
        return shas


def render_day(repository: ClearingRepository, publishing: Publishing, rule: AdvanceRule, day: date) -> dict[str, bytes]:
    """Every file of a closed day by name; none for a day not closed."""
    with repository.unit() as unit:
        row = unit.day(day)
        if row is None or row.status != "CLOSED":
            return {}
        result = net(unit.obligations(day))
        header = files.DayHeader(day, row.cycle_id, row.closed_at, publishing.pool_names)
        manual = manual_claims_by_home(unit, day)
        out: dict[str, bytes] = {}
        for position in result.positions:
            out.update(_pool_files(unit, publishing, rule, header, position, manual.get(position.pool, [])))
        confirmed = {s.pool_code: s.confirmed_at is not None for s in unit.statements(day)}
    num, den = row.efficiency.split("/")
    out[f"summary_{day.isoformat()}.html"] = files.render_summary(
        header, result.positions, result.gross_fen, result.net_abs_fen, Fraction(int(num), int(den)), confirmed)
    return out


def _pool_files(unit: Unit, publishing: Publishing, rule: AdvanceRule, header: files.DayHeader,
                position: PoolPosition, manual: list[dict[str, Any]]) -> dict[str, bytes]:
    day, pool = header.clearing_date, position.pool
    return files.render_pool_files(header, position, unit.lines(day, pool), publishing.signer,
                                   advances.of_day(unit, rule, day, pool), unit.flags(day, pool), manual)


def write_day_files(repository: ClearingRepository, publishing: Publishing, rule: AdvanceRule, day: date) -> list[Path]:
    return files.write_files(publishing.out_dir / day.isoformat(), render_day(repository, publishing, rule, day))


def pool_file(repository: ClearingRepository, publishing: Publishing, rule: AdvanceRule, day: date, pool: str,
              suffix: str) -> bytes | None:
    """One of a pool's files of a closed day: as written at the close when this replica wrote it (no
    netting, no rendering), else rendered again from the day's records."""
    name = f"{files.file_stem(day, pool)}.{suffix}"
    with repository.unit() as unit:
        if unit.statement(day, pool) is None:  # the day is not closed, or the pool had nothing that day
            return None
        written = publishing.out_dir / day.isoformat() / name
        if written.is_file():
            return written.read_bytes()
        row = unit.day(day)
        position = net(unit.obligations(day)).by_pool[pool]
        header = files.DayHeader(day, row.cycle_id, row.closed_at, publishing.pool_names)
        rendered = _pool_files(unit, publishing, rule, header, position, manual_claims_by_home(unit, day).get(pool, []))
    return rendered.get(name)
