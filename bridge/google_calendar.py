"""The Google Calendar gateway: google-api-python-client with service-account credentials.

One gateway per portal. httplib2 is not thread-safe, so every thread builds its own transport.
`calendars.insert` runs exactly once per call (no library retries: a retried POST can create a
second calendar); idempotent calls retry transient failures with tenacity. HttpErrors become
the classes of `bridge.google_errors` (re-exported here for the modules that also use the
gateway), raised here and handled by the worker.
"""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any, Protocol, TypeVar

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from bridge.calendars import CalendarListEntry as CalendarListEntry
from bridge.config import GoogleConfig
from bridge.google_errors import TRANSIENT_ERRORS as TRANSIENT_ERRORS
from bridge.google_errors import GoogleAuthFailed as GoogleAuthFailed
from bridge.google_errors import GoogleError as GoogleError
from bridge.google_errors import GoogleNotFound as GoogleNotFound
from bridge.google_errors import GoogleQuotaExceeded as GoogleQuotaExceeded
from bridge.google_errors import GoogleRateLimited as GoogleRateLimited
from bridge.google_errors import GoogleRequestRejected as GoogleRequestRejected
from bridge.google_errors import GoogleUnavailable as GoogleUnavailable
from bridge.google_errors import classify_http_error
from bridge.google_http import SingleSendHttp
from bridge.metrics import UPSTREAM_REQUESTS, UPSTREAM_RETRIES
from bridge.pacing import LeakyBucket

SCOPES = ["https://www.googleapis.com/auth/calendar"]
T = TypeVar("T")


class CalendarGateway(Protocol):
    def insert_calendar(self, summary: str, description: str, time_zone: str) -> str: ...

    def owned_calendars(self) -> Iterator[CalendarListEntry]: ...

    def calendar_exists(self, calendar_id: str) -> bool: ...

    def patch_calendar(self, calendar_id: str, fields: dict[str, Any]) -> None: ...

    def patch_list_entry(self, calendar_id: str, fields: dict[str, Any]) -> None: ...

    def add_to_list(self, calendar_id: str) -> None: ...

    def delete_calendar(self, calendar_id: str) -> None: ...

    def list_acl(self, calendar_id: str) -> dict[str, str]: ...

    def insert_acl(self, calendar_id: str, rule_id: str, role: str, *, notify: bool) -> None: ...

    def delete_acl(self, calendar_id: str, rule_id: str) -> None: ...


