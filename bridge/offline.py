"""Offline delivery, the store side: what `bridge.bindings` reads from a portal's offline queue goes
into the inbox, and what a pull keeps between calls (the process id, the read mark, the plan's
mode) into `PortalState`, under the worker's lease.

- extended: Bitrix24 keeps an event until we confirm it. A batch is reserved under a process id
  that is saved first; its records go into the inbox; only after that commit are they cleared.
  After a crash the saved process id re-selects the batch, and re-inserting a record that already
  waits is absorbed by the inbox, so nothing is lost and, the sync being state-based, nothing is
  created twice.
- basic: `clear=1` deletes what it returns. A read whose records did not reach the inbox (a
  crash, a lost answer, a database error) loses them, so `PortalState.offline_read_at` is set
  before each read and cleared once its records are stored; the next pull reconciles a portal
  that still carries it (`_close_read_gap`).

A plan that refuses the extended mode with `WRONG_LICENSE` (downgraded since the check) is switched
to basic on the spot; the refused read reserved nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from bridge.bindings import (
    LICENCE_REFUSED,
    PAGE,
    OfflineBatch,
    OfflineMode,
    ask_offline_mode,
    confirm_offline,
    reserve_offline,
    take_offline,
)
from bridge.bitrix import BitrixClient, BitrixError
from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.credentials import app_ready
from bridge.events import OFFLINE_NOTICE, BitrixEvent, read_event
from bridge.inbox import record_event
from bridge.lease import Lease, fenced_state
from bridge.models import InboxEvent, PortalState, utcnow
from bridge.sync import Everything, sync

log = logging.getLogger("bridge.offline")


@dataclass(frozen=True)
class Pulled:
    taken: int
    mode: OfflineMode
    downgraded: bool = False  # the plan refused the extended mode during this pull


@dataclass
class PullSchedule:
    """When each portal's offline queue was last pulled, and whose scheduled pulls stopped after a
    lasting failure (until a pull succeeds)."""

    pulled: dict[str, float] = field(default_factory=dict)  # portal → time.monotonic()
    parked: set[str] = field(default_factory=set)

    def due(self, engine: Engine, portals: Sequence[PortalConfig]) -> list[PortalConfig]:
        now = time.monotonic()
        return [
            portal
            for portal in portals
            if portal.bitrix.delivery == "offline"
            and portal.key not in self.parked
            and now - self.pulled.get(portal.key, float("-inf"))
            >= portal.bitrix.offline_poll_seconds
            and app_ready(engine, portal)
        ]


def offline_mode(lease: Lease, client: BitrixClient, *, recheck: bool = False) -> OfflineMode:
    """The plan's offline mode: asked once (`feature.get`) and kept; `recheck` after an install."""
    if not recheck:
        with Session(lease.engine) as session:
            state = session.get(PortalState, lease.portal_key)
            known = state.offline_mode if state is not None else None
            if known in (OfflineMode.EXTENDED.value, OfflineMode.BASIC.value):
                return OfflineMode(str(known))
    mode = ask_offline_mode(client)
    _store_mode(lease, mode)
    return mode


def pull(lease: Lease, portal: PortalConfig, clients: PortalClients) -> Pulled | None:
    """Move the portal's offline queue into the inbox, in the plan's mode; None when the pull waits
    for the reconciliation of an unconfirmed read (`_close_read_gap`)."""
    if not _close_read_gap(lease, portal, clients):
        return None
    client = clients.bitrix
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


def outcome(pulled: Pulled | None) -> str:
    if pulled is None:
        return "pull postponed: the reconciliation after an unconfirmed read failed"
    mode = f" ({pulled.mode} mode)" if pulled.mode == OfflineMode.BASIC else ""
    return f"pulled {pulled.taken} offline record(s){mode}"


def scheduled_pull_row(engine: Engine, portal: PortalConfig) -> InboxEvent | None:
    """An inbox row for a pull the worker made on its own, to park a failure where `status`,
    alerts and `replay` see it (a replayed row pulls again)."""
    recorded = record_event(engine, portal.key, _scheduled_pull(portal))
    with Session(engine) as session:
        return session.get(InboxEvent, recorded.id)


