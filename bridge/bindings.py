"""App mode: event subscriptions (`event.bind`) and the offline queue (`event.offline.*`).

Offline delivery is the one mode where Bitrix24 keeps an event until we confirm it. A batch is
reserved (`clear=0`) under a process id that is saved first; its records go into the inbox; only
after that commit are they cleared. After a crash the saved process id re-selects the batch, and
re-inserting a record that already waits is absorbed by the inbox, so nothing is lost and, the
sync being state-based, nothing is created twice.
"""

from __future__ import annotations

import logging
from typing import Any

from bridge.bitrix import BitrixClient
from bridge.config import PortalConfig
from bridge.events import OFFLINE_NOTICE, BitrixEvent, MalformedEvent, SectionEvent, read_event
from bridge.inbox import record_event
from bridge.lease import Lease, fenced
from bridge.models import PortalState

log = logging.getLogger("bridge.bindings")

SECTION_EVENTS = [event.value for event in SectionEvent]
PAGE = 50


def bind_events(client: BitrixClient, portal: PortalConfig, handler_url: str | None) -> list[str]:
    """Subscribe the section events (reading event.get first, so a second run changes nothing)."""
    existing = _bindings(client)
    wanted: list[dict[str, Any]] = []
    if portal.bitrix.delivery == "offline":
        wanted += [{"event": event, "event_type": "offline"} for event in SECTION_EVENTS]
        if handler_url:
            wanted.append(
                {"event": OFFLINE_NOTICE, "handler": handler_url, "options": {"minTimeout": 1}}
            )
    elif handler_url:
        wanted += [{"event": event, "handler": handler_url} for event in SECTION_EVENTS]
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
        if event not in (*SECTION_EVENTS, OFFLINE_NOTICE) or (
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


def pull_offline(lease: Lease, portal: PortalConfig, client: BitrixClient) -> int:
    """Move the portal's offline queue into the inbox; returns how many records were taken."""
    taken = 0
    with fenced(lease) as session:
        state = session.get(PortalState, portal.key)
        pending_process = state.offline_process_id if state else None
    if pending_process:
        answer = _offline_get(client, {"process_id": pending_process, "clear": 0})
        taken += _take(lease, portal, client, pending_process, answer)
    while True:
        answer = _offline_get(client, {"clear": 0, "limit": PAGE})
        process_id = str(answer.get("process_id") or "")
        events = answer.get("events") or []
        if not events or not process_id:
            return taken
        taken += _take(lease, portal, client, process_id, answer)
        if len(events) < PAGE:
            return taken


def _offline_get(client: BitrixClient, params: dict[str, Any]) -> dict[str, Any]:
    result = client.call("event.offline.get", params).get("result")
    return result if isinstance(result, dict) else {}


def _take(
    lease: Lease,
    portal: PortalConfig,
    client: BitrixClient,
    process_id: str,
    answer: dict[str, Any],
) -> int:
    events = [record for record in answer.get("events") or [] if isinstance(record, dict)]
    if not events:
        _remember(lease, None)
        return 0
    _remember(lease, process_id)
    cleared, failed = [], []
    for record in events:
        event = _as_event(portal, record)
        if event is None:
            failed.append(str(record.get("MESSAGE_ID", "")))
            continue
        record_event(lease.engine, portal.key, event)
        cleared.append(str(record.get("ID", "")))
    if cleared:
        client.call("event.offline.clear", {"process_id": process_id, "id": cleared})
    if failed:
        client.call("event.offline.error", {"process_id": process_id, "message_id": failed})
        log.warning(
            "%d offline record(s) were not section events; reported",
            len(failed),
            extra={"portal": portal.key},
        )
    _remember(lease, None)
    return len(events)


def _remember(lease: Lease, process_id: str | None) -> None:
    with fenced(lease) as session:
        state = session.get(PortalState, lease.portal_key)
        if state is not None:
            state.offline_process_id = process_id
            session.add(state)


def _as_event(portal: PortalConfig, record: dict[str, Any]) -> BitrixEvent | None:
    name = str(record.get("EVENT_NAME", "")).upper()
    data = record.get("EVENT_DATA")
    section = data.get("id") if isinstance(data, dict) else None
    if name not in SECTION_EVENTS or section is None:
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
