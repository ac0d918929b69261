"""The convention's envelope: a checked request in, an answer (done, or refused with a reason) out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from hub.rejections import Reason
from hub.settlement.service_layer.identity import Hospital
from hub.settlement.service_layer.reasons import Why

SHANGHAI = ZoneInfo("Asia/Shanghai")

OPEN_VISIT = frozenset({"2201", "2401"})
CANCEL_VISIT = frozenset({"2202", "2404"})
UPLOAD_FEES = frozenset({"2204", "2301"})
CANCEL_FEES = frozenset({"2205", "2302"})
PRE_SETTLE = frozenset({"2206", "2303"})
SETTLE = frozenset({"2207", "2304"})
REVERSE = frozenset({"2208", "2305"})
LOOKUP = frozenset({"1101"})
RECONCILE = frozenset({"3201", "3202"})
MUTATING = OPEN_VISIT | CANCEL_VISIT | UPLOAD_FEES | CANCEL_FEES | SETTLE | REVERSE
GROUPED = MUTATING | PRE_SETTLE  # decided in group transactions (`SettlementService.run_group`)
KNOWN = GROUPED | LOOKUP | RECONCILE


class Answer(Exception):
    """Ends a transaction with a refusal: its reason (a stable code) and what exactly was wrong."""

    def __init__(self, reason: Reason, detail: str = ""):
        super().__init__(f"{reason.code}: {detail or reason.message}")
        self.reason = reason
        self.message = detail or reason.message


def not_ready() -> Answer:
    """The answer while the read model rebuilds: try again, nothing was decided."""
    return Answer(Why.HUB_NOT_READY)


class Request(NamedTuple):
    """A request whose envelope has been checked (`SettlementService.check`)."""

    hospital: Hospital
    infno: str
    msgid: str
    payload: dict
    now: datetime

    @property
    def key(self) -> tuple[str, str]:
        return self.hospital.code, self.msgid


@dataclass(frozen=True)
class Reply:
    """The answer in the envelope, and its reason when it is a refusal (None: done)."""

    reason: Reason | None
    body: dict[str, Any]


def done(output: dict, now: datetime) -> Reply:
    stamp = now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    return Reply(None, {"infcode": 0, "inf_refmsgid": f"HUB{now.strftime('%Y%m%d%H%M%S')}{uuid.uuid4().hex[:8]}",
                        "refmsg_time": stamp, "respond_time": stamp, "err_msg": "", "output": output})


def refused(reason: Reason, message: str, now: datetime) -> Reply:
    body = done({}, now).body
    body.update(infcode=-1, err_code=reason.code, err_msg=message or reason.message, output={})
    return Reply(reason, body)


def refusal(exc: Answer, now: datetime) -> Reply:
    return refused(exc.reason, exc.message, now)


def data_of(payload: dict, key: str = "data") -> dict:
    """`payload[key]` as an object ({} when absent): any other shape is refused."""
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Answer(Why.INVALID_INPUT, f"input.{key}: an object")
    return value
