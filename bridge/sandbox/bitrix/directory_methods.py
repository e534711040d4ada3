"""`user.get` and `socialnetwork.api.workgroup.list` of the Bitrix24 emulator: filters, sorting,
pages, and what an admin sees that others do not (extranet users, secret groups)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.sandbox.bitrix.directory import user_row
from bridge.sandbox.bitrix.listing import paged, row_matches, sort_key, split_op
from bridge.sandbox.bitrix.rest import Call, Outcome
from bridge.sandbox.bitrix.rights import php_truthy
from bridge.sandbox.bitrix.values import as_list, as_text

_USER_PARAMS = frozenset(
    {"start", "sort", "order", "select", "filter", "admin_mode", "image_resize"}
)


def _caller_is_admin(call: Call) -> bool:
    if call.client_id is None:
        return call.portal.rights.webhook_admin
    install = call.portal.apps.installs.get(call.client_id)
    return install is not None and install.admin and call.user_id == install.user_id


def user_get(call: Call) -> Outcome:
    params = call.params
    conditions: dict[str, Any] = {}
    for name in ("FILTER", "filter"):
        if isinstance(params.get(name), Mapping):
            conditions.update(params[name])
    known = set(user_row({"ID": 0}))
    for key, value in params.items():
        if key.lower() not in _USER_PARAMS and split_op(key)[1].upper() in known:
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


def workgroup_list(call: Call) -> Outcome:
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


def _camel(key: str) -> str:
    head, *rest = key.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)
