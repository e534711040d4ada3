"""What a Bitrix24 answer means to the bridge: its error classes, and the one classifier that maps
an answer's HTTP status and error code onto them.

Errors keep Bitrix24's code. Transient ones (`TRANSIENT_ERRORS`: 503 `QUERY_LIMIT_EXCEEDED`,
other 5xx but `OVERLOAD_LIMIT`, network failures, HTML error pages) are retried by the client;
the queue's retry policy decides the others.
"""

from __future__ import annotations


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
    """429 OPERATION_TIME_LIMIT: the method's time budget is spent until `reset_at` (Unix time)."""

    reset_at: float | None = None


class BitrixBlocked(BitrixError):
    """503 OVERLOAD_LIMIT: Bitrix24 support blocked the REST API by hand; no retry helps."""

    def __str__(self) -> str:
        return (
            f"Bitrix24 {self.method}: REST API is blocked due to overload: contact Bitrix24 "
            f"support ({self.code})"
        )


class BitrixAuthFailed(BitrixError):
    """401: the webhook code or token is wrong or expired."""


class BitrixAccessDenied(BitrixError):
    """403: missing scope, rights or plan."""


class BitrixBadRequest(BitrixError):
    """400, including calendar methods' errors with an empty code."""


class BitrixNotInstalled(BitrixError):
    """App mode: no usable install (never installed, uninstalled, or the refresh was refused)."""


TRANSIENT_ERRORS = (BitrixRateLimited, BitrixUnavailable)


def error_class(status: int | None, code: str) -> type[BitrixError]:
    """The meaning of an error answer; `status` is None for a command's error inside a batch."""
    if code == "QUERY_LIMIT_EXCEEDED":
        return BitrixRateLimited
    if code == "OVERLOAD_LIMIT":
        return BitrixBlocked
    if code == "OPERATION_TIME_LIMIT" or status == 429:
        return BitrixTimeBudgetExceeded
    if code in ("expired_token", "NO_AUTH_FOUND", "invalid_token") or status == 401:
        return BitrixAuthFailed
    if code == "PORTAL_DELETED":
        return BitrixAccessDenied
    if (status is not None and status >= 500) or code == "INTERNAL_SERVER_ERROR":
        return BitrixUnavailable
    if status == 403 or code in ("ACCESS_DENIED", "insufficient_scope", "INVALID_CREDENTIALS"):
        return BitrixAccessDenied
    return BitrixBadRequest
