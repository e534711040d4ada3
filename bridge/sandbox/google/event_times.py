"""An event's `start` / `end` (Google's EventDateTime) as values: parsed, checked and rendered.

NOTES §13 "Times": timed ends carry `dateTime` (RFC 3339) and optionally an IANA `timeZone`; all-day
ends carry `date`, the end being exclusive; both ends of an event are of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.sandbox.google.wire import JSON, ApiError


@dataclass(frozen=True)
class When:
    """One end of an event: a day (all-day) or an instant (timed), with its zone if named."""

    day: date | None
    instant: datetime | None  # aware
    zone: str | None

    @property
    def all_day(self) -> bool:
        return self.day is not None

    def begins(self, calendar_zone: ZoneInfo) -> datetime:
        """The instant this end stands for; an all-day end is midnight in the calendar's zone."""
        if self.instant is not None:
            return self.instant
        assert self.day is not None
        return datetime.combine(self.day, time(), calendar_zone)


def zone_named(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_when(value: Any, name: str) -> When:
    """`name` is "start" or "end"; Google's messages name the end they are about."""
    if not isinstance(value, dict) or not (value.get("date") or value.get("dateTime")):
        raise ApiError(400, "required", f"Missing {name} time.")
    zone = value.get("timeZone")
    if zone is not None and (not isinstance(zone, str) or zone_named(zone) is None):
        # [inferred] the message follows the calendar's "Invalid time zone definition for calendar."
        raise ApiError(400, "timeZoneInvalid", f"Invalid time zone definition for {name} time.")
    if value.get("date") and value.get("dateTime"):
        raise ApiError(400, "invalid", f"Invalid {name} time.")  # [inferred]
    if value.get("date"):
        try:
            return When(date.fromisoformat(str(value["date"])), None, zone)
        except ValueError:
            raise ApiError(400, "invalid", f"Invalid {name} time.") from None
    try:
        moment = datetime.fromisoformat(str(value["dateTime"]))
    except ValueError:
        raise ApiError(400, "invalid", f"Invalid {name} time.") from None
    if moment.tzinfo is None:
        if zone is None:
            raise ApiError(400, "required", f"Missing time zone definition for {name} time.")
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return When(None, moment, zone)


def check_span(start: When, end: When) -> None:
    if start.all_day != end.all_day:
        raise ApiError(400, "invalid", "Invalid end time.")  # [inferred] both ends of one kind
    if start.all_day:
        assert start.day is not None and end.day is not None
        empty = end.day <= start.day
    else:
        assert start.instant is not None and end.instant is not None
        empty = end.instant < start.instant  # a timed event may last zero minutes [inferred]
    if empty:
        raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.", "calendar")


def parse_instant(text: str, name: str) -> datetime:
    """A query bound such as `timeMin`: RFC 3339 with an offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(
            400, "invalid", f"Invalid value for: {name}", location=name, locationType="parameter"
        )
    return moment


def rfc3339(moment: datetime) -> str:
    """Google's rendering: seconds precision, `Z` for UTC, the offset otherwise."""
    text = moment.replace(microsecond=0).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def updated_stamp() -> str:
    """The `updated` / `created` field: UTC with milliseconds."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def timed(moment: datetime, zone: str | None) -> JSON:
    """A timed EventDateTime for `moment`, shown in `zone` when one is named."""
    rendered: JSON = {"dateTime": rfc3339(moment.astimezone(ZoneInfo(zone)) if zone else moment)}
    if zone:
        rendered["timeZone"] = zone
    return rendered


def all_day(day: date) -> JSON:
    return {"date": day.isoformat()}
