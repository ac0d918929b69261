"""The portal's repository on PostgreSQL (tests/unit/portal/fakes.py keeps the same in memory)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from hub.messaging import AvroCodec
from hub.messaging.topics import PORTAL_AUDIT
from hub.portal.adapters import database as db
from hub.portal.domain.people import Recommendation, Role, User
from hub.portal.service_layer.ports import PortalRepository


def _user(r) -> User:
    return User(r.username, r.display_name, Role(r.role), r.bureau_code, r.pool, r.password_hash, r.failures,
                r.locked_until)


def _recommendation(r) -> Recommendation:
    return Recommendation(r.kind, r.pool, r.subject, r.decision, r.note, r.made_by, r.made_at, r.status,
                          r.checked_by, r.checked_at, r.amount_fen)


class PostgresPortalRepository(PortalRepository):
    def __init__(self, engine: sa.Engine, codec: AvroCodec):
        self.engine, self.codec = engine, codec

    def user(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.users).where(db.users.c.username == username)).first()
        return _user(row) if row else None

    def save_user(self, user: User) -> None:
        values = {"username": user.username, "display_name": user.display_name, "role": user.role.value,
                  "bureau_code": user.bureau_code, "pool": user.pool, "password_hash": user.password_hash,
                  "failures": user.failures, "locked_until": user.locked_until}
        with self.engine.begin() as conn:
            conn.execute(insert(db.users).values(values).on_conflict_do_update(
                index_elements=[db.users.c.username], set_={k: v for k, v in values.items() if k != "username"}))

    def users(self) -> list[User]:
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(sa.select(db.users).order_by(db.users.c.pool, db.users.c.username))]

    def open_session(self, token_sha256: str, username: str, csrf: str, expires_at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(db.sessions).where(db.sessions.c.expires_at < sa.func.now()))
            conn.execute(sa.insert(db.sessions).values(token_sha256=token_sha256, username=username, csrf=csrf,
                                                       expires_at=expires_at))

    def session(self, token_sha256: str, now: datetime) -> tuple[str, str] | None:
        s = db.sessions.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s.username, s.csrf).where(s.token_sha256 == token_sha256,
                                                                   s.expires_at > now)).first()
        return (row.username, row.csrf) if row else None

    def close_session(self, token_sha256: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(db.sessions).where(db.sessions.c.token_sha256 == token_sha256))

    def recommendation(self, kind: str, pool: str, subject: str) -> Recommendation | None:
        r = db.recommendations.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.recommendations).where(r.kind == kind, r.pool == pool,
                                                                   r.subject == subject)).first()
        return _recommendation(row) if row else None

    def save_recommendation(self, recommendation: Recommendation) -> None:
        values = {"kind": recommendation.kind, "pool": recommendation.pool, "subject": recommendation.subject,
                  "decision": recommendation.decision, "note": recommendation.note,
                  "made_by": recommendation.made_by, "made_at": recommendation.made_at,
                  "status": recommendation.status, "checked_by": recommendation.checked_by,
                  "checked_at": recommendation.checked_at, "amount_fen": recommendation.amount_fen}
        keys = ("kind", "pool", "subject")
        with self.engine.begin() as conn:
            conn.execute(insert(db.recommendations).values(values).on_conflict_do_update(
                index_elements=list(keys), set_={k: v for k, v in values.items() if k not in keys}))

    def pending(self, pool: str | None) -> list[Recommendation]:
        r = db.recommendations.c
        query = sa.select(db.recommendations).where(r.status == "PENDING").order_by(r.made_at)
        if pool is not None:
            query = query.where(r.pool == pool)
        with self.engine.connect() as conn:
            return [_recommendation(row) for row in conn.execute(query)]

    def record(self, at: datetime, username: str, pool: str, action: str, subject: str, detail: str) -> None:
        """The audit line and its event, in one transaction (the relay publishes the event)."""
        event = {"event_id": uuid.uuid4(), "event_time": at, "producer": "bureau-portal", "schema_version": 1,
                 "username": username, "pool": pool, "action": action, "subject": subject, "detail": detail}
        with self.engine.begin() as conn:
            conn.execute(sa.insert(db.audit).values(at=at, username=username, pool=pool, action=action,
                                                    subject=subject, detail=detail))
            conn.execute(db.outbox.insert(), [{"topic": PORTAL_AUDIT.name, "message_key": pool or "*",
                                               "payload": self.codec.encode("PortalActionRecorded", event)}])

    def trail(self, pool: str | None, limit: int = 200) -> list[dict[str, Any]]:
        a = db.audit.c
        query = sa.select(db.audit).order_by(a.id.desc()).limit(limit)
        if pool is not None:
            query = query.where(a.pool == pool)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
