"""A Bitrix24 calendar entry read from what `calendar.event.getbyid` or `calendar.event.get`
returns (reference `_includes/calendar_event_fields.md`, NOTES §2.4), into the typed values of
`entry_values.py` (importable from here too); single fields are read by `entry_fields.py`.

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

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from bridge.entry_fields import (
    COMMENT_XML_ID,
    as_accessibility,
    as_colour,
    as_flag,
    as_id,
    as_int,
    as_mapping,
    as_text,
    as_zone,
    attendee_list,
    comment_date,
    exdate_texts,
    host_name,
    reminder_minutes,
    until_text,
    utc_midnight,
)
from bridge.entry_values import (
    Accessibility,
    AmbiguousDateFormat,
    Attendee,
    Entry,
    Frequency,
    MalformedEntry,
    Recurrence,
    Weekday,
)
from bridge.locale_dates import (
    DateEvidence,
    DateFormat,
    choose_format,
    clock_of,
    matching_formats,
    parse_date,
)

# The typed values are importable from here too, where callers have always found them.
__all__ = [
    "Accessibility",
    "AmbiguousDateFormat",
    "Attendee",
    "Entry",
    "Frequency",
    "MalformedEntry",
    "Recurrence",
    "Weekday",
    "parse_entry",
]

_WEEK_ORDER = {day: n for n, day in enumerate(Weekday)}


def parse_entry(raw: Mapping[str, Any], date_format: DateFormat | None = None) -> Entry:
    """The entry in `raw`. `date_format` is the portal's format when the caller knows it; the
    entry's own evidence wins over it."""
    entry_id = as_text(raw.get("ID"))
    if not entry_id:
        raise MalformedEntry("", "ID", "missing")
    reader = _Reader(entry_id, raw)
    all_day = as_text(raw.get("DT_SKIP_TIME")).upper() == "Y"
    start, end = reader.span(all_day)
    dates = _LocaleDates(entry_id, raw, start.date(), end.date(), date_format)
    zone_from = as_zone(raw.get("TZ_FROM")) or as_zone(raw.get("TZ_TO")) or "UTC"
    recurrence = reader.recurrence(dates)
    series_id, original_date = reader.series_link(recurrence, dates)
    return Entry(
        id=entry_id,
        section_id=reader.required("SECTION_ID"),
        cal_type=as_text(raw.get("CAL_TYPE")),
        owner_id=as_text(raw.get("OWNER_ID")),
        name=as_text(raw.get("NAME")),
        start=start,
        end=end,
        zone_from=zone_from,
        zone_to=as_zone(raw.get("TZ_TO")) or zone_from,
        all_day=all_day,
        description=as_text(raw.get("DESCRIPTION")),
        location=as_text(raw.get("LOCATION")),
        parent_id=as_text(raw.get("PARENT_ID")),
        recurrence=recurrence,
        exdates=tuple(sorted({dates.read("EXDATE", text) for text in exdate_texts(raw)})),
        series_id=series_id,
        original_date=original_date,
        split_from=as_id(as_mapping(raw.get("RELATIONS")).get("ORIGINAL_RECURSION_ID")),
        private=as_text(raw.get("PRIVATE_EVENT")).upper() == "Y",
        accessibility=as_accessibility(raw.get("ACCESSIBILITY")),
        colour=as_colour(raw.get("COLOR")),
        reminders=reminder_minutes(raw.get("REMIND")),
        attendees=attendee_list(raw),
        meeting_host=as_text(raw.get("MEETING_HOST")),
        host_name=host_name(raw.get("MEETING")),
        is_meeting=as_flag(raw.get("IS_MEETING")),
        g_event_id=as_text(raw.get("G_EVENT_ID")),
        event_type=as_text(raw.get("EVENT_TYPE")),
        version=as_text(raw.get("VERSION")),
        deleted=as_text(raw.get("DELETED")).upper() == "Y",
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
        rule = as_mapping(raw.get("RRULE"))
        evidence = [
            DateEvidence(as_text(raw.get("DATE_FROM")), first),
            DateEvidence(as_text(raw.get("DATE_TO")), last),
        ]
        until, until_ts = until_text(rule), as_int(rule.get("UNTIL_TS"))
        if until and until_ts is not None:
            evidence.append(DateEvidence(until, utc_midnight(until_ts).date()))
        # Date-only strings must parse too: `25/12/2024` rules out m/d/Y for the whole entry.
        only_dates = [*exdate_texts(raw), until, comment_date(raw)]
        evidence.extend(DateEvidence(text) for text in only_dates if text)
        self.candidates = matching_formats(evidence)
        clock = clock_of(as_text(raw.get("DATE_FROM")))
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
        value = as_text(self.raw.get(field))
        if not value:
            raise MalformedEntry(self.entry_id, field, "missing")
        return value

    def span(self, all_day: bool) -> tuple[datetime, datetime]:
        """Start and end in UTC, from the timestamps only; all-day: the days' UTC midnights."""
        start_ts = self.timestamp("DATE_FROM_TS_UTC")
        end_ts = self.timestamp("DATE_TO_TS_UTC")
        if all_day:
            start, end = utc_midnight(start_ts), utc_midnight(end_ts)
        else:
            start, end = datetime.fromtimestamp(start_ts, UTC), datetime.fromtimestamp(end_ts, UTC)
        if end < start:
            raise MalformedEntry(self.entry_id, "DATE_TO_TS_UTC", "before DATE_FROM_TS_UTC")
        return start, end

    def timestamp(self, field: str) -> int:
        value = as_int(self.raw.get(field))
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
            frequency = Frequency(as_text(rule.get("FREQ")).upper())
        except ValueError:
            raise MalformedEntry(
                self.entry_id, "RRULE.FREQ", f"unknown: {rule.get('FREQ')!r}"
            ) from None
        interval = as_int(rule.get("INTERVAL")) or 1
        count = as_int(rule.get("COUNT")) or None
        if interval < 1 or (count is not None and count < 1):
            raise MalformedEntry(self.entry_id, "RRULE", "INTERVAL and COUNT must be positive")
        until = None
        if text := until_text(rule):
            until = dates.read("RRULE.UNTIL", text)
        elif (until_ts := as_int(rule.get("UNTIL_TS"))) is not None:
            until = utc_midnight(until_ts).date()
        return Recurrence(frequency, interval, self._weekdays(rule.get("BYDAY")), count, until)

    def series_link(
        self, recurrence: Recurrence | None, dates: _LocaleDates
    ) -> tuple[str | None, date | None]:
        """The series an edited occurrence belongs to (`RECURRENCE_ID`, else the id in
        `RELATIONS.COMMENT_XML_ID`), and the day of the occurrence it replaces: from
        `COMMENT_XML_ID` (`EVENT_<series>_<locale date>`), else from `ORIGINAL_DATE_FROM` (a locale
        datetime)."""
        relations = as_mapping(self.raw.get("RELATIONS"))
        comment = COMMENT_XML_ID.fullmatch(as_text(relations.get("COMMENT_XML_ID")))
        series_id = as_id(self.raw.get("RECURRENCE_ID"))
        if series_id is None and comment is not None:
            series_id = comment.group(1)
        if series_id is None or recurrence is not None:
            return series_id, None
        if comment is not None:
            return series_id, dates.read("RELATIONS.COMMENT_XML_ID", comment.group(2))
        if original := as_text(self.raw.get("ORIGINAL_DATE_FROM")):
            return series_id, dates.read("ORIGINAL_DATE_FROM", original)
        raise MalformedEntry(
            self.entry_id,
            "RELATIONS.COMMENT_XML_ID",
            "an edited occurrence without its original date",
        )

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
            days = {
                Weekday(as_text(name).strip().upper()) for name in names if as_text(name).strip()
            }
        except ValueError:
            problem = f"unknown day in {value!r}"
            raise MalformedEntry(self.entry_id, "RRULE.BYDAY", problem) from None
        return tuple(sorted(days, key=_WEEK_ORDER.__getitem__))
