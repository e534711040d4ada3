"""Route one Calendar v3 call to its handler, after the checks Google makes before any handler.

A call needs a live bearer token whose scopes allow the operation, spends the user's per-minute
request budget (event writes included, NOTES §13 "Limits"), and may not write while the user is in
read-only (quota-exceeded) mode.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from bridge.sandbox.google.acl import (
    acl_delete,
    acl_get,
    acl_insert,
    acl_list,
    acl_patch,
    acl_update,
)
from bridge.sandbox.google.calendar_list import (
    calendarlist_delete,
    calendarlist_get,
    calendarlist_insert,
    calendarlist_list,
    calendarlist_patch,
    calendarlist_update,
    colors_get,
)
from bridge.sandbox.google.calendars import (
    calendars_delete,
    calendars_get,
    calendars_insert,
    calendars_patch,
    calendars_update,
)
from bridge.sandbox.google.event_list import events_instances, events_list
from bridge.sandbox.google.event_routes import (
    events_delete,
    events_get,
    events_insert,
    events_move,
    events_patch,
    events_update,
)
from bridge.sandbox.google.state import Store, Token
from bridge.sandbox.google.wire import (
    ApiError,
    ApiRequest,
    ApiResponse,
    not_found,
    quota_exceeded,
    unauthorized,
)

_Handler = Callable[..., ApiResponse]  # (store, request, user, *path ids)

_AUTH = "https://www.googleapis.com/auth/calendar"
_FULL, _APP, _CALS, _CALS_RO = (
    _AUTH,
    f"{_AUTH}.app.created",
    f"{_AUTH}.calendars",
    f"{_AUTH}.calendars.readonly",
)
_RO, _LIST, _LIST_RO = (
    f"{_AUTH}.readonly",
    f"{_AUTH}.calendarlist",
    f"{_AUTH}.calendarlist.readonly",
)
_ACLS, _ACLS_RO = f"{_AUTH}.acls", f"{_AUTH}.acls.readonly"
_EVENTS, _EVENTS_RO, _EVENTS_OWNED = (
    f"{_AUTH}.events",
    f"{_AUTH}.events.readonly",
    f"{_AUTH}.events.owned",
)
_CAL_PATH, _ACL_PATH, _LIST_PATH = (
    ("calendars", "*"),
    ("calendars", "*", "acl"),
    ("users", "me", "calendarList"),
)
_EVENTS_PATH, _EVENT_PATH = ("calendars", "*", "events"), ("calendars", "*", "events", "*")
_EVENT_WRITE = frozenset({_FULL, _APP, _EVENTS, _EVENTS_OWNED})
_EVENT_READ = _EVENT_WRITE | {_RO, _EVENTS_RO}

# (method, path under /calendar/v3 with "*" for an id, operation, the scopes that allow it)
_OPERATIONS: tuple[tuple[str, tuple[str, ...], str, frozenset[str]], ...] = (
    ("POST", ("calendars",), "calendars.insert", frozenset({_FULL, _APP, _CALS})),
    ("GET", _CAL_PATH, "calendars.get", frozenset({_FULL, _APP, _CALS, _CALS_RO, _RO})),
    ("PATCH", _CAL_PATH, "calendars.patch", frozenset({_FULL, _APP, _CALS})),
    ("PUT", _CAL_PATH, "calendars.update", frozenset({_FULL, _APP, _CALS})),
    ("DELETE", _CAL_PATH, "calendars.delete", frozenset({_FULL, _APP, _CALS})),
    ("GET", _ACL_PATH, "acl.list", frozenset({_FULL, _ACLS, _ACLS_RO})),
    ("POST", _ACL_PATH, "acl.insert", frozenset({_FULL, _ACLS})),
    ("GET", (*_ACL_PATH, "*"), "acl.get", frozenset({_FULL, _ACLS, _ACLS_RO})),
    ("PATCH", (*_ACL_PATH, "*"), "acl.patch", frozenset({_FULL, _ACLS})),
    ("PUT", (*_ACL_PATH, "*"), "acl.update", frozenset({_FULL, _ACLS})),
    ("DELETE", (*_ACL_PATH, "*"), "acl.delete", frozenset({_FULL, _ACLS})),
    ("GET", _LIST_PATH, "calendarList.list", frozenset({_FULL, _LIST, _LIST_RO, _RO})),
    ("POST", _LIST_PATH, "calendarList.insert", frozenset({_FULL, _LIST})),
    ("GET", (*_LIST_PATH, "*"), "calendarList.get", frozenset({_FULL, _APP, _LIST, _LIST_RO, _RO})),
    ("PATCH", (*_LIST_PATH, "*"), "calendarList.patch", frozenset({_FULL, _APP, _LIST})),
    ("PUT", (*_LIST_PATH, "*"), "calendarList.update", frozenset({_FULL, _APP, _LIST})),
    ("DELETE", (*_LIST_PATH, "*"), "calendarList.delete", frozenset({_FULL, _APP, _LIST})),
    ("GET", ("colors",), "colors.get", frozenset()),
    ("GET", _EVENTS_PATH, "events.list", _EVENT_READ),
    ("POST", _EVENTS_PATH, "events.insert", _EVENT_WRITE),
    ("GET", _EVENT_PATH, "events.get", _EVENT_READ),
    ("PATCH", _EVENT_PATH, "events.patch", _EVENT_WRITE),
    ("PUT", _EVENT_PATH, "events.update", _EVENT_WRITE),
    ("DELETE", _EVENT_PATH, "events.delete", _EVENT_WRITE),
    ("GET", (*_EVENT_PATH, "instances"), "events.instances", _EVENT_READ),
    ("POST", (*_EVENT_PATH, "move"), "events.move", _EVENT_WRITE),
)

_HANDLERS: dict[str, _Handler] = {
    "calendars.insert": calendars_insert,
    "calendars.get": calendars_get,
    "calendars.patch": calendars_patch,
    "calendars.update": calendars_update,
    "calendars.delete": calendars_delete,
    "acl.list": acl_list,
    "acl.insert": acl_insert,
    "acl.get": acl_get,
    "acl.patch": acl_patch,
    "acl.update": acl_update,
    "acl.delete": acl_delete,
    "calendarList.list": calendarlist_list,
    "calendarList.insert": calendarlist_insert,
    "calendarList.get": calendarlist_get,
    "calendarList.patch": calendarlist_patch,
    "calendarList.update": calendarlist_update,
    "calendarList.delete": calendarlist_delete,
    "colors.get": colors_get,
    "events.list": events_list,
    "events.insert": events_insert,
    "events.get": events_get,
    "events.patch": events_patch,
    "events.update": events_update,
    "events.delete": events_delete,
    "events.instances": events_instances,
    "events.move": events_move,
}


def call_api(store: Store, request: ApiRequest, token: Token | None) -> ApiResponse:
    segments = [unquote(segment) for segment in request.raw_path.split("/")]
    operation, scopes, args = _resolve(request.method, segments[3:])
    if token is None:
        raise unauthorized()
    if scopes and not scopes & token.scopes:
        raise ApiError(
            403,
            "insufficientPermissions",
            "Insufficient Permission",
            summary="Request had insufficient authentication scopes.",
        )
    user = token.user
    store.spend_request_budget(user)
    if request.method != "GET" and store.is_read_only(user):
        raise quota_exceeded()
    return _HANDLERS[operation](store, request, user, *args)


def _resolve(method: str, segments: list[str]) -> tuple[str, frozenset[str], list[str]]:
    for op_method, pattern, operation, scopes in _OPERATIONS:
        if op_method != method or len(pattern) != len(segments):
            continue
        args: list[str] = []
        for expected, actual in zip(pattern, segments, strict=True):
            if expected == "*":
                if not actual:
                    break
                args.append(actual)
            elif expected != actual:
                break
        else:
            return operation, scopes, args
    raise not_found()
