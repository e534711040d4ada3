"""An entry as `calendar.event.getbyid` / `calendar.event.get` show it, in the portal's locale.

Key order and value types follow the answer examples of
`api-reference/calendar/calendar-event/calendar-event-get-by-id.md`; all-day values follow the
booking example of `api-reference/calendar/resource/calendar-resource-booking-list.md`.
Locale formats (the site's FORMAT_DATE / FORMAT_DATETIME): `en` `m/d/Y` and `m/d/Y h:i:s a`
(`12/11/2024 05:59:00 pm`, the get-by-id example), `de` / `ru` `d.m.Y` and `d.m.Y H:i:s`
(`20.12.2024 00:00:00`, the booking example), `br` `d/m/Y` and `d/m/Y H:i:s` [inferred from the
portal's Portuguese site settings].
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time
from typing import Any

from bridge.sandbox.bitrix.entries import AllDay, Entry, Rule, When

_DATE = {"en": "%m/%d/%Y", "de": "%d.%m.%Y", "ru": "%d.%m.%Y", "br": "%d/%m/%Y"}


def render_date(locale: str, day: date) -> str:
    return day.strftime(_DATE[locale])


def render_datetime(locale: str, wall: datetime) -> str:
    """`wall` is shown as it is (its zone is the caller's choice)."""
    if locale == "en":  # PHP's `h:i:s a`: 12-hour clock, lower-case am/pm
        hour = wall.hour % 12 or 12
        suffix = "am" if wall.hour < 12 else "pm"
        return f"{render_date(locale, wall.date())} {hour:02d}:{wall:%M:%S} {suffix}"
    return f"{render_date(locale, wall.date())} {wall:%H:%M:%S}"


def parse_date(locale: str, text: str) -> date:
    """A date a caller sends: ISO `Y-m-d` (the docs' examples) or the portal's date format."""
    for pattern in ("%Y-%m-%d", _DATE[locale]):
        try:
            return datetime.strptime(text.strip()[:10], pattern).date()
        except ValueError:
            continue
    raise ValueError(f"not a date: {text!r}")


def entry_row(
    entry: Entry,
    *,
    cal_type: str,
    owner_id: int,
    locale: str,
    host_name: str = "",
    occurrence: tuple[int, When] | None = None,
) -> dict[str, Any]:
    """One row; `occurrence` (index, when) renders one occurrence of an expanded series: its own
    dates and `RINDEX`, the series' ID and RRULE (CCalendarEvent::ParseRecursion) [inferred]."""
    when = entry.when if occurrence is None else occurrence[1]
    row: dict[str, Any] = {
        "ID": str(entry.id),
        "PARENT_ID": str(entry.id),
        "DELETED": "Y" if entry.deleted else "N",
        "CAL_TYPE": cal_type,
        "OWNER_ID": str(owner_id),
        "NAME": entry.name,
        **_dates(when, locale),
        **_details(entry, locale, host_name),
        **_relations_and_section(entry, locale),
        **_formatted(when),
        **_trailing_fields(entry),
    }
    row["ORIGINAL_DATE_FROM"] = _original_date_from(entry, locale)
    if occurrence is not None:
        row["RINDEX"] = occurrence[0]
    return row


def _details(entry: Entry, locale: str, host_name: str) -> dict[str, Any]:
    """EVENT_TYPE … VERSION: who made it and when, its texts, the meeting, the recurrence."""
    meeting = bool(entry.attendees)
    return {
        "EVENT_TYPE": entry.event_type,
        "CREATED_BY": str(entry.created_by),
        "DATE_CREATE": render_datetime(locale, _utc_wall(entry.created)),
        "TIMESTAMP_X": render_datetime(locale, _utc_wall(entry.modified)),
        "DESCRIPTION": entry.description,
        "PRIVATE_EVENT": "Y" if entry.private else "",
        "ACCESSIBILITY": entry.accessibility,
        "IMPORTANCE": entry.importance,
        "IS_MEETING": meeting,
        "MEETING_STATUS": "H" if meeting else "Y",
        "MEETING_HOST": str(entry.created_by if meeting else 0),
        "MEETING": _meeting(entry, host_name) if meeting else None,
        "LOCATION": entry.location,
        "REMIND": [dict(item) for item in entry.remind],
        "COLOR": entry.color,
        "RRULE": _rrule(entry.rule, locale) if entry.rule else "",
        "EXDATE": ";".join(render_date(locale, day) for day in entry.exdates),
        "DAV_XML_ID": _dav_xml_id(entry),
        "G_EVENT_ID": entry.g_event_id,
        "DAV_EXCH_LABEL": "",
        "CAL_DAV_LABEL": "",
        "VERSION": str(entry.version),
    }


def _relations_and_section(entry: Entry, locale: str) -> dict[str, Any]:
    """ATTENDEES_CODES … SECTION_DAV_XML_ID: attendees' codes, the series it came from, its
    section."""
    meeting = bool(entry.attendees)
    return {
        "ATTENDEES_CODES": [f"U{user}" for user in _people(entry)] if meeting else None,
        "RECURRENCE_ID": entry.recurrence_id,
        "RELATIONS": _relations(entry, locale),
        "SECTION_ID": str(entry.section_id),
        "SYNC_STATUS": None,
        "UF_CRM_CAL_EVENT": False,
        "UF_WEBDAV_CAL_EVENT": False,
        "SECTION_DAV_XML_ID": None,
    }


def _trailing_fields(entry: Entry) -> dict[str, Any]:
    """SECT_ID … ~DESCRIPTION, after the formatted dates."""
    meeting = bool(entry.attendees)
    return {
        "SECT_ID": str(entry.section_id),
        "ATTENDEE_LIST": _attendee_list(entry) if meeting else [],
        "COLLAB_ID": None,
        "attendeesEntityList": [{"entityId": "user", "id": user} for user in _people(entry)]
        if meeting
        else [],
        "~DESCRIPTION": entry.description,
    }


def _dates(when: When, locale: str) -> dict[str, Any]:
    if isinstance(when, AllDay):
        # DATE_TO is the last day, DT_LENGTH days x 86400, the stamps UTC midnights of the days
        # (calendar-resource-booking-list.md); offsets of the zone on those days.
        first = datetime.combine(when.first, time())
        last = datetime.combine(when.last, time())
        return {
            "DATE_FROM": render_datetime(locale, first),
            "DATE_TO": render_datetime(locale, last),
            "TZ_FROM": when.zone.key,
            "TZ_TO": when.zone.key,
            "TZ_OFFSET_FROM": str(_offset(first.replace(tzinfo=when.zone))),
            "TZ_OFFSET_TO": str(_offset(last.replace(tzinfo=when.zone))),
            "DATE_FROM_TS_UTC": str(int(first.replace(tzinfo=UTC).timestamp())),
            "DATE_TO_TS_UTC": str(int(last.replace(tzinfo=UTC).timestamp())),
            "DT_SKIP_TIME": "Y",
            "DT_LENGTH": ((when.last - when.first).days + 1) * 86400,
        }
    # Timed: DATE_FROM / DATE_TO in the wall time of TZ_FROM / TZ_TO (get-by-id example).
    start, end = when.start.astimezone(when.zone_from), when.end.astimezone(when.zone_to)
    return {
        "DATE_FROM": render_datetime(locale, start),
        "DATE_TO": render_datetime(locale, end),
        "TZ_FROM": when.zone_from.key,
        "TZ_TO": when.zone_to.key,
        "TZ_OFFSET_FROM": str(_offset(start)),
        "TZ_OFFSET_TO": str(_offset(end)),
        "DATE_FROM_TS_UTC": str(int(when.start.timestamp())),
        "DATE_TO_TS_UTC": str(int(when.end.timestamp())),
        "DT_SKIP_TIME": "N",
        "DT_LENGTH": int((when.end - when.start).total_seconds()),
    }


def _formatted(when: When) -> dict[str, str]:
    """`Wed Dec 11 2024 17:59:00`, `Fri Dec 20 2024` (both examples; English in any locale)."""
    if isinstance(when, AllDay):
        return {
            "DATE_FROM_FORMATTED": when.first.strftime("%a %b %d %Y"),
            "DATE_TO_FORMATTED": when.last.strftime("%a %b %d %Y"),
        }
    start, end = when.start.astimezone(when.zone_from), when.end.astimezone(when.zone_to)
    return {
        "DATE_FROM_FORMATTED": start.strftime("%a %b %d %Y %H:%M:%S"),
        "DATE_TO_FORMATTED": end.strftime("%a %b %d %Y %H:%M:%S"),
    }


def _rrule(rule: Rule, locale: str) -> dict[str, Any]:
    """FREQ, BYDAY as a map, INTERVAL, COUNT when given, UNTIL / ~UNTIL in the locale's date
    format and UNTIL_TS its UTC midnight (get-by-id example: `12/24/2024`, 1734998400)."""
    rendered: dict[str, Any] = {"FREQ": rule.freq}
    if rule.byday:
        rendered["BYDAY"] = {code: code for code in rule.byday}
    rendered["INTERVAL"] = rule.interval
    if rule.count is not None:
        rendered["COUNT"] = rule.count
    if rule.until is not None:
        until = render_date(locale, rule.until)
        rendered.update({"UNTIL": until, "~UNTIL": until})
        rendered["UNTIL_TS"] = int(datetime.combine(rule.until, time(), UTC).timestamp())
    return rendered


def _relations(entry: Entry, locale: str) -> dict[str, Any] | None:
    relations: dict[str, Any] = {}
    if entry.original_recursion_id is not None:
        relations["ORIGINAL_RECURSION_ID"] = entry.original_recursion_id
    if entry.recurrence_id is not None and entry.original_day is not None:
        day = render_date(locale, entry.original_day)
        relations["COMMENT_XML_ID"] = f"EVENT_{entry.recurrence_id}_{day}"
    return relations or None


def _original_date_from(entry: Entry, locale: str) -> str | None:
    """The edited occurrence's original start, in the series' wall time (kept aware in it)."""
    return None if entry.original_start is None else render_datetime(locale, entry.original_start)


def _meeting(entry: Entry, host_name: str) -> dict[str, Any]:
    return {
        "HOST_NAME": host_name,
        "NOTIFY": False,
        "REINVITE": False,
        "ALLOW_INVITE": False,
        "HIDE_GUESTS": False,
        "MEETING_CREATOR": entry.created_by,
        "LANGUAGE_ID": "en",
        "MAIL_FROM": "",
    }


def _people(entry: Entry) -> list[int]:
    return [entry.created_by, *[user for user in entry.attendees if user != entry.created_by]]


def _attendee_list(entry: Entry) -> list[dict[str, Any]]:
    return [
        {"id": user, "entryId": str(entry.id), "status": "H" if user == entry.created_by else "Q"}
        for user in _people(entry)
    ]


def _offset(wall: datetime) -> int:
    delta = wall.utcoffset()
    return 0 if delta is None else int(delta.total_seconds())


def _utc_wall(instant: datetime) -> datetime:
    """DATE_CREATE / TIMESTAMP_X: the doc example matches the answer's UTC `date_start`."""
    return instant.astimezone(UTC)


def _dav_xml_id(entry: Entry) -> str:
    digest = hashlib.md5(str(entry.id).encode(), usedforsecurity=False).hexdigest()
    return f"{entry.created:%Y%m%dT%H%M%SZ}-{digest}@bitrix24.emulator"
