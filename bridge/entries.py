"""A Bitrix24 calendar entry as plain values, parsed from what `calendar.event.getbyid` or
`calendar.event.get` returns (reference `_includes/calendar_event_fields.md`, NOTES §2.4).

No I/O. Instants come only from `DATE_FROM_TS_UTC` / `DATE_TO_TS_UTC`, never from the
locale-formatted `DATE_FROM` / `DATE_TO`; those only help tell the portal's date format
(`locale_dates.py`) for the date-only strings: `EXDATE`, `RRULE.UNTIL` and the date in
`RELATIONS.COMMENT_XML_ID`.

All-day entries (`DT_SKIP_TIME "Y"`, the booking example in `calendar-resource-booking-list.md`):
`DATE_FROM_TS_UTC` is the first day at 00:00 UTC and `DATE_TO_TS_UTC` the last day (inclusive) at
00:00 UTC. Their days are read in UTC, never in `TZ_FROM`: west of UTC that would be the day
before.

Essential fields (ids, section, timestamps, the recurrence rule, the dates) make a malformed entry
raise `MalformedEntry`; secondary ones (a reminder of an unknown unit, an odd colour) are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.locale_dates import (
    DateEvidence,
    DateFormat,
    choose_format,
    clock_of,
    matching_formats,
    parse_date,
)

_DAY = 86_400
_HEX_COLOUR = re.compile(r"#?([0-9a-fA-F]{6})")
_COMMENT_XML_ID = re.compile(r"EVENT_(\d+)_(.+)")
_MINUTES_PER = {"min": 1, "hour": 60, "day": 1440}


class MalformedEntry(ValueError):
    """The answer cannot be read as an entry; `field` names the part that is wrong."""

    def __init__(self, entry_id: str, field: str, problem: str) -> None:
        super().__init__(f"entry {entry_id or '?'}: {field}: {problem}")
        self.entry_id = entry_id
        self.field = field
        self.problem = problem


class AmbiguousDateFormat(MalformedEntry):
    """A date-only string reads as two different dates (`12/11/2024`: m/d/Y or d/m/Y) and nothing
    in the entry tells which: the caller passes the portal's format, learned from other entries."""


