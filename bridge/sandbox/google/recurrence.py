"""A recurring event's occurrences: its `recurrence` lines (RFC 5545 RRULE / RDATE / EXDATE)
expanded with `dateutil.rrule`, and the instance ids Google gives them.

NOTES §13 "Recurrence" and "Instances". The rules run over wall-clock times in the series' zone
(`start.timeZone`; the calendar's zone for an all-day series), as RFC 5545 wants, so a weekly 10:00
meeting stays at 10:00 across a daylight-saving change. An instance id is `<eventId>_<key>` with the
key the original start: `YYYYMMDDTHHMMSSZ` in UTC (timed) or `YYYYMMDD` (all-day).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rruleset, rrulestr

from bridge.sandbox.google.event_times import When, all_day, parse_when, timed
from bridge.sandbox.google.wire import JSON, ApiError

MAX_OCCURRENCES = 10_000  # scanned per expansion, so an endless rule ends [inferred]
HORIZON = timedelta(days=730)  # how far an open-ended listing looks ahead [inferred]

_KEY = re.compile(r"^\d{8}(T\d{6}Z)?$")
_STAMP = "%Y%m%dT%H%M%S"
_LINE = re.compile(r"^(RRULE|RDATE|EXDATE)([;:].*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Occurrence:
    key: str  # the instance id's suffix
    original: JSON  # Google's originalStartTime
    start: JSON
    end: JSON
    begins: datetime  # aware instants, for windows and ordering
    ends: datetime


def instance_id(event_id: str, key: str) -> str:
    return f"{event_id}_{key}"


def split_instance_id(event_id: str) -> tuple[str, str] | None:
    """`(series id, key)` when `event_id` names an instance."""
    series, _, key = event_id.rpartition("_")
    return (series, key) if series and _KEY.match(key) else None


def check_recurrence(lines: Any, start: When, calendar_zone: ZoneInfo) -> None:
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise ApiError(400, "invalid", "Invalid recurrence rule.")  # [inferred]
    if lines and not start.all_day and start.zone is None:
        # NOTES §13 "Times": a recurring event must name start.timeZone.
        raise ApiError(400, "required", "Missing time zone definition for start time.")
    if lines:
        try:
            _Expansion(lines, start, calendar_zone)
        except (ValueError, KeyError):
            raise ApiError(400, "invalid", "Invalid recurrence rule.") from None


def occurrences(event: JSON, calendar_zone: ZoneInfo, *, before: datetime) -> Iterator[Occurrence]:
    """The series' occurrences that begin before `before`, in order, EXDATEs left out."""
    start, end = parse_when(event["start"], "start"), parse_when(event["end"], "end")
    expansion = _Expansion(event.get("recurrence", []), start, calendar_zone)
    last_wall = _wall(before, expansion.zone) + timedelta(days=1)
    for count, wall in enumerate(expansion.rules):
        if wall > last_wall or count >= MAX_OCCURRENCES:
            return
        occurrence = _occurrence(wall, start, end, expansion.zone)
        if occurrence.key in expansion.excluded:
            continue
        if occurrence.begins >= before:
            return
        yield occurrence


def occurrence_at(event: JSON, calendar_zone: ZoneInfo, key: str) -> Occurrence | None:
    """The occurrence whose original start is `key`, if the series has one."""
    if len(key) == 8:
        moment = datetime.combine(datetime.strptime(key, "%Y%m%d").date(), time(), calendar_zone)
    else:
        moment = datetime.strptime(key, _STAMP + "Z").replace(tzinfo=UTC)
    for occurrence in occurrences(event, calendar_zone, before=moment + timedelta(days=2)):
        if occurrence.key == key:
            return occurrence
    return None


def horizon(event: JSON, calendar_zone: ZoneInfo, after: datetime | None) -> datetime:
    """Where a listing without `timeMax` stops expanding a series [inferred]: two years past
    the latest of the series' start, now and the listing's `timeMin`."""
    first = parse_when(event["start"], "start").begins(calendar_zone)
    return max(first, datetime.now(UTC), after or first) + HORIZON


