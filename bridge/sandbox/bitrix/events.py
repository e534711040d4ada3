"""The `event.*` REST methods of the Bitrix24 emulator: bindings and the offline queue.

They answer only app (OAuth) calls; an incoming webhook gets 403 `WRONG_AUTH_TYPE`. Offline
bindings and every `event.offline.*` method also need an admin (the installing user, unless
installed with `admin: false`). `run_method` is the emulator's dispatcher: these methods first,
then those of `methods` and `entry_methods`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from bridge.sandbox.bitrix.apps import OFFLINE_NOTICE, Binding, Install, OfflineRecord
from bridge.sandbox.bitrix.entry_methods import ENTRY_METHODS
from bridge.sandbox.bitrix.listing import PAGE_SIZE, paged, row_matches, sort_key
from bridge.sandbox.bitrix.methods import dispatch
from bridge.sandbox.bitrix.rest import Call, Outcome, RestError
from bridge.sandbox.bitrix.values import as_bool, as_int, as_list, as_text

_KNOWN_EVENTS = frozenset(
    {
        "ONCALENDARSECTIONADD",
        "ONCALENDARSECTIONUPDATE",
        "ONCALENDARSECTIONDELETE",
        "ONCALENDARENTRYADD",
        "ONCALENDARENTRYUPDATE",
        "ONCALENDARENTRYDELETE",
        "ONAPPINSTALL",
        "ONAPPUNINSTALL",
        "ONAPPTEST",
        OFFLINE_NOTICE,
    }
)
_EXTENDED = "rest_offline_extended"
_GET_FIELDS = ("ID", "TIMESTAMP_X", "EVENT_NAME", "EVENT_DATA", "EVENT_ADDITIONAL", "MESSAGE_ID")
_DENIED = "Access denied!"


def run_method(method: str, call: Call) -> Outcome:
    handler = _EVENT_METHODS.get(method)
    return handler(call) if handler is not None else dispatch(method, call, ENTRY_METHODS)


# event.bind, event.get, event.unbind


def _event_bind(call: Call) -> Outcome:
    install, query = _app(call), _upper(call.params)
    event = as_text(query.get("EVENT")).upper()
    if event not in _KNOWN_EVENTS:
        raise RestError(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
    offline = as_text(query.get("EVENT_TYPE")).lower() == "offline"
    auth_type = as_int(query.get("AUTH_TYPE")) or 0
    if offline and not _is_admin(call, install):
        raise _denied("Offline events binding requires administrator access rights")
    if auth_type and auth_type != call.user_id and not _is_admin(call, install):
        raise _denied("Event binding with AUTH_TYPE requires administrator access rights")
    handler = "" if offline else as_text(query.get("HANDLER"))
    if not offline and not handler:
        raise RestError(400, "ERROR_ARGUMENT", "Argument 'HANDLER' is null or empty")
    connector = as_text(query.get("AUTH_CONNECTOR"))
    for bound in install.bindings:
        same = (bound.event, bound.offline, bound.connector) == (event, offline, connector)
        if same and (offline or (bound.handler, bound.auth_type) == (handler, auth_type)):
            raise RestError(
                400,
                "ERROR_HANDLER_ALREADY_EXIST",
                "Unable to set event handler: Handler already exists!",
            )
    given = query.get("OPTIONS")
    options = _upper(given if isinstance(given, Mapping) else {})
    timeout = as_text(options.get("MINTIMEOUT"))
    apps = call.portal.apps
    install.bindings.append(
        Binding(
            id=str(apps.next_binding),
            event=event,
            handler=handler,
            auth_type=auth_type,
            offline=offline,
            connector=connector,
            min_timeout=max(0.0, float(timeout)) if timeout else 1.0,
        )
    )
    apps.next_binding += 1
    return Outcome(True)


def _event_get(call: Call) -> Outcome:
    install = _app(call)
    admin = _is_admin(call, install)
    return Outcome(
        [
            {
                "event": b.event,
                "handler": b.handler,
                "auth_type": str(b.auth_type),
                "offline": 1 if b.offline else 0,
            }
            for b in install.bindings
            if admin or b.auth_type == call.user_id
        ]
    )


def _event_unbind(call: Call) -> Outcome:
    install, query = _app(call), _upper(call.params)
    offline = as_text(query.get("EVENT_TYPE")).lower() == "offline"
    admin = _is_admin(call, install)
    if offline and not admin:
        raise _denied("Offline events unbinding requires administrator access rights")
    event = as_text(query.get("EVENT")).upper()
    handler = as_text(query.get("HANDLER"))
    auth_type: int | None = None
    if "AUTH_TYPE" in query:
        auth_type = as_int(query["AUTH_TYPE"]) or 0  # "0" or "": bound without a user
    if auth_type and auth_type != call.user_id and not admin:
        raise _denied("Event unbinding with AUTH_TYPE requires administrator access rights")

    def matches(b: Binding) -> bool:
        return (
            b.offline == offline
            and event in ("", b.event)
            and (offline or handler in ("", b.handler))
            and (auth_type is None or b.auth_type == auth_type)
            and (admin or b.auth_type == call.user_id)
        )

    kept = [b for b in install.bindings if not matches(b)]
    count = len(install.bindings) - len(kept)
    install.bindings = kept
    return Outcome({"count": count})


# event.offline.*


def _offline_get(call: Call) -> Outcome:
    install, query = _admin_app(call), _upper(call.params)
    process_id = as_text(query.get("PROCESS_ID"))
    with_errors = as_bool(query.get("ERROR"))
    clear = as_bool(query["CLEAR"]) if "CLEAR" in query else True
    features = call.portal.features
    if not clear and features is not None and _EXTENDED not in features:
        # "The value `0` without the `rest_offline_extended` mode returns the `WRONG_LICENSE`
        # error" (api-reference/events/event-offline-get.md); `process_id` with `clear=1` is
        # allowed and deletes the whole batch.
        raise RestError(
            403,
            "WRONG_LICENSE",
            "This feature is not enabled for the current license: extended offline events handling",
        )
    rows = [
        (record, record.row())
        for record in _queue(install, query)
        if record.process_id == process_id and (with_errors or not record.error)
    ]
    rows = [(record, row) for record, row in rows if row_matches(row, _filter(query))]
    _order(rows, query.get("ORDER"), default="TIMESTAMP_X")
    limit = as_int(query.get("LIMIT"))
    chosen = rows[: limit if limit is not None and limit > 0 else PAGE_SIZE]
    if clear:
        # With `process_id`, "the method deletes the entire batch, including records that were
        # not included in the response due to `limit`" (event-offline-get.md).
        taken = {id(record) for record, _ in (rows if process_id else chosen)}
        install.offline = [r for r in install.offline if id(r) not in taken]
    elif chosen:
        process_id = process_id or secrets.token_hex(16)
        for record, _ in chosen:
            record.process_id = process_id
    events = [{key: row[key] for key in _GET_FIELDS} for _, row in chosen]
    return Outcome({"process_id": process_id or None, "events": events})


def _offline_clear(call: Call) -> Outcome:
    install, query = _admin_app(call), _upper(call.params)
    process_id = _process_id(query)
    ids = {str(value) for value in as_list(query.get("ID"))}
    message_ids = {str(value) for value in as_list(query.get("MESSAGE_ID"))}

    def cleared(r: OfflineRecord) -> bool:
        if r.process_id != process_id:
            return False
        if ids:
            return str(r.id) in ids
        return not message_ids or r.message_id in message_ids

    install.offline = [r for r in install.offline if not cleared(r)]
    return Outcome(True)


def _offline_error(call: Call) -> Outcome:
    install, query = _admin_app(call), _upper(call.params)
    process_id = _process_id(query)
    message_ids = {str(value) for value in as_list(query.get("MESSAGE_ID"))}
    for record in install.offline:
        if record.process_id == process_id and (
            not message_ids or record.message_id in message_ids
        ):
            # Marked and released: `event.offline.get` with `error=1` can take it again.
            record.error, record.process_id = True, ""
    return Outcome(True)


def _offline_list(call: Call) -> Outcome:
    install, query = _admin_app(call), _upper(call.params)
    rows = [(record, record.row()) for record in _queue(install, query)]
    rows = [(record, row) for record, row in rows if row_matches(row, _filter(query))]
    _order(rows, query.get("ORDER"), default="ID")
    page, total, next_start = paged([row for _, row in rows], query.get("START"))
    return Outcome(page, total, next_start)


_EVENT_METHODS: dict[str, Callable[[Call], Outcome]] = {
    "event.bind": _event_bind,
    "event.get": _event_get,
    "event.unbind": _event_unbind,
    "event.offline.get": _offline_get,
    "event.offline.clear": _offline_clear,
    "event.offline.error": _offline_error,
    "event.offline.list": _offline_list,
}


# helpers


def _app(call: Call) -> Install:
    install = call.portal.apps.installs.get(call.client_id or "")
    if install is None:
        raise RestError(
            403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"
        )
    return install


def _admin_app(call: Call) -> Install:
    install = _app(call)
    if not _is_admin(call, install):
        raise _denied("")
    return install


def _is_admin(call: Call, install: Install) -> bool:
    return install.admin and call.user_id == install.user_id


def _denied(reason: str) -> RestError:
    return RestError(403, "ACCESS_DENIED", f"{_DENIED} {reason}".strip())


def _upper(params: Mapping[str, Any]) -> dict[str, Any]:
    # Bitrix24 reads these methods' parameters case-insensitively (CRest examples send `EVENT`).
    return {str(key).upper(): value for key, value in params.items()}


def _queue(install: Install, query: Mapping[str, Any]) -> list[OfflineRecord]:
    connector = as_text(query.get("AUTH_CONNECTOR"))
    return [record for record in install.offline if record.connector == connector]


def _filter(query: Mapping[str, Any]) -> Mapping[str, Any]:
    given = query.get("FILTER")
    return given if isinstance(given, Mapping) else {}


def _order(rows: list[tuple[OfflineRecord, dict[str, Any]]], order: Any, *, default: str) -> None:
    rows.sort(key=lambda pair: pair[0].id)
    keys = list(order.items()) if isinstance(order, Mapping) and order else [(default, "ASC")]
    for name, direction in reversed(keys):
        descending = as_text(direction).upper() == "DESC"
        if str(name).upper() == "TIMESTAMP_X":
            rows.sort(key=lambda pair: pair[0].timestamp, reverse=descending)
        else:
            rows.sort(key=lambda pair: sort_key(pair[1].get(str(name).upper())), reverse=descending)


def _process_id(query: Mapping[str, Any]) -> str:
    process_id = as_text(query.get("PROCESS_ID"))
    if not process_id:
        raise RestError(400, "ERROR_ARGUMENT", "Argument 'PROCESS_ID' is null or empty")
    return process_id
