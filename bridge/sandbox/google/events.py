"""The emulator's event records: the fields an event keeps, checked as Google checks them.

NOTES §13: client ids in base32hex, fields `summary`, `description`, `location`, `start`, `end`,
`recurrence`, `transparency`, `visibility`, `colorId` (the event palette of `colors.get`),
`reminders` (`useDefault` or at most 5 overrides), `extendedProperties.private/shared`, `status`.
Events live in `state.events[calendarId]`; an instance override is a record of its own, stored
under its instance id with `recurringEventId` and `originalStartTime`.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
from typing import Any
from zoneinfo import ZoneInfo

from bridge.sandbox.google.calendar_list import EVENT_COLORS
from bridge.sandbox.google.event_times import check_span, parse_when, updated_stamp, zone_named
from bridge.sandbox.google.recurrence import check_recurrence
from bridge.sandbox.google.state import Store
from bridge.sandbox.google.wire import JSON, ApiError

_ID = re.compile(r"^[0-9a-v]{5,1024}$")  # NOTES §13 "Client ids": base32hex, 5 to 1024
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"
_TEXT = ("summary", "description", "location")
_CHOICES = {
    "status": ("confirmed", "tentative", "cancelled"),
    "transparency": ("opaque", "transparent"),
    "visibility": ("default", "public", "private", "confidential"),
}
# What a client may write; everything else is the server's or ignored [inferred].
WRITABLE = (
    *_TEXT,
    "colorId",
    "start",
    "end",
    "recurrence",
    *_CHOICES,
    "reminders",
    "extendedProperties",
    "sequence",
)
_TIMING = ("start", "end", "recurrence")
_MAX_REMINDERS = 5


def calendar_zone(calendar: JSON) -> ZoneInfo:
    return zone_named(str(calendar.get("timeZone", "UTC"))) or ZoneInfo("UTC")


def events_of(store: Store, calendar_id: str) -> dict[str, JSON]:
    return store.state.events.setdefault(calendar_id, {})


def new_event_id(body: JSON) -> str:
    event_id = body.get("id")
    if event_id is None:
        return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))
    if not isinstance(event_id, str) or not _ID.match(event_id):
        raise ApiError(400, "invalid", "Invalid resource id value.")  # [inferred] wording
    return event_id


def new_event(store: Store, calendar: JSON, user: str, event_id: str, body: JSON) -> JSON:
    """An event as `events.insert` stores it, before its fields are written."""
    stamp = updated_stamp()
    ical_uid = body.get("iCalUID")
    eid = base64.urlsafe_b64encode(f"{event_id} {calendar['id']}".encode()).decode().rstrip("=")
    return {
        "kind": "calendar#event",
        "etag": store.next_etag(),
        "id": event_id,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
        "created": stamp,
        "updated": stamp,
        "creator": {"email": user},
        "organizer": {
            "email": calendar["id"],
            "displayName": calendar.get("summary", ""),
            "self": True,
        },
        "iCalUID": ical_uid if isinstance(ical_uid, str) else f"{event_id}@google.com",
        "sequence": 0,
        "reminders": {"useDefault": True},
        "eventType": "default",
    }


def writable_fields(event: JSON) -> JSON:
    return {name: copy.deepcopy(event[name]) for name in WRITABLE if name in event}


def merge_patch(current: JSON, changes: JSON) -> JSON:
    """Patch semantics: objects merge field by field, `null` clears, arrays and values replace."""
    merged = copy.deepcopy(current)
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        elif isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = merge_patch(merged[name], value)
        else:
            merged[name] = copy.deepcopy(value)
    return merged


def write_fields(store: Store, event: JSON, fields: JSON, zone: ZoneInfo) -> None:
    """Replace every writable field of `event` by `fields`, after checking them all."""
    if "recurringEventId" in event:
        fields = {name: value for name, value in fields.items() if name != "recurrence"}
    checked = _checked(fields, zone)
    sequence = checked.pop("sequence", event["sequence"])
    if sequence < event["sequence"]:
        raise ApiError(
            400,
            "invalidSequenceValue",  # [inferred]
            "Invalid sequence value. The specified sequence number is below the current "
            "sequence number of the resource.",
        )
    timing_changed = any(event.get(name) != checked.get(name) for name in _TIMING)
    if sequence == event["sequence"] and timing_changed and "start" in event:
        sequence += 1  # [inferred] a new time or rule is a new iCalendar revision
    for name in WRITABLE:
        event.pop(name, None)
    event.update(checked)
    event["sequence"] = sequence
    event.setdefault("status", "confirmed")
    event.setdefault("reminders", {"useDefault": True})
    touch(store, event)


def touch(store: Store, event: JSON) -> None:
    event["etag"] = store.next_etag()
    event["updated"] = updated_stamp()


def render_event(event: JSON) -> JSON:
    return copy.deepcopy(event)


def _checked(fields: JSON, zone: ZoneInfo) -> JSON:
    checked: JSON = {}
    for name in _TEXT:
        if fields.get(name) is not None:
            checked[name] = _string(fields[name], name)
    for name, allowed in _CHOICES.items():
        if fields.get(name) is not None:
            if fields[name] not in allowed:
                raise ApiError(400, "invalid", f"Invalid value for: {name}")  # [inferred]
            checked[name] = fields[name]
    if fields.get("colorId") is not None:
        if fields["colorId"] not in EVENT_COLORS:
            raise ApiError(400, "invalid", "Invalid color ID.")  # as calendarList says it
        checked["colorId"] = fields["colorId"]
    checked.update(_timing(fields, zone))
    if fields.get("reminders") is not None:
        checked["reminders"] = _reminders(fields["reminders"])
    if fields.get("extendedProperties") is not None:
        checked["extendedProperties"] = _extended_properties(fields["extendedProperties"])
    if fields.get("sequence") is not None:
        if not isinstance(fields["sequence"], int):
            raise ApiError(400, "invalid", "Invalid value for: sequence")
        checked["sequence"] = fields["sequence"]
    return checked


def _timing(fields: JSON, zone: ZoneInfo) -> JSON:
    start = parse_when(fields.get("start"), "start")
    end = parse_when(fields.get("end"), "end")
    check_span(start, end)
    timing = {"start": copy.deepcopy(fields["start"]), "end": copy.deepcopy(fields["end"])}
    if fields.get("recurrence"):
        check_recurrence(fields["recurrence"], start, zone)
        timing["recurrence"] = list(fields["recurrence"])
    return timing


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ApiError(400, "invalid", f"Invalid value for: {name}")
    return value


def _reminders(value: Any) -> JSON:
    if not isinstance(value, dict):
        raise ApiError(400, "invalid", "Invalid value for: reminders")
    use_default = bool(value.get("useDefault", False))
    overrides = value.get("overrides") or []
    if not isinstance(overrides, list):
        raise ApiError(400, "invalid", "Invalid value for: reminders.overrides")
    if use_default and overrides:
        raise ApiError(
            400,
            "cannotUseDefaultRemindersAndSpecifyOverride",
            "Cannot specify both default reminders and overrides at the same time.",
        )
    if len(overrides) > _MAX_REMINDERS:
        raise ApiError(400, "tooManyReminders", "Too many reminders.")  # [inferred] wording
    for reminder in overrides:
        minutes = reminder.get("minutes") if isinstance(reminder, dict) else None
        if (
            not isinstance(reminder, dict)
            or reminder.get("method") not in ("email", "popup")
            or not isinstance(minutes, int)
            or not 0 <= minutes <= 40320
        ):
            raise ApiError(400, "invalid", "Invalid reminder.")  # [inferred] wording
    rendered: JSON = {"useDefault": use_default}
    if overrides:
        rendered["overrides"] = copy.deepcopy(overrides)
    return rendered


def _extended_properties(value: Any) -> JSON:
    if not isinstance(value, dict) or set(value) - {"private", "shared"}:
        raise ApiError(400, "invalid", "Invalid value for: extendedProperties")
    checked: JSON = {}
    for scope, properties in value.items():
        if properties is None:
            continue
        if not isinstance(properties, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in properties.items()
        ):
            raise ApiError(400, "invalid", f"Invalid value for: extendedProperties.{scope}")
        if properties:
            checked[scope] = dict(properties)
    return checked
