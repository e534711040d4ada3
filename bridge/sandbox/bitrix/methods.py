"""The REST methods of the Bitrix24 emulator, and `dispatch`: calendar sections and resources,
`scope`, `feature.get`, `im.notify.system.add` here; users and workgroups in
`directory_methods.py`; calendar entries in `entry_methods.py`.

Each method takes a `Call` (the portal, the merged parameters; `rest.py`) and returns an
`Outcome`; the caller holds the state lock and queues the deliveries a method appends to
`call.jobs`. Errors are `RestError`s shaped like the portal's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bridge.sandbox.bitrix.directory_methods import user_get, workgroup_list
from bridge.sandbox.bitrix.rest import Call, Outcome, RestError, calendar_error, required
from bridge.sandbox.bitrix.rights import DEFAULT_SCOPES, lacks_scope, php_truthy, scopes_of
from bridge.sandbox.bitrix.sections import Section, apply_fields, deactivate, section_view
from bridge.sandbox.bitrix.state import PLAN_FEATURES, Portal, create_section
from bridge.sandbox.bitrix.values import as_int, as_text


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


def _scope(call: Call) -> Outcome:
    """scope: the webhook's scopes, or with `full` every scope of the portal; `basic` is never
    listed (api-reference/common/system/scope.md in the Bitrix24 REST docs)."""
    if call.client_id is not None or php_truthy(call.params.get("full")):
        return Outcome(sorted(DEFAULT_SCOPES))
    return Outcome(sorted(scopes_of(call.portal.rights)))


# calendar.section.* and calendar.resource.*


def _section_get(call: Call) -> Outcome:
    cal_type, owner_id = _type_and_owner(call, "calendar.section.get", dot=False)
    rows = [
        section_view(section)
        for section in call.portal.sections.owned_by(cal_type, owner_id)
        if section.active
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
            for s in call.portal.sections.owned_by("resource", 0)
            if s.active
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
    "user.get": user_get,
    "socialnetwork.api.workgroup.list": workgroup_list,
}
