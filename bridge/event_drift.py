"""How a Google event differs from the body the bridge wants for it, from plain values, no I/O.

Only the fields the bridge writes count (summary, description, location, start and end with their
zones, recurrence, transparency, visibility, colour, reminders, status); Google's own additions
(creator, etag, htmlLink, …) never do. Google writes a timed `dateTime` with an offset of its
choice (the event's zone, or UTC), so instants are compared, not strings; an all-day time is its
`date`. A reconciliation that finds a difference repairs it: Bitrix24 is the source of truth, so a
hand edit in Google is overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.event_body import EventBody, EventTime


@dataclass(frozen=True)
class StrayEvent:
    """An event that carries the portal's mark but mirrors no entry the bridge keeps there: made
    by the bridge for an entry that is gone (its mapping lost or closed), deleted by a
    reconciliation."""

    calendar_id: str
    event_id: str
    entry_id: str  # its `b24_entry` property ("" when it has none)
    summary: str = ""

    def describe(self, portal_key: str) -> str:
        entry = f" (entry {self.entry_id})" if self.entry_id else ""
        return (
            f"{portal_key}: stray event {self.event_id}{entry} {self.summary!r}: "
            f"delete from {self.calendar_id}"
        )


def drift(body: EventBody, observed: Mapping[str, Any]) -> tuple[str, ...]:
    """The managed fields in which Google's `observed` event differs from `body` (empty: none)."""
    wanted = body.to_api()
    differing = [
        name
        for name, default in _PLAIN_FIELDS.items()
        if (observed.get(name) or default) != (wanted.get(name) or default)
    ]
    if observed.get("colorId") != wanted.get("colorId"):
        differing.append("colorId")
    for name, time in (("start", body.start), ("end", body.end)):
        if not same_time(time, observed.get(name)):
            differing.append(name)
    if sorted(observed.get("recurrence") or []) != sorted(body.recurrence):
        differing.append("recurrence")
    popups = tuple(("popup", minutes) for minutes in sorted(body.reminders))
    if _reminders(observed.get("reminders")) != (False, popups):
        differing.append("reminders")
    return tuple(differing)


_PLAIN_FIELDS: dict[str, str] = {  # field → the value Google leaves out
    "status": "confirmed",
    "summary": "",
    "description": "",
    "location": "",
    "transparency": "opaque",
    "visibility": "default",
}


def same_time(wanted: EventTime, observed: object) -> bool:
    """An all-day day, or a timed instant with its zone, as Google shows it."""
    if not isinstance(observed, Mapping):
        return False
    if wanted.day is not None:
        return observed.get("date") == wanted.day.isoformat() and not observed.get("dateTime")
    assert wanted.moment is not None
    try:
        moment = datetime.fromisoformat(str(observed.get("dateTime") or ""))
    except ValueError:
        return False
    if moment.tzinfo is None or observed.get("date"):
        return False
    return moment == wanted.moment and observed.get("timeZone") == wanted.time_zone


def _reminders(value: object) -> tuple[bool, tuple[tuple[str, int], ...]]:
    """(useDefault, the overrides as (method, minutes), sorted) of Google's `reminders`."""
    if not isinstance(value, Mapping):
        return True, ()  # Google's default when the field is absent
    overrides = sorted(
        (str(each.get("method", "")), int(each.get("minutes", 0)))
        for each in value.get("overrides") or []
        if isinstance(each, Mapping)
    )
    return bool(value.get("useDefault", False)), tuple(overrides)
