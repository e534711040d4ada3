"""Reading one field of a raw Bitrix24 entry (a dict from `calendar.event.getbyid` /
`calendar.event.get`), leniently: text from whatever type came, ids, integers in strings, flags,
zones, and the secondary fields (colour, reminders, attendees) with unknown parts dropped. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.entry_values import Accessibility, Attendee

DAY = 86_400
COMMENT_XML_ID = re.compile(r"EVENT_(\d+)_(.+)")  # RELATIONS: EVENT_<series>_<locale date>
_HEX_COLOUR = re.compile(r"#?([0-9a-fA-F]{6})")
_MINUTES_PER = {"min": 1, "hour": 60, "day": 1440}


def utc_midnight(timestamp: int) -> datetime:
    """The UTC midnight nearest to `timestamp`: Bitrix24 writes all-day days as UTC midnights; a
    portal that wrote a local midnight instead (up to 12 h off) still gives the right day."""
    return datetime.fromtimestamp((timestamp + DAY // 2) // DAY * DAY, UTC)


def as_text(value: object) -> str:
    if value is None or isinstance(value, bool):
        return ""
    return str(value).strip()


def as_id(value: object) -> str | None:
    text = as_text(value)
    return text if text and text != "0" else None


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = as_text(value)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return None


def as_flag(value: object) -> bool:
    return value is True or as_text(value).upper() in ("Y", "1", "TRUE")


def as_zone(value: object) -> str:
    """An IANA zone name the interpreter knows, or "" (an entry without one is read in UTC)."""
    name = as_text(value)
    if not name:
        return ""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ""
    return name


def until_text(rule: Mapping[str, Any]) -> str:
    return as_text(rule.get("UNTIL")) or as_text(rule.get("~UNTIL"))


def exdate_texts(raw: Mapping[str, Any]) -> list[str]:
    value = raw.get("EXDATE")
    parts = value if isinstance(value, list) else as_text(value).split(";")
    return [text for text in map(as_text, parts) if text]


def comment_date(raw: Mapping[str, Any]) -> str:
    relations = as_mapping(raw.get("RELATIONS"))
    comment = COMMENT_XML_ID.fullmatch(as_text(relations.get("COMMENT_XML_ID")))
    return comment.group(2) if comment else ""


def as_accessibility(value: object) -> Accessibility:
    try:
        return Accessibility(as_text(value).lower())
    except ValueError:
        return Accessibility.BUSY


def as_colour(value: object) -> str:
    match = _HEX_COLOUR.fullmatch(as_text(value))
    return f"#{match.group(1).lower()}" if match else ""


def reminder_minutes(value: object) -> tuple[int, ...]:
    minutes = set()
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, Mapping):
            continue
        unit = _MINUTES_PER.get(as_text(item.get("type")).lower())
        count = as_int(item.get("count"))
        if unit is not None and count is not None and count >= 0:
            minutes.add(count * unit)
    return tuple(sorted(minutes))


def attendee_list(raw: Mapping[str, Any]) -> tuple[Attendee, ...]:
    listed = raw.get("ATTENDEE_LIST")
    found: dict[str, Attendee] = {}
    if isinstance(listed, list):
        for item in listed:
            if isinstance(item, Mapping) and (user_id := as_text(item.get("id"))):
                found.setdefault(user_id, Attendee(user_id, as_text(item.get("status")).upper()))
    entities = raw.get("attendeesEntityList")
    if not found and isinstance(entities, list):
        for item in entities:
            if not isinstance(item, Mapping) or as_text(item.get("entityId")) not in ("user", ""):
                continue
            if user_id := as_text(item.get("id")):
                found.setdefault(user_id, Attendee(user_id))
    return tuple(found.values())


def host_name(meeting: object) -> str:
    return as_text(meeting.get("HOST_NAME")) if isinstance(meeting, Mapping) else ""


def as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
