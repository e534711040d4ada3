"""Request values → typed entry attributes (`entries.py`), for the REST methods and the control API.

Names follow `calendar.event.add` / `calendar.event.update`
(api-reference/calendar/calendar-event/calendar-event-add.md): `rrule` {FREQ, COUNT, INTERVAL,
BYDAY, UNTIL}, `remind` [{type, count}], `private_event`, `accessibility`, `importance`, `color`,
`location`, `attendees`, `description`. The control API also takes `private`, `exdates`,
`g_event_id` and `event_type`, which only Bitrix24 itself sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.sandbox.bitrix.entries import (
    FREQUENCIES,
    WEEKDAYS,
    AllDay,
    EntryError,
    Rule,
    Timed,
    When,
)
from bridge.sandbox.bitrix.entry_view import parse_date
from bridge.sandbox.bitrix.values import as_bool, as_int, as_list, as_text

_ACCESSIBILITY = ("busy", "absent", "quest", "free")
_IMPORTANCE = ("high", "normal", "low")
_REMIND_TYPES = ("min", "hour", "day")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise EntryError(f"unknown time zone {name!r}") from exc


def parse_when(
    start: Any, end: Any, *, zone_from: str, zone_to: str = "", all_day: bool | None = None
) -> When:
    """Dates (`Y-m-d`, `end` the last day, inclusive) make an all-day entry; ISO datetimes a
    timed one, read in `zone_from` / `zone_to` when they carry no offset."""
    start_text, end_text = as_text(start), as_text(end)
    if all_day is None:
        all_day = len(start_text) == 10
    tz_from = zone(zone_from or "UTC")
    tz_to = zone(zone_to) if zone_to else tz_from
    try:
        if all_day:
            first, last = date.fromisoformat(start_text[:10]), date.fromisoformat(end_text[:10])
            if last < first:
                raise EntryError("the end is before the start")
            return AllDay(first=first, last=last, zone=tz_from)
        begins = _instant(start_text, tz_from)
        ends = _instant(end_text, tz_to)
    except ValueError as exc:
        raise EntryError(str(exc)) from exc
    if ends < begins:
        raise EntryError("the end is before the start")
    return Timed(start=begins, end=ends, zone_from=tz_from, zone_to=tz_to)


def _instant(text: str, tz: ZoneInfo) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def parse_rule(raw: Any, locale: str) -> Rule | None:
    if not isinstance(raw, Mapping) or not raw:
        return None
    given = {str(key).upper(): value for key, value in raw.items()}
    freq = as_text(given.get("FREQ")).upper()
    if freq not in FREQUENCIES:
        raise EntryError(f"rrule FREQ must be one of {sorted(FREQUENCIES)}")
    byday = given.get("BYDAY")
    listed = as_text(byday).split(",") if isinstance(byday, str) else as_list(byday)
    days = [code for code in (as_text(d).upper() for d in listed) if code]
    if any(d not in WEEKDAYS for d in days):
        raise EntryError(f"rrule BYDAY must name days of {sorted(WEEKDAYS)}")
    until_text = as_text(given.get("UNTIL"))
    try:
        until = parse_date(locale, until_text) if until_text else None
    except ValueError as exc:
        raise EntryError(str(exc)) from exc
    return Rule(
        freq=freq,
        interval=max(1, as_int(given.get("INTERVAL")) or 1),
        byday=tuple(days),
        count=as_int(given.get("COUNT")) or None,
        until=until,
    )


def parse_remind(raw: Any) -> list[dict[str, Any]]:
    reminders = []
    for item in as_list(raw):
        if not isinstance(item, Mapping):
            raise EntryError("remind items are objects {type, count}")
        kind, count = as_text(item.get("type")), as_int(item.get("count"))
        if kind not in _REMIND_TYPES or count is None:
            raise EntryError(f"remind type must be one of {list(_REMIND_TYPES)} with a count")
        reminders.append({"type": kind, "count": count})
    return reminders


def optional_attrs(body: Mapping[str, Any], locale: str) -> dict[str, Any]:  # noqa: C901
    """The optional fields present in `body`, typed; absent keys are left out."""
    attrs: dict[str, Any] = {}
    for key in ("name", "description", "color", "location", "g_event_id"):
        if key in body:
            attrs[key] = as_text(body[key])
    for key in ("private_event", "private"):
        if key in body:
            attrs["private"] = as_bool(body[key])
    if "accessibility" in body:
        attrs["accessibility"] = _choice(body["accessibility"], _ACCESSIBILITY, "accessibility")
    if "importance" in body:
        attrs["importance"] = _choice(body["importance"], _IMPORTANCE, "importance")
    if "rrule" in body:
        attrs["rule"] = parse_rule(body["rrule"], locale)
    if "remind" in body:
        attrs["remind"] = parse_remind(body["remind"])
    if "attendees" in body:
        attrs["attendees"] = [u for u in (as_int(v) for v in as_list(body["attendees"])) if u]
    if "event_type" in body:
        attrs["event_type"] = as_text(body["event_type"]) or None
    if "exdates" in body:
        try:
            days = {parse_date(locale, as_text(d)) for d in as_list(body["exdates"])}
        except ValueError as exc:
            raise EntryError(str(exc)) from exc
        attrs["exdates"] = sorted(days)
    return attrs


def _choice(value: Any, allowed: tuple[str, ...], name: str) -> str:
    text = as_text(value).lower()
    if text not in allowed:
        raise EntryError(f"{name} must be one of {list(allowed)}")
    return text
