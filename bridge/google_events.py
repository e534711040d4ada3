"""Google Calendar events: the calls that mirror entries, one at a time or in batches.

The bridge chooses every event id (`bridge.event_body` derives it from the portal and the
entry), so an insert is idempotent: a retry of an insert whose answer was lost meets
`409 duplicate` (`EventExists`), and the caller puts the body instead. Every write passes
`sendUpdates=none`, so nobody is ever e-mailed. Batches go to the batch endpoint that belongs to
the configured `api_endpoint` (the library's own default ignores it), at most 50 calls each;
every call in a batch still counts against the per-user pace, so each one takes a slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from bridge.google_calendar import GoogleCalendarGateway
from bridge.google_errors import (
    TRANSIENT_ERRORS,
    GoogleError,
    GoogleNotFound,
    GoogleRequestRejected,
    classify_http_error,
)
from bridge.metrics import UPSTREAM_REQUESTS, UPSTREAM_RETRIES

BATCH_LIMIT = 50
NO_MAIL = "none"  # sendUpdates on every write


class EventExists(GoogleRequestRejected):
    """409 duplicate: an event with this id exists in the calendar (maybe cancelled)."""


class EventGone(GoogleNotFound):
    """410 deleted: the event was already deleted."""


@dataclass(frozen=True)
class EventCall:
    """One events.* call, for `run_batch`: `method` is `insert`, `update`, `patch`, `delete`,
    `move` or `get`; `body` for the writes; `destination` for a move."""

    method: str
    calendar_id: str
    event_id: str = ""
    body: Mapping[str, Any] | None = None
    destination: str = ""


BatchResult = dict[str, Any] | GoogleError


class EventGateway(Protocol):
    def insert_event(self, calendar_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def update_event(
        self, calendar_id: str, event_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    def get_event(self, calendar_id: str, event_id: str) -> dict[str, Any] | None: ...

    def delete_event(self, calendar_id: str, event_id: str) -> None: ...

    def move_event(self, calendar_id: str, event_id: str, destination: str) -> dict[str, Any]: ...

    def list_events(
        self, calendar_id: str, private: Mapping[str, str], *, show_deleted: bool = False
    ) -> Iterator[dict[str, Any]]: ...

    def run_batch(self, calls: Sequence[EventCall]) -> list[BatchResult]: ...


class GoogleEventGateway:
    """The events half of a portal's Google gateway: same credentials, transport and pace."""

    def __init__(self, calendars: GoogleCalendarGateway) -> None:
        self._calendars = calendars

    def insert_event(self, calendar_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call(
            "events.insert", lambda: self._request(EventCall("insert", calendar_id, body=body))
        )

    def update_event(
        self, calendar_id: str, event_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        call = EventCall("update", calendar_id, event_id, body)
        return self._call("events.update", lambda: self._request(call))

    def get_event(self, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        try:
            return self._call(
                "events.get", lambda: self._request(EventCall("get", calendar_id, event_id))
            )
        except GoogleNotFound:
            return None

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """Deleting what is already deleted (410) or gone (404) is done."""
        with suppress(GoogleNotFound):
            self._call(
                "events.delete", lambda: self._request(EventCall("delete", calendar_id, event_id))
            )

    def move_event(self, calendar_id: str, event_id: str, destination: str) -> dict[str, Any]:
        call = EventCall("move", calendar_id, event_id, destination=destination)
        return self._call("events.move", lambda: self._request(call))

    def list_events(
        self, calendar_id: str, private: Mapping[str, str], *, show_deleted: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every event of the calendar carrying these private extended properties."""
        page_token: str | None = None
        filters = [f"{key}={value}" for key, value in sorted(private.items())]
        while True:
            request = self._calendars.resource("events").list(
                calendarId=calendar_id,
                privateExtendedProperty=filters,
                showDeleted=show_deleted,
                maxResults=2500,
                pageToken=page_token,
            )
            page: dict[str, Any] = self._calendars.call("events.list", request.execute)
            yield from page.get("items", [])
            page_token = page.get("nextPageToken")
            if not page_token:
                return

    def run_batch(self, calls: Sequence[EventCall]) -> list[BatchResult]:
        """Each call's result or error, in order. Transient failures are sent again in a later
        batch (with backoff), up to the gateway's attempts; each call takes a pace slot."""
        results: list[BatchResult | None] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(self._calendars.attempts):
            if attempt:
                UPSTREAM_RETRIES.labels("google", "batch").inc()
                time.sleep(min(16.0, 0.5 * 2**attempt))
            for start in range(0, len(pending), BATCH_LIMIT):
                chunk = pending[start : start + BATCH_LIMIT]
                for index, result in zip(
                    chunk, self._send_batch([calls[i] for i in chunk]), strict=True
                ):
                    results[index] = result
            pending = [i for i in pending if isinstance(results[i], TRANSIENT_ERRORS)]
            if not pending:
                break
        return [r if r is not None else GoogleError("not sent") for r in results]

    def _send_batch(self, calls: Sequence[EventCall]) -> list[BatchResult]:
        answers: dict[str, BatchResult] = {}

        def collect(request_id: str, response: Any, exception: Exception | None) -> None:
            if isinstance(exception, HttpError):
                answers[request_id] = _event_error(classify_http_error(exception))
            elif exception is not None:
                answers[request_id] = GoogleError(f"{exception.__class__.__name__}: {exception}")
            else:
                answers[request_id] = response if isinstance(response, dict) else {}

        batch = BatchHttpRequest(callback=collect, batch_uri=self._calendars.batch_uri())
        for index, call in enumerate(calls):
            self._calendars.pace()
            batch.add(self._request_for(call), request_id=str(index))
        try:
            self._calendars.call("batch", lambda: batch.execute(), paced=False, once=True)
        except GoogleError as exc:  # the whole batch failed: every call shares the error
            return [exc] * len(calls)
        for index, call in enumerate(calls):
            answer = answers.get(str(index), GoogleError("no answer in the batch"))
            status = "2xx" if isinstance(answer, dict) else str(getattr(answer, "status", "error"))
            UPSTREAM_REQUESTS.labels("google", f"events.{call.method}", status).inc()
        return [
            answers.get(str(i), GoogleError("no answer in the batch")) for i in range(len(calls))
        ]

    def _call(self, method: str, request: Callable[[], Any]) -> dict[str, Any]:
        try:
            result = self._calendars.call(method, request)
        except GoogleError as exc:
            raise _event_error(exc) from None
        return result if isinstance(result, dict) else {}

    def _request(self, call: EventCall) -> Any:
        return self._request_for(call).execute()

    def _request_for(self, call: EventCall) -> Any:
        events = self._calendars.resource("events")
        body = dict(call.body or {})
        if call.method == "insert":
            return events.insert(calendarId=call.calendar_id, body=body, sendUpdates=NO_MAIL)
        if call.method == "update":
            return events.update(
                calendarId=call.calendar_id, eventId=call.event_id, body=body, sendUpdates=NO_MAIL
            )
        if call.method == "patch":
            return events.patch(
                calendarId=call.calendar_id, eventId=call.event_id, body=body, sendUpdates=NO_MAIL
            )
        if call.method == "delete":
            return events.delete(
                calendarId=call.calendar_id, eventId=call.event_id, sendUpdates=NO_MAIL
            )
        if call.method == "move":
            return events.move(
                calendarId=call.calendar_id,
                eventId=call.event_id,
                destination=call.destination,
                sendUpdates=NO_MAIL,
            )
        if call.method == "get":
            return events.get(calendarId=call.calendar_id, eventId=call.event_id)
        raise ValueError(f"unknown events call {call.method!r}")


def _event_error(exc: GoogleError) -> GoogleError:
    """The event-specific meanings of 409 and 410."""
    if exc.status == 409:
        return EventExists(str(exc), exc.status, exc.reason)
    if exc.status == 410:
        return EventGone(str(exc), exc.status, exc.reason)
    return exc
