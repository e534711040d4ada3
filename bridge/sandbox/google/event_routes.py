"""The emulator's `events` writes and reads by id: insert, get, patch, update, delete, move.

NOTES §13: a client id is unique per calendar, deleted events included (`409 duplicate`); a
deleted event stays `cancelled`, is still gettable, and `update` (or `patch` with
`status: confirmed`) brings it back, while a second delete is `410 deleted`. Writes need writer
access to the calendar (like the calendar routes, no access at all is `404 notFound`).
"""

from __future__ import annotations

from bridge.sandbox.google.events import (
    calendar_zone,
    events_of,
    merge_patch,
    new_event,
    new_event_id,
    render_event,
    touch,
    writable_fields,
    write_fields,
)
from bridge.sandbox.google.instances import editable_event, find_event, overrides_of
from bridge.sandbox.google.state import Store
from bridge.sandbox.google.wire import (
    JSON,
    ApiError,
    ApiRequest,
    ApiResponse,
    json_body,
    not_found,
)

_WRITER = "writer"
_READER = "reader"
_SEND_UPDATES = ("all", "externalOnly", "none")


def duplicate() -> ApiError:
    return ApiError(409, "duplicate", "The requested identifier already exists.")  # NOTES §6


def events_insert(store: Store, request: ApiRequest, user: str, calendar_id: str) -> ApiResponse:
    calendar = _writable_calendar(store, request, user, calendar_id)
    body = json_body(request)
    event_id = new_event_id(body)
    events = events_of(store, calendar["id"])
    if event_id in events:
        raise duplicate()
    event = new_event(store, calendar, user, event_id, body)
    write_fields(store, event, body, calendar_zone(calendar))
    store.spend_event_creation_budget(user)
    events[event_id] = event
    return ApiResponse(200, render_event(event))


def events_get(
    store: Store, request: ApiRequest, user: str, calendar_id: str, event_id: str
) -> ApiResponse:
    calendar = store.calendar_for(user, calendar_id, need=_READER)
    event = find_event(events_of(store, calendar["id"]), event_id, calendar_zone(calendar))
    if event is None:
        raise not_found()
    return ApiResponse(200, render_event(event))


def events_patch(
    store: Store, request: ApiRequest, user: str, calendar_id: str, event_id: str
) -> ApiResponse:
    calendar = _writable_calendar(store, request, user, calendar_id)
    return ApiResponse(200, patch_event(store, calendar, event_id, json_body(request)))


def events_update(
    store: Store, request: ApiRequest, user: str, calendar_id: str, event_id: str
) -> ApiResponse:
    calendar = _writable_calendar(store, request, user, calendar_id)
    events = events_of(store, calendar["id"])
    event = editable_event(events, event_id, calendar_zone(calendar))
    write_fields(store, event, json_body(request), calendar_zone(calendar))
    events[event["id"]] = event
    return ApiResponse(200, render_event(event))


def events_delete(
    store: Store, request: ApiRequest, user: str, calendar_id: str, event_id: str
) -> ApiResponse:
    calendar = _writable_calendar(store, request, user, calendar_id)
    delete_event(store, calendar, event_id)
    return ApiResponse(204)


def events_move(
    store: Store, request: ApiRequest, user: str, calendar_id: str, event_id: str
) -> ApiResponse:
    source = _writable_calendar(store, request, user, calendar_id)
    destination_id = request.query.get("destination")
    if not destination_id:
        raise ApiError(
            400, "required", "Required", location="destination", locationType="parameter"
        )
    destination = store.calendar_for(user, destination_id, need=_WRITER)
    from_events = events_of(store, source["id"])
    event = find_event(from_events, event_id, calendar_zone(source))
    if event is None or event["status"] == "cancelled":
        raise not_found()  # [inferred] a cancelled event cannot be moved
    if "recurringEventId" in event:
        raise ApiError(
            400, "cannotChangeOrganizerOfInstance", "Cannot change the organizer of an instance."
        )
    if destination["id"] == source["id"]:
        return ApiResponse(200, render_event(event))
    to_events = events_of(store, destination["id"])
    if event_id in to_events:
        raise duplicate()
    # [inferred] the source keeps no copy; the series' overrides travel with it.
    for moving in [event, *overrides_of(from_events, event_id)]:
        to_events[moving["id"]] = from_events.pop(moving["id"])
        moving["organizer"] = {
            "email": destination["id"],
            "displayName": destination.get("summary", ""),
            "self": True,
        }
        touch(store, moving)
    return ApiResponse(200, render_event(event))


def patch_event(store: Store, calendar: JSON, event_id: str, changes: JSON) -> JSON:
    """`events.patch` without the request around it, also for hand edits (the control API)."""
    events = events_of(store, calendar["id"])
    zone = calendar_zone(calendar)
    event = editable_event(events, event_id, zone)
    write_fields(store, event, merge_patch(writable_fields(event), changes), zone)
    events[event["id"]] = event
    return render_event(event)


def delete_event(store: Store, calendar: JSON, event_id: str) -> None:
    events = events_of(store, calendar["id"])
    event = editable_event(events, event_id, calendar_zone(calendar))
    if event["status"] == "cancelled":
        raise ApiError(410, "deleted", "Resource has been deleted")  # NOTES §6
    cancelled = [event]
    if event.get("recurrence"):  # [inferred] the series' overrides go with it
        cancelled += [o for o in overrides_of(events, event["id"]) if o["status"] != "cancelled"]
    for each in cancelled:
        each["status"] = "cancelled"
        touch(store, each)
    events[event["id"]] = event


def _writable_calendar(store: Store, request: ApiRequest, user: str, calendar_id: str) -> JSON:
    send_updates = request.query.get("sendUpdates")
    if send_updates is not None and send_updates not in _SEND_UPDATES:
        raise ApiError(
            400,
            "invalid",
            "Invalid value for: sendUpdates",
            location="sendUpdates",
            locationType="parameter",
        )
    return store.calendar_for(user, calendar_id, need=_WRITER)
