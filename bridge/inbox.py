"""The inbox: every accepted delivery, persisted before Bitrix24 hears 200.

Guarantee: at-least-once. A row is committed before the web process answers, and it leaves the
`pending` state only when the worker has applied it (`done`), found it outside the selection
(`skipped`) or given up on it (`parked`, with the reason, replayable). Identical re-deliveries
collapse onto one row through the unique (portal, dedup key). Rescheduling writes the next attempt
time to the row, so a wait survives restarts and never holds a worker. A portal is drained by one
worker at a time, under a lease row with an expiry.
"""

from __future__ import annotations

import asyncio
import json
import queue
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DataError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlmodel import Session, col, select

from bridge.events import BitrixEvent
from bridge.lease import Lease, fenced, requeue
from bridge.models import InboxEvent, InboxState, utcnow
from bridge.wakeups import announce

MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True)
class Recorded:
    id: int
    duplicate: bool


def record_event(engine: Engine, portal_key: str, event: BitrixEvent) -> Recorded:
    """Insert the event in its own commit; a copy of a row that still waits returns that row."""
    with engine.begin() as connection:
        recorded = _record(connection, portal_key, event)
        if event.handled:
            announce(connection, portal_key)
        return recorded


class StoreUnavailable(Exception):
    """Nothing was stored: the database failed, is locked past the bound, or the queue is full."""


class UnstorableEvent(Exception):
    """The database refused this delivery's content; the deliveries grouped with it are kept."""


# Errors of the store itself (connection, lock or statement timeout): every delivery in the
# transaction shares them. Any other error belongs to the one delivery that raised it.
_STORE_FAULTS = (OperationalError, InterfaceError, DisconnectionError, SQLAlchemyTimeoutError)
_CONTENT_FAULTS = (DataError, IntegrityError, UnicodeError, ValueError)


