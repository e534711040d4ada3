"""The emulator's `acl` resource: who may see or change a calendar, managed by its owners.

A deleted rule stays as a tombstone with role `none`; nobody may demote the calendar's own owner.
"""

from __future__ import annotations

from typing import Any

from bridge.sandbox.google_state import _ROLES, _AclRule, _Store
from bridge.sandbox.google_wire import (
    JSON,
    _ApiError,
    _ApiRequest,
    _ApiResponse,
    _flag,
    _json_body,
    _non_empty_str,
    _not_found,
    _paginate,
)

_SCOPE_TYPES = ("default", "user", "group", "domain")


def _acl_list(store: _Store, request: _ApiRequest, user: str, calendar_id: str) -> _ApiResponse:
    calendar = store.calendar_for(user, calendar_id, need="owner")
    show_deleted = _flag(request.query, "showDeleted") or "syncToken" in request.query
    rules = store.state.acl.get(calendar["id"], {}).values()
    items = [rule.render() for rule in rules if show_deleted or not rule.deleted]
    page = _paginate(items, request.query)
    return _ApiResponse(200, {"kind": "calendar#acl", "etag": store.next_etag(), **page})


def _acl_get(
    store: _Store, request: _ApiRequest, user: str, calendar_id: str, rule_id: str
) -> _ApiResponse:
    return _ApiResponse(200, _live_rule(store, user, calendar_id, rule_id).render())


def _acl_insert(store: _Store, request: _ApiRequest, user: str, calendar_id: str) -> _ApiResponse:
    calendar = store.calendar_for(user, calendar_id, need="owner")
    body = _json_body(request)
    role = _valid_role(body.get("role"))
    scope = body.get("scope")
    if not isinstance(scope, dict) or not scope.get("type"):
        raise _ApiError(400, "required", "Missing scope type.")
    scope_type = scope["type"]
    if scope_type not in _SCOPE_TYPES:
        raise _ApiError(400, "invalid", "Invalid scope type value.")
    value = scope.get("value")
    if scope_type != "default" and not _non_empty_str(value):
        raise _ApiError(400, "required", "Missing scope value.")
    scope_value = None if scope_type == "default" else str(value).lower()
    rule_id = "default" if scope_value is None else f"{scope_type}:{scope_value}"
    _guard_own_rule(calendar, rule_id, role)
    notify = _flag(request.query, "sendNotifications", default=True)
    rules = store.state.acl.setdefault(calendar["id"], {})
    rule = rules.get(rule_id)
    if rule is None:
        rule = _AclRule(rule_id, scope_type, scope_value, role, store.next_etag(), notify)
        rules[rule_id] = rule
    else:
        rule.role, rule.deleted, rule.send_notifications = role, False, notify
        rule.etag = store.next_etag()
    return _ApiResponse(200, rule.render())


def _acl_patch(
    store: _Store, request: _ApiRequest, user: str, calendar_id: str, rule_id: str
) -> _ApiResponse:
    return _change_rule(store, request, user, calendar_id, rule_id, role_required=False)


def _acl_update(
    store: _Store, request: _ApiRequest, user: str, calendar_id: str, rule_id: str
) -> _ApiResponse:
    return _change_rule(store, request, user, calendar_id, rule_id, role_required=True)


def _acl_delete(
    store: _Store, request: _ApiRequest, user: str, calendar_id: str, rule_id: str
) -> _ApiResponse:
    rule = _live_rule(store, user, calendar_id, rule_id)
    _guard_own_rule(store.calendar_for(user, calendar_id), rule.id, "none")
    rule.deleted = True
    rule.etag = store.next_etag()
    return _ApiResponse(204)


def _change_rule(
    store: _Store,
    request: _ApiRequest,
    user: str,
    calendar_id: str,
    rule_id: str,
    *,
    role_required: bool,
) -> _ApiResponse:
    rule = _live_rule(store, user, calendar_id, rule_id)
    body = _json_body(request)
    if "role" in body or role_required:
        role = _valid_role(body.get("role"))
        _guard_own_rule(store.calendar_for(user, calendar_id), rule.id, role)
        rule.role = role
    rule.send_notifications = _flag(request.query, "sendNotifications", default=True)
    rule.etag = store.next_etag()
    return _ApiResponse(200, rule.render())


def _live_rule(store: _Store, user: str, calendar_id: str, rule_id: str) -> _AclRule:
    calendar = store.calendar_for(user, calendar_id, need="owner")
    rule = store.state.acl.get(calendar["id"], {}).get(rule_id)
    if rule is None or rule.deleted:
        raise _not_found()
    return rule


def _guard_own_rule(calendar: JSON, rule_id: str, role: str) -> None:
    if rule_id == f"user:{str(calendar.get('dataOwner', '')).lower()}" and role != "owner":
        raise _ApiError(
            403, "cannotChangeOwnAcl", "Cannot change your own access level.", "calendar"
        )


def _valid_role(role: Any) -> str:
    if not role:
        raise _ApiError(400, "required", "Missing role.")
    if role not in _ROLES:
        raise _ApiError(400, "invalid", "Invalid role value.")
    return str(role)
