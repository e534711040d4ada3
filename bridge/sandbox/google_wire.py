"""The emulator's view of one HTTP exchange and Google's JSON shapes around it.

`_ApiRequest` and `_ApiResponse` are what handlers see, whether the call came alone or inside a
batch; `_ApiError` carries Google's error envelope; list pages use Google's opaque page tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeGuard
from urllib.parse import parse_qsl, quote, unquote

from starlette.requests import Request
from starlette.responses import Response

JSON = dict[str, Any]

_JSON_TYPE = "application/json; charset=UTF-8"


@dataclass
class _ApiRequest:
    method: str
    raw_path: str  # percent-encoded, without the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    in_batch: bool = False

    @property
    def path(self) -> str:
        return unquote(self.raw_path)


@dataclass
class _ApiResponse:
    status: int
    body: JSON | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        domain: str = "global",
        *,
        summary: str | None = None,
        **where: str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.envelope = _envelope(status, domain, reason, message, **where)
        if summary is not None:
            self.envelope["error"]["message"] = summary


async def _read_request(request: Request) -> _ApiRequest:
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(request.scope["path"])
    return _ApiRequest(
        method=request.method,
        raw_path=path.split("?", 1)[0],
        query=dict(
            parse_qsl(
                request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
            )
        ),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=await request.body(),
    )


def _to_starlette(response: _ApiResponse) -> Response:
    if response.body is None:
        return Response(status_code=response.status, headers=response.headers)
    return Response(
        json.dumps(response.body, ensure_ascii=False).encode(),
        response.status,
        headers=response.headers,
        media_type=_JSON_TYPE,
    )


def _envelope(status: int, domain: str, reason: str, message: str, **where: str) -> JSON:
    error: JSON = {"domain": domain, "reason": reason, "message": message, **where}
    return {"error": {"errors": [error], "code": status, "message": message}}


def _error_response(error: _ApiError) -> _ApiResponse:
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
    return _ApiResponse(error.status, error.envelope, headers)


def _oauth_error(error: str, description: str) -> _ApiResponse:
    return _ApiResponse(400, {"error": error, "error_description": description})


def _unauthorized() -> _ApiError:
    return _ApiError(
        401, "authError", "Invalid Credentials", locationType="header", location="Authorization"
    )


def _not_found() -> _ApiError:
    return _ApiError(404, "notFound", "Not Found")


def _quota_exceeded() -> _ApiError:
    return _ApiError(403, "quotaExceeded", "Calendar usage limits exceeded.", "usageLimits")


def _raise_parse_error() -> NoReturn:
    raise _ApiError(400, "parseError", "Parse Error")


def _json_body(request: _ApiRequest) -> JSON:
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except ValueError:
        _raise_parse_error()
    if not isinstance(body, dict):
        _raise_parse_error()
    return body


def _parse_json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return None


def _flag(query: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    value = query.get(name)
    return default if value is None else value.lower() == "true"


def _non_empty_str(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _paginate(items: list[JSON], query: Mapping[str, str]) -> JSON:
    try:
        max_results = min(max(int(query.get("maxResults", "100")), 1), 250)
    except ValueError:
        raise _ApiError(
            400,
            "invalid",
            "Invalid value for: maxResults",
            location="maxResults",
            locationType="parameter",
        ) from None
    offset = 0
    if query.get("pageToken"):
        try:
            offset = int(_b64url_decode(query["pageToken"]).decode().removeprefix("offset:"))
        except (ValueError, binascii.Error):
            raise _ApiError(
                400,
                "invalid",
                "Invalid page token value.",
                location="pageToken",
                locationType="parameter",
            ) from None
    page: JSON = {"items": items[offset : offset + max_results]}
    if offset + max_results < len(items):
        page["nextPageToken"] = _b64url_encode(f"offset:{offset + max_results}".encode())
    else:
        page["nextSyncToken"] = _b64url_encode(secrets.token_bytes(18))
    return page


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
