"""The REST methods of the Bitrix24 emulator: calendar sections, resources, users and workgroups
(calendar entries: `entry_methods.py`).

Each method takes a `Call` (the portal, the merged parameters) and returns an `Outcome`; the
caller holds the state lock and queues the deliveries a method appends to `call.jobs`. Errors
are `RestError`s shaped like the portal's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.sandbox.bitrix.delivery import DeliveryJob
from bridge.sandbox.bitrix.php_query import php_string
from bridge.sandbox.bitrix.rights import DEFAULT_SCOPES, lacks_scope, php_truthy, scopes_of
from bridge.sandbox.bitrix.state import (
    PLAN_FEATURES,
    Portal,
    Section,
    apply_fields,
    create_section,
    deactivate,
    section_events,
    section_view,
    user_row,
)
from bridge.sandbox.bitrix.values import as_bool, as_int, as_list, as_text, php_text

PAGE_SIZE = 50
_FILTER_OPS = ("!=%", "!%=", ">=", "<=", "=%", "%=", "!%", "!@", "!=", ">", "<", "@", "%", "=", "!")
_USER_PARAMS = frozenset(
    {"start", "sort", "order", "select", "filter", "admin_mode", "image_resize"}
)


class RestError(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


@dataclass
class Outcome:
    result: Any
    total: int | None = None
    next: int | None = None


@dataclass
class Call:
    portal: Portal
    params: dict[str, Any]
    base_url: str
    jobs: list[DeliveryJob]
    client_id: str | None = None  # None: an incoming webhook; else the app of the access token
    user_id: int | None = None  # the token's user; None: the webhook's user

    def changed(self, action: str, section_id: int) -> None:
        """Queue the events of a section change made by this call."""
        self.jobs.extend(
            section_events(
                self.portal,
                action,
                section_id,
                self.base_url,
                user_id=self.user_id,
                connector=as_text(self.params.get("auth_connector")),
            )
        )


def dispatch(
    method: str, call: Call, more: Mapping[str, Callable[[Call], Outcome]] | None = None
) -> Outcome:
    """Run one of this module's methods or of `more` (the entry methods, entry_methods.py)."""
    handler = _METHODS.get(method) or (more or {}).get(method)
    if handler is None:
        raise RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
    if call.client_id is None and lacks_scope(call.portal.rights, method):
        # _includes/system-errors.md: the webhook was made without this method's scope.
        raise RestError(
            403,
            "insufficient_scope",
            "The request requires higher privileges than provided by the webhook token",
        )
    return handler(call)


def _caller_is_admin(call: Call) -> bool:
    if call.client_id is None:
        return call.portal.rights.webhook_admin
    install = call.portal.apps.installs.get(call.client_id)
    return install is not None and install.admin and call.user_id == install.user_id


def _scope(call: Call) -> Outcome:
    """scope: the webhook's scopes, or with `full` every scope of the portal; `basic` is never
    listed (api-reference/common/system/scope.md in the Bitrix24 REST docs)."""
    if call.client_id is not None or php_truthy(call.params.get("full")):
        return Outcome(sorted(DEFAULT_SCOPES))
    return Outcome(sorted(scopes_of(call.portal.rights)))


# calendar.section.* and calendar.resource.*


def _section_get(call: Call) -> Outcome:
    cal_type, owner_id = _type_and_owner(call, "calendar.section.get", dot=False)
    # Ids only grow and the dict keeps insertion order, so this is id order without a sort.
    rows = [
        section_view(section)
        for section in call.portal.sections.values()
        if section.active and section.cal_type == cal_type and section.owner_id == owner_id
    ]
    return Outcome(rows)


def _section_add(call: Call) -> Outcome:
    method = "calendar.section.add"
    cal_type, owner_id = _type_and_owner(call, method, dot=True)
    if cal_type not in ("user", "group"):
        raise calendar_error("Access denied")
    _check_texts(call.params, required_name=True)
    section = create_section(call.portal, cal_type, owner_id, call.params)
    call.changed("ADD", section.id)
    return Outcome(section.id)


def _section_update(call: Call) -> Outcome:
    method = "calendar.section.update"
    cal_type, owner_id = _type_and_owner(call, method, dot=False)
    section_id = as_int(call.params.get("id"))
    if section_id is None:
        raise calendar_error("Section ID is not set")
    section = _find_section(call.portal, section_id, cal_type, owner_id)
    if section is None:
        raise calendar_error("Access denied")
    _check_texts(call.params, required_name=False)
    apply_fields(section, call.params)
    call.changed("UPDATE", section.id)
    return Outcome(section.id)


def _section_delete(call: Call) -> Outcome:
    cal_type, owner_id = _type_and_owner(call, "calendar.section.delete", dot=True)
    section_id = as_int(call.params.get("id"))
    if section_id is None:
        raise calendar_error("Section ID is not set.")
    section = _find_section(call.portal, section_id, cal_type, owner_id)
    if section is None:
        raise calendar_error("Access denied.")
    deactivate(section)
    call.changed("DELETE", section.id)
    return Outcome(True)


