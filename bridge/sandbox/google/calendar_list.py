"""The emulator's `calendarList` and `colors` resources: each user's subscriptions to calendars.

An entry outlives its calendar as a tombstone (`deleted: true`), shown only to sync and
`showDeleted` listings; colours come from Google's fixed palette or, with `colorRgbFormat`, as RGB.
"""

from __future__ import annotations

import copy
from typing import Any, TypeGuard

from bridge.sandbox.google.state import ROLES, Store, Subscription
from bridge.sandbox.google.wire import (
    JSON,
    ApiError,
    ApiRequest,
    ApiResponse,
    flag,
    json_body,
    non_empty_str,
    not_found,
    paginate,
)

_CALENDAR_HEX = (
    "#ac725e #d06b64 #f83a22 #fa573c #ff7537 #ffad46 #42d692 #16a765 #7bd148 #b3dc6c #fbe983 "
    "#fad165 #92e1c0 #9fe1e7 #9fc6e7 #4986e7 #9a9cff #b99aff #c2c2c2 #cabdbf #cca6ac #f691b2 "
    "#cd74e6 #a47ae2"
)
_EVENT_HEX = (
    "#a4bdfc #7ae7bf #dbadff #ff887c #fbd75b #ffb878 #46d6db #e1e1e1 #5484ed #51b749 #dc2127"
)
_CALENDAR_COLORS = {str(n): colour for n, colour in enumerate(_CALENDAR_HEX.split(), start=1)}
EVENT_COLORS = {str(n): colour for n, colour in enumerate(_EVENT_HEX.split(), start=1)}
_FOREGROUND = "#1d1d1d"


def subscribe(store: Store, user: str, calendar_id: str) -> Subscription:
    entries = store.state.lists.setdefault(user, {})
    color_id = str(len(entries) % len(_CALENDAR_COLORS) + 1)
    entries.pop(calendar_id, None)
    entries[calendar_id] = Subscription(etag=store.next_etag(), color_id=color_id)
    return entries[calendar_id]


def render_entry(store: Store, user: str, calendar_id: str, entry: Subscription) -> JSON:
    if entry.deleted or calendar_id not in store.state.calendars:
        return {
            "kind": "calendar#calendarListEntry",
            "etag": entry.etag,
            "id": calendar_id,
            "deleted": True,
        }
    calendar = store.state.calendars[calendar_id]
    role = store.role(calendar_id, user)
    rendered: JSON = {
        "kind": "calendar#calendarListEntry",
        "etag": entry.etag,
        "id": calendar_id,
        "summary": calendar["summary"],
    }
    for name in ("description", "location", "timeZone"):
        if name in calendar:
            rendered[name] = calendar[name]
    if entry.summary_override is not None:
        rendered["summaryOverride"] = entry.summary_override
    rendered["colorId"] = entry.color_id
    rendered["backgroundColor"] = entry.background or _CALENDAR_COLORS[entry.color_id]
    rendered["foregroundColor"] = entry.foreground or _FOREGROUND
    if entry.hidden:
        rendered["hidden"] = True
    if entry.selected:
        rendered["selected"] = True
    rendered["accessRole"] = role
    rendered["defaultReminders"] = copy.deepcopy(entry.default_reminders)
    if role == "owner":
        rendered["notificationSettings"] = copy.deepcopy(
            entry.notification_settings or {"notifications": []}
        )
    if "conferenceProperties" in calendar:
        rendered["conferenceProperties"] = copy.deepcopy(calendar["conferenceProperties"])
    if "dataOwner" in calendar:
        rendered["dataOwner"] = calendar["dataOwner"]
    return rendered


def _live_entry(store: Store, user: str, calendar_id: str) -> Subscription:
    entry = store.state.lists.get(user, {}).get(calendar_id)
    if entry is None or entry.deleted or calendar_id not in store.state.calendars:
        raise not_found()
    if store.role(calendar_id, user) == "none":
        raise not_found()
    return entry


def calendarlist_list(store: Store, request: ApiRequest, user: str) -> ApiResponse:
    query = request.query
    sync = "syncToken" in query
    show_deleted = sync or flag(query, "showDeleted")
    show_hidden = sync or flag(query, "showHidden")
    min_role = query.get("minAccessRole")
    if min_role is not None and min_role not in ROLES[1:]:
        raise ApiError(
            400,
            "invalid",
            "Invalid value for: minAccessRole",
            location="minAccessRole",
            locationType="parameter",
        )
    items: list[JSON] = []
    for calendar_id, entry in store.state.lists.get(user, {}).items():
        if entry.deleted or calendar_id not in store.state.calendars:
            if show_deleted:
                items.append(render_entry(store, user, calendar_id, entry))
            continue
        role = store.role(calendar_id, user)
        if role == "none" or (entry.hidden and not show_hidden):
            continue
        if min_role is not None and ROLES.index(role) < ROLES.index(min_role):
            continue
        items.append(render_entry(store, user, calendar_id, entry))
    page = paginate(items, query)
    return ApiResponse(200, {"kind": "calendar#calendarList", "etag": store.next_etag(), **page})


