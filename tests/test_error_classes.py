"""The error classifiers: what each upstream answer means to the bridge, case by case."""

from __future__ import annotations

import json

import httplib2
import pytest
from googleapiclient.errors import HttpError

from bridge.bitrix_errors import (
    BitrixAccessDenied,
    BitrixAuthFailed,
    BitrixBadRequest,
    BitrixBlocked,
    BitrixError,
    BitrixRateLimited,
    BitrixTimeBudgetExceeded,
    BitrixUnavailable,
    error_class,
)
from bridge.google_errors import (
    GoogleAuthFailed,
    GoogleError,
    GoogleNotFound,
    GoogleQuotaExceeded,
    GoogleRateLimited,
    GoogleRequestRejected,
    GoogleUnavailable,
    classify_http_error,
)


@pytest.mark.parametrize(
    ("status", "code", "meaning"),
    [
        (503, "QUERY_LIMIT_EXCEEDED", BitrixRateLimited),
        (None, "QUERY_LIMIT_EXCEEDED", BitrixRateLimited),  # inside a batch: no status
        (503, "OVERLOAD_LIMIT", BitrixBlocked),
        (400, "OPERATION_TIME_LIMIT", BitrixTimeBudgetExceeded),
        (429, "", BitrixTimeBudgetExceeded),
        (401, "expired_token", BitrixAuthFailed),
        (401, "NO_AUTH_FOUND", BitrixAuthFailed),
        (401, "invalid_token", BitrixAuthFailed),
        (401, "", BitrixAuthFailed),
        (200, "PORTAL_DELETED", BitrixAccessDenied),
        (500, "", BitrixUnavailable),
        (502, "", BitrixUnavailable),
        (None, "INTERNAL_SERVER_ERROR", BitrixUnavailable),
        (403, "", BitrixAccessDenied),
        (400, "ACCESS_DENIED", BitrixAccessDenied),
        (401, "insufficient_scope", BitrixAuthFailed),  # a 401 is auth whatever the code
        (403, "insufficient_scope", BitrixAccessDenied),
        (400, "INVALID_CREDENTIALS", BitrixAccessDenied),
        (400, "ERROR_ARGUMENT", BitrixBadRequest),
        (404, "ERROR_METHOD_NOT_FOUND", BitrixBadRequest),
        (None, "", BitrixBadRequest),
    ],
)
def test_bitrix_errors_are_classified_by_code_then_status(
    status: int | None, code: str, meaning: type[BitrixError]
) -> None:
    assert error_class(status, code) is meaning


def http_error(status: int, reason: str = "", body: bytes | None = None) -> HttpError:
    errors = [{"reason": reason, "message": "Calendar says no"}] if reason else []
    content = (
        body
        or json.dumps(
            {"error": {"code": status, "message": "Calendar says no", "errors": errors}}
        ).encode()
    )
    return HttpError(httplib2.Response({"status": status}), content)


@pytest.mark.parametrize(
    ("status", "reason", "meaning"),
    [
        (403, "quotaExceeded", GoogleQuotaExceeded),
        (403, "rateLimitExceeded", GoogleRateLimited),
        (403, "userRateLimitExceeded", GoogleRateLimited),
        (429, "", GoogleRateLimited),
        (429, "rateLimitExceeded", GoogleRateLimited),
        (500, "backendError", GoogleUnavailable),
        (503, "", GoogleUnavailable),
        (401, "authError", GoogleAuthFailed),
        (404, "notFound", GoogleNotFound),
        (410, "deleted", GoogleNotFound),
        (403, "forbidden", GoogleRequestRejected),
        (403, "", GoogleRequestRejected),
        (400, "invalid", GoogleRequestRejected),
        (409, "duplicate", GoogleRequestRejected),
    ],
)
def test_google_errors_are_classified_by_status_and_reason(
    status: int, reason: str, meaning: type[GoogleError]
) -> None:
    error = classify_http_error(http_error(status, reason))

    assert type(error) is meaning
    assert (error.status, error.reason) == (status, reason)
    assert str(error).startswith(f"Google {status} ")
    assert str(error).endswith(": Calendar says no")


def test_a_google_error_without_a_json_body_is_classified_by_its_status() -> None:
    error = classify_http_error(http_error(502, body=b"<html>Bad Gateway</html>"))

    assert type(error) is GoogleUnavailable
    assert (error.status, error.reason) == (502, "")


def test_a_not_found_is_a_permanent_refusal_and_limits_are_not() -> None:
    assert issubclass(GoogleNotFound, GoogleRequestRejected)
    assert not issubclass(GoogleRateLimited, GoogleRequestRejected)
    assert not issubclass(GoogleQuotaExceeded, GoogleRequestRejected)
