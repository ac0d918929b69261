"""The what-if replays a bureau asked for over the API: their progress and reports, in the
settlement database (any HTTP worker answers for a run another started)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from hub.settlement.adapters import database as db

r = db.what_if_runs.c


class WhatIfRuns:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def create(self, run_id: str, pool: str, version: str, first: date, last: date, who: str, total: int,
               now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(db.what_if_runs.insert().values(
                run_id=run_id, pool=pool, policy_version=version, first_day=first, last_day=last, requested_by=who,
                status="RUNNING", done=0, total=total, started_at=now, updated_at=now))

    def counted(self, run_id: str, total: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(db.what_if_runs.update().where(r.run_id == run_id).values(total=total))

    def progress(self, run_id: str, done: int, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(db.what_if_runs.update().where(r.run_id == run_id).values(done=done, updated_at=now))

    def finish(self, run_id: str, document: bytes, html: str, done: int, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(db.what_if_runs.update().where(r.run_id == run_id).values(
                status="DONE", document=document, html=html, done=done, updated_at=now))

    def fail(self, run_id: str, error: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(db.what_if_runs.update().where(r.run_id == run_id).values(
                status="FAILED", error=error[:500], updated_at=now))

    def get(self, run_id: str, pool: str) -> Any | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(db.what_if_runs).where(r.run_id == run_id, r.pool == pool)).first()

    def of(self, pool: str, limit: int = 20) -> list[Any]:
        columns = [c for c in db.what_if_runs.c if c.name not in ("document", "html")]
        with self.engine.connect() as conn:
            return conn.execute(sa.select(*columns).where(r.pool == pool).order_by(r.started_at.desc())
                                .limit(limit)).all()