class GoogleCalendarGateway:
    def __init__(
        self, config: GoogleConfig, *, attempts: int = 4, pacer: LeakyBucket | None = None
    ) -> None:
        self._config = config
        self._pacer = pacer
        self._attempts = attempts
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            config.service_account_info(), scopes=SCOPES
        )
        self._credentials = credentials.with_subject(config.subject)
        self._local = threading.local()

    def insert_calendar(self, summary: str, description: str, time_zone: str) -> str:
        """Exactly one POST: a retry could create a second calendar (see `mirror` for recovery)."""
        body = {"summary": summary, "description": description, "timeZone": time_zone}
        created = self._once(
            "calendars.insert", lambda: self.resource("calendars").insert(body=body).execute()
        )
        return str(created["id"])

    def owned_calendars(self) -> Iterator[CalendarListEntry]:
        """Every calendar the owner's list shows as owned, hidden ones included."""
        page_token: str | None = None
        while True:
            request = self.resource("calendarList").list(
                minAccessRole="owner",
                showHidden=True,
                maxResults=250,
                pageToken=page_token,
                fields=(
                    "items(id,summary,description,timeZone,backgroundColor,foregroundColor,hidden),"
                    "nextPageToken"
                ),
            )
            page: dict[str, Any] = self._retrying("calendarList.list", request.execute)
            for item in page.get("items", []):
                yield CalendarListEntry(
                    id=str(item["id"]),
                    summary=str(item.get("summary", "")),
                    description=str(item.get("description", "")),
                    time_zone=str(item.get("timeZone", "")),
                    background=str(item.get("backgroundColor", "")),
                    foreground=str(item.get("foregroundColor", "")),
                    hidden=bool(item.get("hidden", False)),
                )
            page_token = page.get("nextPageToken")
            if not page_token:
                return

    def calendar_exists(self, calendar_id: str) -> bool:
        try:
            self._retrying(
                "calendars.get",
                lambda: self.resource("calendars").get(calendarId=calendar_id).execute(),
            )
        except GoogleNotFound:
            return False
        return True

    def patch_calendar(self, calendar_id: str, fields: dict[str, Any]) -> None:
        self._retrying(
            "calendars.patch",
            lambda: self.resource("calendars").patch(calendarId=calendar_id, body=fields).execute(),
        )

    def patch_list_entry(self, calendar_id: str, fields: dict[str, Any]) -> None:
        """The owner's view: colours (RGB, which needs colorRgbFormat) and visibility."""
        self._retrying(
            "calendarList.patch",
            lambda: (
                self.resource("calendarList")
                .patch(calendarId=calendar_id, body=fields, colorRgbFormat=True)
                .execute()
            ),
        )

    def add_to_list(self, calendar_id: str) -> None:
        self._retrying(
            "calendarList.insert",
            lambda: self.resource("calendarList").insert(body={"id": calendar_id}).execute(),
        )

    def delete_calendar(self, calendar_id: str) -> None:
        with suppress(GoogleNotFound):  # already gone
            self._retrying(
                "calendars.delete",
                lambda: self.resource("calendars").delete(calendarId=calendar_id).execute(),
            )

    def list_acl(self, calendar_id: str) -> dict[str, str]:
        rules: dict[str, str] = {}
        page_token: str | None = None
        while True:
            request = self.resource("acl").list(
                calendarId=calendar_id, pageToken=page_token, maxResults=250
            )
            page: dict[str, Any] = self._retrying("acl.list", request.execute)
            for item in page.get("items", []):
                rules[str(item["id"]).lower()] = str(item.get("role", ""))
            page_token = page.get("nextPageToken")
            if not page_token:
                return rules

    def insert_acl(self, calendar_id: str, rule_id: str, role: str, *, notify: bool) -> None:
        """Idempotent: inserting a rule for an existing scope sets its role."""
        kind, _, value = rule_id.partition(":")
        scope = {"type": kind, "value": value} if value else {"type": kind}
        self._retrying(
            "acl.insert",
            lambda: (
                self.resource("acl")
                .insert(
                    calendarId=calendar_id,
                    body={"role": role, "scope": scope},
                    sendNotifications=notify,
                )
                .execute()
            ),
        )

    def delete_acl(self, calendar_id: str, rule_id: str) -> None:
        with suppress(GoogleNotFound):
            self._retrying(
                "acl.delete",
                lambda: (
                    self.resource("acl").delete(calendarId=calendar_id, ruleId=rule_id).execute()
                ),
            )

    def service(self) -> Any:
        service = getattr(self._local, "service", None)
        if service is None:
            http = google_auth_httplib2.AuthorizedHttp(
                self._credentials, http=SingleSendHttp(timeout=self._config.timeout_s)
            )
            service = build(
                "calendar",
                "v3",
                http=http,
                static_discovery=True,
                cache_discovery=False,
                client_options={"api_endpoint": self._config.api_endpoint},
            )
            self._local.service = service
            self._local.resources = {}
        return service

    def resource(self, name: str) -> Any:
        """`service().calendars()` and the like, built once per thread: building one walks the
        discovery document (about 0.5 ms)."""
        service = self.service()
        resources: dict[str, Any] = self._local.resources
        resource = resources.get(name)
        if resource is None:
            resource = resources[name] = getattr(service, name)()
        return resource

    @property
    def attempts(self) -> int:
        return self._attempts

    def pace(self) -> None:
        """Wait for this subject's next request slot."""
        if self._pacer is not None:
            self._pacer.acquire()

    def batch_uri(self) -> str:
        """The batch endpoint beside `api_endpoint` (`…/calendar/v3/` → `…/batch/calendar/v3`)."""
        base = self._config.api_endpoint.rstrip("/").removesuffix("/calendar/v3")
        return f"{base}/batch/calendar/v3"

    def call(
        self, method: str, request: Callable[[], T], *, paced: bool = True, once: bool = False
    ) -> T:
        """Run one request with this gateway's errors, metrics and pace; transient failures are
        retried unless `once` (a call that must not be sent twice)."""
        if once:
            return self._once(method, request, paced=paced)
        return self._retrying(method, request, paced=paced)

    def _once(self, method: str, request: Callable[[], T], *, paced: bool = True) -> T:
        if paced:
            self.pace()
        try:
            result = request()
        except HttpError as exc:
            UPSTREAM_REQUESTS.labels("google", method, str(exc.resp.status)).inc()
            raise classify_http_error(exc) from None
        except RefreshError as exc:
            UPSTREAM_REQUESTS.labels("google", method, "auth").inc()
            raise GoogleAuthFailed(
                f"Google refused the service-account credentials: {_first_line(exc)}"
            ) from None
        except (TimeoutError, TransportError, httplib2.HttpLib2Error, ssl.SSLError, OSError) as exc:
            UPSTREAM_REQUESTS.labels("google", method, "network").inc()
            self._local.service = None  # the connection state is unknown: start a fresh one
            raise GoogleUnavailable(f"Google did not answer: {exc.__class__.__name__}") from None
        UPSTREAM_REQUESTS.labels("google", method, "2xx").inc()
        return result

    def _retrying(self, method: str, request: Callable[[], T], *, paced: bool = True) -> T:
        retrying = Retrying(
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            wait=wait_random_exponential(multiplier=0.5, max=16),
            stop=stop_after_attempt(self._attempts),
            before_sleep=lambda state: UPSTREAM_RETRIES.labels("google", method).inc(),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._once(method, request, paced=paced)
        raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0] if exc.args else exc)
    return re.split(r"[\n]", text, maxsplit=1)[0][:200]
