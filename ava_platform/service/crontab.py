"""Cron arithmetic for schedules (croniter, in the schedule's IANA time zone). Pure.

Slots are whole minutes; they are computed in the schedule's zone (so `0 9 * * *` is 09:00
local, across DST changes) and stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from ava_platform.service.validation import Problems

CRON_FIELDS = 5


def check(problems: Problems, cron: str, timezone: str, now: datetime | None = None) -> None:
    """Adds a problem for each field at fault. With `now`, an expression that never fires
    after it (`0 0 31 2 *`: no 31 February) is one too."""
    valid_zone = True
    try:
        zone(timezone)
    except ValueError:
        valid_zone = False
    if len(cron.split()) != CRON_FIELDS:
        problems.add("cron", "must have exactly 5 fields: minute hour day-of-month month weekday")
    elif not croniter.is_valid(cron):
        problems.add("cron", f"is not a valid cron expression: {cron!r}")
    elif now is not None and valid_zone:
        try:
            next_after(cron, timezone, now)
        except (CroniterError, ValueError, OverflowError):
            problems.add("cron", f"never occurs: {cron!r} has no future run time")
    if not valid_zone:
        problems.add("timezone", f"is not an IANA time zone: {timezone!r}")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(name) from exc


def next_after(cron: str, timezone: str, when: datetime) -> datetime:
    """The first slot strictly after `when`, in UTC."""
    local = when.astimezone(zone(timezone))
    nxt: datetime = croniter(cron, local).get_next(datetime)
    return nxt.astimezone(UTC)


def latest_at_or_before(cron: str, timezone: str, when: datetime) -> datetime:
    """The last slot at or before `when`, in UTC (slots are whole minutes, so one second past
    `when`, floored, is strictly after every such slot and at or before the next one)."""
    base = (when + timedelta(seconds=1)).replace(microsecond=0).astimezone(zone(timezone))
    prev: datetime = croniter(cron, base).get_prev(datetime)
    return prev.astimezone(UTC)
