"""A thin Bitrix24 REST client over httpx: incoming-webhook or token auth, batch (its requests
optionally overlapped, each still paced by the bucket), retries, each method's time budget and a
portal that moved to a new address. One client may be used from several threads: httpx.Client,
the `LeakyBucket` and the token source's refresh are thread-safe.

Errors are raised as the classes of `bridge.bitrix_errors` (re-exported here for the modules that
also use the client); transient ones are retried here with exponential backoff and jitter. Each
method's time budget (`operating`, `operating_reset_at`) is kept from every successful answer, to
date a later 429. The webhook URL holds a secret code, so no message names it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from bridge.bitrix_errors import TRANSIENT_ERRORS as TRANSIENT_ERRORS
from bridge.bitrix_errors import BitrixAccessDenied as BitrixAccessDenied
from bridge.bitrix_errors import BitrixAuthFailed as BitrixAuthFailed
from bridge.bitrix_errors import BitrixBadRequest as BitrixBadRequest
from bridge.bitrix_errors import BitrixBlocked as BitrixBlocked
from bridge.bitrix_errors import BitrixError as BitrixError
from bridge.bitrix_errors import BitrixNotInstalled as BitrixNotInstalled
from bridge.bitrix_errors import BitrixRateLimited as BitrixRateLimited
from bridge.bitrix_errors import BitrixTimeBudgetExceeded as BitrixTimeBudgetExceeded
from bridge.bitrix_errors import BitrixUnavailable as BitrixUnavailable
from bridge.bitrix_errors import error_class
from bridge.metrics import UPSTREAM_REQUESTS, UPSTREAM_RETRIES
from bridge.pacing import LeakyBucket

BATCH_LIMIT = 50
BASKET_SECONDS = 60.0  # the method time budget is kept in one-minute baskets (`limits.md`)
USER_AGENT = "bitrix-google-bridge/0.1"


class TokenSource(Protocol):
    """App-mode access tokens: the current one, and a fresh one when it expired."""

    def current(self) -> str: ...

    def refresh(self, stale: str) -> str: ...


@dataclass(frozen=True)
class OperatingTime:
    """A method's time budget as the last successful answer reported it (`limits.md`)."""

    operating: float
    reset_at: float


@dataclass
class BatchResult:
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, BitrixError] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    next_starts: dict[str, int] = field(default_factory=dict)


class BitrixClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        attempts: int = 5,
        max_wait: float = 8.0,
        bucket: LeakyBucket | None = None,
        tokens: TokenSource | None = None,
        transport: httpx.BaseTransport | None = None,
        on_moved: Callable[[str], None] | None = None,
    ) -> None:
        """`base_url` is an incoming webhook URL, or with `tokens` the portal's /rest/ URL.
        `on_moved` hears the portal's new `scheme://host/rest/` (no secret) after a redirect."""
        self._base = base_url.rstrip("/") + "/"
        self._on_moved = on_moved
        self._tokens = tokens
        self._bucket = bucket
        self._attempts = attempts
        self._max_wait = max_wait
        self._operating: dict[str, OperatingTime] = {}  # method → last reported budget
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def operating_time(self, method: str) -> OperatingTime | None:
        return self._operating.get(method)

    def wait_ready(self) -> None:
        """Wait out the rate limit before work is gathered, so events arriving meanwhile join."""
        if self._bucket is not None:
            self._bucket.wait_ready()

    def __enter__(self) -> BitrixClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The whole envelope (`result`, `total`, `next`, `time`), retrying transient failures."""
        retrying = Retrying(
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            wait=wait_random_exponential(multiplier=0.25, max=self._max_wait),
            stop=stop_after_attempt(self._attempts),
            before_sleep=lambda state: UPSTREAM_RETRIES.labels("bitrix", method).inc(),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._call_once(method, params or {})
        raise AssertionError("unreachable")

    def batch(
        self, commands: Mapping[str, str], *, halt: bool = False, overlap: int = 1
    ) -> BatchResult:
        """Run `method?query` commands, 50 per request; per-command errors are kept, not raised.

        `overlap` > 1 (reads only) keeps up to that many requests in flight at once, so a request
        the portal takes longer to answer than the bucket's spacing does not hold back the next:
        each still takes its slot from the bucket. Answers are merged in the commands' order and
        the first failing request's error is raised, as one after another; only the requests
        already in flight behind it are sent too."""
        keys = list(commands)
        chunks = [
            {key: commands[key] for key in keys[start : start + BATCH_LIMIT]}
            for start in range(0, len(keys), BATCH_LIMIT)
        ]
        merged = BatchResult()
        if overlap <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                self._merge(merged, chunk, self._batch_request(chunk, halt))
            return merged
        halted = threading.Event()

        def send(chunk: Mapping[str, str]) -> dict[str, Any] | None:
            # A request waits for its slot before it is sent: a failure meanwhile stops it.
            if self._bucket is not None:
                self._bucket.wait_ready()
            return None if halted.is_set() else self._batch_request(chunk, halt)

        with ThreadPoolExecutor(min(overlap, len(chunks)), "bitrix-batch") as pool:
            answers = [pool.submit(send, chunk) for chunk in chunks]
            try:
                for chunk, answer in zip(chunks, answers, strict=True):
                    envelope = answer.result()
                    assert envelope is not None  # only requests after a failure are halted
                    self._merge(merged, chunk, envelope)
            finally:  # after a failure, requests not yet sent are not sent
                halted.set()
                for answer in answers:
                    answer.cancel()
        return merged

    def _batch_request(self, chunk: Mapping[str, str], halt: bool) -> dict[str, Any]:
        return self.call("batch", {"halt": 1 if halt else 0, "cmd": chunk})

    def _merge(
        self, merged: BatchResult, chunk: Mapping[str, str], envelope: Mapping[str, Any]
    ) -> None:
        body = envelope.get("result")
        if not isinstance(body, dict):
            raise BitrixUnavailable("batch", "", "answer has no result map")
        for key, spent in _as_map(body.get("result_time")).items():
            self._note_operating(chunk.get(key, "").split("?", 1)[0], spent)
        merged.results.update(_as_map(body.get("result")))
        merged.totals.update({k: int(v) for k, v in _as_map(body.get("result_total")).items()})
        merged.next_starts.update({k: int(v) for k, v in _as_map(body.get("result_next")).items()})
        for key, error in _as_map(body.get("result_error")).items():
            error = error if isinstance(error, dict) else {}
            code = str(error.get("error", ""))
            text = str(error.get("error_description", ""))
            method = chunk.get(key, "").split("?", 1)[0]
            meaning = error_class(None, code)
            merged.errors[key] = self._budgeted(meaning(method, code, text), {})

    def _call_once(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if self._tokens is None:
            return self._send(method, params)
        token = self._tokens.current()
        try:
            return self._send(method, {**params, "auth": token})
        except BitrixAuthFailed as exc:
            if exc.code != "expired_token":
                raise
        return self._send(method, {**params, "auth": self._tokens.refresh(token)})

    def _send(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if self._bucket is not None:
            self._bucket.acquire()
        try:
            response = self._post_following_move(method, params)
        except httpx.TimeoutException:
            UPSTREAM_REQUESTS.labels("bitrix", method, "timeout").inc()
            raise BitrixUnavailable(method, "TIMEOUT", "no answer in time") from None
        except httpx.HTTPError as exc:
            UPSTREAM_REQUESTS.labels("bitrix", method, "network").inc()
            raise BitrixUnavailable(method, "NETWORK", exc.__class__.__name__) from None
        UPSTREAM_REQUESTS.labels("bitrix", method, str(response.status_code)).inc()
        try:
            envelope = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            envelope = None
        if not isinstance(envelope, dict):
            if response.status_code == 200:
                raise BitrixUnavailable(method, "BAD_ANSWER", "answer is not JSON", 200)
            raise error_class(response.status_code, "")(
                method, "", "answer is not the REST envelope", response.status_code
            )
        if response.status_code == 200 and "error" not in envelope:
            self._note_operating(method, envelope.get("time"))
            return envelope
        code = str(envelope.get("error", ""))
        description = str(envelope.get("error_description", ""))
        if code == "QUERY_LIMIT_EXCEEDED" and self._bucket is not None:
            self._bucket.fill()  # others share the portal's bucket: assume it is full
        error = error_class(response.status_code, code)(
            method, code, description, response.status_code
        )
        raise self._budgeted(error, envelope)

    def _post_following_move(self, method: str, params: Mapping[str, Any]) -> httpx.Response:
        """A renamed portal answers its old address with a redirect that would turn a POST into
        a GET (`settings/how-to-call-rest-api/change-domen.md`): re-send the same POST once to
        the new REST address and keep using it."""
        url = self._base + method + ".json"
        response = self._http.post(url, json=params)
        moved = _moved_base(response, url, method)
        if moved is None:
            return response
        UPSTREAM_REQUESTS.labels("bitrix", method, str(response.status_code)).inc()
        self._base = moved
        if self._on_moved is not None:
            self._on_moved(_public_rest(moved))
        return self._http.post(moved + method + ".json", json=params)

    def _note_operating(self, method: str, spent: Any) -> None:
        """Keep `operating`/`operating_reset_at` per method; the outer `batch` is not counted."""
        if method == "batch" or not isinstance(spent, dict):
            return
        operating = _number(spent.get("operating"))
        reset_at = _number(spent.get("operating_reset_at"))
        if operating is not None and reset_at is not None:
            self._operating[method] = OperatingTime(operating, reset_at)

    def _budgeted(self, error: BitrixError, envelope: Mapping[str, Any]) -> BitrixError:
        """Give a 429 its `reset_at`: first the reset the last successful answer named; once
        that has passed (the error persists), the 429's own `time`, else the next basket."""
        if not isinstance(error, BitrixTimeBudgetExceeded):
            return error
        now = time.time()
        recorded = self._operating.get(error.method)
        spent = envelope.get("time")
        answered = _number(spent.get("operating_reset_at")) if isinstance(spent, dict) else None
        if recorded is not None and recorded.reset_at > now:
            error.reset_at = recorded.reset_at
        elif answered is not None and answered > now:
            error.reset_at = answered
        else:
            error.reset_at = now + BASKET_SECONDS
        return error


def _moved_base(response: httpx.Response, url: str, method: str) -> str | None:
    """The new base URL a redirect names, if it is the same REST call somewhere else (a REST
    path ending in the same method, no downgrade from https)."""
    location = str(response.headers.get("location", ""))
    if response.status_code not in (301, 302, 307, 308) or not location:
        return None
    target = urljoin(url, location)
    parts = urlsplit(target)
    suffix = "/" + method + ".json"
    if (
        parts.scheme not in ("http", "https")
        or (urlsplit(url).scheme == "https" and parts.scheme != "https")
        or "/rest/" not in parts.path
        or not parts.path.endswith(suffix)
        or parts.query
    ):
        return None
    return target[: len(target) - len(suffix) + 1]


def _public_rest(base: str) -> str:
    """`scheme://host/…/rest/` of a base URL: without a webhook's user id and secret code."""
    parts = urlsplit(base)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path[: parts.path.index('/rest/') + len('/rest/')]}"


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _as_map(value: Any) -> dict[str, Any]:
    """PHP serialises an empty map as `[]`."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): item for i, item in enumerate(value)}
    return {}
