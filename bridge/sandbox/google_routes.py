"""Route one Calendar v3 call to its handler, after the checks Google makes before any handler.

A call needs a live bearer token whose scopes allow the operation, spends the user's per-minute
request budget, and may not write while the user is in read-only (quota-exceeded) mode.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from bridge.sandbox.google_acl import (
    _acl_delete,
    _acl_get,
    _acl_insert,
    _acl_list,
    _acl_patch,
    _acl_update,
)
from bridge.sandbox.google_calendar_list import (
    _calendarlist_delete,
    _calendarlist_get,
    _calendarlist_insert,
    _calendarlist_list,
    _calendarlist_patch,
    _calendarlist_update,
    _colors_get,
)
from bridge.sandbox.google_calendars import (
    _calendars_delete,
    _calendars_get,
    _calendars_insert,
    _calendars_patch,
    _calendars_update,
)
from bridge.sandbox.google_state import _Store, _Token
from bridge.sandbox.google_wire import (
    _ApiError,
    _ApiRequest,
    _ApiResponse,
    _not_found,
    _quota_exceeded,
    _unauthorized,
)

_Handler = Callable[..., _ApiResponse]  # (store, request, user, *path ids)

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
_CAL_PATH, _ACL_PATH, _LIST_PATH = (
    ("calendars", "*"),
    ("calendars", "*", "acl"),
    ("users", "me", "calendarList"),
)

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
)

_HANDLERS: dict[str, _Handler] = {
    "calendars.insert": _calendars_insert,
    "calendars.get": _calendars_get,
    "calendars.patch": _calendars_patch,
    "calendars.update": _calendars_update,
    "calendars.delete": _calendars_delete,
    "acl.list": _acl_list,
    "acl.insert": _acl_insert,
    "acl.get": _acl_get,
    "acl.patch": _acl_patch,
    "acl.update": _acl_update,
    "acl.delete": _acl_delete,
    "calendarList.list": _calendarlist_list,
    "calendarList.insert": _calendarlist_insert,
    "calendarList.get": _calendarlist_get,
    "calendarList.patch": _calendarlist_patch,
    "calendarList.update": _calendarlist_update,
    "calendarList.delete": _calendarlist_delete,
    "colors.get": _colors_get,
}


def _call_api(store: _Store, request: _ApiRequest, token: _Token | None) -> _ApiResponse:
    segments = [unquote(segment) for segment in request.raw_path.split("/")]
    operation, scopes, args = _resolve(request.method, segments[3:])
    if token is None:
        raise _unauthorized()
    if scopes and not scopes & token.scopes:
        raise _ApiError(
            403,
            "insufficientPermissions",
            "Insufficient Permission",
            summary="Request had insufficient authentication scopes.",
        )
    user = token.user
    store.spend_request_budget(user)
    if request.method != "GET" and store.is_read_only(user):
        raise _quota_exceeded()
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
    raise _not_found()
