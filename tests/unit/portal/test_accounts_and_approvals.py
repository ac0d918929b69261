"""The portal's use cases against the fake repository: signing in, lock-out, sessions, and the
maker-checker rule (a clerk prepares, another person — a supervisor of the same bureau — approves,
and only an approval asks the service to act)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hub.portal.domain.people import LockoutRule, Refusal, Refused, Role
from hub.portal.service_layer import accounts, approvals
from hub.portal.service_layer.ports import ServiceRefused
from tests.unit.portal.fakes import FakePortalRepository, PlainHasher

NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)
PASSWORD = "a long enough password"


@pytest.fixture
def repo():
    repository, hasher = FakePortalRepository(), PlainHasher()
    for name, role, bureau in (("clerk", Role.CLERK, ("B360400", "360400")),
                               ("boss", Role.SUPERVISOR, ("B360400", "360400")),
                               ("other-boss", Role.SUPERVISOR, ("B440100", "440100")),
                               ("ops", Role.OPERATOR, None)):
        assert not isinstance(accounts.add_user(repository, hasher, name, name, role, bureau, PASSWORD), Refused)
    return repository


def test_a_session_opens_with_the_right_password_and_is_found_by_its_token_only(repo):
    opened = accounts.sign_in(repo, PlainHasher(), LockoutRule(), "clerk", PASSWORD, NOW)
    assert isinstance(opened, accounts.Session) and opened.token and opened.csrf
    found = accounts.session_of(repo, opened.token, NOW + timedelta(hours=1))
    assert found.user.username == "clerk" and found.csrf_matches(opened.csrf) and not found.csrf_matches("")
    assert accounts.session_of(repo, opened.token, NOW + timedelta(hours=accounts.SESSION_HOURS + 1)) is None
    assert accounts.session_of(repo, "guess", NOW) is None
    accounts.sign_out(repo, found, opened.token, NOW)
    assert accounts.session_of(repo, opened.token, NOW) is None


def test_five_failures_lock_even_the_right_password_out_until_the_lock_ends(repo):
    rule, hasher = LockoutRule(max_failures=5, lock_for=timedelta(minutes=15)), PlainHasher()
    answers = [accounts.sign_in(repo, hasher, rule, "clerk", "wrong", NOW) for _ in range(5)]
    assert [a.reason for a in answers] == [Refusal.BAD_CREDENTIALS] * 4 + [Refusal.LOCKED]
    assert accounts.sign_in(repo, hasher, rule, "clerk", PASSWORD, NOW + timedelta(minutes=14)).reason is Refusal.LOCKED
    assert isinstance(accounts.sign_in(repo, hasher, rule, "clerk", PASSWORD, NOW + timedelta(minutes=16)),
                      accounts.Session)
    assert repo.user("clerk").failures == 0 and repo.user("clerk").locked_until is None
    assert accounts.sign_in(repo, hasher, rule, "nobody", PASSWORD, NOW).reason is Refusal.BAD_CREDENTIALS


def test_people_are_refused_with_a_short_password_or_a_role_without_its_bureau():
    repository, hasher = FakePortalRepository(), PlainHasher()
    assert accounts.add_user(repository, hasher, "x", "", Role.CLERK, ("B1", "1"), "short").reason is Refusal.INVALID_INPUT
    assert accounts.add_user(repository, hasher, "x", "", Role.CLERK, None, PASSWORD).reason is Refusal.INVALID_INPUT
    assert accounts.add_user(repository, hasher, "x", "", Role.OPERATOR, ("B1", "1"), PASSWORD).reason is Refusal.INVALID_INPUT
    assert accounts.add_user(repository, hasher, "a b", "", Role.CLERK, ("B1", "1"), PASSWORD).reason is Refusal.INVALID_INPUT
    assert repository.users() == []


def test_maker_checker_a_clerk_prepares_and_only_another_supervisor_of_the_bureau_approves(repo):
    acted = []
    act = acted.append
    clerk, boss, other, ops = (repo.user(n) for n in ("clerk", "boss", "other-boss", "ops"))
    made = approvals.prepare(repo, clerk, "claim", "360400", "LX-1", "approve", "complete", NOW)
    assert made.status == "PENDING" and made.made_by == "clerk"
    assert approvals.check(repo, clerk, "claim", "360400", "LX-1", True, NOW, act).reason is Refusal.SUPERVISOR_ONLY
    assert approvals.check(repo, other, "claim", "360400", "LX-1", True, NOW, act).reason is Refusal.OTHER_POOL
    assert approvals.check(repo, ops, "claim", "360400", "LX-1", True, NOW, act).reason is Refusal.SUPERVISOR_ONLY
    assert acted == []
    done = approvals.check(repo, boss, "claim", "360400", "LX-1", True, NOW, act)
    assert done.status == "APPROVED" and done.checked_by == "boss" and acted == [made]
    assert approvals.check(repo, boss, "claim", "360400", "LX-1", True, NOW, act).reason is Refusal.NOTHING_PENDING
    assert len(acted) == 1
    actions = [a["action"] for a in repo.audit]
    assert "prepare_claim" in actions and "approve_claim" in actions and "check_claim_refused" in actions


def test_a_supervisor_cannot_approve_what_they_prepared_themselves(repo):
    boss = repo.user("boss")
    approvals.prepare(repo, boss, "month_close", "360400", "2026-02", "close", "", NOW)
    refused = approvals.check(repo, boss, "month_close", "360400", "2026-02", True, NOW, lambda r: None)
    assert refused.reason is Refusal.SAME_PERSON


def test_a_rejection_says_why_and_a_service_refusal_leaves_it_pending(repo):
    clerk, boss = repo.user("clerk"), repo.user("boss")
    assert approvals.prepare(repo, clerk, "claim", "360400", "LX-2", "reject", " ", NOW).reason is Refusal.INVALID_INPUT
    assert approvals.prepare(repo, clerk, "claim", "440100", "LX-2", "approve", "", NOW).reason is Refusal.OTHER_POOL
    assert approvals.prepare(repo, clerk, "claim", "360400", "LX-2", "close", "", NOW).reason is Refusal.INVALID_INPUT
    approvals.prepare(repo, clerk, "claim", "360400", "LX-2", "approve", "", NOW)

    def refuses(_):
        raise ServiceRefused(409, "claim_already_decided", "claim LX-2 is REJECTED")

    answer = approvals.check(repo, boss, "claim", "360400", "LX-2", True, NOW, refuses)
    assert answer.reason is Refusal.SERVICE_REFUSED and "claim_already_decided" in answer.message
    assert repo.recommendation("claim", "360400", "LX-2").status == "PENDING"


def test_an_advance_deposit_is_recorded_by_one_operator_and_approved_by_another(repo):
    acted = []
    clerk, boss, ops = repo.user("clerk"), repo.user("boss"), repo.user("ops")
    accounts.add_user(repo, PlainHasher(), "ops2", "", Role.OPERATOR, None, PASSWORD)
    ops2 = repo.user("ops2")
    assert approvals.prepare(repo, clerk, "deposit", "360400", "BANK-1", "deposit", "", NOW, 100).reason \
        is Refusal.OPERATOR_ONLY
    assert approvals.prepare(repo, ops, "deposit", "360400", "BANK-1", "deposit", "", NOW, 0).reason \
        is Refusal.INVALID_INPUT
    assert approvals.prepare(repo, ops, "claim", "360400", "LX-9", "approve", "", NOW).reason is Refusal.BUREAU_ONLY
    made = approvals.prepare(repo, ops, "deposit", "360400", "BANK-1", "deposit", "wire", NOW, 1_234_567)
    assert made.amount_fen == 1_234_567
    assert approvals.check(repo, ops, "deposit", "360400", "BANK-1", True, NOW, acted.append).reason \
        is Refusal.SAME_PERSON
    assert approvals.check(repo, boss, "deposit", "360400", "BANK-1", True, NOW, acted.append).reason \
        is Refusal.OPERATOR_ONLY
    assert approvals.check(repo, ops2, "deposit", "360400", "BANK-1", True, NOW, acted.append).status == "APPROVED"
    assert [r.amount_fen for r in acted] == [1_234_567]
