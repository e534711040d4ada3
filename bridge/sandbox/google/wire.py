"""The emulator's view of one HTTP exchange and Google's JSON shapes around it.

`ApiRequest` and `ApiResponse` are what handlers see, whether the call came alone or inside a
batch; `ApiError` carries Google's error envelope; list pages use Google's opaque page tokens.
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

JSON_TYPE = "application/json; charset=UTF-8"


@dataclass
class ApiRequest:
    method: str
    raw_path: str  # percent-encoded, without the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    in_batch: bool = False
    # Every query parameter in order, repeats included (`query` keeps the last of each name).
    query_pairs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    def query_values(self, name: str) -> list[str]:
        """Every value of a repeatable parameter, e.g. `privateExtendedProperty`."""
        if not self.query_pairs:
            return [self.query[name]] if name in self.query else []
        return [value for key, value in self.query_pairs if key == name]


@dataclass
class ApiResponse:
    status: int
    body: JSON | None = None
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
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


async def read_request(request: Request) -> ApiRequest:
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(request.scope["path"])
    pairs = parse_qsl(
        request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
    )
    return ApiRequest(
        method=request.method,
        raw_path=path.split("?", 1)[0],
        query=dict(pairs),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=await request.body(),
        query_pairs=pairs,
    )


def to_starlette(response: ApiResponse) -> Response:
    if response.body is None:
        return Response(status_code=response.status, headers=response.headers)
    return Response(
        json.dumps(response.body, ensure_ascii=False).encode(),
        response.status,
        headers=response.headers,
        media_type=JSON_TYPE,
    )


def _envelope(status: int, domain: str, reason: str, message: str, **where: str) -> JSON:
    error: JSON = {"domain": domain, "reason": reason, "message": message, **where}
    return {"error": {"errors": [error], "code": status, "message": message}}


def error_response(error: ApiError) -> ApiResponse:
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
    return ApiResponse(error.status, error.envelope, headers)


def oauth_error(error: str, description: str) -> ApiResponse:
    return ApiResponse(400, {"error": error, "error_description": description})


def unauthorized() -> ApiError:
    return ApiError(
        401, "authError", "Invalid Credentials", locationType="header", location="Authorization"
    )


def not_found() -> ApiError:
    return ApiError(404, "notFound", "Not Found")


def quota_exceeded() -> ApiError:
    return ApiError(403, "quotaExceeded", "Calendar usage limits exceeded.", "usageLimits")


def _raise_parse_error() -> NoReturn:
    raise ApiError(400, "parseError", "Parse Error")


def json_body(request: ApiRequest) -> JSON:
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except ValueError:
        _raise_parse_error()
    if not isinstance(body, dict):
        _raise_parse_error()
    return body


def parse_json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return None


def flag(query: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    value = query.get(name)
    return default if value is None else value.lower() == "true"


def non_empty_str(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def paginate(
    items: list[JSON], query: Mapping[str, str], *, default: int = 100, maximum: int = 250
) -> JSON:
    try:
        max_results = min(max(int(query.get("maxResults", str(default))), 1), maximum)
    except ValueError:
        raise ApiError(
            400,
            "invalid",
            "Invalid value for: maxResults",
            location="maxResults",
            locationType="parameter",
        ) from None
    offset = 0
    if query.get("pageToken"):
        try:
            offset = int(b64url_decode(query["pageToken"]).decode().removeprefix("offset:"))
        except (ValueError, binascii.Error):
            raise ApiError(
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


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
