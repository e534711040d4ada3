"""A reconciliation's entry plan (`EntryPlan`, made by `entry_reconcile.py`) carried out: a few
hundred actions per `apply_entries_batch` (Google batch requests inside), series and single
entries before edited occurrences (instances of a series' event that must exist first), then
deletes, then strays; each batch records its mappings, so a run stopped half-way resumes cleanly."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.entry_apply import EntryFailure, apply_entries_batch
from bridge.entry_outcome import EntryOutcome
from bridge.entry_plan import EntryAction
from bridge.event_drift import StrayEvent
from bridge.google_errors import GoogleError, GoogleNotFound, GoogleQuotaExceeded
from bridge.google_events import EventCall
from bridge.lease import Lease
from bridge.metrics import RECONCILE_CHANGES
from bridge.quota import OwnerReadOnly, owner_writes
from bridge.sync_report import SyncReport

APPLY_CHUNK = 250  # entry actions per apply_entries_batch (and per mapping transaction)

Progress = Callable[[int, int], None]
Events = dict[str, dict[str, Any]]  # a calendar's events by id


@dataclass
class EntryPlan:
    """What a reconciliation decided for a part of the portal's owners, and what it saw."""

    actions: list[EntryAction] = field(default_factory=list)  # neither skips nor deletes
    deletes: list[EntryAction] = field(default_factory=list)
    strays: list[StrayEvent] = field(default_factory=list)
    versions: dict[str, str | None] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # entry ids listed (or read with them)
    listed: int = 0  # rows the listing returned
    occurrences: set[str] = field(default_factory=set)  # edited occurrences: applied last
    listing_failed: str | None = None


def apply_plan(
    lease: Lease,
    portal: PortalConfig,
    clients: PortalClients,
    report: SyncReport,
    plan: EntryPlan,
    progress: Progress | None,
    stop: threading.Event | None,
) -> int:
    """Apply the plan in batches (series and singles, then edited occurrences, then deletes,
    then strays); the number of failures."""
    total = len(plan.actions) + len(plan.deletes) + len(plan.strays)
    done = failures = 0
    for batch in _batches(plan):
        if stop is not None and stop.is_set():
            return failures
        lease.renew_if_due()
        results, blocked = _within_quota(lease, portal, clients, batch, plan)
        for action, result in zip(batch, results, strict=True):
            line = f"{action.describe(portal.key)}: {result}"
            if isinstance(result, GoogleQuotaExceeded):
                continue  # waits for the owner's probe, with the rest
            if isinstance(result, Exception):
                report.failed.append(line)
                failures += 1
            else:
                report.done.append(line)
                RECONCILE_CHANGES.labels(portal.key, f"entry_{action.kind.value}").inc()
        if blocked is not None:  # the rest waits for the owner's probe (`bridge.quota`)
            report.read_only = str(blocked)
            report.waiting += (
                total - done - sum(1 for r in results if not isinstance(r, GoogleQuotaExceeded))
            )
            return failures
        done += len(batch)
        if progress is not None:
            progress(done, total)
    for start in range(0, len(plan.strays), APPLY_CHUNK):
        strays = plan.strays[start : start + APPLY_CHUNK]
        failures += _delete_strays(portal, clients, report, strays)
        done += len(strays)
        if progress is not None:
            progress(done, total)
    return failures


def _delete_strays(
    portal: PortalConfig, clients: PortalClients, report: SyncReport, strays: list[StrayEvent]
) -> int:
    """Delete events nothing claims (already gone counts as deleted); the number that failed."""
    failures = 0
    calls = [EventCall("delete", s.calendar_id, s.event_id) for s in strays]
    for stray, answer in zip(strays, clients.events.run_batch(calls), strict=True):
        if isinstance(answer, GoogleError) and not isinstance(answer, GoogleNotFound):
            report.failed.append(f"{stray.describe(portal.key)}: {answer}")
            failures += 1
        else:
            report.done.append(f"{stray.describe(portal.key)}: deleted")
            RECONCILE_CHANGES.labels(portal.key, "entry_stray").inc()
    return failures


def _within_quota(
    lease: Lease,
    portal: PortalConfig,
    clients: PortalClients,
    batch: list[EntryAction],
    plan: EntryPlan,
) -> tuple[list[EntryOutcome | EntryFailure], OwnerReadOnly | None]:
    """One batch as the owner's writes, and whether the owner is read-only now: refused at once
    while Google keeps the owner read-only; a `403 quotaExceeded` in it blocks the owner (the
    run stops), a write that went through lifts a block being probed."""
    results: list[EntryOutcome | EntryFailure] = []
    try:
        with owner_writes(lease, portal) as mark:
            results = apply_entries_batch(lease, clients.events, batch, plan.versions)
            mark.wrote = any(not isinstance(result, Exception) for result in results)
            quota = next((r for r in results if isinstance(r, GoogleQuotaExceeded)), None)
            if quota is not None:
                raise quota
    except OwnerReadOnly as exc:
        if not results:  # refused before anything was sent: all of the batch waits
            results = [GoogleQuotaExceeded(str(exc), 403, "quotaExceeded")] * len(batch)
        return results, exc
    return results, None


def _batches(plan: EntryPlan) -> Iterator[list[EntryAction]]:
    """Series and single entries, then edited occurrences (instances of a series' event that
    must exist first), then deletes: each part in chunks of `APPLY_CHUNK`."""
    first = [a for a in plan.actions if a.entry_id not in plan.occurrences]
    then = [a for a in plan.actions if a.entry_id in plan.occurrences]
    for part in (first, then, plan.deletes):
        for start in range(0, len(part), APPLY_CHUNK):
            yield part[start : start + APPLY_CHUNK]
