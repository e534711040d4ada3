"""App mode: event subscriptions (`event.bind`) and the offline queue (`event.offline.*`).

Offline delivery has two modes, chosen by the plan (`feature.get` for `rest_offline_extended`,
asked once and kept in `PortalState.offline_mode`; `api-reference/events/offline-events.md`):

- extended: Bitrix24 keeps an event until we confirm it. A batch is reserved (`clear=0`) under a
  process id that is saved first; its records go into the inbox; only after that commit are they
  cleared. After a crash the saved process id re-selects the batch, and re-inserting a record that
  already waits is absorbed by the inbox, so nothing is lost and, the sync being state-based,
  nothing is created twice.
- basic: `clear=1` deletes what it returns. A read whose records did not reach the inbox (a
  crash, a lost answer, a database error) loses them, so `PortalState.offline_read_at` is set
  before each read and cleared once its records are stored; the worker reconciles a portal that
  still carries it (`Worker._close_read_gap`).

A plan that refuses the extended mode with `WRONG_LICENSE` (downgraded since the check) is switched
to basic on the spot; the refused read reserved nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from bridge.bitrix import BitrixClient, BitrixError
from bridge.config import PortalConfig
from bridge.events import (
    OFFLINE_NOTICE,
    UNINSTALL,
    BitrixEvent,
    MalformedEvent,
    SectionEvent,
    read_event,
)
from bridge.inbox import record_event
from bridge.lease import Lease, fenced
from bridge.models import PortalState, utcnow

log = logging.getLogger("bridge.bindings")

SECTION_EVENTS = [event.value for event in SectionEvent]
PAGE = 50
EXTENDED_FEATURE = "rest_offline_extended"
# `event.offline.get` with `clear=0` on a plan without the extended mode
# (api-reference/events/event-offline-get.md, "Possible Error Codes").
LICENCE_REFUSED = "WRONG_LICENSE"


class OfflineMode(StrEnum):
    EXTENDED = "extended"  # reserve (`clear=0`, `process_id`), store, then clear
    BASIC = "basic"  # delete on read (`clear=1`)


@dataclass(frozen=True)
class Pulled:
    taken: int
    mode: OfflineMode
    downgraded: bool = False  # the plan refused the extended mode during this pull


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
        if event not in (*SECTION_EVENTS, OFFLINE_NOTICE, UNINSTALL) or (
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


def offline_mode(lease: Lease, client: BitrixClient, *, recheck: bool = False) -> OfflineMode:
    """The plan's offline mode: asked once (`feature.get`) and kept; `recheck` after an install.

    `Y` means extended; a self-hosted portal without a feature check answers `<lang>_selfhosted`
    (api-reference/common/system/feature-get.md), so extended is tried there too: a licence
    refusal still switches it to basic. Anything else is basic.
    """
    if not recheck:
        with Session(lease.engine) as session:
            state = session.get(PortalState, lease.portal_key)
            known = state.offline_mode if state is not None else None
            if known in (OfflineMode.EXTENDED.value, OfflineMode.BASIC.value):
                return OfflineMode(str(known))
    answer = client.call("feature.get", {"CODE": EXTENDED_FEATURE}).get("result")
    value = str(answer.get("value", "")) if isinstance(answer, dict) else ""
    extended = value == "Y" or value.endswith("_selfhosted")
    mode = OfflineMode.EXTENDED if extended else OfflineMode.BASIC
    _store_mode(lease, mode)
    log.info("offline delivery: %s (feature.get answered %r)", mode, value)
    return mode


def pull_offline(lease: Lease, portal: PortalConfig, client: BitrixClient) -> Pulled:
    """Move the portal's offline queue into the inbox, in the plan's mode."""
    mode = offline_mode(lease, client)
    if mode == OfflineMode.EXTENDED:
        try:
            return Pulled(_pull_extended(lease, portal, client), mode)
        except BitrixError as exc:
            if exc.code != LICENCE_REFUSED:
                raise
        _store_mode(lease, OfflineMode.BASIC)
        log.warning(
            "the plan refused extended offline events; switched to basic mode",
            extra={"portal": portal.key},
        )
        return Pulled(_pull_basic(lease, portal, client), OfflineMode.BASIC, downgraded=True)
    return Pulled(_pull_basic(lease, portal, client), mode)


def read_unconfirmed(engine: Engine, portal_key: str) -> bool:
    """True while a basic-mode read may have lost records (see the module docstring)."""
    with Session(engine) as session:
        state = session.get(PortalState, portal_key)
        return state is not None and state.offline_read_at is not None


def forget_unconfirmed_read(lease: Lease) -> None:
    _mark_read(lease, None)


def scheduled_pull(portal: PortalConfig) -> BitrixEvent:
    """An inbox row for a pull the worker made on its own, to park a failure where `status`,
    alerts and `replay` see it (a replayed row pulls again)."""
    return read_event(
        {
            "event": OFFLINE_NOTICE,
            "ts": str(int(time.time())),
            "auth": {
                "member_id": portal.member_id,
                "domain": portal.domain,
                "application_token": "scheduled-pull",
            },
        }
    )


def _pull_extended(lease: Lease, portal: PortalConfig, client: BitrixClient) -> int:
    taken = 0
    with Session(lease.engine) as session:
        state = session.get(PortalState, portal.key)
        pending = state.offline_process_id if state else None
    if pending:
        answer = _offline_get(client, {"process_id": pending, "clear": 0})
        taken += _take(lease, portal, client, pending, answer)
    while True:
        answer = _offline_get(client, {"clear": 0, "limit": PAGE})
        process_id = str(answer.get("process_id") or "")
        events = answer.get("events") or []
        if not events or not process_id:
            return taken
        taken += _take(lease, portal, client, process_id, answer)
        if len(events) < PAGE:
            return taken


def _pull_basic(lease: Lease, portal: PortalConfig, client: BitrixClient) -> int:
    """Delete on read. The mark goes on before each read and comes off only after its records
    are committed, so a read that never reached the inbox leaves it behind."""
    with Session(lease.engine) as session:
        state = session.get(PortalState, portal.key)
        pending = state.offline_process_id if state else None
    reads: list[dict[str, Any]] = []
    if pending:
        # A batch reserved before the plan lost the extended mode: `process_id` with `clear=1`
        # returns it and deletes it whole, also records past `limit`
        # (api-reference/events/event-offline-get.md); ours were reserved PAGE at a time.
        reads.append({"process_id": pending, "clear": 1, "limit": PAGE})
    taken = 0
    while True:
        params = reads.pop(0) if reads else {"clear": 1, "limit": PAGE}
        _mark_read(lease, utcnow())
        answer = _offline_get(client, params)
        records = [record for record in answer.get("events") or [] if isinstance(record, dict)]
        _, failed = _store(lease, portal, records)
        if "process_id" in params:
            _remember(lease, None)  # the reserved batch is stored and gone from Bitrix24
        _mark_read(lease, None)
        if failed:
            log.warning(
                "%d offline record(s) were not section events; dropped",
                len(failed),
                extra={"portal": portal.key},
            )
        taken += len(records)
        if not reads and len(records) < PAGE:
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
    cleared, failed = _store(lease, portal, events)
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


def _store(
    lease: Lease, portal: PortalConfig, records: list[dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """Put the records in the inbox; returns the ids stored and the message ids that were not
    section events."""
    stored, failed = [], []
    for record in records:
        event = _as_event(portal, record)
        if event is None:
            failed.append(str(record.get("MESSAGE_ID", "")))
            continue
        record_event(lease.engine, portal.key, event)
        stored.append(str(record.get("ID", "")))
    return stored, failed


def _remember(lease: Lease, process_id: str | None) -> None:
    with fenced(lease) as session:
        state = session.get(PortalState, lease.portal_key)
        if state is not None:
            state.offline_process_id = process_id
            session.add(state)


def _mark_read(lease: Lease, at: datetime | None) -> None:
    with fenced(lease) as session:
        state = session.get(PortalState, lease.portal_key)
        if state is not None:
            state.offline_read_at = at
            session.add(state)


def _store_mode(lease: Lease, mode: OfflineMode) -> None:
    with fenced(lease) as session:
        state = session.get(PortalState, lease.portal_key)
        if state is not None:
            state.offline_mode = mode.value
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
