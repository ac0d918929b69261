"""Who may do what in the portal: people with roles, scoped to one bureau's pool; lock-out after
repeated failed sign-ins; maker-checker for what moves money or closes a period. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from hub.rejections import Reason
from hub.rejections import Refusal as Refused  # a reason and what it is about (a field, the service's own reason)


class Role(str, Enum):
    CLERK = "clerk"            # 经办: prepares — confirms lines, drafts disputes, recommends claims
    SUPERVISOR = "supervisor"  # 审核: approves what moves money or closes a period
    OPERATOR = "operator"      # 运维: the clearing centre; sees every pool

    @property
    def label(self) -> str:
        return {"clerk": "经办 clerk", "supervisor": "审核 supervisor", "operator": "运维 operator"}[self.value]


ALL_POOLS = "*"


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    role: Role
    bureau_code: str  # "" for operators
    pool: str         # ALL_POOLS for operators
    password_hash: str
    failures: int = 0
    locked_until: datetime | None = None

    def sees(self, pool: str) -> bool:
        return self.pool == ALL_POOLS or self.pool == pool


class Refusal(Reason):
    """Why the portal will not do something, in order of precedence: a stable code and the
    message shown to the person (Chinese first). The edge maps each to its HTTP status (STATUS)."""

    BAD_CREDENTIALS = ("bad_credentials", "用户名或密码不正确 The user name or password is wrong")
    LOCKED = ("locked", "连续登录失败次数过多，账户已暂时锁定 Too many failed sign-ins: the account is locked for a while")
    SIGNED_OUT = ("signed_out", "请先登录 Sign in first")
    BAD_CSRF = ("bad_csrf", "表单已过期，请刷新页面后重试 The form is stale or forged: reload the page and try again")
    OTHER_POOL = ("other_pool", "无权查看其他统筹区的数据 You see only your own bureau's data")
    SUPERVISOR_ONLY = ("supervisor_only", "此操作须由审核人员完成 A supervisor approves this")
    OPERATOR_ONLY = ("operator_only", "此操作须由运维人员完成 Only the clearing centre's operators do this")
    BUREAU_ONLY = ("bureau_only", "此操作由参保地经办机构完成 Only the bureau's own people do this")
    SAME_PERSON = ("same_person", "经办与审核不能是同一人 The person who prepared it cannot approve it")
    NOTHING_PENDING = ("nothing_pending", "没有待审核的建议 There is no recommendation waiting for approval")
    INVALID_INPUT = ("invalid_input", "输入有误 The input is not valid")
    SERVICE_REFUSED = ("service_refused", "服务拒绝了此操作 The service refused")
    NOT_AS_SIGNED = ("not_as_signed", "文件与签名清单不符，未提供下载 The file is not the one the hub signed: not served")


@dataclass(frozen=True)
class LockoutRule:
    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)

    def locked(self, user: User, now: datetime) -> bool:
        return user.locked_until is not None and now < user.locked_until

    def after_failure(self, user: User, now: datetime) -> User:
        failures = user.failures + 1
        if failures >= self.max_failures:
            return replace(user, failures=0, locked_until=now + self.lock_for)
        return replace(user, failures=failures)

    @staticmethod
    def after_success(user: User) -> User:
        return replace(user, failures=0, locked_until=None)


# ---------------------------------------------------------------- maker-checker


@dataclass(frozen=True)
class Recommendation:
    """A prepared decision another person must approve (a claim, a month's close, an advance
    deposit): who prepared it and what they recommend; then who approved it."""
    kind: str       # "claim", "month_close" or "deposit"
    pool: str
    subject: str    # the claim number, the month
    decision: str   # "approve" / "reject" for a claim, "close" for a month
    note: str
    made_by: str
    made_at: datetime
    status: str = "PENDING"  # PENDING, APPROVED, REJECTED
    checked_by: str = ""
    checked_at: datetime | None = None
    amount_fen: int = 0  # a deposit's amount


# Who prepares each kind, and who approves it: a bureau's claims and month by its clerks, approved
# by its supervisors; the clearing centre's advance deposits by one operator, approved by another.
MAKERS = {"claim": (Role.CLERK, Role.SUPERVISOR), "month_close": (Role.CLERK, Role.SUPERVISOR),
          "deposit": (Role.OPERATOR,)}
CHECKER = {"claim": Role.SUPERVISOR, "month_close": Role.SUPERVISOR, "deposit": Role.OPERATOR}


def may_prepare(user: User, kind: str, pool: str) -> Refused | None:
    if not user.sees(pool):
        return Refused(Refusal.OTHER_POOL, pool)
    if user.role not in MAKERS[kind]:
        return Refused(Refusal.OPERATOR_ONLY if CHECKER[kind] is Role.OPERATOR else Refusal.BUREAU_ONLY)
    return None


def may_check(user: User, recommendation: Recommendation | None) -> Refused | None:
    """The approving role for its kind, seeing its pool, and not the person who prepared it."""
    if recommendation is None or recommendation.status != "PENDING":
        return Refused(Refusal.NOTHING_PENDING)
    if not user.sees(recommendation.pool):
        return Refused(Refusal.OTHER_POOL, recommendation.pool)
    if user.role is not CHECKER[recommendation.kind]:
        return Refused(Refusal.OPERATOR_ONLY if CHECKER[recommendation.kind] is Role.OPERATOR
                       else Refusal.SUPERVISOR_ONLY)
    if user.username == recommendation.made_by:
        return Refused(Refusal.SAME_PERSON, recommendation.made_by)
    return None