def _scheduled_pull(portal: PortalConfig) -> BitrixEvent:
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


def _close_read_gap(lease: Lease, portal: PortalConfig, clients: PortalClients) -> bool:
    """Basic offline mode deletes records as it reads them, so a read whose records never reached
    the inbox (the worker died, the answer was lost, the database failed) loses the changes they
    named. Such a read leaves its mark (`PortalState.offline_read_at`) in the portal's state.
    Whichever worker pulls next (this one after a restart, at once since a fresh worker pulls first
    thing, or another that took the portal over) reconciles the portal in full before pulling: the
    sync is state-based, so that finds every change the lost records named. The mark is dropped
    only after a clean reconciliation; until then the pull waits (returns False) and the next one
    tries again."""
    with Session(lease.engine) as session:
        state = session.get(PortalState, portal.key)
        if state is None or state.offline_read_at is None:
            return True
    log.warning(
        "an offline read in basic mode was not confirmed; reconciling the portal",
        extra={"portal": portal.key},
    )
    report = sync(lease, portal, Everything(), clients)
    log.info("after a lost read: %s", report.summary(), extra={"portal": portal.key})
    if report.failed:
        return False
    _mark_read(lease, None)
    return True


def _pull_extended(lease: Lease, portal: PortalConfig, client: BitrixClient) -> int:
    taken = 0
    pending = _saved_process_id(lease)
    if pending:
        taken += _take(lease, portal, client, reserve_offline(client, portal, pending))
    while True:
        batch = reserve_offline(client, portal)
        if not batch.records or not batch.process_id:
            return taken
        taken += _take(lease, portal, client, batch)
        if len(batch.records) < PAGE:
            return taken


def _take(lease: Lease, portal: PortalConfig, client: BitrixClient, batch: OfflineBatch) -> int:
    """Reserve (the saved process id), store, then clear."""
    if not batch.records:
        _remember(lease, None)
        return 0
    _remember(lease, batch.process_id)
    _store(lease, portal, batch)
    confirm_offline(client, batch)
    if batch.failed_ids:
        log.warning(
            "%d offline record(s) were not section events; reported",
            len(batch.failed_ids),
            extra={"portal": portal.key},
        )
    _remember(lease, None)
    return len(batch.records)


def _pull_basic(lease: Lease, portal: PortalConfig, client: BitrixClient) -> int:
    """Delete on read. The mark goes on before each read and comes off only after its records
    are committed, so a read that never reached the inbox leaves it behind."""
    # A batch reserved before the plan lost the extended mode (ours were reserved PAGE at a time).
    pending = _saved_process_id(lease)
    taken = 0
    while True:
        _mark_read(lease, utcnow())
        batch = take_offline(client, portal, pending)
        _store(lease, portal, batch)
        if pending:
            _remember(lease, None)  # the reserved batch is stored and gone from Bitrix24
        _mark_read(lease, None)
        if batch.failed_ids:
            log.warning(
                "%d offline record(s) were not section events; dropped",
                len(batch.failed_ids),
                extra={"portal": portal.key},
            )
        taken += len(batch.records)
        if len(batch.records) < PAGE:
            return taken
        pending = None


def _store(lease: Lease, portal: PortalConfig, batch: OfflineBatch) -> None:
    for event in batch.events:
        record_event(lease.engine, portal.key, event)


def _saved_process_id(lease: Lease) -> str | None:
    with Session(lease.engine) as session:
        state = session.get(PortalState, lease.portal_key)
        return state.offline_process_id if state else None


def _remember(lease: Lease, process_id: str | None) -> None:
    with fenced_state(lease) as state:
        state.offline_process_id = process_id


def _mark_read(lease: Lease, at: datetime | None) -> None:
    with fenced_state(lease) as state:
        state.offline_read_at = at


def _store_mode(lease: Lease, mode: OfflineMode) -> None:
    with fenced_state(lease) as state:
        state.offline_mode = mode.value
