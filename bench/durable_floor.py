"""The durable floor for ingestion: bare Starlette that parses a delivery as `POST /bitrix/events`
does, checks its portal, and answers 200 only once the delivery is committed durably, written
the way the best hand-written server would: with the raw driver (psycopg; sqlite3 in WAL with
`synchronous=FULL`), by one writer thread that drains a queue and commits every waiting delivery
in one transaction (group commit), each request awaiting its group's commit.

It writes the bridge's own row (`inbox_event`, with its indexes and the pending-only unique
(portal, dedup key), in a database migrated like the bridge's), the payload encoded once in the
writer and its SHA-256 as the dedup key. It sends no wake-up (`NOTIFY`) and keeps no pool.

Run it as the bridge runs: `uvicorn bench.durable_floor:app`, with `DATABASE_URL` (a SQLAlchemy
URL: `sqlite:///…` or `postgresql+psycopg://…`) and `BRIDGE_CONFIG` (the portals file) set.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.events import BitrixEvent, parse_body, read_event

MAX_GROUP = 256
_COLUMNS = (
    "portal_key, event, section_id, entry_id, dedup_key, payload, state, attempts, outcome, "
    "received_at, next_attempt_at, finished_at"
)


@dataclass(frozen=True)
class Delivery:
    portal_key: str
    event: BitrixEvent


class Store(Protocol):
    def commit(self, rows: Sequence[tuple[Any, ...]]) -> dict[str, int]:
        """Insert `rows` in one durable transaction; returns dedup key → id of the new rows."""
        ...


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute("PRAGMA busy_timeout=5000")

    def commit(self, rows: Sequence[tuple[Any, ...]]) -> dict[str, int]:
        marks = ", ".join(["(" + ", ".join(["?"] * len(rows[0])) + ")"] * len(rows))
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            cursor.execute(_insert(marks), [value for row in rows for value in row])
            found = {dedup: int(new_id) for new_id, dedup in cursor.fetchall()}
            cursor.execute("COMMIT")
        except BaseException:
            self.connection.rollback()
            raise
        return found

    @staticmethod
    def stamp(moment: datetime) -> Any:
        return str(moment.replace(tzinfo=None))  # as SQLAlchemy keeps a DateTime in SQLite


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(url, autocommit=True)  # transaction(): BEGIN … COMMIT

    def commit(self, rows: Sequence[tuple[Any, ...]]) -> dict[str, int]:
        marks = ", ".join(["(" + ", ".join(["%s"] * len(rows[0])) + ")"] * len(rows))
        with self.connection.transaction(), self.connection.cursor() as cursor:
            cursor.execute(_insert(marks).encode(), [value for row in rows for value in row])
            return {dedup: int(new_id) for new_id, dedup in cursor.fetchall()}

    @staticmethod
    def stamp(moment: datetime) -> Any:
        return moment


def _insert(marks: str) -> str:
    return (
        f"INSERT INTO inbox_event ({_COLUMNS}) VALUES {marks} "
        "ON CONFLICT (portal_key, dedup_key) WHERE state = 'pending' DO NOTHING "
        "RETURNING id, dedup_key"
    )


def open_store(database_url: str) -> SqliteStore | PostgresStore:
    """The raw driver's connection for a SQLAlchemy URL."""
    scheme, _, rest = database_url.partition("://")
    if scheme.startswith("sqlite"):
        return SqliteStore(rest.removeprefix("/"))
    return PostgresStore(f"postgresql://{rest}")


class GroupWriter:
    """One thread, one connection: takes every delivery waiting (up to `MAX_GROUP`), encodes
    and commits them in one transaction, then settles their requests with one wake-up of the
    event loop."""

    def __init__(self, store: SqliteStore | PostgresStore) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[tuple[Delivery, asyncio.Future[int]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, daemon=True, name="floor-writer")
        self._thread.start()

    async def write(self, delivery: Delivery) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put((delivery, future))
        return await future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is None:
                    self._queue.put(None)
                    break
                group.append(waiting)
            outcomes: list[int | BaseException]
            try:
                rows = [_row(delivery, self.store.stamp) for delivery, _ in group]
                found = self.store.commit(rows)
                outcomes = [found.get(row[4], 0) for row in rows]  # 0: a waiting twin's copy
            except Exception as exc:
                outcomes = [exc] * len(group)
            loop = group[0][1].get_loop()
            loop.call_soon_threadsafe(_settle, [f for _, f in group], outcomes)


def _row(delivery: Delivery, stamp: Any) -> tuple[Any, ...]:
    event = delivery.event
    payload = json.dumps(event.payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    dedup = hashlib.sha256(payload.encode()).hexdigest()
    now = stamp(datetime.now(UTC))
    state = "pending" if event.handled else "ignored"
    outcome = None if event.handled else f"{event.event} is not an event the bridge handles"
    finished = None if event.handled else now
    return (
        delivery.portal_key,
        event.event,
        event.section_id,
        event.entry_id,
        dedup,
        payload,
        state,
        0,
        outcome,
        now,
        now,
        finished,
    )


def _settle(futures: list[asyncio.Future[int]], outcomes: list[int | BaseException]) -> None:
    for future, outcome in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _portals(config: Path) -> dict[str, tuple[str, str]]:
    """member id → (portal key, application token), from the portals file."""
    portals = yaml.safe_load(config.read_text(encoding="utf-8"))["portals"]
    return {p["member_id"]: (p["key"], str(p.get("application_token", ""))) for p in portals}


_WRITER: list[GroupWriter] = []
_PORTALS: dict[str, tuple[str, str]] = {}


async def receive_event(request: Request) -> JSONResponse:
    body = await request.body()
    event = read_event(parse_body(body, request.headers.get("content-type", "")))
    portal = _PORTALS.get(event.auth.member_id)
    if portal is None:
        return JSONResponse({"error": "unknown portal"}, status_code=404)
    key, token = portal
    if not hmac.compare_digest(event.auth.application_token.encode(), token.encode()):
        return JSONResponse({"error": "auth[application_token] is wrong"}, status_code=401)
    new_id = await _WRITER[0].write(Delivery(key, event))
    return JSONResponse({"status": "accepted", "id": new_id, "duplicate": new_id == 0})


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    _PORTALS.update(_portals(Path(os.environ["BRIDGE_CONFIG"])))
    _WRITER.append(GroupWriter(open_store(os.environ["DATABASE_URL"])))
    try:
        yield
    finally:
        _WRITER.pop().close()


app = Starlette(
    routes=[Route("/bitrix/events", receive_event, methods=["POST"])], lifespan=lifespan
)
