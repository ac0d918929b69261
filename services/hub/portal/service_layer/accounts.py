"""Signing in and out, and the people an operator manages (`hub portal user add`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.portal.domain.people import ALL_POOLS, LockoutRule, Refusal, Refused, Role, User
from hub.portal.service_layer.ports import PasswordHasher, PortalRepository

SESSION_HOURS = 8
MIN_PASSWORD = 12


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    token: str = ""  # only when just opened: the cookie's value

    def csrf_matches(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf, sent)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(repository: PortalRepository, hasher: PasswordHasher, rule: LockoutRule, username: str, password: str,
            now: datetime) -> Session | Refused:
    user = repository.user(username.strip())
    if user is None:
        hasher.verify(_DUMMY_HASH.get(hasher), password)  # the same work as for a person who exists
        return Refused(Refusal.BAD_CREDENTIALS)
    if rule.locked(user, now):
        repository.record(now, user.username, user.pool, "sign_in_refused", user.username, "locked")
        return Refused(Refusal.LOCKED)
    if not hasher.verify(user.password_hash, password):
        failed = rule.after_failure(user, now)
        repository.save_user(failed)
        repository.record(now, user.username, user.pool, "sign_in_failed", user.username,
                          "locked" if failed.locked_until else f"failure {failed.failures}")
        return Refused(Refusal.LOCKED if failed.locked_until else Refusal.BAD_CREDENTIALS)
    if user.failures or user.locked_until:
        repository.save_user(rule.after_success(user))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    repository.open_session(_digest(token), user.username, csrf, now + timedelta(hours=SESSION_HOURS))
    repository.record(now, user.username, user.pool, "sign_in", user.username, "")
    return Session(user, csrf, token)


def session_of(repository: PortalRepository, token: str | None, now: datetime) -> Session | None:
    if not token:
        return None
    found = repository.session(_digest(token), now)
    if found is None:
        return None
    user = repository.user(found[0])
    return Session(user, found[1]) if user is not None else None


def sign_out(repository: PortalRepository, session: Session, token: str, now: datetime) -> None:
    repository.close_session(_digest(token))
    repository.record(now, session.user.username, session.user.pool, "sign_out", session.user.username, "")


def add_user(repository: PortalRepository, hasher: PasswordHasher, username: str, display_name: str, role: Role,
             bureau: tuple[str, str] | None, password: str) -> User | Refused:
    """A person of a bureau (code, pool), or an operator (no bureau). Replaces one of that name."""
    username = username.strip()
    if not username or len(username) > 64 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        return Refused(Refusal.INVALID_INPUT, "user name: letters, digits, - _ . (at most 64)")
    if len(password) < MIN_PASSWORD:
        return Refused(Refusal.INVALID_INPUT, f"password: at least {MIN_PASSWORD} characters")
    if (role is Role.OPERATOR) != (bureau is None):
        return Refused(Refusal.INVALID_INPUT, "an operator belongs to no bureau; a clerk or supervisor to one")
    code, pool = bureau or ("", ALL_POOLS)
    user = User(username, display_name.strip() or username, role, code, pool, hasher.hash(password))
    repository.save_user(user)
    return user


def unlock(repository: PortalRepository, username: str) -> User | None:
    user = repository.user(username)
    if user is None:
        return None
    user = LockoutRule.after_success(user)
    repository.save_user(user)
    return user


class _DummyHashes:
    """One hash per hasher of a password no one has, so an unknown name costs a verification too."""

    def __init__(self):
        self._by = {}

    def get(self, hasher: PasswordHasher) -> str:
        if id(hasher) not in self._by:
            self._by[id(hasher)] = hasher.hash(secrets.token_urlsafe(16))
        return self._by[id(hasher)]


_DUMMY_HASH = _DummyHashes()
