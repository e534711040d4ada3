"""A thin Bitrix24 REST client over httpx: incoming-webhook auth, batch, error classes, retries.

Errors keep Bitrix24's code and are raised as classes with a meaning; transient ones (503
`QUERY_LIMIT_EXCEEDED`, other 5xx, network failures, HTML error pages) are retried here with
exponential backoff and jitter. The webhook URL holds a secret code, so no message names it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from bridge.metrics import UPSTREAM_REQUESTS, UPSTREAM_RETRIES
from bridge.pacing import LeakyBucket

BATCH_LIMIT = 50
USER_AGENT = "bitrix-google-bridge/0.1"


class BitrixError(Exception):
    def __init__(self, method: str, code: str, description: str, status: int | None = None) -> None:
        detail = f"{code or 'error'} {description}".strip()
        super().__init__(f"Bitrix24 {method}: {detail}" + (f" (HTTP {status})" if status else ""))
        self.method = method
        self.code = code
        self.description = description
        self.status = status


class BitrixRateLimited(BitrixError):
    """503 QUERY_LIMIT_EXCEEDED: the portal's leaky bucket is full."""


class BitrixUnavailable(BitrixError):
    """5xx, a network failure, a timeout or a page that is not the REST envelope."""


class BitrixTimeBudgetExceeded(BitrixError):
    """429 OPERATION_TIME_LIMIT: the method's time budget is spent until `reset_at`."""

    reset_at: float | None = None


class BitrixAuthFailed(BitrixError):
    """401: the webhook code or token is wrong or expired."""


class BitrixAccessDenied(BitrixError):
    """403: missing scope, rights or plan."""


class BitrixBadRequest(BitrixError):
    """400, including calendar methods' errors with an empty code."""


class BitrixNotInstalled(BitrixError):
    """App mode: no usable install (never installed, uninstalled, or the refresh was refused)."""


class TokenSource(Protocol):
    """App-mode access tokens: the current one, and a fresh one when it expired."""

    def current(self) -> str: ...

    def refresh(self, stale: str) -> str: ...


TRANSIENT_ERRORS = (BitrixRateLimited, BitrixUnavailable)


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
    ) -> None:
        """`base_url` is an incoming webhook URL, or with `tokens` the portal's /rest/ URL."""
        self._base = base_url.rstrip("/") + "/"
        self._tokens = tokens
        self._bucket = bucket
        self._attempts = attempts
        self._max_wait = max_wait
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

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

    def batch(self, commands: Mapping[str, str], *, halt: bool = False) -> BatchResult:
        """Run `method?query` commands, 50 per request; per-command errors are kept, not raised."""
        merged = BatchResult()
        keys = list(commands)
        for start in range(0, len(keys), BATCH_LIMIT):
            chunk = {key: commands[key] for key in keys[start : start + BATCH_LIMIT]}
            envelope = self.call("batch", {"halt": 1 if halt else 0, "cmd": chunk})
            body = envelope.get("result")
            if not isinstance(body, dict):
                raise BitrixUnavailable("batch", "", "answer has no result map")
            merged.results.update(_as_map(body.get("result")))
            merged.totals.update({k: int(v) for k, v in _as_map(body.get("result_total")).items()})
            merged.next_starts.update(
                {k: int(v) for k, v in _as_map(body.get("result_next")).items()}
            )
            for key, error in _as_map(body.get("result_error")).items():
                error = error if isinstance(error, dict) else {}
                code = str(error.get("error", ""))
                text = str(error.get("error_description", ""))
                method = chunk.get(key, "").split("?", 1)[0]
                merged.errors[key] = _error_class(None, code)(method, code, text)
        return merged

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
            response = self._http.post(self._base + method + ".json", json=params)
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
            raise _error_class(response.status_code, "")(
                method, "", "answer is not the REST envelope", response.status_code
            )
        if response.status_code == 200 and "error" not in envelope:
            return envelope
        code = str(envelope.get("error", ""))
        description = str(envelope.get("error_description", ""))
        if code == "QUERY_LIMIT_EXCEEDED" and self._bucket is not None:
            self._bucket.fill()  # others share the portal's bucket: assume it is full
        error = _error_class(response.status_code, code)(
            method, code, description, response.status_code
        )
        if isinstance(error, BitrixTimeBudgetExceeded):
            time = envelope.get("time")
            if isinstance(time, dict) and isinstance(time.get("operating_reset_at"), int | float):
                error.reset_at = float(time["operating_reset_at"])
        raise error


def _error_class(status: int | None, code: str) -> type[BitrixError]:
    if code == "QUERY_LIMIT_EXCEEDED":
        return BitrixRateLimited
    if code == "OPERATION_TIME_LIMIT" or status == 429:
        return BitrixTimeBudgetExceeded
    if code in ("expired_token", "NO_AUTH_FOUND", "invalid_token") or status == 401:
        return BitrixAuthFailed
    if code == "PORTAL_DELETED":
        return BitrixAccessDenied
    if (status is not None and status >= 500) or code in (
        "INTERNAL_SERVER_ERROR",
        "OVERLOAD_LIMIT",
    ):
        return BitrixUnavailable
    if status == 403 or code in ("ACCESS_DENIED", "insufficient_scope", "INVALID_CREDENTIALS"):
        return BitrixAccessDenied
    return BitrixBadRequest


def _as_map(value: Any) -> dict[str, Any]:
    """PHP serialises an empty map as `[]`."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): item for i, item in enumerate(value)}
    return {}