class _Expansion:
    """The parsed lines: a rule set over naive wall times in `zone`, and the excluded keys."""

    def __init__(self, lines: list[str], start: When, calendar_zone: ZoneInfo) -> None:
        if start.all_day:
            assert start.day is not None
            self.zone = calendar_zone
            first = datetime.combine(start.day, time())
        else:
            assert start.instant is not None and start.zone is not None
            self.zone = ZoneInfo(start.zone)
            first = _wall(start.instant, self.zone)
        self.rules = rruleset()
        self.excluded: set[str] = set()
        for line in lines:
            match = _LINE.match(line.strip())
            if match is None:
                raise ValueError(f"not a recurrence line: {line!r}")
            name, rest = match.group(1).upper(), match.group(2)
            if name == "RRULE":
                text = _rule_text(rest.removeprefix(":"), self.zone, start.all_day)
                rule = rrulestr(text, dtstart=first)
                if not isinstance(rule, rrule):
                    raise ValueError(f"not one rule: {line!r}")
                self.rules.rrule(rule)
                continue
            for value in _date_values(rest):
                wall = _to_wall(value, self.zone, first.time())
                if name == "RDATE":
                    self.rules.rdate(wall)
                else:
                    self.excluded.add(_key(wall, self.zone, all_day=start.all_day))
        if not lines:
            self.rules.rdate(first)


def _occurrence(wall: datetime, start: When, end: When, zone: ZoneInfo) -> Occurrence:
    if start.all_day:
        assert start.day is not None and end.day is not None
        first, last = wall.date(), wall.date() + (end.day - start.day)
        return Occurrence(
            key=_key(wall, zone, all_day=True),
            original=all_day(first),
            start=all_day(first),
            end=all_day(last),
            begins=datetime.combine(first, time(), zone),
            ends=datetime.combine(last, time(), zone),
        )
    assert start.instant is not None and end.instant is not None
    begins = wall.replace(tzinfo=zone).astimezone(UTC)
    ends = begins + (end.instant - start.instant)
    return Occurrence(
        key=_key(wall, zone, all_day=False),
        original=timed(begins, start.zone),
        start=timed(begins, start.zone),
        end=timed(ends, end.zone or start.zone),
        begins=begins,
        ends=ends,
    )


def _key(wall: datetime, zone: ZoneInfo, *, all_day: bool) -> str:
    if all_day:
        return wall.strftime("%Y%m%d")
    return wall.replace(tzinfo=zone).astimezone(UTC).strftime(_STAMP + "Z")


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _rule_text(rule: str, zone: ZoneInfo, all_day: bool) -> str:
    """The RRULE with `UNTIL` as a wall time in the series' zone, as dateutil wants it beside a
    naive DTSTART. A date-only UNTIL of a timed series includes that whole day [inferred]."""
    parts = []
    names = {part.partition("=")[0].upper() for part in rule.split(";")}
    if {"COUNT", "UNTIL"} <= names:
        raise ValueError("RFC 5545: COUNT and UNTIL must not occur in the same RRULE")
    for part in rule.split(";"):
        name, _, value = part.partition("=")
        if name.upper() == "UNTIL":
            until = _parse_value(value, None)
            if isinstance(until, datetime):
                value = (_wall(until, zone) if until.tzinfo else until).strftime(_STAMP)
            else:
                value = until.strftime("%Y%m%d") + ("T000000" if all_day else "T235959")
        parts.append(f"{name}={value}")
    return ";".join(parts)


def _date_values(rest: str) -> list[date | datetime]:
    """The values of `;TZID=Europe/Berlin:20241216T100000,…` or `;VALUE=DATE:20241216`."""
    params, _, values = rest.partition(":")
    zone: ZoneInfo | None = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.upper() == "TZID":
            zone = ZoneInfo(value.strip('"'))
    return [_parse_value(value, zone) for value in values.split(",") if value]


def _parse_value(text: str, zone: ZoneInfo | None) -> date | datetime:
    text = text.strip()
    if len(text) == 8:
        return datetime.strptime(text, "%Y%m%d").date()
    if text.endswith("Z"):
        return datetime.strptime(text, _STAMP + "Z").replace(tzinfo=UTC)
    moment = datetime.strptime(text, _STAMP)
    return moment.replace(tzinfo=zone) if zone is not None else moment


def _to_wall(value: date | datetime, zone: ZoneInfo, start_time: time) -> datetime:
    """A date lands at the series' start time [inferred]; a floating time is the series' own."""
    if not isinstance(value, datetime):
        return datetime.combine(value, start_time)
    return _wall(value, zone) if value.tzinfo is not None else value
