"""Shared kernel: rejections as data (STYLE.md 3). Each operation declares one enum of reasons,
ordered by precedence, each with a stable code and a human message; a refusal is a reason plus
the detail of the case. Exceptions stay for infrastructure faults and bugs."""

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


class CodedError(ValueError):
    """A refusal raised where a return would not reach (a parser deep in a call, an operator's
    command): a stable `code` and a `message` that says what to fix."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
