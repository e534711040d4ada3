"""Bitrix24 entries as `calendar.event.getbyid` returns them, for the entry unit tests.

`timed` and `all_day` write every field the way the reference shows it (NOTES §2.4, the doc
examples below): locale-formatted `DATE_FROM`/`DATE_TO` in the entry's wall time, instants in
`DATE_FROM_TS_UTC`/`DATE_TO_TS_UTC`, all-day days as UTC midnights with `DATE_TO` the last day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

DATETIME_FORMATS = {
    "en": "%m/%d/%Y %I:%M:%S %p",
    "de": "%d.%m.%Y %H:%M:%S",
    "br": "%d/%m/%Y %H:%M:%S",
    "iso": "%Y-%m-%d %H:%M:%S",
}
DATE_FORMATS = {"en": "%m/%d/%Y", "de": "%d.%m.%Y", "br": "%d/%m/%Y", "iso": "%Y-%m-%d"}


def locale_datetime(moment: datetime, locale: str) -> str:
    text = moment.strftime(DATETIME_FORMATS[locale])
    return text[:-2] + text[-2:].lower() if locale == "en" else text


def locale_date(day: date, locale: str) -> str:
    return day.strftime(DATE_FORMATS[locale])


def _base(entry_id: str, section_id: str, **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "ID": entry_id,
        "PARENT_ID": entry_id,
        "DELETED": "N",
        "CAL_TYPE": "user",
        "OWNER_ID": "1",
        "NAME": "Planning",
        "DESCRIPTION": "",
        "LOCATION": "",
        "PRIVATE_EVENT": "",
        "ACCESSIBILITY": "busy",
        "COLOR": "",
        "REMIND": [],
        "RRULE": "",
        "EXDATE": "",
        "G_EVENT_ID": "",
        "VERSION": "1",
        "SECTION_ID": section_id,
        "IS_MEETING": False,
        "MEETING_HOST": "1",
        "EVENT_TYPE": None,
    }
    raw.update(fields)
    return raw


def timed(
    start: str,
    minutes: int = 60,
    zone: str = "Europe/Berlin",
    locale: str = "en",
    *,
    entry_id: str = "100",
    section_id: str = "4",
    end_zone: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A timed entry starting at `start` ("YYYY-MM-DD HH:MM", wall time in `zone`)."""
    begin = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(zone))
    finish = datetime.fromtimestamp(begin.timestamp() + minutes * 60, ZoneInfo(end_zone or zone))
    computed = dict(
        DATE_FROM=locale_datetime(begin, locale),
        DATE_TO=locale_datetime(finish, locale),
        TZ_FROM=zone,
        TZ_TO=end_zone or zone,
        TZ_OFFSET_FROM=str(int(begin.utcoffset().total_seconds())),  # type: ignore[union-attr]
        TZ_OFFSET_TO=str(int(finish.utcoffset().total_seconds())),  # type: ignore[union-attr]
        DATE_FROM_TS_UTC=str(int(begin.timestamp())),
        DATE_TO_TS_UTC=str(int(finish.timestamp())),
        DT_SKIP_TIME="N",
        DT_LENGTH=minutes * 60,
    )
    return _base(entry_id, section_id, **{**computed, **fields})


def all_day(
    first: str,
    last: str | None = None,
    zone: str = "Europe/Riga",
    locale: str = "de",
    *,
    entry_id: str = "200",
    section_id: str = "4",
    **fields: Any,
) -> dict[str, Any]:
    """An all-day entry from `first` to `last` (inclusive), "YYYY-MM-DD", as Bitrix24 writes it."""
    first_day = date.fromisoformat(first)
    last_day = date.fromisoformat(last or first)
    midnight = time(tzinfo=UTC)
    offset = datetime.combine(first_day, time(), ZoneInfo(zone)).utcoffset()
    assert offset is not None
    computed = dict(
        DATE_FROM=locale_datetime(datetime.combine(first_day, time()), locale),
        DATE_TO=locale_datetime(datetime.combine(last_day, time()), locale),
        TZ_FROM=zone,
        TZ_TO=zone,
        TZ_OFFSET_FROM=str(int(offset.total_seconds())),
        TZ_OFFSET_TO=str(int(offset.total_seconds())),
        DATE_FROM_TS_UTC=str(int(datetime.combine(first_day, midnight).timestamp())),
        DATE_TO_TS_UTC=str(int(datetime.combine(last_day, midnight).timestamp())),
        DT_SKIP_TIME="Y",
        DT_LENGTH=((last_day - first_day).days + 1) * 86_400,
    )
    return _base(entry_id, section_id, **{**computed, **fields})


def rrule(
    freq: str,
    *,
    days: tuple[str, ...] = (),
    interval: int = 1,
    count: int | None = None,
    until: str | None = None,
    locale: str = "en",
) -> dict[str, Any]:
    rule: dict[str, Any] = {"FREQ": freq, "INTERVAL": interval}
    if days:
        rule["BYDAY"] = {day: day for day in days}
    if count is not None:
        rule["COUNT"] = count
    if until is not None:
        day = date.fromisoformat(until)
        rule["UNTIL"] = rule["~UNTIL"] = locale_date(day, locale)
        rule["UNTIL_TS"] = int(datetime.combine(day, time(tzinfo=UTC)).timestamp())
    return rule


