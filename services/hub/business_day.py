"""Shared kernel: the hub's calendar. Business dates — a settlement's day, a clearing day, the day a
claim was decided, a month — are China Standard Time's (Asia/Shanghai), whatever the machine's zone."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def business_day(instant: datetime) -> date:
    """The day an aware instant falls on in Asia/Shanghai."""
    return instant.astimezone(SHANGHAI).date()
