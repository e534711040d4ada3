"""The inbox: every accepted delivery, persisted before Bitrix24 hears 200.

Guarantee: at-least-once. A row is committed before the web process answers, and it leaves the
`pending` state only when the worker has applied it (`done`), found it outside the selection
(`skipped`) or given up on it (`parked`, with the reason, replayable). Identical re-deliveries
collapse onto one row through the unique (portal, dedup key). Rescheduling writes the next attempt
time to the row, so a wait survives restarts and never holds a worker. A portal is drained by one
worker at a time, under a lease row with an expiry.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from bridge.events import BitrixEvent
from bridge.models import InboxEvent, InboxState, PortalLease, utcnow

MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True)
class Recorded:
    id: int
    duplicate: bool


def record_event(engine: Engine, portal_key: str, event: BitrixEvent) -> Recorded:
    """Insert the event once, in its own commit; a re-delivery returns the existing row."""
    state = InboxState.PENDING if event.handled else InboxState.IGNORED
    now = utcnow()
    values = {
        "portal_key": portal_key,
        "event": event.event,
        "section_id": event.section_id,
        "dedup_key": event.dedup_key,
        "payload": json.dumps(event.payload, ensure_ascii=False, sort_keys=True),
        "state": state,
        "attempts": 0,
        "outcome": None if event.handled else f"{event.event} is not an event the bridge handles",
        "received_at": now,
        "next_attempt_at": now,
        "finished_at": None if event.handled else now,
    }
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(InboxEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["portal_key", "dedup_key"])
        .returning(col(InboxEvent.id))
    )
    with Session(engine) as session:
        new_id = session.execute(statement).scalar_one_or_none()
        if new_id is None:
            existing = session.exec(
                select(InboxEvent.id).where(
                    InboxEvent.portal_key == portal_key, InboxEvent.dedup_key == event.dedup_key
                )
            ).one()
            session.commit()
            assert existing is not None
            return Recorded(id=existing, duplicate=True)
        session.commit()
        return Recorded(id=int(new_id), duplicate=False)


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


def claim_portal(engine: Engine, portal_key: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the portal's lease; False while another live worker holds it."""
    now = utcnow()
    with Session(engine) as session:
        if session.get(PortalLease, portal_key) is None:
            session.add(PortalLease(portal_key=portal_key))
            try:
                session.commit()
            except Exception:  # another worker inserted it first; the update below decides
                session.rollback()
        result = session.execute(
            update(PortalLease)
            .where(
                col(PortalLease.portal_key) == portal_key,
                or_(
                    col(PortalLease.holder).is_(None),
                    col(PortalLease.holder) == holder,
                    col(PortalLease.expires_at) < now,
                ),
            )
            .values(holder=holder, expires_at=now + ttl)
        )
        session.commit()
        return bool(getattr(result, "rowcount", 0) == 1)


def release_portal(engine: Engine, portal_key: str, holder: str) -> None:
    with Session(engine) as session:
        session.execute(
            update(PortalLease)
            .where(col(PortalLease.portal_key) == portal_key, col(PortalLease.holder) == holder)
            .values(holder=None, expires_at=None)
        )
        session.commit()


def fetch_due(engine: Engine, portal_key: str, limit: int = 500) -> list[InboxEvent]:
    with Session(engine) as session:
        rows = session.exec(
            select(InboxEvent)
            .where(
                InboxEvent.portal_key == portal_key,
                InboxEvent.state == InboxState.PENDING,
                InboxEvent.next_attempt_at <= utcnow(),
            )
            .order_by(col(InboxEvent.id))
            .limit(limit)
        ).all()
        return list(rows)


def finish(engine: Engine, ids: Sequence[int], state: InboxState, outcome: str) -> None:
    with Session(engine) as session:
        session.execute(
            update(InboxEvent)
            .where(col(InboxEvent.id).in_(ids))
            .values(state=state, outcome=outcome, finished_at=utcnow())
        )
        session.commit()


def retry_later(
    engine: Engine, ids: Sequence[int], reason: str, delay: timedelta | None = None
) -> None:
    """Back off durably; rows out of attempts are parked with the reason instead."""
    now = utcnow()
    with Session(engine) as session:
        for row in session.exec(select(InboxEvent).where(col(InboxEvent.id).in_(ids))).all():
            row.attempts += 1
            row.outcome = reason
            if row.attempts >= MAX_ATTEMPTS:
                row.state = InboxState.PARKED
                row.outcome = f"gave up after {row.attempts} attempts: {reason}"
                row.finished_at = now
            else:
                row.next_attempt_at = now + (delay or backoff(row.attempts))
            session.add(row)
        session.commit()


def backoff(attempt: int) -> timedelta:
    """Exponential with full jitter, from about a second up to an hour."""
    ceiling = min(MAX_BACKOFF.total_seconds(), 2.0**attempt)
    return timedelta(seconds=max(0.5, random.uniform(0, ceiling)))


def count_by_state(engine: Engine, portal_key: str | None = None) -> dict[str, int]:
    with Session(engine) as session:
        query = select(InboxEvent.state, func.count()).group_by(col(InboxEvent.state))
        if portal_key is not None:
            query = query.where(InboxEvent.portal_key == portal_key)
        return {str(state): int(n) for state, n in session.exec(query).all()}