# calendar-event/calendar-event-get.md, "Response Handling", the first result, verbatim.
DOC_EVENT_GET: dict[str, Any] = {
    "ID": "1265",
    "PARENT_ID": "1265",
    "DELETED": "N",
    "CAL_TYPE": "user",
    "OWNER_ID": "1",
    "NAME": "Event Name",
    "DATE_FROM": "12/11/2024 05:59:00 pm",
    "DATE_TO": "12/11/2024 06:59:00 pm",
    "ORIGINAL_DATE_FROM": None,
    "TZ_FROM": "Europe/Berlin",
    "TZ_TO": "Europe/Berlin",
    "TZ_OFFSET_FROM": "7200",
    "TZ_OFFSET_TO": "7200",
    "DATE_FROM_TS_UTC": "1733932740",
    "DATE_TO_TS_UTC": "1733936340",
    "DT_SKIP_TIME": "N",
    "DT_LENGTH": 3600,
    "EVENT_TYPE": None,
    "CREATED_BY": "1",
    "DATE_CREATE": "12/05/2024 01:48:41 pm",
    "TIMESTAMP_X": "12/05/2024 01:48:41 pm",
    "DESCRIPTION": "Description for event",
    "PRIVATE_EVENT": "",
    "ACCESSIBILITY": "free",
    "IMPORTANCE": "normal",
    "IS_MEETING": True,
    "MEETING_STATUS": "H",
    "MEETING_HOST": "1",
    "MEETING": {
        "HOST_NAME": "User Name",
        "NOTIFY": False,
        "REINVITE": False,
        "ALLOW_INVITE": False,
        "HIDE_GUESTS": False,
        "MEETING_CREATOR": 1,
        "LANGUAGE_ID": "de",
        "MAIL_FROM": "",
    },
    "LOCATION": "test location",
    "REMIND": [{"type": "min", "count": 50}],
    "COLOR": "#9dcf00",
    "RRULE": {
        "FREQ": "WEEKLY",
        "BYDAY": {"MO": "MO", "WE": "WE"},
        "INTERVAL": 1,
        "UNTIL": "12/24/2024",
        "~UNTIL": "12/24/2024",
        "UNTIL_TS": 1734998400,
    },
    "EXDATE": "11/28/2024;12/05/2024;12/12/2024;12/19/2024;12/26/2024",
    "DAV_XML_ID": "20241211T155900Z-534185204b362e9be7e261e92ccd9078@b24evo.lan",
    "G_EVENT_ID": "",
    "DAV_EXCH_LABEL": "",
    "CAL_DAV_LABEL": "",
    "VERSION": "1",
    "ATTENDEES_CODES": ["U1"],
    "RECURRENCE_ID": 1272,
    "RELATIONS": {"ORIGINAL_RECURSION_ID": 1271, "COMMENT_XML_ID": "EVENT_1271_12/23/2024"},
    "SECTION_ID": "4",
    "SYNC_STATUS": None,
    "UF_CRM_CAL_EVENT": ["CO_1", "L_5"],
    "UF_WEBDAV_CAL_EVENT": False,
    "SECTION_DAV_XML_ID": None,
    "DATE_FROM_FORMATTED": "Wed Dec 11 2024 17:59:00",
    "DATE_TO_FORMATTED": "Wed Dec 11 2024 18:59:00",
    "SECT_ID": "4",
    "ATTENDEE_LIST": [{"id": 1, "entryId": "1265", "status": "H"}],
    "COLLAB_ID": None,
    "~RRULE_DESCRIPTION": "every week on: Mon, Wed, from 12/11/2024 to 12/24/2024",
    "attendeesEntityList": [{"entityId": "user", "id": 1}],
    "~DESCRIPTION": "Description for event",
    "~USER_OFFSET_FROM": 7200,
    "~USER_OFFSET_TO": 7200,
}

# resource/calendar-resource-booking-list.md, the first booking, verbatim.
DOC_BOOKING: dict[str, Any] = {
    "ID": "1408",
    "PARENT_ID": "1408",
    "DELETED": "N",
    "CAL_TYPE": "resource",
    "OWNER_ID": "0",
    "NAME": "Booking",
    "DATE_FROM": "20.12.2024 00:00:00",
    "DATE_TO": "21.12.2024 00:00:00",
    "TZ_FROM": "Europe/Riga",
    "TZ_TO": "Europe/Riga",
    "TZ_OFFSET_FROM": "7200",
    "TZ_OFFSET_TO": "7200",
    "DATE_FROM_TS_UTC": "1734652800",
    "DATE_TO_TS_UTC": "1734739200",
    "DT_SKIP_TIME": "Y",
    "DT_LENGTH": 172800,
    "EVENT_TYPE": "#resourcebooking#",
    "CREATED_BY": "1",
    "DATE_CREATE": "18.12.2024 13:55:35",
    "TIMESTAMP_X": "18.12.2024 13:55:35",
    "DESCRIPTION": "Service: some",
    "IS_MEETING": False,
    "MEETING_STATUS": "Y",
    "MEETING_HOST": "0",
    "VERSION": "1",
    "SECTION_ID": "198",
    "DATE_FROM_FORMATTED": "Fri Dec 20 2024",
    "DATE_TO_FORMATTED": "Sat Dec 21 2024",
    "SECT_ID": "198",
    "RESOURCE_BOOKING_ID": "10",
}
