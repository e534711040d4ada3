"""The queue: every state change of an inbox row after it was written, and the one retry policy.

A row is taken (`working`) by the portal's lease holder, then finished (`done`, `skipped`,
`ignored`, `parked` with the reason), rescheduled through `decide`, or put back untouched. Rows a
previous holder took and never finished go back to the queue when the next holder claims the
portal. Every write runs under the lease (`fenced`), so a holder that lost the portal records
nothing. Writing a delivery's row is `bridge.inbox`'s job; who drains the queue is the worker's.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from bridge.bitrix import TRANSIENT_ERRORS as BITRIX_TRANSIENT
from bridge.bitrix import BitrixTimeBudgetExceeded
from bridge.creation_pace import CreationPaced
from bridge.google_errors import TRANSIENT_ERRORS as GOOGLE_TRANSIENT
from bridge.lease import Lease, fenced
from bridge.models import InboxEvent, InboxState, utcnow
from bridge.quota import OwnerReadOnly
from bridge.wakeups import announce

MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(hours=1)
MIN_WAIT = timedelta(seconds=1)
UNDATED_BUDGET_WAIT = timedelta(seconds=60)


class TryLater(Exception):
    """The work cannot be done yet (no client failed): retried like a transient error."""


@dataclass(frozen=True)
class Retry:
    """Try again after `delay`; this failure counts as an attempt."""

    delay: timedelta


@dataclass(frozen=True)
class Wait:
    """Nothing failed that retrying fixes sooner: wait until `until`, counting no attempt."""

    until: datetime


@dataclass(frozen=True)
class Park:
    """Give up until an operator replays the row."""

    reason: str


Decision = Retry | Wait | Park


def _budget_reset(error: Exception, now: datetime) -> datetime:
    reset_at = getattr(error, "reset_at", None)
    if reset_at is None:
        return now + UNDATED_BUDGET_WAIT
    return datetime.fromtimestamp(reset_at, UTC)


# Errors that say when the work can go on: the row waits for then without spending an attempt.
WAITS: tuple[tuple[type[Exception], Callable[[Exception, datetime], datetime]], ...] = (
    (CreationPaced, lambda error, now: error.retry_at),  # type: ignore[attr-defined]
    (OwnerReadOnly, lambda error, now: error.probe_at),  # type: ignore[attr-defined]
    (BitrixTimeBudgetExceeded, _budget_reset),
)
# Errors that retrying fixes: exponential backoff, parked after MAX_ATTEMPTS. Anything else parks.
TRANSIENT: tuple[type[Exception], ...] = (*GOOGLE_TRANSIENT, *BITRIX_TRANSIENT, TryLater)


def decide(error: Exception, attempts: int, now: datetime | None = None) -> Decision:
    """What to do with a row whose work failed with `error`; `attempts` counts the failures so
    far, this one included when it counts."""
    now = now or utcnow()
    for kind, until in WAITS:
        if isinstance(error, kind):
            return Wait(max(until(error, now), now + MIN_WAIT))
    if isinstance(error, TRANSIENT):
        if attempts >= MAX_ATTEMPTS:
            return Park(f"gave up after {attempts} attempts: {error}")
        return Retry(backoff(attempts))
    return Park(str(error))


def backoff(attempt: int) -> timedelta:
    """Exponential with full jitter, from about a second up to an hour."""
    ceiling = min(MAX_BACKOFF.total_seconds(), 2.0**attempt)
    return timedelta(seconds=max(0.5, random.uniform(0, ceiling)))


def due_portals(engine: Engine, now: datetime | None = None) -> list[str]:
    with Session(engine) as session:
        rows = session.exec(
            select(InboxEvent.portal_key)
            .where(
                InboxEvent.state == InboxState.PENDING,
                InboxEvent.next_attempt_at <= (now or utcnow()),
            )
            .distinct()
        ).all()
        return list(rows)


def take_due(lease: Lease, limit: int = 500) -> list[InboxEvent]:
    """Mark the due rows as taken, so a newer copy of the same delivery gets a row of its own."""
    with fenced(lease) as session:
        rows = list(
            session.exec(
                select(InboxEvent)
                .where(
                    InboxEvent.portal_key == lease.portal_key,
                    InboxEvent.state == InboxState.PENDING,
                    InboxEvent.next_attempt_at <= utcnow(),
                )
                .order_by(col(InboxEvent.id))
                .limit(limit)
            ).all()
        )
        for row in rows:
            row.state = InboxState.WORKING
            session.add(row)
        return rows


def finish(
    lease: Lease,
    ids: Sequence[int],
    state: InboxState,
    outcome: str,
    session: Session | None = None,
) -> None:
    """End the rows with `state`; in `session` when given (a fenced one whose transaction
    records the work they asked for), else in a transaction of their own."""
    if session is not None:
        _finish(session, ids, state, outcome)
        return
    with fenced(lease) as own:
        _finish(own, ids, state, outcome)


def _finish(session: Session, ids: Sequence[int], state: InboxState, outcome: str) -> None:
    session.execute(
        update(InboxEvent)
        .where(col(InboxEvent.id).in_(ids))
        .values(state=state, outcome=outcome, finished_at=utcnow())
    )


def put_back(lease: Lease, ids: Sequence[int]) -> None:
    """Return taken rows untouched (the worker is stopping): no attempt is counted."""
    with fenced(lease) as session:
        for row in session.exec(select(InboxEvent).where(col(InboxEvent.id).in_(ids))).all():
            _requeue(session, row)
        announce(session.connection(), lease.portal_key)  # another worker may take them


def reschedule(lease: Lease, ids: Sequence[int], error: Exception) -> int:
    """Route a failure through `decide`, row by row (each has its own attempts), durably: a wait
    survives restarts and never holds a worker. Returns how many rows were parked."""
    now = utcnow()
    reason = str(error)
    parked = 0
    with fenced(lease) as session:
        for row in session.exec(select(InboxEvent).where(col(InboxEvent.id).in_(ids))).all():
            counted = row.attempts + 1
            decision = decide(error, counted, now)
            if isinstance(decision, Park):
                row.attempts = counted if isinstance(error, TRANSIENT) else row.attempts
                row.state = InboxState.PARKED
                row.outcome = decision.reason
                row.finished_at = now
                session.add(row)
                parked += 1
                continue
            if isinstance(decision, Retry):
                row.attempts = counted
                row.next_attempt_at = now + decision.delay
            else:
                row.next_attempt_at = decision.until
            row.outcome = reason
            _requeue(session, row)
    return parked


def requeue_abandoned(lease: Lease) -> None:
    """Rows a previous holder took and never finished go back to the queue (call on claiming)."""
    with fenced(lease) as session:
        abandoned = session.exec(
            select(InboxEvent).where(
                InboxEvent.portal_key == lease.portal_key, InboxEvent.state == InboxState.WORKING
            )
        ).all()
        for row in abandoned:
            _requeue(session, row)


def replay_parked(
    engine: Engine, portal_key: str | None = None, section_id: str | None = None
) -> int:
    """Put parked rows back in the queue with fresh attempts; returns how many."""
    query = select(InboxEvent).where(InboxEvent.state == InboxState.PARKED)
    if portal_key is not None:
        query = query.where(InboxEvent.portal_key == portal_key)
    if section_id is not None:
        query = query.where(InboxEvent.section_id == section_id)
    with Session(engine) as session:
        rows = session.exec(query).all()
        for row in rows:
            row.attempts = 0
            row.next_attempt_at = utcnow()
            row.finished_at = None
            row.outcome = f"replayed; before: {row.outcome}"
            _requeue(session, row)
        for key in sorted({row.portal_key for row in rows}):
            announce(session.connection(), key)
        session.commit()
        return len(rows)


def _requeue(session: Session, row: InboxEvent) -> None:
    """Back to pending, unless a newer copy already waits: that one carries the work."""
    twin = session.exec(
        select(InboxEvent.id).where(
            InboxEvent.portal_key == row.portal_key,
            InboxEvent.dedup_key == row.dedup_key,
            InboxEvent.state == InboxState.PENDING,
        )
    ).first()
    if twin is None:
        row.state = InboxState.PENDING
    else:
        row.state = InboxState.DONE
        row.outcome = f"superseded by row {twin}, the same delivery again"
        row.finished_at = utcnow()
    session.add(row)
