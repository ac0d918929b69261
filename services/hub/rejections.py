"""Shared kernel: rejections as data (STYLE.md 3). Each operation declares one enum of reasons,
ordered by precedence, each with a stable code and a human message; a refusal is a reason plus
the detail of the case. Where a return would not reach (a parser deep in a call, a use case under
an edge), a service raises one exception carrying its Refusal (ClearingRefused,
RegistrationRefused, ClaimRefused; the settlement interface's Answer), and each edge answers every
reason from one table. Exceptions otherwise stay for infrastructure faults and bugs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Reason(Enum):
    """Base of every reason enum: members are ("stable_code", "Human message")."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Refusal:
    reason: Reason
    detail: str = ""

    @property
    def code(self) -> str:
        return self.reason.code

    @property
    def message(self) -> str:
        return f"{self.reason.message}: {self.detail}" if self.detail else self.reason.message

