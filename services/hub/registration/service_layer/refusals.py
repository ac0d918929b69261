"""How registration refuses: a Refused (a Rejection, ordered in the domain, with its stable code
and message, and what exactly was wrong), raised out of a use case as RegistrationRefused. The
edges choose how to answer it (entrypoints/http.py: one table of HTTP statuses)."""

from __future__ import annotations

from hub.registration.domain.model import Refused, Rejection


class RegistrationRefused(Exception):
    """A request refused; nothing was changed."""

    def __init__(self, refused: Refused):
        super().__init__(refused.message)
        self.refused = refused
        self.reason: Rejection = refused.reason
        self.code, self.message = refused.code, refused.message


def refuse(reason: Rejection, detail: str = "") -> RegistrationRefused:
    return RegistrationRefused(Refused(reason, detail))
