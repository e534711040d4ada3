"""Event delivery of the Bitrix24 emulator: the "queue server" that POSTs events to handlers.

One worker thread drains a FIFO queue, so deliveries leave in the order the changes happened and
always after the REST call that caused them has answered. Like Bitrix24, a failed delivery is
logged and never retried.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from bridge.sandbox.bitrix.php_query import http_build_query

__all__ = ["DeliveryJob", "DeliveryQueue"]

_log = logging.getLogger("bridge.sandbox.bitrix.emulator")


@dataclass(frozen=True)
class DeliveryJob:
    """One event for one handler; `ts` is stamped when it leaves the queue.

    `section_id` is the changed object's id: a section's, or an entry's for ONCALENDARENTRY*.
    `data` None means the calendar events' `{"id": section_id}`; an empty `data` sends no `data`
    key at all (PHP drops empty arrays). An empty `handler_id` sends no `event_handler_id`, as
    for the install callback.
    """

    member_id: str
    handler_id: str
    url: str
    event: str
    section_id: int | None
    auth: Mapping[str, str]
    data: Mapping[str, Any] | None = None

    def body(self, ts: int) -> str:
        payload: dict[str, Any] = {"event": self.event}
        if self.handler_id:
            payload["event_handler_id"] = self.handler_id
        payload["data"] = {"id": str(self.section_id)} if self.data is None else dict(self.data)
        payload["ts"] = str(ts)
        payload["auth"] = dict(self.auth)
        return http_build_query(payload)


class DeliveryQueue:
    """A FIFO of `DeliveryJob`s POSTed form-encoded by a lazily started daemon thread."""

    def __init__(self, *, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._queue: queue.Queue[tuple[int, DeliveryJob] | None] = queue.Queue()
        self._done = threading.Condition()
        self._reserved = 0  # announced by a REST call still answering, not yet queued
        self._active = 0  # queued or in flight
        self._generation = 0
        self._next_ticket = 0  # reservations are numbered in the order the changes happened
        self._next_release = 0
        self._waiting: dict[int, list[DeliveryJob]] = {}  # enqueued out of order, held back
        self._log: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None

    def reserve(self, count: int) -> tuple[int, int]:
        """Count `count` jobs as pending now, before they are enqueued; return the ticket."""
        with self._done:
            self._reserved += count
            self._next_ticket += 1
            return self._generation, self._next_ticket - 1

    def enqueue(self, ticket: tuple[int, int], jobs: Iterable[DeliveryJob]) -> None:
        """Queue jobs announced by `reserve`, in reservation order (background tasks of two
        answers may run in either order); jobs reserved before a `clear` are dropped."""
        generation, number = ticket
        with self._done:
            if generation != self._generation:
                return
            self._waiting[number] = list(jobs)
            while self._next_release in self._waiting:
                for job in self._waiting.pop(self._next_release):
                    self._reserved -= 1
                    self._active += 1
                    self._queue.put((generation, job))
                self._next_release += 1
            if self._active and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._run, daemon=True, name="bitrix-emulator-delivery"
                )
                self._thread.start()
            self._done.notify_all()

    def submit(self, jobs: Iterable[DeliveryJob]) -> None:
        batch = list(jobs)
        self.enqueue(self.reserve(len(batch)), batch)

    def flush(self, timeout: float) -> int:
        """Wait until nothing is queued or in flight; return how many are still pending."""
        with self._done:
            self._done.wait_for(lambda: self._reserved + self._active == 0, timeout)
            return self._reserved + self._active

    def entries(self) -> list[dict[str, Any]]:
        with self._done:
            return [dict(entry) for entry in self._log]

    def clear(self) -> None:
        """Forget the log and drop queued jobs; a delivery already in flight still goes out."""
        with self._done:
            self._generation += 1
            self._reserved = 0
            self._waiting.clear()
            self._next_release = self._next_ticket
            self._log.clear()
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                self._active -= 1
            self._done.notify_all()

    def close(self) -> None:
        with self._done:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(self._timeout_s + 2.0)

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout_s, trust_env=False) as client:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                generation, job = item
                entry = self._deliver(client, job)
                with self._done:
                    if generation == self._generation:
                        self._log.append(entry)
                    self._active -= 1
                    self._done.notify_all()

    def _deliver(self, client: httpx.Client, job: DeliveryJob) -> dict[str, Any]:
        sent_at = time.time()
        body = job.body(int(sent_at))
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            response = client.post(
                job.url,
                content=body.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            status = response.status_code
            if not response.is_success:
                error = f"HTTP {status}"
        except Exception as exc:  # any failure is only logged: the queue never retries
            error = f"{type(exc).__name__}: {exc}"
        duration = time.monotonic() - started
        _log.info(
            "delivery handler=%s url=%s event=%s section=%s status=%s error=%s duration=%.3fs",
            job.handler_id,
            job.url,
            job.event,
            job.section_id,
            status,
            error,
            duration,
        )
        return {
            "member_id": job.member_id,
            "handler_id": job.handler_id,
            "handler": job.url,
            "event": job.event,
            "section_id": None if job.section_id is None else str(job.section_id),
            "status": status,
            "error": error,
            "ok": error is None,
            "duration": duration,
            "t": sent_at,
            "body": body,
        }