def calendarlist_get(store: Store, request: ApiRequest, user: str, calendar_id: str) -> ApiResponse:
    entry = _live_entry(store, user, calendar_id)
    return ApiResponse(200, render_entry(store, user, calendar_id, entry))


def calendarlist_insert(store: Store, request: ApiRequest, user: str) -> ApiResponse:
    body = json_body(request)
    calendar_id = body.get("id")
    if not non_empty_str(calendar_id):
        raise ApiError(400, "required", "Required", location="id", locationType="other")
    calendar = store.calendar_for(user, calendar_id)
    existing = store.state.lists.get(user, {}).get(calendar["id"])
    entry = existing if existing and not existing.deleted else subscribe(store, user, calendar_id)
    _apply_entry_fields(entry, body, rgb=flag(request.query, "colorRgbFormat"))
    entry.etag = store.next_etag()
    return ApiResponse(200, render_entry(store, user, calendar_id, entry))


def calendarlist_patch(
    store: Store, request: ApiRequest, user: str, calendar_id: str
) -> ApiResponse:
    entry = _live_entry(store, user, calendar_id)
    _apply_entry_fields(entry, json_body(request), rgb=flag(request.query, "colorRgbFormat"))
    entry.etag = store.next_etag()
    return ApiResponse(200, render_entry(store, user, calendar_id, entry))


def calendarlist_update(
    store: Store, request: ApiRequest, user: str, calendar_id: str
) -> ApiResponse:
    entry = _live_entry(store, user, calendar_id)
    body = json_body(request)
    entry.hidden, entry.selected, entry.summary_override = False, False, None
    entry.default_reminders, entry.notification_settings = [], None
    _apply_entry_fields(entry, body, rgb=flag(request.query, "colorRgbFormat"))
    entry.etag = store.next_etag()
    return ApiResponse(200, render_entry(store, user, calendar_id, entry))


def calendarlist_delete(
    store: Store, request: ApiRequest, user: str, calendar_id: str
) -> ApiResponse:
    entry = _live_entry(store, user, calendar_id)
    entry.deleted = True
    entry.etag = store.next_etag()
    return ApiResponse(204)


def colors_get(store: Store, request: ApiRequest, user: str) -> ApiResponse:
    def palette(colors: dict[str, str]) -> JSON:
        return {
            key: {"background": value, "foreground": _FOREGROUND} for key, value in colors.items()
        }

    return ApiResponse(
        200,
        {
            "kind": "calendar#colors",
            "updated": "2012-02-14T00:00:00.000Z",
            "calendar": palette(_CALENDAR_COLORS),
            "event": palette(EVENT_COLORS),
        },
    )


def _apply_entry_fields(entry: Subscription, body: JSON, *, rgb: bool) -> None:  # noqa: C901  # one branch per writable field
    if "colorId" in body:
        if body["colorId"] not in _CALENDAR_COLORS:
            raise ApiError(400, "invalid", "Invalid color ID.")
        entry.color_id, entry.background, entry.foreground = body["colorId"], None, None
    if rgb and ("backgroundColor" in body or "foregroundColor" in body):
        background, foreground = body.get("backgroundColor"), body.get("foregroundColor")
        if not _is_hex_colour(background) or not _is_hex_colour(foreground):
            raise ApiError(400, "invalid", "Invalid RGB color value.")
        entry.background, entry.foreground = background.lower(), foreground.lower()
        entry.color_id = _nearest_colour_id(entry.background)
    for name, attribute in (("hidden", "hidden"), ("selected", "selected")):
        if name in body:
            if not isinstance(body[name], bool):
                raise ApiError(400, "invalid", f"Invalid value for: {name}")
            setattr(entry, attribute, body[name])
    if "summaryOverride" in body:
        override = body["summaryOverride"]
        if override is not None and not isinstance(override, str):
            raise ApiError(400, "invalid", "Invalid value for: summaryOverride")
        entry.summary_override = override
    if "defaultReminders" in body:
        reminders = body["defaultReminders"] or []
        for reminder in reminders:
            minutes = reminder.get("minutes") if isinstance(reminder, dict) else None
            if (
                not isinstance(reminder, dict)
                or reminder.get("method") not in ("email", "popup")
                or not isinstance(minutes, int)
                or not 0 <= minutes <= 40320
            ):
                raise ApiError(400, "invalid", "Invalid value for: defaultReminders")
        entry.default_reminders = copy.deepcopy(reminders)
    if isinstance(body.get("notificationSettings"), dict):
        entry.notification_settings = copy.deepcopy(body["notificationSettings"])


def _is_hex_colour(value: Any) -> TypeGuard[str]:
    if not isinstance(value, str) or len(value) != 7 or not value.startswith("#"):
        return False
    try:
        int(value[1:], 16)
    except ValueError:
        return False
    return True


def _nearest_colour_id(colour: str) -> str:
    def rgb(value: str) -> tuple[int, int, int]:
        return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)

    target = rgb(colour)
    return min(
        _CALENDAR_COLORS,
        key=lambda key: sum(
            (a - b) ** 2 for a, b in zip(rgb(_CALENDAR_COLORS[key]), target, strict=True)
        ),
    )
