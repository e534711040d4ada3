"""App mode: event subscriptions (`event.bind`) and the offline queue (`event.offline.*`), as
calls to Bitrix24 that return plain values. Storing what they return, and the state a pull keeps
between calls, is `bridge.offline`'s job (under the worker's lease).

Offline reads come in two modes (`api-reference/events/offline-events.md`): extended reserves a
batch (`clear=0`) under a process id until `event.offline.clear` confirms it; basic deletes what it
returns (`clear=1`). `feature.get` for `rest_offline_extended` says which one the plan allows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bridge.bitrix import BitrixClient
from bridge.config import PortalConfig
from bridge.events import (
    ENTRY_EVENTS,
    OFFLINE_NOTICE,
    SECTION_EVENTS,
    UNINSTALL,
    BitrixEvent,
    MalformedEvent,
    read_event,
)

log = logging.getLogger("bridge.bindings")

MIRRORED_EVENTS = sorted(SECTION_EVENTS | ENTRY_EVENTS)  # all the bridge may have bound
PAGE = 50
EXTENDED_FEATURE = "rest_offline_extended"
# `event.offline.get` with `clear=0` on a plan without the extended mode
# (api-reference/events/event-offline-get.md, "Possible Error Codes").
LICENCE_REFUSED = "WRONG_LICENSE"


class OfflineMode(StrEnum):
    EXTENDED = "extended"  # reserve (`clear=0`, `process_id`), store, then clear
    BASIC = "basic"  # delete on read (`clear=1`)


@dataclass(frozen=True)
class OfflineRecord:
    id: str  # `ID`, what `event.offline.clear` confirms
    message_id: str  # `MESSAGE_ID`, what `event.offline.error` reports
    event: BitrixEvent | None  # None: not a section event


@dataclass(frozen=True)
class OfflineBatch:
    process_id: str  # the reservation's id (extended mode); "" when Bitrix24 named none
    records: tuple[OfflineRecord, ...]

    @property
    def events(self) -> list[BitrixEvent]:
        return [record.event for record in self.records if record.event is not None]

    @property
    def stored_ids(self) -> list[str]:
        return [record.id for record in self.records if record.event is not None]

    @property
    def failed_ids(self) -> list[str]:
        return [record.message_id for record in self.records if record.event is None]


def bind_events(client: BitrixClient, portal: PortalConfig, handler_url: str | None) -> list[str]:
    """Subscribe the section events, and the entry events when entries are mirrored (reading
    event.get first, so a second run changes nothing)."""
    existing = _bindings(client)
    events = sorted(SECTION_EVENTS | (ENTRY_EVENTS if portal.mirror.entries.enabled else set()))
    wanted: list[dict[str, Any]] = []
    if portal.bitrix.delivery == "offline":
        wanted += [{"event": event, "event_type": "offline"} for event in events]
        if handler_url:
            wanted.append(
                {"event": OFFLINE_NOTICE, "handler": handler_url, "options": {"minTimeout": 1}}
            )
    elif handler_url:
        wanted += [{"event": event, "handler": handler_url} for event in events]
    if handler_url:
        # Bitrix24 calls ONAPPUNINSTALL only for an app that bound a handler for it
        # (api-reference/common/events/on-app-uninstall.md, settings/app-uninstallation.md).
        wanted.append({"event": UNINSTALL, "handler": handler_url})
    done = []
    for binding in wanted:
        key = (binding["event"], binding.get("handler", ""), binding.get("event_type") == "offline")
        if key in existing:
            continue
        client.call("event.bind", binding)
        done.append(f"{binding['event']} → {binding.get('handler', 'offline queue')}")
    return done


def unbind_events(client: BitrixClient, handler_url: str | None) -> int:
    removed = 0
    for event, handler, offline in _bindings(client):
        if event not in (*MIRRORED_EVENTS, OFFLINE_NOTICE, UNINSTALL) or (
            handler_url and handler and handler != handler_url
        ):
            continue
        params: dict[str, Any] = {"event": event, "handler": handler}
        if offline:
            params["event_type"] = "offline"
        result = client.call("event.unbind", params).get("result")
        removed += int(result.get("count", 0)) if isinstance(result, dict) else 0
    return removed


def _bindings(client: BitrixClient) -> set[tuple[str, str, bool]]:
    rows = client.call("event.get").get("result") or []
    return {
        (
            str(row.get("event", "")).upper(),
            str(row.get("handler") or ""),
            str(row.get("offline", "0")) in ("1", "true"),
        )
        for row in rows
        if isinstance(row, dict)
    }


def ask_offline_mode(client: BitrixClient) -> OfflineMode:
    """The plan's offline mode (`feature.get`). `Y` means extended; a self-hosted portal without a
    feature check answers `<lang>_selfhosted` (api-reference/common/system/feature-get.md), so
    extended is tried there too: a licence refusal still switches it to basic. Anything else is
    basic."""
    answer = client.call("feature.get", {"CODE": EXTENDED_FEATURE}).get("result")
    value = str(answer.get("value", "")) if isinstance(answer, dict) else ""
    extended = value == "Y" or value.endswith("_selfhosted")
    mode = OfflineMode.EXTENDED if extended else OfflineMode.BASIC
    log.info("offline delivery: %s (feature.get answered %r)", mode, value)
    return mode


def reserve_offline(
    client: BitrixClient, portal: PortalConfig, process_id: str | None = None
) -> OfflineBatch:
    """Extended mode: reserve the next page (`clear=0`), or re-read the batch `process_id` names.
    A plan without the extended mode refuses with `LICENCE_REFUSED`."""
    params: dict[str, Any] = {"clear": 0}
    params.update({"process_id": process_id} if process_id else {"limit": PAGE})
    return _offline_get(client, portal, params, process_id)


def take_offline(
    client: BitrixClient, portal: PortalConfig, process_id: str | None = None
) -> OfflineBatch:
    """Basic mode: read and delete (`clear=1`) the next page. With `process_id`, a batch reserved
    in extended mode: returned and deleted whole, also records past `limit`
    (api-reference/events/event-offline-get.md)."""
    params: dict[str, Any] = {"clear": 1, "limit": PAGE}
    if process_id:
        params["process_id"] = process_id
    return _offline_get(client, portal, params, process_id)


def confirm_offline(client: BitrixClient, batch: OfflineBatch) -> None:
    """Extended mode: clear the batch's stored records and report those that were not section
    events (`event.offline.clear`, `event.offline.error`)."""
    if batch.stored_ids:
        client.call("event.offline.clear", {"process_id": batch.process_id, "id": batch.stored_ids})
    if batch.failed_ids:
        client.call(
            "event.offline.error", {"process_id": batch.process_id, "message_id": batch.failed_ids}
        )


def _offline_get(
    client: BitrixClient, portal: PortalConfig, params: dict[str, Any], process_id: str | None
) -> OfflineBatch:
    answer = client.call("event.offline.get", params).get("result")
    answer = answer if isinstance(answer, dict) else {}
    records = tuple(
        OfflineRecord(
            id=str(record.get("ID", "")),
            message_id=str(record.get("MESSAGE_ID", "")),
            event=_as_event(portal, record),
        )
        for record in answer.get("events") or []
        if isinstance(record, dict)
    )
    return OfflineBatch(process_id or str(answer.get("process_id") or ""), records)


def _as_event(portal: PortalConfig, record: dict[str, Any]) -> BitrixEvent | None:
    name = str(record.get("EVENT_NAME", "")).upper()
    data = record.get("EVENT_DATA")
    section = data.get("id") if isinstance(data, dict) else None
    if name not in MIRRORED_EVENTS or section is None:
        return None
    fields = {
        "event": name,
        "data": {"id": str(section)},
        "ts": str(record.get("TIMESTAMP_X", "")),
        "offline": {
            "ID": str(record.get("ID", "")),
            "MESSAGE_ID": str(record.get("MESSAGE_ID", "")),
        },
        "auth": {
            "member_id": portal.member_id,
            "domain": portal.domain,
            "application_token": "offline-queue",
        },
    }
    try:
        return read_event(fields)
    except MalformedEvent:
        return None
