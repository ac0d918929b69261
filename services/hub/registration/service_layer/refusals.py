"""How registration refuses: a Refused (a Rejection, ordered in the domain, with its stable code
and message, and what exactly was wrong), raised out of a use case as RegistrationRefused. The
edges choose how to answer it (entrypoints/http.py: one table of HTTP statuses)."""

from __future__ import annotations

from hub.registration.adapters.repository import PersonRow
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


def own(person: PersonRow | None, home_pool: str) -> PersonRow:
    """The person, if the asking bureau's pool insures them; else why not."""
    if person is None:
        raise refuse(Rejection.PERSON_NOT_ENROLLED)
    if person.home_pool != home_pool:
        raise refuse(Rejection.PERSON_OF_ANOTHER_POOL)
    return person
