"""What a Google Calendar answer means to the bridge: its error classes, and the one classifier
that maps an HttpError's status and reason onto them.

Transient ones (`TRANSIENT_ERRORS`: 5xx, network failures, rate limits) are retried by the
gateway when the call is idempotent; the queue's retry policy decides the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from googleapiclient.errors import HttpError


class GoogleError(Exception):
    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class GoogleUnavailable(GoogleError):
    """5xx, a timeout or a dropped connection: the request may or may not have taken effect."""


class GoogleRateLimited(GoogleError):
    """429 or 403 rateLimitExceeded/userRateLimitExceeded: back off for seconds."""


class GoogleQuotaExceeded(GoogleError):
    """403 quotaExceeded: the owner is in read-only mode, for hours."""


class GoogleAuthFailed(GoogleError):
    """The service account, its key or the delegation is refused."""


class GoogleRequestRejected(GoogleError):
    """A permanent refusal (400, 403 other than limits, 409 …): retrying will not help."""


class GoogleNotFound(GoogleRequestRejected):
    """404/410: gone, or not visible to the owner."""


TRANSIENT_ERRORS = (GoogleUnavailable, GoogleRateLimited)


def classify_http_error(exc: HttpError) -> GoogleError:
    status = int(exc.resp.status)
    details = exc.error_details if isinstance(exc.error_details, list) else []
    reason = str(details[0].get("reason", "")) if details and isinstance(details[0], dict) else ""
    message = f"Google {status} {reason or ''}: {exc.reason}".replace("  ", " ")
    if status == 403 and reason == "quotaExceeded":
        return GoogleQuotaExceeded(message, status, reason)
    if status == 429 or (
        status == 403 and reason in ("rateLimitExceeded", "userRateLimitExceeded")
    ):
        return GoogleRateLimited(message, status, reason)
    if status >= 500:
        return GoogleUnavailable(message, status, reason)
    if status == 401:
        return GoogleAuthFailed(message, status, reason)
    if status in (404, 410):
        return GoogleNotFound(message, status, reason)
    return GoogleRequestRejected(message, status, reason)
