"""What the portal's use cases need from the outside, as abstract classes: its own store (people,
sessions, recommendations, the audit trail), a password hasher, and the hub's services."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from hub.portal.domain.people import Recommendation, Refused, User


class PortalRepository(ABC):
    """The portal's own tables. Each method is one short transaction."""

    @abstractmethod
    def user(self, username: str) -> User | None: ...

    @abstractmethod
    def save_user(self, user: User) -> None: ...

    @abstractmethod
    def users(self) -> list[User]: ...

    @abstractmethod
    def open_session(self, token_sha256: str, username: str, csrf: str, expires_at: datetime) -> None: ...

    @abstractmethod
    def session(self, token_sha256: str, now: datetime) -> tuple[str, str] | None:
        """(username, csrf token) of a session not expired."""

    @abstractmethod
    def close_session(self, token_sha256: str) -> None: ...

    @abstractmethod
    def recommendation(self, kind: str, pool: str, subject: str) -> Recommendation | None: ...

    @abstractmethod
    def save_recommendation(self, recommendation: Recommendation) -> None: ...

    @abstractmethod
    def pending(self, pool: str | None) -> list[Recommendation]:
        """Recommendations waiting for a supervisor (every pool's for None)."""

    @abstractmethod
    def record(self, at: datetime, username: str, pool: str, action: str, subject: str, detail: str) -> None:
        """One line of the audit trail."""

    @abstractmethod
    def trail(self, pool: str | None, limit: int = 200) -> list[dict[str, Any]]: ...


class PasswordHasher(ABC):
    @abstractmethod
    def hash(self, password: str) -> str: ...

    @abstractmethod
    def verify(self, password_hash: str, password: str) -> bool: ...


class ServiceRefused(Exception):
    """A service answered 4xx: its own code and message, shown as they are."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message

    def refused(self) -> Refused:
        from hub.portal.domain.people import Refusal

        return Refused(Refusal.SERVICE_REFUSED, f"{self.code} — {self.message}")