def _resource_list(call: Call) -> Outcome:
    return Outcome(
        [
            {"ID": str(s.id), "NAME": s.name, "CREATED_BY": str(s.created_by)}
            for s in sorted(call.portal.sections.values(), key=lambda s: s.id)
            if s.active and s.cal_type == "resource"
        ]
    )


def _resource_add(call: Call) -> Outcome:
    if not as_text(call.params.get("name")):
        raise required("name", "calendar.resource.add")
    section = create_section(call.portal, "resource", 0, {"name": call.params["name"]})
    call.changed("ADD", section.id)
    return Outcome(section.id)


def _resource_update(call: Call) -> Outcome:
    method = "calendar.resource.update"
    resource_id = as_int(call.params.get("resourceId"))
    if resource_id is None:
        raise required("resourceId", method)
    if not as_text(call.params.get("name")):
        raise required("name", method)
    section = _find_section(call.portal, resource_id, "resource", 0)
    if section is None:
        raise calendar_error("Access denied")
    apply_fields(section, {"name": call.params["name"]})
    call.changed("UPDATE", section.id)
    return Outcome(section.id)


def _resource_delete(call: Call) -> Outcome:
    resource_id = as_int(call.params.get("resourceId"))
    if resource_id is None:
        raise required("resourceId", "calendar.resource.delete")
    section = _find_section(call.portal, resource_id, "resource", 0)
    if section is None:
        raise calendar_error("Access denied")
    deactivate(section)
    call.changed("DELETE", section.id)
    return Outcome(True)


def calendar_error(description: str) -> RestError:
    return RestError(400, "", description)


def required(name: str, method: str, *, dot: bool = False) -> RestError:
    suffix = "." if dot else ""
    text = f'The required parameter "{name}" for the method "{method}" is not set{suffix}'
    return calendar_error(text)


def _type_and_owner(call: Call, method: str, *, dot: bool) -> tuple[str, int]:
    cal_type = as_text(call.params.get("type"))
    if not cal_type:
        raise required("type", method, dot=dot)
    owner_id = as_int(call.params.get("ownerId"))
    if owner_id is None:
        if cal_type != "user":
            raise required("ownerId", method, dot=dot)
        owner_id = call.user_id or call.portal.webhook_user_id
    return cal_type, owner_id


def _check_texts(params: Mapping[str, Any], *, required_name: bool) -> None:
    name = params.get("name")
    if (required_name or name is not None) and (not as_text(name) or not _is_scalar(name)):
        raise calendar_error('Invalid value for the "name" parameter')
    description = params.get("description")
    if description is not None and not _is_scalar(description):
        raise calendar_error('Invalid value for the "description" parameter')


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list)


def _find_section(portal: Portal, section_id: int, cal_type: str, owner_id: int) -> Section | None:
    section = portal.sections.get(section_id)
    if section is None or not section.active:
        return None
    if section.cal_type != cal_type or section.owner_id != owner_id:
        return None
    return section


# user.get, socialnetwork.api.workgroup.list


def _user_get(call: Call) -> Outcome:
    params = call.params
    conditions: dict[str, Any] = {}
    for name in ("FILTER", "filter"):
        if isinstance(params.get(name), Mapping):
            conditions.update(params[name])
    known = set(user_row({"ID": 0}))
    for key, value in params.items():
        if key.lower() not in _USER_PARAMS and _split_op(key)[1].upper() in known:
            conditions[key] = value
    rows = [row for row in call.portal.users.values() if row_matches(row, conditions)]
    # Extranet users are listed to an admin asking with ADMIN_MODE (api-reference/user/user-get.md).
    admin_mode = any(key.lower() == "admin_mode" and php_truthy(v) for key, v in params.items())
    if not (admin_mode and _caller_is_admin(call)):
        rows = [row for row in rows if as_text(row.get("USER_TYPE")).lower() != "extranet"]
    sort_field = as_text(params.get("sort") or params.get("SORT")).upper() or "ID"
    descending = as_text(params.get("order") or params.get("ORDER")).upper() == "DESC"
    rows.sort(key=lambda row: sort_key(row.get(sort_field)), reverse=descending)
    page, total, next_start = paged(rows, params.get("start"))
    return Outcome([dict(row) for row in page], total, next_start)


def _workgroup_list(call: Call) -> Outcome:
    params = call.params
    given = params.get("filter")
    conditions: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    rows = [row for row in call.portal.groups.values() if row_matches(row, conditions)]
    # Without params[IS_ADMIN]=Y from an admin the caller's rights apply: a secret group
    # (VISIBLE=N) shows only to its owner (api-reference/sonet-group/
    # socialnetwork-api-workgroup-list.md, "Parameter params"; membership is not modelled).
    extra = params.get("params")
    asked = isinstance(extra, Mapping) and as_text(extra.get("IS_ADMIN")).upper() == "Y"
    if not (asked and _caller_is_admin(call)):
        caller = str(call.user_id or call.portal.webhook_user_id)
        rows = [row for row in rows if row.get("VISIBLE") != "N" or row.get("OWNER_ID") == caller]
    order = params.get("order")
    for name, direction in reversed(list(order.items()) if isinstance(order, Mapping) else []):
        rows.sort(
            key=lambda row: sort_key(row.get(str(name).upper())),
            reverse=as_text(direction).upper() == "DESC",
        )
    if not isinstance(order, Mapping) or not order:
        rows.sort(key=lambda row: sort_key(row["ID"]))
    select = [str(name).upper() for name in as_list(params.get("select"))] or ["ID"]
    page, total, next_start = paged(rows, params.get("start"))
    groups = [
        {_camel(key): value for key, value in row.items() if "*" in select or key in select}
        for row in page
    ]
    return Outcome({"workgroups": groups}, total, next_start)


