"""The Google event an entry should be: its body (its id from `event_ids.py`, re-exported here),
from plain values, with no I/O.

Rules (issue 13, "Fields, exactly"; reference google-calendar NOTES §13):
- Timed: `start`/`end` are the entry's instants as wall time in `TZ_FROM`/`TZ_TO`, with the zone.
- All-day: `start.date` the first day, `end.date` the day after the last (Google's end is
  exclusive; Bitrix24's `DATE_TO` is the last day).
- A series: one `RRULE` line; `UNTIL` for a timed series is the end of the `UNTIL` day in the
  series' zone, in UTC (RFC 5545 wants UTC with a zoned start); `EXDATE` lines at the series'
  start time in its zone.
- An occurrence edited on its own becomes the instance override `<series id>_<original start>`:
  the original day at the series' start time of day in the series' zone, in UTC.
- `privacy`: `busy_only` (or `respect_private` on a private entry) writes "Busy" and nothing about
  what the entry is: no description, location or attendees.
- Reminders off: `useDefault: false` and no overrides, so the mirror adds no alert of its own to
  the ones Bitrix24 already sends.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from bridge.entry_values import Accessibility, Entry, Recurrence
from bridge.event_colours import nearest_event_colour
from bridge.event_ids import google_event_id as google_event_id
from bridge.event_ids import instance_day as instance_day
from bridge.event_ids import instance_id as instance_id
from bridge.event_ids import original_start as original_start

BUSY_SUMMARY = "Busy"
MAX_REMINDERS = 5  # Google takes at most five overrides
MAX_REMINDER_MINUTES = 40_320  # … of at most four weeks
_ROOM = re.compile(r"calendar_(\d+)(?:_\d+)?")


class Privacy(StrEnum):
    FULL = "full"
    BUSY_ONLY = "busy_only"
    RESPECT_PRIVATE = "respect_private"  # private entries busy only, the others in full


class AttendeeMode(StrEnum):
    NONE = "none"
    NAMES = "names"  # listed in the description; nobody is invited


@dataclass(frozen=True)
class EntryOptions:
    """A portal's `mirror.entries` settings, plus its address for the link back."""

    privacy: Privacy = Privacy.RESPECT_PRIVATE
    attendees: AttendeeMode = AttendeeMode.NONE
    reminders: bool = False
    link_back: bool = True
    portal_address: str = ""  # "https://example.bitrix24.de"; no link without it


class MissingSeries(ValueError):
    """An edited occurrence's body needs its series (the series' zone and time of day)."""


@dataclass(frozen=True)
class EventTime:
    day: date | None = None  # all-day
    moment: datetime | None = None  # timed: aware, in `time_zone`
    time_zone: str = ""

    def to_api(self) -> dict[str, str]:
        if self.day is not None:
            return {"date": self.day.isoformat()}
        assert self.moment is not None
        return {"dateTime": self.moment.isoformat(), "timeZone": self.time_zone}


