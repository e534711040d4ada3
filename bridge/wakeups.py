"""Wake-ups: when an idle worker looks at the inbox again.

On PostgreSQL whoever makes work due sends `NOTIFY bridge_inbox` in the transaction that commits
the rows, so the notification arrives only once they are visible: a statement trigger on the
inbox table for every INSERT of waiting rows (migration 0005: inside the statement, no round trip
of its own, which the web's group commit would feel), and `announce` for rows made due again (a
replay, a worker putting rows back). Each worker keeps one connection of its own listening on that
channel in a thread; a notification, or a reconnect after the connection dropped (notifications
may have been missed), wakes the worker at once. Without a notification it still looks every
`fallback` seconds, and when the next postponed row comes due, so a backoff that ends does not
wait for the slow poll. While the listener is not connected the worker polls fast, as on SQLite.
SQLite has no notifications: there the worker polls every 50 ms, with a cheap indexed query.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime

import psycopg
from sqlalchemy import Connection, Engine, func, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from bridge.models import InboxEvent, InboxState, utcnow

log = logging.getLogger("bridge.wakeups")

CHANNEL = "bridge_inbox"
POLL_INTERVAL = 0.05  # SQLite, and PostgreSQL while the listener is not connected
FALLBACK_SECONDS = 2.0  # PostgreSQL with a listener: the poll behind the notifications
MAX_RECONNECT_DELAY = 30.0
_LISTEN_SLICE = 0.5  # the listener checks this often whether it should stop

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


def announce(connection: Connection, portal_key: str) -> None:
    """Wake the waiting workers once the current transaction commits (PostgreSQL only)."""
    if connection.dialect.name == "postgresql":
        connection.execute(_NOTIFY, {"channel": CHANNEL, "payload": portal_key})


class Wakeups:
    """What the worker waits on between passes; `wake` (from any thread) ends a wait at once."""

    def __init__(self, engine: Engine, *, fallback: float = FALLBACK_SECONDS) -> None:
        self.engine = engine
        self.fallback = fallback
        self._notifiable = engine.dialect.name == "postgresql"
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._listening = threading.Event()
        self._listener: threading.Thread | None = None

    def wait(self) -> None:
        """Until woken, the next postponed row is due, or the poll interval has passed."""
        if not self._notifiable:
            self._wake.wait(POLL_INTERVAL)
        else:
            self._start_listener()
            self._wake.wait(self._timeout() if self._listening.is_set() else POLL_INTERVAL)
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.join(timeout=2 * _LISTEN_SLICE)

    def _timeout(self) -> float:
        due = _next_due(self.engine, utcnow())
        if due is None:
            return self.fallback
        return min(self.fallback, max(POLL_INTERVAL, (due - utcnow()).total_seconds()))

    def _start_listener(self) -> None:
        if self._listener is None and not self._closed.is_set():
            self._listener = threading.Thread(target=self._listen, daemon=True, name="wakeups")
            self._listener.start()

    def _listen(self) -> None:
        delay = 1.0
        while not self._closed.is_set():
            try:
                with self._connect() as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    self._wake.set()  # notifications may have been missed while disconnected
                    delay = 1.0
                    while not self._closed.is_set():
                        for _ in connection.notifies(timeout=_LISTEN_SLICE):
                            self._wake.set()
            except Exception as exc:  # psycopg.Error mostly; the listener must outlive any
                self._listening.clear()
                self._wake.set()  # poll fast until listening again
                log.warning(
                    "wake-up listener disconnected (%s); reconnecting in %.0f s",
                    exc.__class__.__name__,
                    delay,
                )
                self._closed.wait(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
        self._listening.clear()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """A connection of its own, outside the pool, with the engine's connection arguments;
        TCP keepalives notice a silently dead peer, and the name shows whose it is."""
        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        kwargs.pop("context", None)  # SQLAlchemy's type adapters
        kwargs.setdefault("application_name", f"bridge-wakeups {os.getpid()}")
        for name, value in (
            ("keepalives", 1),
            ("keepalives_idle", 30),
            ("keepalives_interval", 10),
            ("keepalives_count", 3),
        ):
            kwargs.setdefault(name, value)
        return psycopg.connect(*args, **kwargs, autocommit=True)


def _next_due(engine: Engine, now: datetime) -> datetime | None:
    """When the earliest postponed row comes due (rows due already wait for their portal's lease
    or a notification, so they do not count)."""
    try:
        with Session(engine) as session:
            due = session.exec(
                select(func.min(InboxEvent.next_attempt_at)).where(
                    InboxEvent.state == InboxState.PENDING, InboxEvent.next_attempt_at > now
                )
            ).one()
    except SQLAlchemyError:  # the worker's own pass reports the database
        return None
    return due