class InboxWriter:
    """Group commit for the web process: concurrent deliveries are written by one thread, many
    to a transaction, and each request is answered once its transaction committed. One writer
    instead of a connection per request also spares SQLite's single write lock a crowd.

    A delivery stands alone: when a group fails on one delivery's content, the group is written
    again with a savepoint per delivery, so only that one fails. Waits are bounded: the queue
    (full: StoreUnavailable at once), each lock or statement (`store_timeout` on the writer's
    connection) and, as a backstop, the request's wait for its commit (twice that: the store's
    own timeout answers first, so a request answered 503 was normally not stored)."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 256,
        max_queue: int = 2048,
        store_timeout: float = 5.0,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.store_timeout = store_timeout
        self.max_queue = max_queue
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def record(self, portal_key: str, event: BitrixEvent) -> Recorded:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Recorded] = loop.create_future()
        if self._queue.qsize() >= self.max_queue:
            raise StoreUnavailable("the inbox writer's queue is full")
        wait = 2 * self.store_timeout
        self._queue.put(_Pending(portal_key, event, loop, future, time.monotonic() + wait))
        self._ensure_thread()
        late = StoreUnavailable(f"not committed within {wait:g} s")
        timer = loop.call_later(wait, _settle, future, late)
        try:
            return await future
        finally:
            timer.cancel()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="inbox-writer")
                self._thread.start()

    def _run(self) -> None:
        connection: Connection | None = None  # held across batches: no checkout or ping each time
        while True:
            batch = self._take()
            if not batch:
                continue
            try:
                connection = connection or self._connect()
                outcomes = self._write(connection, batch)
            except Exception as exc:  # the store failed: nothing of the batch was stored
                if connection is not None:
                    connection.invalidate()  # maybe broken, and its waits are bounded for us
                    connection.close()
                    connection = None
                outcomes = [StoreUnavailable(exc.__class__.__name__) for _ in batch]
            for pending, outcome in zip(batch, outcomes, strict=True):
                pending.loop.call_soon_threadsafe(_settle, pending.future, outcome)

    def _take(self) -> list[_Pending]:
        """The waiting deliveries whose requests still wait; the others were answered 503."""
        batch = [self._queue.get()]
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        now = time.monotonic()
        return [pending for pending in batch if pending.deadline > now]

    def _connect(self) -> Connection:
        """A connection whose lock waits end after `store_timeout` (PostgreSQL: per
        transaction, in `_write`). It is invalidated, never pooled, when the writer drops it."""
        connection = self.engine.connect()
        if connection.dialect.name == "sqlite":
            raw: Any = connection.connection.dbapi_connection
            raw.execute(f"PRAGMA busy_timeout={int(self.store_timeout * 1000)}")
        return connection

    def _write(self, connection: Connection, batch: list[_Pending]) -> list[Recorded | Exception]:
        try:
            with connection.begin():
                self._bound(connection)
                written: list[Recorded | Exception] = [
                    _record(connection, p.portal_key, p.event) for p in batch
                ]
                _announce_waiting(connection, batch, written)
                return written
        except _STORE_FAULTS:
            raise
        except Exception:  # one delivery's content: write each in a savepoint of its own
            pass
        outcomes: list[Recorded | Exception] = []
        with connection.begin():
            self._bound(connection)
            for pending in batch:
                try:
                    with connection.begin_nested():
                        outcomes.append(_record(connection, pending.portal_key, pending.event))
                except _STORE_FAULTS:
                    raise
                except _CONTENT_FAULTS as exc:
                    outcomes.append(UnstorableEvent(_cause(exc)))
                except Exception as exc:
                    outcomes.append(StoreUnavailable(exc.__class__.__name__))
            _announce_waiting(connection, batch, outcomes)
        return outcomes

    def _bound(self, connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            limit = f"{int(self.store_timeout * 1000)}ms"
            connection.execute(_BOUND_WAITS, {"limit": limit})


_BOUND_WAITS = text(
    "SELECT set_config('lock_timeout', :limit, true), "
    "set_config('statement_timeout', :limit, true)"
)


def _announce_waiting(
    connection: Connection, batch: list[_Pending], outcomes: Sequence[Recorded | Exception]
) -> None:
    """One wake-up per portal with a new waiting row, sent when the group commits."""
    portals = {
        pending.portal_key
        for pending, outcome in zip(batch, outcomes, strict=True)
        if isinstance(outcome, Recorded) and not outcome.duplicate and pending.event.handled
    }
    for portal_key in sorted(portals):
        announce(connection, portal_key)


def _cause(error: Exception) -> str:
    """What the database refused, without quoting the delivery back."""
    original = getattr(error, "orig", None) or error
    return original.__class__.__name__


@dataclass(frozen=True)
class _Pending:
    portal_key: str
    event: BitrixEvent
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Recorded]
    deadline: float  # monotonic: past it the request has been answered 503


def _settle(future: asyncio.Future[Recorded], outcome: Recorded | Exception) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _record(connection: Connection, portal_key: str, event: BitrixEvent) -> Recorded:
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
    insert, waiting = _STATEMENTS[connection.dialect.name == "postgresql"]
    for _ in range(3):  # the waiting twin may be taken by the worker between the two steps
        new_id = connection.execute(insert, values).scalar_one_or_none()
        if new_id is not None:
            return Recorded(id=int(new_id), duplicate=False)
        twin = connection.execute(
            waiting, {"portal": portal_key, "dedup": event.dedup_key, "pending": InboxState.PENDING}
        ).scalar_one_or_none()
        if twin is not None:
            return Recorded(id=int(twin), duplicate=True)
    raise RuntimeError("could not record the event")  # pragma: no cover - needs a pathological race


_TABLE = InboxEvent.__table__  # type: ignore[attr-defined]
_WAITING = text("state = 'pending'")
# Built once, with parameters bound per call, so SQLAlchemy compiles each only once.
_STATEMENTS = {
    postgres: (
        (postgresql.insert if postgres else sqlite.insert)(_TABLE)
        .on_conflict_do_nothing(index_elements=["portal_key", "dedup_key"], index_where=_WAITING)
        .returning(_TABLE.c.id),
        select(_TABLE.c.id).where(
            _TABLE.c.portal_key == bindparam("portal"),
            _TABLE.c.dedup_key == bindparam("dedup"),
            _TABLE.c.state == bindparam("pending"),
        ),
    )
    for postgres in (False, True)
}


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


def finish(lease: Lease, ids: Sequence[int], state: InboxState, outcome: str) -> None:
    with fenced(lease) as session:
        session.execute(
            update(InboxEvent)
            .where(col(InboxEvent.id).in_(ids))
            .values(state=state, outcome=outcome, finished_at=utcnow())
        )


def put_back(lease: Lease, ids: Sequence[int]) -> None:
    """Return taken rows untouched (the worker is stopping): no attempt is counted."""
    with fenced(lease) as session:
        for row in session.exec(select(InboxEvent).where(col(InboxEvent.id).in_(ids))).all():
            requeue(session, row)
        announce(session.connection(), lease.portal_key)  # another worker may take them


def retry_later(
    lease: Lease,
    ids: Sequence[int],
    reason: str,
    delay: timedelta | None = None,
    *,
    count_attempt: bool = True,
) -> int:
    """Back off durably; rows out of attempts are parked with the reason instead. A wait that
    is no failure (our own pacing) does not count as an attempt. Returns how many were parked."""
    now = utcnow()
    parked = 0
    with fenced(lease) as session:
        for row in session.exec(select(InboxEvent).where(col(InboxEvent.id).in_(ids))).all():
            row.attempts += 1 if count_attempt else 0
            row.outcome = reason
            if row.attempts >= MAX_ATTEMPTS:
                row.state = InboxState.PARKED
                row.outcome = f"gave up after {row.attempts} attempts: {reason}"
                row.finished_at = now
                session.add(row)
                parked += 1
            else:
                row.next_attempt_at = now + (delay or backoff(row.attempts))
                requeue(session, row)
    return parked


def backoff(attempt: int) -> timedelta:
    """Exponential with full jitter, from about a second up to an hour."""
    ceiling = min(MAX_BACKOFF.total_seconds(), 2.0**attempt)
    return timedelta(seconds=max(0.5, random.uniform(0, ceiling)))


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
            requeue(session, row)
        for key in sorted({row.portal_key for row in rows}):
            announce(session.connection(), key)
        session.commit()
        return len(rows)


def count_by_state(engine: Engine, portal_key: str | None = None) -> dict[str, int]:
    with Session(engine) as session:
        query = select(InboxEvent.state, func.count()).group_by(col(InboxEvent.state))
        if portal_key is not None:
            query = query.where(InboxEvent.portal_key == portal_key)
        return {str(state): int(n) for state, n in session.exec(query).all()}