@dataclass(frozen=True)
class EventBody:
    """What the bridge writes to a Google event; `fingerprint` is what a mapping remembers."""

    event_id: str
    summary: str
    start: EventTime
    end: EventTime
    description: str = ""
    location: str = ""
    recurrence: tuple[str, ...] = ()
    recurring_event_id: str | None = None  # an instance override: its series' event id
    original_start: EventTime | None = None
    transparent: bool = False
    private: bool = False
    color_id: str | None = None
    reminders: tuple[int, ...] = ()  # minutes; empty with useDefault false
    properties: Mapping[str, str] = field(default_factory=dict)  # extendedProperties.private

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.event_id,
            "status": "confirmed",
            "summary": self.summary,
            "description": self.description,
            "location": self.location,
            "start": self.start.to_api(),
            "end": self.end.to_api(),
            "transparency": "transparent" if self.transparent else "opaque",
            "visibility": "private" if self.private else "default",
            "reminders": {
                "useDefault": False,
                "overrides": [{"method": "popup", "minutes": m} for m in self.reminders],
            },
            "extendedProperties": {"private": dict(self.properties)},
        }
        if self.recurrence:
            body["recurrence"] = list(self.recurrence)
        if self.recurring_event_id is not None and self.original_start is not None:
            body["recurringEventId"] = self.recurring_event_id
            body["originalStartTime"] = self.original_start.to_api()
        if self.color_id is not None:
            body["colorId"] = self.color_id
        return body

    def fingerprint(self) -> str:
        canonical = json.dumps(self.to_api(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def desired_event(
    portal_key: str,
    entry: Entry,
    options: EntryOptions,
    rooms: Mapping[str, str] | None = None,
    *,
    series: Entry | None = None,
    overridden: Collection[date] = (),
    names: Mapping[str, str] | None = None,
) -> EventBody:
    """The Google event for `entry`. `rooms` maps a meeting room's section id to its name;
    `names` a user id to a name (for `attendees: names`). An edited occurrence needs its
    `series`. `overridden`: days of a series whose occurrence has an override of its own; they are
    left out of its `EXDATE` lines, so the override is an instance of the series in Google."""
    event_id = google_event_id(portal_key, entry.id)
    recurring_event_id = original = None
    if entry.is_occurrence:
        if series is None or entry.original_date is None:
            raise MissingSeries(f"entry {entry.id}: an edited occurrence of {entry.series_id}")
        recurring_event_id = google_event_id(portal_key, series.id)
        event_id = instance_id(recurring_event_id, series, entry.original_date)
        original = _original_time(series, entry.original_date)
    busy_only = options.privacy == Privacy.BUSY_ONLY or (
        options.privacy == Privacy.RESPECT_PRIVATE and entry.private
    )
    return EventBody(
        event_id=event_id,
        summary=BUSY_SUMMARY if busy_only else entry.name,
        start=_start(entry),
        end=_end(entry),
        description="" if busy_only else _description(entry, options, names or {}),
        location="" if busy_only else _location(entry.location, rooms or {}),
        recurrence=_recurrence(entry, overridden),
        recurring_event_id=recurring_event_id,
        original_start=original,
        transparent=entry.accessibility == Accessibility.FREE,
        private=entry.private,
        color_id=nearest_event_colour(entry.colour),
        reminders=_reminders(entry) if options.reminders else (),
        properties={"b24_portal": portal_key, "b24_entry": entry.id, "b24_version": entry.version},
    )


def _start(entry: Entry) -> EventTime:
    if entry.all_day:
        return EventTime(day=entry.first_day)
    zone = entry.zone_from
    return EventTime(moment=entry.start.astimezone(ZoneInfo(zone)), time_zone=zone)


def _end(entry: Entry) -> EventTime:
    if entry.all_day:
        return EventTime(day=entry.last_day + timedelta(days=1))
    zone = entry.zone_to
    return EventTime(moment=entry.end.astimezone(ZoneInfo(zone)), time_zone=zone)


def _original_time(series: Entry, day: date) -> EventTime:
    if series.all_day:
        return EventTime(day=day)
    return EventTime(moment=original_start(series, day), time_zone=series.zone_from)


def _recurrence(entry: Entry, overridden: Collection[date]) -> tuple[str, ...]:
    if entry.recurrence is None:
        return ()
    lines = [rrule_line(entry.recurrence, entry)]
    for day in entry.exdates:
        if day in overridden:
            continue
        if entry.all_day:
            lines.append(f"EXDATE;VALUE=DATE:{day:%Y%m%d}")
        else:
            wall = original_start(entry, day)
            lines.append(f"EXDATE;TZID={entry.zone_from}:{wall:%Y%m%dT%H%M%S}")
    return tuple(lines)


def rrule_line(rule: Recurrence, series: Entry) -> str:
    """The RFC 5545 line; `COUNT` wins over `UNTIL` (RFC 5545 forbids both)."""
    parts = [f"FREQ={rule.frequency}"]
    if rule.interval > 1:
        parts.append(f"INTERVAL={rule.interval}")
    if rule.weekdays:
        parts.append("BYDAY=" + ",".join(rule.weekdays))
    if rule.count is not None:
        parts.append(f"COUNT={rule.count}")
    elif rule.until is not None:
        parts.append(f"UNTIL={_until(rule.until, series)}")
    return "RRULE:" + ";".join(parts)


def _until(day: date, series: Entry) -> str:
    if series.all_day:
        return f"{day:%Y%m%d}"
    zone = ZoneInfo(series.zone_from)
    day_end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone) - timedelta(seconds=1)
    return f"{day_end.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _location(location: str, rooms: Mapping[str, str]) -> str:
    """A booked meeting room (`calendar_<room section>[_<booking>]`) by its name; a room the
    bridge cannot name is left out rather than shown as an identifier."""
    room = _ROOM.fullmatch(location)
    if room is None:
        return location
    return rooms.get(room.group(1), "")


def _description(entry: Entry, options: EntryOptions, names: Mapping[str, str]) -> str:
    parts = [entry.description] if entry.description else []
    if options.attendees == AttendeeMode.NAMES:
        listed = _attendee_names(entry, names)
        if listed:
            parts.append("Attendees: " + ", ".join(listed))
    if options.link_back and (link := entry_link(options.portal_address, entry)):
        parts.append(f"Open in Bitrix24: {link}")
    return "\n\n".join(parts)


def _attendee_names(entry: Entry, names: Mapping[str, str]) -> list[str]:
    """Who takes part (declined attendees left out), by name, the host's from `MEETING`."""
    known = dict(names)
    if entry.meeting_host and entry.host_name:
        known.setdefault(entry.meeting_host, entry.host_name)
    return [
        known.get(attendee.user_id) or f"user {attendee.user_id}"
        for attendee in entry.attendees
        if attendee.status != "N"
    ]


def entry_link(portal_address: str, entry: Entry) -> str:
    """The entry's page in Bitrix24 (`?EVENT_ID=`), in its owner's calendar."""
    base = portal_address.rstrip("/")
    if not base:
        return ""
    if entry.cal_type == "user" and entry.owner_id:
        path = f"/company/personal/user/{entry.owner_id}/calendar/"
    elif entry.cal_type == "group" and entry.owner_id:
        path = f"/workgroups/group/{entry.owner_id}/calendar/"
    else:
        path = "/calendar/"
    return f"{base}{path}?EVENT_ID={entry.id}"


def _reminders(entry: Entry) -> tuple[int, ...]:
    kept = sorted({min(minutes, MAX_REMINDER_MINUTES) for minutes in entry.reminders})
    return tuple(kept[:MAX_REMINDERS])