class Frequency(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    YEARLY = "YEARLY"


class Weekday(StrEnum):
    """In the order RRULE lines list them (Monday first)."""

    MO = "MO"
    TU = "TU"
    WE = "WE"
    TH = "TH"
    FR = "FR"
    SA = "SA"
    SU = "SU"


_WEEK_ORDER = {day: n for n, day in enumerate(Weekday)}


class Accessibility(StrEnum):
    BUSY = "busy"
    FREE = "free"
    QUEST = "quest"  # tentative
    ABSENT = "absent"


@dataclass(frozen=True)
class Recurrence:
    frequency: Frequency
    interval: int = 1
    weekdays: tuple[Weekday, ...] = ()  # Monday first, no repeats
    count: int | None = None
    until: date | None = None  # the last day an occurrence may fall on, inclusive


@dataclass(frozen=True)
class Attendee:
    user_id: str
    status: str = ""  # Y accepted, N declined, Q invited, H host (ATTENDEE_LIST)


@dataclass(frozen=True)
class Entry:
    id: str
    section_id: str
    cal_type: str
    owner_id: str
    name: str
    start: datetime  # UTC; all-day: the first day at 00:00 UTC
    end: datetime  # UTC; all-day: the last day (inclusive) at 00:00 UTC
    zone_from: str
    zone_to: str
    all_day: bool = False
    description: str = ""
    location: str = ""
    parent_id: str = ""
    recurrence: Recurrence | None = None
    exdates: tuple[date, ...] = ()  # sorted, no repeats
    series_id: str | None = None  # an occurrence edited on its own: its series (RECURRENCE_ID)
    original_date: date | None = None  # …: the day of the occurrence it replaces
    split_from: str | None = None  # a "this and following" series: the series it was cut from
    private: bool = False
    accessibility: Accessibility = Accessibility.BUSY
    colour: str = ""  # "#rrggbb" or ""
    reminders: tuple[int, ...] = ()  # minutes before the start, ascending
    attendees: tuple[Attendee, ...] = ()
    meeting_host: str = ""
    host_name: str = ""
    is_meeting: bool = False
    g_event_id: str = ""
    event_type: str = ""
    version: str = ""
    deleted: bool = False
    date_format: DateFormat | None = None  # the portal's format, when this entry tells it

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        return self.end.date()

    @property
    def is_series(self) -> bool:
        return self.recurrence is not None

    @property
    def is_occurrence(self) -> bool:
        """An occurrence of a series edited on its own: a separate entry without a rule."""
        return self.series_id is not None and self.recurrence is None

    @property
    def synced_from_google(self) -> bool:
        return bool(self.g_event_id)


def parse_entry(raw: Mapping[str, Any], date_format: DateFormat | None = None) -> Entry:
    """The entry in `raw`. `date_format` is the portal's format when the caller knows it; the
    entry's own evidence wins over it."""
    entry_id = _text(raw.get("ID"))
    reader = _Reader(entry_id, raw)
    if not entry_id:
        raise MalformedEntry("", "ID", "missing")
    all_day = _text(raw.get("DT_SKIP_TIME")).upper() == "Y"
    start_ts = reader.timestamp("DATE_FROM_TS_UTC")
    end_ts = reader.timestamp("DATE_TO_TS_UTC")
    if all_day:
        start, end = _utc_midnight(start_ts), _utc_midnight(end_ts)
    else:
        start, end = datetime.fromtimestamp(start_ts, UTC), datetime.fromtimestamp(end_ts, UTC)
    if end < start:
        raise MalformedEntry(entry_id, "DATE_TO_TS_UTC", "before DATE_FROM_TS_UTC")
    dates = _LocaleDates(entry_id, raw, start.date(), end.date(), date_format)
    zone_from = _zone(raw.get("TZ_FROM")) or _zone(raw.get("TZ_TO")) or "UTC"
    relations = _mapping(raw.get("RELATIONS"))
    series_id = _id(raw.get("RECURRENCE_ID"))
    comment = _COMMENT_XML_ID.fullmatch(_text(relations.get("COMMENT_XML_ID")))
    if series_id is None and comment is not None:
        series_id = comment.group(1)
    recurrence = reader.recurrence(dates)
    original_date = None
    if series_id is not None and recurrence is None:
        original_date = _original_date(entry_id, raw, comment, dates)
    return Entry(
        id=entry_id,
        section_id=reader.required("SECTION_ID"),
        cal_type=_text(raw.get("CAL_TYPE")),
        owner_id=_text(raw.get("OWNER_ID")),
        name=_text(raw.get("NAME")),
        start=start,
        end=end,
        zone_from=zone_from,
        zone_to=_zone(raw.get("TZ_TO")) or zone_from,
        all_day=all_day,
        description=_text(raw.get("DESCRIPTION")),
        location=_text(raw.get("LOCATION")),
        parent_id=_text(raw.get("PARENT_ID")),
        recurrence=recurrence,
        exdates=tuple(sorted({dates.read("EXDATE", text) for text in _exdate_texts(raw)})),
        series_id=series_id,
        original_date=original_date,
        split_from=_id(relations.get("ORIGINAL_RECURSION_ID")),
        private=_text(raw.get("PRIVATE_EVENT")).upper() == "Y",
        accessibility=_accessibility(raw.get("ACCESSIBILITY")),
        colour=_colour(raw.get("COLOR")),
        reminders=_reminders(raw.get("REMIND")),
        attendees=_attendees(raw),
        meeting_host=_text(raw.get("MEETING_HOST")),
        host_name=_host_name(raw.get("MEETING")),
        is_meeting=_flag(raw.get("IS_MEETING")),
        g_event_id=_text(raw.get("G_EVENT_ID")),
        event_type=_text(raw.get("EVENT_TYPE")),
        version=_text(raw.get("VERSION")),
        deleted=_text(raw.get("DELETED")).upper() == "Y",
        date_format=dates.chosen,
    )


class _LocaleDates:
    """Reads the entry's date-only strings in the format its evidence points to."""

    def __init__(
        self,
        entry_id: str,
        raw: Mapping[str, Any],
        first: date,
        last: date,
        known: DateFormat | None,
    ) -> None:
        self.entry_id = entry_id
        rule = _mapping(raw.get("RRULE"))
        evidence = [
            DateEvidence(_text(raw.get("DATE_FROM")), first),
            DateEvidence(_text(raw.get("DATE_TO")), last),
        ]
        until_text, until_ts = _until_text(rule), _optional_int(rule.get("UNTIL_TS"))
        if until_text and until_ts is not None:
            evidence.append(DateEvidence(until_text, _utc_midnight(until_ts).date()))
        # Date-only strings must parse too: `25/12/2024` rules out m/d/Y for the whole entry.
        only_dates = [*_exdate_texts(raw), until_text, _comment_date(raw)]
        evidence.extend(DateEvidence(text) for text in only_dates if text)
        self.candidates = matching_formats(evidence)
        clock = clock_of(_text(raw.get("DATE_FROM")))
        self.chosen = choose_format(self.candidates, known, clock)

    def read(self, field: str, text: str) -> date:
        readings = {parse_date(text, form) for form in self.candidates} - {None}
        if not readings:
            raise MalformedEntry(self.entry_id, field, f"{text!r} is not a date")
        if len(readings) == 1:
            found = next(iter(readings))
        elif self.chosen is not None:
            found = parse_date(text, self.chosen)
        else:
            raise AmbiguousDateFormat(
                self.entry_id,
                field,
                f"{text!r} reads as any of {sorted(map(str, readings))}; pass the portal's "
                f"date format ({' or '.join(sorted(self.candidates))})",
            )
        assert found is not None
        return found


class _Reader:
    def __init__(self, entry_id: str, raw: Mapping[str, Any]) -> None:
        self.entry_id = entry_id
        self.raw = raw

    def required(self, field: str) -> str:
        value = _text(self.raw.get(field))
        if not value:
            raise MalformedEntry(self.entry_id, field, "missing")
        return value

    def timestamp(self, field: str) -> int:
        value = _optional_int(self.raw.get(field))
        if value is None:
            raise MalformedEntry(self.entry_id, field, f"not a timestamp: {self.raw.get(field)!r}")
        return value

    def recurrence(self, dates: _LocaleDates) -> Recurrence | None:
        rule = self.raw.get("RRULE")
        if not rule:  # "" on entries that do not repeat
            return None
        if not isinstance(rule, Mapping):
            raise MalformedEntry(self.entry_id, "RRULE", f"not an object: {rule!r}")
        try:
            frequency = Frequency(_text(rule.get("FREQ")).upper())
        except ValueError:
            raise MalformedEntry(
                self.entry_id, "RRULE.FREQ", f"unknown: {rule.get('FREQ')!r}"
            ) from None
        interval = _optional_int(rule.get("INTERVAL")) or 1
        count = _optional_int(rule.get("COUNT")) or None
        if interval < 1 or (count is not None and count < 1):
            raise MalformedEntry(self.entry_id, "RRULE", "INTERVAL and COUNT must be positive")
        until = None
        if text := _until_text(rule):
            until = dates.read("RRULE.UNTIL", text)
        elif (until_ts := _optional_int(rule.get("UNTIL_TS"))) is not None:
            until = _utc_midnight(until_ts).date()
        return Recurrence(frequency, interval, self._weekdays(rule.get("BYDAY")), count, until)

    def _weekdays(self, value: object) -> tuple[Weekday, ...]:
        if isinstance(value, Mapping):
            names: Iterable[object] = value.values()
        elif isinstance(value, str):
            names = value.split(",")
        elif isinstance(value, list | tuple):
            names = value
        else:
            names = ()
        try:
            days = {Weekday(_text(name).strip().upper()) for name in names if _text(name).strip()}
        except ValueError:
            problem = f"unknown day in {value!r}"
            raise MalformedEntry(self.entry_id, "RRULE.BYDAY", problem) from None
        return tuple(sorted(days, key=_WEEK_ORDER.__getitem__))


def _original_date(
    entry_id: str, raw: Mapping[str, Any], comment: re.Match[str] | None, dates: _LocaleDates
) -> date:
    """The day of the occurrence an edited one replaces: from `COMMENT_XML_ID`
    (`EVENT_<series>_<locale date>`), else from `ORIGINAL_DATE_FROM` (a locale datetime)."""
    if comment is not None:
        return dates.read("RELATIONS.COMMENT_XML_ID", comment.group(2))
    original = _text(raw.get("ORIGINAL_DATE_FROM"))
    if original:
        return dates.read("ORIGINAL_DATE_FROM", original)
    raise MalformedEntry(
        entry_id, "RELATIONS.COMMENT_XML_ID", "an edited occurrence without its original date"
    )


def _utc_midnight(timestamp: int) -> datetime:
    """The UTC midnight nearest to `timestamp`: Bitrix24 writes all-day days as UTC midnights; a
    portal that wrote a local midnight instead (up to 12 h off) still gives the right day."""
    return datetime.fromtimestamp((timestamp + _DAY // 2) // _DAY * _DAY, UTC)


def _text(value: object) -> str:
    if value is None or isinstance(value, bool):
        return ""
    return str(value).strip()


def _id(value: object) -> str | None:
    text = _text(value)
    return text if text and text != "0" else None


def _optional_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = _text(value)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return None


def _flag(value: object) -> bool:
    return value is True or _text(value).upper() in ("Y", "1", "TRUE")


def _zone(value: object) -> str:
    """An IANA zone name the interpreter knows, or "" (an entry without one is read in UTC)."""
    name = _text(value)
    if not name:
        return ""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ""
    return name


def _until_text(rule: Mapping[str, Any]) -> str:
    return _text(rule.get("UNTIL")) or _text(rule.get("~UNTIL"))


def _exdate_texts(raw: Mapping[str, Any]) -> list[str]:
    value = raw.get("EXDATE")
    parts = value if isinstance(value, list) else _text(value).split(";")
    return [text for text in map(_text, parts) if text]


def _comment_date(raw: Mapping[str, Any]) -> str:
    relations = _mapping(raw.get("RELATIONS"))
    comment = _COMMENT_XML_ID.fullmatch(_text(relations.get("COMMENT_XML_ID")))
    return comment.group(2) if comment else ""


def _accessibility(value: object) -> Accessibility:
    try:
        return Accessibility(_text(value).lower())
    except ValueError:
        return Accessibility.BUSY


def _colour(value: object) -> str:
    match = _HEX_COLOUR.fullmatch(_text(value))
    return f"#{match.group(1).lower()}" if match else ""


def _reminders(value: object) -> tuple[int, ...]:
    minutes = set()
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, Mapping):
            continue
        unit = _MINUTES_PER.get(_text(item.get("type")).lower())
        count = _optional_int(item.get("count"))
        if unit is not None and count is not None and count >= 0:
            minutes.add(count * unit)
    return tuple(sorted(minutes))


def _attendees(raw: Mapping[str, Any]) -> tuple[Attendee, ...]:
    listed = raw.get("ATTENDEE_LIST")
    found: dict[str, Attendee] = {}
    if isinstance(listed, list):
        for item in listed:
            if isinstance(item, Mapping) and (user_id := _text(item.get("id"))):
                found.setdefault(user_id, Attendee(user_id, _text(item.get("status")).upper()))
    entities = raw.get("attendeesEntityList")
    if not found and isinstance(entities, list):
        for item in entities:
            if not isinstance(item, Mapping) or _text(item.get("entityId")) not in ("user", ""):
                continue
            if user_id := _text(item.get("id")):
                found.setdefault(user_id, Attendee(user_id))
    return tuple(found.values())


def _host_name(meeting: object) -> str:
    return _text(meeting.get("HOST_NAME")) if isinstance(meeting, Mapping) else ""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
