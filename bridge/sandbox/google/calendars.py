"""The emulator's `calendars` resource: create, read, change and delete secondary calendars.

A new calendar belongs to its creator (`dataOwner`), gets an owner ACL rule and a calendarList
entry, and spends one unit of the creator's creation budget. Deleting a calendar drops its events.
"""

from __future__ import annotations

import copy
import secrets
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.sandbox.google.calendar_list import subscribe
from bridge.sandbox.google.state import AclRule, Store
from bridge.sandbox.google.wire import (
    JSON,
    ApiError,
    ApiRequest,
    ApiResponse,
    json_body,
    non_empty_str,
)


def calendars_insert(store: Store, request: ApiRequest, user: str) -> ApiResponse:
    body = json_body(request)
    if not non_empty_str(body.get("summary")):
        raise ApiError(400, "required", "Missing title.")
    store.spend_creation_budget(user)
    calendar_id = f"c_{secrets.token_hex(32)}@group.calendar.google.com"
    calendar: JSON = {
        "kind": "calendar#calendar",
        "id": calendar_id,
        "timeZone": "UTC",
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    }
    _apply_calendar_fields(calendar, body)
    calendar["etag"] = store.next_etag()
    calendar["dataOwner"] = user
    store.state.calendars[calendar_id] = calendar
    owner_rule = AclRule(
        f"user:{user.lower()}",
        "user",
        user.lower(),
        "owner",
        store.next_etag(),
        send_notifications=False,
    )
    store.state.acl[calendar_id] = {owner_rule.id: owner_rule}
    subscribe(store, user, calendar_id)
    return ApiResponse(200, render_calendar(calendar))


def calendars_get(store: Store, request: ApiRequest, user: str, calendar_id: str) -> ApiResponse:
    return ApiResponse(200, render_calendar(store.calendar_for(user, calendar_id)))


def calendars_patch(store: Store, request: ApiRequest, user: str, calendar_id: str) -> ApiResponse:
    calendar = store.calendar_for(user, calendar_id, need="owner")
    body = json_body(request)
    if "summary" in body and not non_empty_str(body["summary"]):
        raise ApiError(400, "required", "Missing title.")
    _apply_calendar_fields(calendar, body)
    calendar["etag"] = store.next_etag()
    return ApiResponse(200, render_calendar(calendar))


def calendars_update(store: Store, request: ApiRequest, user: str, calendar_id: str) -> ApiResponse:
    calendar = store.calendar_for(user, calendar_id, need="owner")
    body = json_body(request)
    if not non_empty_str(body.get("summary")):
        raise ApiError(400, "required", "Missing title.")
    for name in ("description", "location", "conferenceProperties", "labelProperties"):
        calendar.pop(name, None)
    _apply_calendar_fields(calendar, body)
    calendar["etag"] = store.next_etag()
    return ApiResponse(200, render_calendar(calendar))


def calendars_delete(store: Store, request: ApiRequest, user: str, calendar_id: str) -> ApiResponse:
    calendar = store.calendar_for(user, calendar_id, need="owner")
    delete_calendar(store, calendar["id"])
    return ApiResponse(204)


def delete_calendar(store: Store, calendar_id: str) -> None:
    del store.state.calendars[calendar_id]
    store.state.acl.pop(calendar_id, None)
    store.state.events.pop(calendar_id, None)
    for entries in store.state.lists.values():
        if calendar_id in entries:
            entries[calendar_id].deleted = True
            entries[calendar_id].etag = store.next_etag()


def _apply_calendar_fields(calendar: JSON, body: JSON) -> None:
    for name in ("summary", "description", "location", "timeZone"):
        if name not in body:
            continue
        value = body[name]
        if value is None:
            calendar.pop(name, None)
        elif not isinstance(value, str):
            raise ApiError(400, "invalid", f"Invalid value for: {name}")
        else:
            calendar[name] = value
    if "timeZone" in body and body["timeZone"] is not None and not _known_zone(body["timeZone"]):
        raise ApiError(
            400, "timeZoneInvalid", "Invalid time zone definition for calendar.", "calendar"
        )
    for name in ("conferenceProperties", "labelProperties"):
        if isinstance(body.get(name), dict):
            calendar[name] = copy.deepcopy(body[name])


def render_calendar(calendar: JSON) -> JSON:
    order = (
        "kind",
        "etag",
        "id",
        "summary",
        "description",
        "location",
        "timeZone",
        "conferenceProperties",
        "labelProperties",
        "dataOwner",
    )
    rendered = {name: copy.deepcopy(calendar[name]) for name in order if name in calendar}
    rendered.update({k: copy.deepcopy(v) for k, v in calendar.items() if k not in rendered})
    return rendered


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