def _notify_system(call: Call) -> Outcome:
    """im.notify.system.add: a system notification to one user; returns its id."""
    user = as_int(
        call.params.get("USER_ID") if "USER_ID" in call.params else call.params.get("user_id")
    )
    message = as_text(call.params.get("MESSAGE") or call.params.get("message"))
    if user is None or user not in call.portal.users:
        raise RestError(
            400, "USER_ID_EMPTY", "Recipient user ID not specified or the user does not exist"
        )
    if not message:
        raise RestError(400, "MESSAGE_EMPTY", "Message text is empty")
    call.portal.notifications.append(
        {"id": len(call.portal.notifications) + 1, "user_id": user, "message": message}
    )
    return Outcome(len(call.portal.notifications))


def _feature_get(call: Call) -> Outcome:
    """feature.get (api-reference/common/system/feature-get.md): `Y` or `N` for the plan's
    feature; "the method does not check whether the code exists … may return `Y`" for an unknown
    code; a self-hosted portal without a feature check answers `<language>_selfhosted`."""
    given = {str(key).upper(): value for key, value in call.params.items()}.get("CODE")
    code = as_text(given)
    if not code or code == "0":
        raise RestError(400, "CODE_EMPTY", "CODE can't be empty")
    features = call.portal.features
    if features is None:
        return Outcome({"value": "en_selfhosted"})
    unknown = code not in PLAN_FEATURES
    return Outcome({"value": "Y" if unknown or code in features else "N"})


_METHODS: dict[str, Callable[[Call], Outcome]] = {
    "feature.get": _feature_get,
    "im.notify.system.add": _notify_system,
    "scope": _scope,
    "calendar.section.get": _section_get,
    "calendar.section.add": _section_add,
    "calendar.section.update": _section_update,
    "calendar.section.delete": _section_delete,
    "calendar.resource.list": _resource_list,
    "calendar.resource.add": _resource_add,
    "calendar.resource.update": _resource_update,
    "calendar.resource.delete": _resource_delete,
    "user.get": _user_get,
    "socialnetwork.api.workgroup.list": _workgroup_list,
}


# filters, sorting, paging, timing


def _split_op(key: str) -> tuple[str, str]:
    for op in _FILTER_OPS:
        if key.startswith(op):
            return op, key[len(op) :]
    return "", key


def row_matches(row: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    for raw_key, expected in conditions.items():
        op, name = _split_op(str(raw_key))
        if not _condition(op, row.get(name.upper()), expected):
            return False
    return True


def _condition(op: str, actual: Any, expected: Any) -> bool:
    negate = op.startswith("!")
    base = op.lstrip("!") or "="
    if base in ("=", "@"):
        hit = any(_same(actual, option) for option in as_list(expected) or [""])
    elif base == "%":
        hit = php_string(expected).lower() in php_text(actual).lower()
    elif base in ("=%", "%="):
        pattern = ".*".join(re.escape(part) for part in php_string(expected).lower().split("%"))
        hit = re.fullmatch(pattern, php_text(actual).lower(), re.DOTALL) is not None
    else:
        hit = _compare(base, actual, expected)
    return hit != negate


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool):
        return actual == as_bool(expected)
    if isinstance(actual, list):
        return any(_same(item, expected) for item in actual)
    return php_text(actual) == php_text(expected)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    left: Any = as_int(actual)
    right: Any = as_int(expected)
    if left is None or right is None:
        left, right = php_text(actual), php_text(expected)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    return bool(left <= right)


def _camel(key: str) -> str:
    head, *rest = key.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def sort_key(value: Any) -> tuple[int, float, str]:
    number = as_int(value)
    return (0, float(number), "") if number is not None else (1, 0.0, php_string(value).lower())


def paged(
    rows: list[dict[str, Any]], start: Any
) -> tuple[list[dict[str, Any]], int | None, int | None]:
    offset = as_int(start) or 0
    if offset < 0:  # start=-1: no count, the caller pages by id
        return rows[:PAGE_SIZE], None, None
    following = offset + PAGE_SIZE
    return rows[offset:following], len(rows), following if following < len(rows) else None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def time_block(
    start: float, finish: float, operating: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`operating` is the method's budget (`budget`); the outer `batch` has none."""
    return {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": finish - start,
        "date_start": _iso(start),
        "date_finish": _iso(finish),
        **(operating or {}),
    }
