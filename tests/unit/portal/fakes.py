"""The portal's repository and hasher in memory: its use cases tested with no server."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.portal.domain.people import Recommendation, User
from hub.portal.service_layer.ports import PasswordHasher, PortalRepository


class FakePortalRepository(PortalRepository):
    def __init__(self):
        self._users: dict[str, User] = {}
        self._sessions: dict[str, tuple[str, str, datetime]] = {}
        self._recommendations: dict[tuple[str, str, str], Recommendation] = {}
        self.audit: list[dict[str, Any]] = []

    def user(self, username):
        return self._users.get(username)

    def save_user(self, user):
        self._users[user.username] = user

    def users(self):
        return sorted(self._users.values(), key=lambda u: (u.pool, u.username))

    def open_session(self, token_sha256, username, csrf, expires_at):
        self._sessions[token_sha256] = (username, csrf, expires_at)

    def session(self, token_sha256, now):
        found = self._sessions.get(token_sha256)
        return (found[0], found[1]) if found and found[2] > now else None

    def close_session(self, token_sha256):
        self._sessions.pop(token_sha256, None)

    def recommendation(self, kind, pool, subject):
        return self._recommendations.get((kind, pool, subject))

    def save_recommendation(self, recommendation):
        self._recommendations[(recommendation.kind, recommendation.pool, recommendation.subject)] = recommendation

    def pending(self, pool):
        return [r for r in self._recommendations.values() if r.status == "PENDING" and pool in (None, r.pool)]

    def record(self, at, username, pool, action, subject, detail):
        self.audit.append({"at": at, "username": username, "pool": pool, "action": action, "subject": subject,
                           "detail": detail})

    def trail(self, pool, limit=200):
        return [a for a in reversed(self.audit) if pool in (None, a["pool"])][:limit]


class PlainHasher(PasswordHasher):
    """Not a password hash: a marker, so the tests run in microseconds (argon2 is the adapter's)."""

    def hash(self, password):
        return "plain:" + password

    def verify(self, password_hash, password):
        return password_hash == "plain:" + password
