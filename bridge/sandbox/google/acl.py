"""The emulator's `acl` resource: who may see or change a calendar, managed by its owners.

A deleted rule stays as a tombstone with role `none`; nobody may demote the calendar's own owner.
"""

from __future__ import annotations

from typing import Any

from bridge.sandbox.google.state import ROLES, AclRule, Store
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

_SCOPE_TYPES = ("default", "user", "group", "domain")


def acl_list(store: Store, request: ApiRequest, user: str, calendar_id: str) -> ApiResponse:
    calendar = store.calendar_for(user, calendar_id, need="owner")
    show_deleted = flag(request.query, "showDeleted") or "syncToken" in request.query
    rules = store.state.acl.get(calendar["id"], {}).values()
    items = [rule.render() for rule in rules if show_deleted or not rule.deleted]
    page = paginate(items, request.query)
    return ApiResponse(200, {"kind": "calendar#acl", "etag": store.next_etag(), **page})


def acl_get(
    store: Store, request: ApiRequest, user: str, calendar_id: str, rule_id: str
) -> ApiResponse:
    return ApiResponse(200, _live_rule(store, user, calendar_id, rule_id).render())


def acl_insert(store: Store, request: ApiRequest, user: str, calendar_id: str) -> ApiResponse:
    calendar = store.calendar_for(user, calendar_id, need="owner")
    body = json_body(request)
    role = _valid_role(body.get("role"))
    scope = body.get("scope")
    if not isinstance(scope, dict) or not scope.get("type"):
        raise ApiError(400, "required", "Missing scope type.")
    scope_type = scope["type"]
    if scope_type not in _SCOPE_TYPES:
        raise ApiError(400, "invalid", "Invalid scope type value.")
    value = scope.get("value")
    if scope_type != "default" and not non_empty_str(value):
        raise ApiError(400, "required", "Missing scope value.")
    scope_value = None if scope_type == "default" else str(value).lower()
    rule_id = "default" if scope_value is None else f"{scope_type}:{scope_value}"
    _guard_own_rule(calendar, rule_id, role)
    notify = flag(request.query, "sendNotifications", default=True)
    rules = store.state.acl.setdefault(calendar["id"], {})
    rule = rules.get(rule_id)
    if rule is None:
        rule = AclRule(rule_id, scope_type, scope_value, role, store.next_etag(), notify)
        rules[rule_id] = rule
    else:
        rule.role, rule.deleted, rule.send_notifications = role, False, notify
        rule.etag = store.next_etag()
    return ApiResponse(200, rule.render())


def acl_patch(
    store: Store, request: ApiRequest, user: str, calendar_id: str, rule_id: str
) -> ApiResponse:
    return _change_rule(store, request, user, calendar_id, rule_id, role_required=False)


def acl_update(
    store: Store, request: ApiRequest, user: str, calendar_id: str, rule_id: str
) -> ApiResponse:
    return _change_rule(store, request, user, calendar_id, rule_id, role_required=True)


def acl_delete(
    store: Store, request: ApiRequest, user: str, calendar_id: str, rule_id: str
) -> ApiResponse:
    rule = _live_rule(store, user, calendar_id, rule_id)
    _guard_own_rule(store.calendar_for(user, calendar_id), rule.id, "none")
    rule.deleted = True
    rule.etag = store.next_etag()
    return ApiResponse(204)


def _change_rule(
    store: Store,
    request: ApiRequest,
    user: str,
    calendar_id: str,
    rule_id: str,
    *,
    role_required: bool,
) -> ApiResponse:
    rule = _live_rule(store, user, calendar_id, rule_id)
    body = json_body(request)
    if "role" in body or role_required:
        role = _valid_role(body.get("role"))
        _guard_own_rule(store.calendar_for(user, calendar_id), rule.id, role)
        rule.role = role
    rule.send_notifications = flag(request.query, "sendNotifications", default=True)
    rule.etag = store.next_etag()
    return ApiResponse(200, rule.render())


def _live_rule(store: Store, user: str, calendar_id: str, rule_id: str) -> AclRule:
    calendar = store.calendar_for(user, calendar_id, need="owner")
    rule = store.state.acl.get(calendar["id"], {}).get(rule_id)
    if rule is None or rule.deleted:
        raise not_found()
    return rule


def _guard_own_rule(calendar: JSON, rule_id: str, role: str) -> None:
    if rule_id == f"user:{str(calendar.get('dataOwner', '')).lower()}" and role != "owner":
        raise ApiError(
            403, "cannotChangeOwnAcl", "Cannot change your own access level.", "calendar"
        )


def _valid_role(role: Any) -> str:
    if not role:
        raise ApiError(400, "required", "Missing role.")
    if role not in ROLES:
        raise ApiError(400, "invalid", "Invalid role value.")
    return str(role)
