"""Maker-checker: one person prepares a decision that moves money or closes a period (a clerk: a
claim's approval or rejection, a month's close; an operator: an advance deposit), another person
in the approving role (a supervisor of the same bureau; another operator) approves it, and only
then does the portal ask the service to act."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Callable

from hub.portal.domain.people import Recommendation, Refusal, Refused, User, may_check, may_prepare
from hub.portal.service_layer.ports import PortalRepository, ServiceRefused

DECISIONS = {"claim": ("approve", "reject"), "month_close": ("close",), "deposit": ("deposit",)}
MAX_DEPOSIT_FEN = 10**14  # a trillion yuan: past it, a typing error
MAX_NOTE = 200


def prepare(repository: PortalRepository, user: User, kind: str, pool: str, subject: str, decision: str, note: str,
            now: datetime, amount_fen: int = 0) -> Recommendation | Refused:
    if kind not in DECISIONS:
        return Refused(Refusal.INVALID_INPUT, f"kind: one of {', '.join(DECISIONS)}")
    refused = may_prepare(user, kind, pool)
    if refused:
        return refused
    note, subject = note.strip(), subject.strip()
    if not subject or len(subject) > 64 or any(not c.isprintable() for c in subject):
        return Refused(Refusal.INVALID_INPUT, "the claim number, month or deposit reference: 1 to 64 printable characters")
    if kind == "deposit" and not 0 < amount_fen <= MAX_DEPOSIT_FEN:
        return Refused(Refusal.INVALID_INPUT, "amount: more than 0 yuan")
    if decision not in DECISIONS[kind]:
        return Refused(Refusal.INVALID_INPUT, f"decision: one of {', '.join(DECISIONS[kind])}")
    if len(note) > MAX_NOTE or any(not c.isprintable() for c in note):
        return Refused(Refusal.INVALID_INPUT, f"note: at most {MAX_NOTE} printable characters")
    if kind == "claim" and decision == "reject" and not note:
        return Refused(Refusal.INVALID_INPUT, "a rejection says why (note)")
    standing = repository.recommendation(kind, pool, subject)
    if standing is not None and standing.status == "APPROVED":
        return Refused(Refusal.NOTHING_PENDING, f"{subject} was already approved")
    recommendation = Recommendation(kind, pool, subject, decision, note, user.username, now, amount_fen=amount_fen)
    repository.save_recommendation(recommendation)
    repository.record(now, user.username, pool, f"prepare_{kind}", subject, f"{decision} {note}".strip())
    return recommendation


def check(repository: PortalRepository, user: User, kind: str, pool: str, subject: str, approve: bool,
          now: datetime, act: Callable[[Recommendation], object]) -> Recommendation | Refused:
    """A supervisor approves (the service is then asked to act: `act`) or sends it back."""
    recommendation = repository.recommendation(kind, pool, subject)
    refused = may_check(user, recommendation)
    if refused:
        repository.record(now, user.username, pool, f"check_{kind}_refused", subject, refused.reason.code)
        return refused
    if approve:
        try:
            act(recommendation)
        except ServiceRefused as exc:
            repository.record(now, user.username, pool, f"check_{kind}_failed", subject, exc.code)
            return exc.refused()
    checked = replace(recommendation, status="APPROVED" if approve else "REJECTED", checked_by=user.username,
                      checked_at=now)
    repository.save_recommendation(checked)
    repository.record(now, user.username, pool, f"{'approve' if approve else 'send_back'}_{kind}", subject,
                      recommendation.decision)
    return checked
