"""A stateful local emulator of the Google Calendar API v3 and Google's OAuth token endpoint.

The real google-api-python-client, authorised by real google-auth service-account credentials, talks
to it over HTTP: `/token` verifies the RS256 JWT assertion against registered keys, and
`/calendar/v3/...` and `/batch/calendar/v3` serve calendars, calendarList, acl and colors with
Google's error envelopes, abuse limits (creation budget, read-only mode, per-minute rate) and
injectable faults. `/_control/...` is an unauthenticated JSON API for tests and demos.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn, TypeGuard
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from bridge.sandbox.google_batch import (
    MAX_PARTS,
    BatchFormatError,
    PartResponse,
    parse_batch,
    serialise_batch,
)

JSON = dict[str, Any]

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME_S = 3600

_RAW_SEND = "sandbox.raw_send"
_JSON_TYPE = "application/json; charset=UTF-8"
_ROLES = ("none", "freeBusyReader", "reader", "writerWithoutPrivateAccess", "writer", "owner")
_SCOPE_TYPES = ("default", "user", "group", "domain")

_AUTH = "https://www.googleapis.com/auth/calendar"
_FULL, _APP, _CALS, _CALS_RO = (
    _AUTH,
    f"{_AUTH}.app.created",
    f"{_AUTH}.calendars",
    f"{_AUTH}.calendars.readonly",
)
_RO, _LIST, _LIST_RO = (
    f"{_AUTH}.readonly",
    f"{_AUTH}.calendarlist",
    f"{_AUTH}.calendarlist.readonly",
)
_ACLS, _ACLS_RO = f"{_AUTH}.acls", f"{_AUTH}.acls.readonly"
_CAL_PATH, _ACL_PATH, _LIST_PATH = (
    ("calendars", "*"),
    ("calendars", "*", "acl"),
    ("users", "me", "calendarList"),
)

# (method, path under /calendar/v3 with "*" for an id, operation, the scopes that allow it)
_OPERATIONS: tuple[tuple[str, tuple[str, ...], str, frozenset[str]], ...] = (
    ("POST", ("calendars",), "calendars.insert", frozenset({_FULL, _APP, _CALS})),
    ("GET", _CAL_PATH, "calendars.get", frozenset({_FULL, _APP, _CALS, _CALS_RO, _RO})),
    ("PATCH", _CAL_PATH, "calendars.patch", frozenset({_FULL, _APP, _CALS})),
    ("PUT", _CAL_PATH, "calendars.update", frozenset({_FULL, _APP, _CALS})),
    ("DELETE", _CAL_PATH, "calendars.delete", frozenset({_FULL, _APP, _CALS})),
    ("GET", _ACL_PATH, "acl.list", frozenset({_FULL, _ACLS, _ACLS_RO})),
    ("POST", _ACL_PATH, "acl.insert", frozenset({_FULL, _ACLS})),
    ("GET", (*_ACL_PATH, "*"), "acl.get", frozenset({_FULL, _ACLS, _ACLS_RO})),
    ("PATCH", (*_ACL_PATH, "*"), "acl.patch", frozenset({_FULL, _ACLS})),
    ("PUT", (*_ACL_PATH, "*"), "acl.update", frozenset({_FULL, _ACLS})),
    ("DELETE", (*_ACL_PATH, "*"), "acl.delete", frozenset({_FULL, _ACLS})),
    ("GET", _LIST_PATH, "calendarList.list", frozenset({_FULL, _LIST, _LIST_RO, _RO})),
    ("POST", _LIST_PATH, "calendarList.insert", frozenset({_FULL, _LIST})),
    ("GET", (*_LIST_PATH, "*"), "calendarList.get", frozenset({_FULL, _APP, _LIST, _LIST_RO, _RO})),
    ("PATCH", (*_LIST_PATH, "*"), "calendarList.patch", frozenset({_FULL, _APP, _LIST})),
    ("PUT", (*_LIST_PATH, "*"), "calendarList.update", frozenset({_FULL, _APP, _LIST})),
    ("DELETE", (*_LIST_PATH, "*"), "calendarList.delete", frozenset({_FULL, _APP, _LIST})),
    ("GET", ("colors",), "colors.get", frozenset()),
)

_CALENDAR_HEX = (
    "#ac725e #d06b64 #f83a22 #fa573c #ff7537 #ffad46 #42d692 #16a765 #7bd148 #b3dc6c #fbe983 "
    "#fad165 #92e1c0 #9fe1e7 #9fc6e7 #4986e7 #9a9cff #b99aff #c2c2c2 #cabdbf #cca6ac #f691b2 "
    "#cd74e6 #a47ae2"
)
_EVENT_HEX = (
    "#a4bdfc #7ae7bf #dbadff #ff887c #fbd75b #ffb878 #46d6db #e1e1e1 #5484ed #51b749 #dc2127"
)
_CALENDAR_COLORS = {str(n): colour for n, colour in enumerate(_CALENDAR_HEX.split(), start=1)}
_EVENT_COLORS = {str(n): colour for n, colour in enumerate(_EVENT_HEX.split(), start=1)}
_FOREGROUND = "#1d1d1d"


class FaultAction(StrEnum):
    ERROR = "error"
    DELAY = "delay"
    COMMIT_THEN_STALL = "commit_then_stall"
    COMMIT_THEN_DROP = "commit_then_drop"
    DROP = "drop"


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


class _DropConnection(Exception):
    def __init__(self, *, reset: bool) -> None:
        super().__init__("drop the connection")
        self.reset = reset


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


@dataclass
class _Fault:
    id: str
    method: str
    path: str
    count: int
    action: FaultAction
    status: int
    reason: str
    message: str
    domain: str
    seconds: float
    reset: bool

    def matches(self, request: _ApiRequest) -> bool:
        return self.method in ("*", request.method) and request.path.startswith(self.path)

    def describe(self) -> JSON:
        return {key: str(value) if key == "action" else value for key, value in vars(self).items()}


@dataclass
class _Token:
    user: str
    scopes: frozenset[str]
    expires_at: float


@dataclass
class _AclRule:
    id: str
    scope_type: str
    scope_value: str | None
    role: str
    etag: str
    send_notifications: bool
    deleted: bool = False

    def render(self) -> JSON:
        scope: JSON = {"type": self.scope_type}
        if self.scope_value is not None:
            scope["value"] = self.scope_value
        role = "none" if self.deleted else self.role
        return {
            "kind": "calendar#aclRule",
            "etag": self.etag,
            "id": self.id,
            "scope": scope,
            "role": role,
        }


@dataclass
class _Subscription:
    etag: str
    color_id: str
    hidden: bool = False
    selected: bool = True
    background: str | None = None
    foreground: str | None = None
    summary_override: str | None = None
    default_reminders: list[JSON] = field(default_factory=list)
    notification_settings: JSON | None = None
    deleted: bool = False


@dataclass
class _State:
    calendars: dict[str, JSON] = field(default_factory=dict)
    acl: dict[str, dict[str, _AclRule]] = field(default_factory=dict)
    lists: dict[str, dict[str, _Subscription]] = field(default_factory=dict)
    tokens: dict[str, _Token] = field(default_factory=dict)
    creations: dict[str, deque[float]] = field(default_factory=dict)
    recent_requests: dict[str, deque[float]] = field(default_factory=dict)
    read_only_until: dict[str, float] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    log: list[JSON] = field(default_factory=list)
    etag: int = 3_180_000_000_000_000


class _EmulatorApp(Starlette):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette wraps `send` in closures; the server's own `send` leads to the TCP transport.
        if scope["type"] == "http":
            scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


def generate_service_account(
    token_uri: str, client_email: str = "bridge@sandbox-project.iam.gserviceaccount.com"
) -> dict[str, str]:
    """A service-account key JSON with a fresh 2048-bit RSA key and the given `token_uri`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    domain = client_email.partition("@")[2]
    project_id = (
        domain.split(".", 1)[0] if domain.endswith(".iam.gserviceaccount.com") else "sandbox"
    )
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": str(secrets.randbelow(10**21 - 10**20) + 10**20),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": (
            f"https://www.googleapis.com/robot/v1/metadata/x509/{quote(client_email)}"
        ),
        "universe_domain": "googleapis.com",
    }


class GoogleEmulator:
    """Google Calendar v3 + OAuth token endpoint; serve `app` (e.g. with `ServerThread`)."""

    def __init__(
        self,
        *,
        creation_limit: int = 60,
        creation_window_s: float = 3600.0,
        quota_cooloff_s: float = 3 * 3600.0,
        user_rate_per_minute: int = 600,
    ) -> None:
        self.creation_limit = creation_limit
        self.creation_window_s = creation_window_s
        self.quota_cooloff_s = quota_cooloff_s
        self.user_rate_per_minute = user_rate_per_minute
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, rsa.RSAPublicKey]] = {}
        self._state = _State()
        self._fault_ids = 0
        self.app: Starlette = self._build_app()

    def register_service_account(self, info: Mapping[str, str]) -> None:
        """Trust JWT assertions signed by this key for `info["client_email"]`."""
        private_key = serialization.load_pem_private_key(info["private_key"].encode(), None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError("a service-account key must be RSA")
        key_id = info.get("private_key_id") or secrets.token_hex(20)
        with self._lock:
            self._keys.setdefault(info["client_email"], {})[key_id] = private_key.public_key()

    def reset(self) -> None:
        """Forget calendars, lists, ACLs, tokens, faults, logs and read-only modes; keep keys."""
        with self._lock:
            self._state = _State()

    # ---- HTTP plumbing -------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        control = [
            Route("/service-accounts", self._control_register, methods=["POST"]),
            Route("/calendars", self._control_list_calendars, methods=["GET"]),
            Route(
                "/calendars/{calendar_id:path}",
                self._control_edit_calendar,
                methods=["PATCH", "DELETE"],
            ),
            Route("/calendar-list", self._control_calendar_list, methods=["GET"]),
            Route("/faults", self._control_faults, methods=["GET", "POST", "DELETE"]),
            Route("/users/{email}/read-only", self._control_read_only, methods=["POST", "DELETE"]),
            Route("/requests", self._control_requests, methods=["GET", "DELETE"]),
            Route("/reset", self._control_reset, methods=["POST"]),
        ]
        return _EmulatorApp(
            routes=[
                Route("/token", self._serve_single, methods=["POST"]),
                Route("/batch/calendar/v3", self._serve_batch, methods=["POST"]),
                Route(
                    "/calendar/v3/{rest:path}",
                    self._serve_single,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                ),
                Mount("/_control", routes=control),
            ]
        )

    async def _serve_single(self, request: Request) -> Response:
        api_request = await _read_request(request)
        try:
            response = await self._serve(api_request, request)
        except _DropConnection as drop:
            return await _drop_connection(request, reset=drop.reset)
        return _to_starlette(response)

    async def _serve_batch(self, request: Request) -> Response:
        outer = await _read_request(request)
        try:
            fault = self._take_fault(outer)
            if fault is not None:
                early = await self._apply_fault_before(fault, outer)
                if early is not None:
                    return _to_starlette(early)
            response = await self._dispatch_batch(outer, request)
            if fault is not None:
                await self._apply_fault_after(fault, request)
        except _DropConnection as drop:
            return await _drop_connection(request, reset=drop.reset)
        return response

    async def _dispatch_batch(self, outer: _ApiRequest, request: Request) -> Response:
        with self._lock:
            outer_token = outer.headers.get("authorization")
            if outer_token is not None and self._authenticate(outer) is None:
                return self._finish(outer, None, _error_response(_unauthorized()))
            try:
                parts = parse_batch(outer.headers.get("content-type", ""), outer.body)
            except BatchFormatError as exc:
                error = _ApiError(400, "badRequest", f"Invalid batch request: {exc}")
                return self._finish(outer, None, _error_response(error))
            if len(parts) > MAX_PARTS:
                error = _ApiError(400, "badRequest", f"A batch holds at most {MAX_PARTS} requests.")
                return self._finish(outer, None, _error_response(error))
        answers: list[PartResponse] = []
        for part in parts:
            target = urlsplit(part.target)
            headers = dict(part.headers)
            if outer_token is not None:
                headers.setdefault("authorization", outer_token)
            inner = _ApiRequest(
                method=part.method,
                raw_path=target.path,
                query=dict(parse_qsl(target.query, keep_blank_values=True)),
                headers=headers,
                body=part.body,
                in_batch=True,
            )
            if not inner.path.startswith("/calendar/v3/"):
                result = _error_response(_ApiError(404, "notFound", "Not Found"))
            else:
                result = await self._serve(inner, request)
            body = b"" if result.body is None else json.dumps(result.body).encode()
            part_headers = {**result.headers}
            if result.body is not None:
                part_headers["Content-Type"] = _JSON_TYPE
            answers.append(PartResponse(part.content_id, result.status, part_headers, body))
        with self._lock:
            self._finish(outer, None, _ApiResponse(200))
        content_type, body = serialise_batch(answers)
        return Response(body, status_code=200, headers={"Content-Type": content_type})

    async def _serve(self, api_request: _ApiRequest, request: Request) -> _ApiResponse:
        fault = self._take_fault(api_request)
        if fault is not None:
            early = await self._apply_fault_before(fault, api_request)
            if early is not None:
                return early
        with self._lock:
            if api_request.path == "/token":
                response = self._exchange_token(api_request)
                user = None
            else:
                token = self._authenticate(api_request)
                user = token.user if token is not None else None
                try:
                    response = self._call_api(api_request, token)
                except _ApiError as error:
                    response = _error_response(error)
            self._finish(api_request, user, response)
        if fault is not None:
            await self._apply_fault_after(fault, request)
        return response

    async def _apply_fault_before(self, fault: _Fault, request: _ApiRequest) -> _ApiResponse | None:
        if fault.action == FaultAction.DELAY:
            await asyncio.sleep(fault.seconds)
        elif fault.action == FaultAction.DROP:
            with self._lock:
                self._log_request(request, self._user_of(request), None)
            raise _DropConnection(reset=fault.reset)
        elif fault.action == FaultAction.ERROR:
            if request.path == "/token":
                response = _ApiResponse(
                    fault.status, {"error": fault.reason, "error_description": fault.message}
                )
            else:
                error = _ApiError(fault.status, fault.reason, fault.message, fault.domain)
                response = _error_response(error)
            with self._lock:
                self._finish(request, self._user_of(request), response)
            return response
        return None

    async def _apply_fault_after(self, fault: _Fault, request: Request) -> None:
        if fault.action == FaultAction.COMMIT_THEN_STALL:
            await _stall(request, fault.seconds)
        elif fault.action == FaultAction.COMMIT_THEN_DROP:
            raise _DropConnection(reset=fault.reset)

    def _take_fault(self, request: _ApiRequest) -> _Fault | None:
        with self._lock:
            for fault in self._state.faults:
                if fault.matches(request):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._state.faults.remove(fault)
                    return fault
        return None

    def _finish(self, request: _ApiRequest, user: str | None, response: _ApiResponse) -> Response:
        self._log_request(request, user, response.status)
        return _to_starlette(response)

    def _log_request(self, request: _ApiRequest, user: str | None, status: int | None) -> None:
        self._state.log.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "user": user,
                "status": status,
                "body": _parse_json_or_none(request.body),
                "in_batch": request.in_batch,
                "t": time.time(),
            }
        )

    # ---- OAuth token endpoint ------------------------------------------------------------

    def _exchange_token(self, request: _ApiRequest) -> _ApiResponse:
        form = dict(parse_qsl(request.body.decode("utf-8", errors="replace")))
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            return _oauth_error("invalid_grant", "Token has been expired or revoked.")
        if grant_type != JWT_BEARER_GRANT:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        try:
            claims = self._verify_assertion(form.get("assertion", ""))
        except _GrantError as error:
            return _oauth_error(error.error, str(error))
        access_token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        self._state.tokens[access_token] = _Token(
            user=str(claims.get("sub") or claims["iss"]),
            scopes=frozenset(str(claims["scope"]).split()),
            expires_at=time.time() + TOKEN_LIFETIME_S,
        )
        body = {
            "access_token": access_token,
            "expires_in": TOKEN_LIFETIME_S,
            "token_type": "Bearer",
        }
        return _ApiResponse(200, body)

    def _verify_assertion(self, assertion: str) -> JSON:
        try:
            encoded_header, encoded_claims, encoded_signature = assertion.split(".")
            header = json.loads(_b64url_decode(encoded_header))
            claims = json.loads(_b64url_decode(encoded_claims))
            signature = _b64url_decode(encoded_signature)
        except (ValueError, binascii.Error) as exc:
            raise _GrantError("invalid_grant", "Invalid JWT: malformed assertion.") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _GrantError("invalid_grant", "Invalid JWT: malformed assertion.")
        if header.get("alg") != "RS256":
            raise _GrantError("invalid_grant", "Invalid JWT: the algorithm must be RS256.")
        keys = self._keys.get(str(claims.get("iss")), {})
        if not keys:
            raise _GrantError("invalid_grant", "Invalid grant: account not found")
        candidates = [keys[header["kid"]]] if header.get("kid") in keys else list(keys.values())
        signed = f"{encoded_header}.{encoded_claims}".encode()
        if not any(_signature_valid(key, signed, signature) for key in candidates):
            raise _GrantError("invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            raise _GrantError(
                "invalid_grant",
                "Invalid JWT: Failed audience check. The right audience is "
                + GOOGLE_TOKEN_AUDIENCE,
            )
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(iat, int | float)
            or not isinstance(exp, int | float)
            or exp < now
            or iat > now + 300
            or exp - iat > TOKEN_LIFETIME_S
        ):
            raise _GrantError(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim.",
            )
        if not str(claims.get("scope") or "").strip():
            raise _GrantError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return claims

    def _authenticate(self, request: _ApiRequest) -> _Token | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = self._state.tokens.get(value.strip())
        if token is None or token.expires_at < time.time():
            return None
        return token

    def _user_of(self, request: _ApiRequest) -> str | None:
        token = self._authenticate(request)
        return token.user if token is not None else None

    # ---- Calendar API dispatch ----------------------------------------------------------

    def _call_api(self, request: _ApiRequest, token: _Token | None) -> _ApiResponse:
        segments = [unquote(segment) for segment in request.raw_path.split("/")]
        operation, scopes, args = _resolve(request.method, segments[3:])
        if token is None:
            raise _unauthorized()
        if scopes and not scopes & token.scopes:
            raise _ApiError(
                403,
                "insufficientPermissions",
                "Insufficient Permission",
                summary="Request had insufficient authentication scopes.",
            )
        user = token.user
        self._spend_request_budget(user)
        if (
            request.method != "GET"
            and self._state.read_only_until.get(user, 0.0) > time.monotonic()
        ):
            raise _quota_exceeded()
        handler = getattr(self, "_" + operation.replace(".", "_").lower())
        response: _ApiResponse = handler(request, user, *args)
        return response

    def _spend_request_budget(self, user: str) -> None:
        now = time.monotonic()
        recent = self._state.recent_requests.setdefault(user, deque())
        while recent and recent[0] <= now - 60.0:
            recent.popleft()
        if len(recent) >= self.user_rate_per_minute:
            raise _ApiError(403, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits")
        recent.append(now)

    def _spend_creation_budget(self, user: str) -> None:
        now = time.monotonic()
        created = self._state.creations.setdefault(user, deque())
        while created and created[0] <= now - self.creation_window_s:
            created.popleft()
        if len(created) >= self.creation_limit:
            self._state.read_only_until[user] = now + self.quota_cooloff_s
            raise _quota_exceeded()
        created.append(now)

    def _next_etag(self) -> str:
        self._state.etag += 1
        return f'"{self._state.etag}"'

    def _role(self, calendar_id: str, user: str) -> str:
        calendar = self._state.calendars[calendar_id]
        if calendar.get("dataOwner") == user:
            return "owner"
        domain = user.rpartition("@")[2].lower()
        best = "none"
        for rule in self._state.acl.get(calendar_id, {}).values():
            applies = (
                rule.scope_type == "default"
                or (rule.scope_type == "user" and rule.scope_value == user.lower())
                or (rule.scope_type == "domain" and rule.scope_value == domain)
            )
            if applies and not rule.deleted and _ROLES.index(rule.role) > _ROLES.index(best):
                best = rule.role
        return best

    def _calendar_for(self, user: str, calendar_id: str, *, need: str = "freeBusyReader") -> JSON:
        if calendar_id == "primary":
            calendar_id = user
        calendar = self._state.calendars.get(calendar_id)
        if calendar is None:
            raise _not_found()
        role = self._role(calendar_id, user)
        if role == "none":
            raise _not_found()
        if _ROLES.index(role) < _ROLES.index(need):
            raise _ApiError(403, "forbidden", "Forbidden")
        return calendar

    # ---- calendars ----------------------------------------------------------------------

    def _calendars_insert(self, request: _ApiRequest, user: str) -> _ApiResponse:
        body = _json_body(request)
        if not _non_empty_str(body.get("summary")):
            raise _ApiError(400, "required", "Missing title.")
        self._spend_creation_budget(user)
        calendar_id = f"c_{secrets.token_hex(32)}@group.calendar.google.com"
        calendar: JSON = {
            "kind": "calendar#calendar",
            "id": calendar_id,
            "timeZone": "UTC",
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        }
        _apply_calendar_fields(calendar, body)
        calendar["etag"] = self._next_etag()
        calendar["dataOwner"] = user
        self._state.calendars[calendar_id] = calendar
        owner_rule = _AclRule(
            f"user:{user.lower()}",
            "user",
            user.lower(),
            "owner",
            self._next_etag(),
            send_notifications=False,
        )
        self._state.acl[calendar_id] = {owner_rule.id: owner_rule}
        self._subscribe(user, calendar_id)
        return _ApiResponse(200, _render_calendar(calendar))

    def _calendars_get(self, request: _ApiRequest, user: str, calendar_id: str) -> _ApiResponse:
        return _ApiResponse(200, _render_calendar(self._calendar_for(user, calendar_id)))

    def _calendars_patch(self, request: _ApiRequest, user: str, calendar_id: str) -> _ApiResponse:
        calendar = self._calendar_for(user, calendar_id, need="owner")
        body = _json_body(request)
        if "summary" in body and not _non_empty_str(body["summary"]):
            raise _ApiError(400, "required", "Missing title.")
        _apply_calendar_fields(calendar, body)
        calendar["etag"] = self._next_etag()
        return _ApiResponse(200, _render_calendar(calendar))

    def _calendars_update(self, request: _ApiRequest, user: str, calendar_id: str) -> _ApiResponse:
        calendar = self._calendar_for(user, calendar_id, need="owner")
        body = _json_body(request)
        if not _non_empty_str(body.get("summary")):
            raise _ApiError(400, "required", "Missing title.")
        for name in ("description", "location", "conferenceProperties", "labelProperties"):
            calendar.pop(name, None)
        _apply_calendar_fields(calendar, body)
        calendar["etag"] = self._next_etag()
        return _ApiResponse(200, _render_calendar(calendar))

    def _calendars_delete(self, request: _ApiRequest, user: str, calendar_id: str) -> _ApiResponse:
        calendar = self._calendar_for(user, calendar_id, need="owner")
        self._delete_calendar(calendar["id"])
        return _ApiResponse(204)

    def _delete_calendar(self, calendar_id: str) -> None:
        del self._state.calendars[calendar_id]
        self._state.acl.pop(calendar_id, None)
        for entries in self._state.lists.values():
            if calendar_id in entries:
                entries[calendar_id].deleted = True
                entries[calendar_id].etag = self._next_etag()

    # ---- calendarList -------------------------------------------------------------------

    def _subscribe(self, user: str, calendar_id: str) -> _Subscription:
        entries = self._state.lists.setdefault(user, {})
        color_id = str(len(entries) % len(_CALENDAR_COLORS) + 1)
        entries.pop(calendar_id, None)
        entries[calendar_id] = _Subscription(etag=self._next_etag(), color_id=color_id)
        return entries[calendar_id]

    def _render_entry(self, user: str, calendar_id: str, entry: _Subscription) -> JSON:
        if entry.deleted or calendar_id not in self._state.calendars:
            return {
                "kind": "calendar#calendarListEntry",
                "etag": entry.etag,
                "id": calendar_id,
                "deleted": True,
            }
        calendar = self._state.calendars[calendar_id]
        role = self._role(calendar_id, user)
        rendered: JSON = {
            "kind": "calendar#calendarListEntry",
            "etag": entry.etag,
            "id": calendar_id,
            "summary": calendar["summary"],
        }
        for name in ("description", "location", "timeZone"):
            if name in calendar:
                rendered[name] = calendar[name]
        if entry.summary_override is not None:
            rendered["summaryOverride"] = entry.summary_override
        rendered["colorId"] = entry.color_id
        rendered["backgroundColor"] = entry.background or _CALENDAR_COLORS[entry.color_id]
        rendered["foregroundColor"] = entry.foreground or _FOREGROUND
        if entry.hidden:
            rendered["hidden"] = True
        if entry.selected:
            rendered["selected"] = True
        rendered["accessRole"] = role
        rendered["defaultReminders"] = copy.deepcopy(entry.default_reminders)
        if role == "owner":
            rendered["notificationSettings"] = copy.deepcopy(
                entry.notification_settings or {"notifications": []}
            )
        if "conferenceProperties" in calendar:
            rendered["conferenceProperties"] = copy.deepcopy(calendar["conferenceProperties"])
        if "dataOwner" in calendar:
            rendered["dataOwner"] = calendar["dataOwner"]
        return rendered

    def _live_entry(self, user: str, calendar_id: str) -> _Subscription:
        entry = self._state.lists.get(user, {}).get(calendar_id)
        if entry is None or entry.deleted or calendar_id not in self._state.calendars:
            raise _not_found()
        if self._role(calendar_id, user) == "none":
            raise _not_found()
        return entry

    def _calendarlist_list(self, request: _ApiRequest, user: str) -> _ApiResponse:
        query = request.query
        sync = "syncToken" in query
        show_deleted = sync or _flag(query, "showDeleted")
        show_hidden = sync or _flag(query, "showHidden")
        min_role = query.get("minAccessRole")
        if min_role is not None and min_role not in _ROLES[1:]:
            raise _ApiError(
                400,
                "invalid",
                "Invalid value for: minAccessRole",
                location="minAccessRole",
                locationType="parameter",
            )
        items: list[JSON] = []
        for calendar_id, entry in self._state.lists.get(user, {}).items():
            if entry.deleted or calendar_id not in self._state.calendars:
                if show_deleted:
                    items.append(self._render_entry(user, calendar_id, entry))
                continue
            role = self._role(calendar_id, user)
            if role == "none" or (entry.hidden and not show_hidden):
                continue
            if min_role is not None and _ROLES.index(role) < _ROLES.index(min_role):
                continue
            items.append(self._render_entry(user, calendar_id, entry))
        page = _paginate(items, query)
        return _ApiResponse(
            200, {"kind": "calendar#calendarList", "etag": self._next_etag(), **page}
        )

    def _calendarlist_get(self, request: _ApiRequest, user: str, calendar_id: str) -> _ApiResponse:
        entry = self._live_entry(user, calendar_id)
        return _ApiResponse(200, self._render_entry(user, calendar_id, entry))

    def _calendarlist_insert(self, request: _ApiRequest, user: str) -> _ApiResponse:
        body = _json_body(request)
        calendar_id = body.get("id")
        if not _non_empty_str(calendar_id):
            raise _ApiError(400, "required", "Required", location="id", locationType="other")
        calendar = self._calendar_for(user, calendar_id)
        existing = self._state.lists.get(user, {}).get(calendar["id"])
        entry = (
            existing if existing and not existing.deleted else self._subscribe(user, calendar_id)
        )
        _apply_entry_fields(entry, body, rgb=_flag(request.query, "colorRgbFormat"))
        entry.etag = self._next_etag()
        return _ApiResponse(200, self._render_entry(user, calendar_id, entry))

    def _calendarlist_patch(
        self, request: _ApiRequest, user: str, calendar_id: str
    ) -> _ApiResponse:
        entry = self._live_entry(user, calendar_id)
        _apply_entry_fields(entry, _json_body(request), rgb=_flag(request.query, "colorRgbFormat"))
        entry.etag = self._next_etag()
        return _ApiResponse(200, self._render_entry(user, calendar_id, entry))

    def _calendarlist_update(
        self, request: _ApiRequest, user: str, calendar_id: str
    ) -> _ApiResponse:
        entry = self._live_entry(user, calendar_id)
        body = _json_body(request)
        entry.hidden, entry.selected, entry.summary_override = False, False, None
        entry.default_reminders, entry.notification_settings = [], None
        _apply_entry_fields(entry, body, rgb=_flag(request.query, "colorRgbFormat"))
        entry.etag = self._next_etag()
        return _ApiResponse(200, self._render_entry(user, calendar_id, entry))

    def _calendarlist_delete(
        self, request: _ApiRequest, user: str, calendar_id: str
    ) -> _ApiResponse:
        entry = self._live_entry(user, calendar_id)
        entry.deleted = True
        entry.etag = self._next_etag()
        return _ApiResponse(204)

    # ---- acl ----------------------------------------------------------------------------

    def _acl_list(self, request: _ApiRequest, user: str, calendar_id: str) -> _ApiResponse:
        calendar = self._calendar_for(user, calendar_id, need="owner")
        show_deleted = _flag(request.query, "showDeleted") or "syncToken" in request.query
        rules = self._state.acl.get(calendar["id"], {}).values()
        items = [rule.render() for rule in rules if show_deleted or not rule.deleted]
        page = _paginate(items, request.query)
        return _ApiResponse(200, {"kind": "calendar#acl", "etag": self._next_etag(), **page})

    def _acl_get(
        self, request: _ApiRequest, user: str, calendar_id: str, rule_id: str
    ) -> _ApiResponse:
        return _ApiResponse(200, self._live_rule(user, calendar_id, rule_id).render())

    def _acl_insert(self, request: _ApiRequest, user: str, calendar_id: str) -> _ApiResponse:
        calendar = self._calendar_for(user, calendar_id, need="owner")
        body = _json_body(request)
        role = _valid_role(body.get("role"))
        scope = body.get("scope")
        if not isinstance(scope, dict) or not scope.get("type"):
            raise _ApiError(400, "required", "Missing scope type.")
        scope_type = scope["type"]
        if scope_type not in _SCOPE_TYPES:
            raise _ApiError(400, "invalid", "Invalid scope type value.")
        value = scope.get("value")
        if scope_type != "default" and not _non_empty_str(value):
            raise _ApiError(400, "required", "Missing scope value.")
        scope_value = None if scope_type == "default" else str(value).lower()
        rule_id = "default" if scope_value is None else f"{scope_type}:{scope_value}"
        self._guard_own_rule(calendar, rule_id, role)
        notify = _flag(request.query, "sendNotifications", default=True)
        rules = self._state.acl.setdefault(calendar["id"], {})
        rule = rules.get(rule_id)
        if rule is None:
            rule = _AclRule(rule_id, scope_type, scope_value, role, self._next_etag(), notify)
            rules[rule_id] = rule
        else:
            rule.role, rule.deleted, rule.send_notifications = role, False, notify
            rule.etag = self._next_etag()
        return _ApiResponse(200, rule.render())

    def _acl_patch(
        self, request: _ApiRequest, user: str, calendar_id: str, rule_id: str
    ) -> _ApiResponse:
        return self._change_rule(request, user, calendar_id, rule_id, role_required=False)

    def _acl_update(
        self, request: _ApiRequest, user: str, calendar_id: str, rule_id: str
    ) -> _ApiResponse:
        return self._change_rule(request, user, calendar_id, rule_id, role_required=True)

    def _acl_delete(
        self, request: _ApiRequest, user: str, calendar_id: str, rule_id: str
    ) -> _ApiResponse:
        rule = self._live_rule(user, calendar_id, rule_id)
        self._guard_own_rule(self._calendar_for(user, calendar_id), rule.id, "none")
        rule.deleted = True
        rule.etag = self._next_etag()
        return _ApiResponse(204)

    def _change_rule(
        self,
        request: _ApiRequest,
        user: str,
        calendar_id: str,
        rule_id: str,
        *,
        role_required: bool,
    ) -> _ApiResponse:
        rule = self._live_rule(user, calendar_id, rule_id)
        body = _json_body(request)
        if "role" in body or role_required:
            role = _valid_role(body.get("role"))
            self._guard_own_rule(self._calendar_for(user, calendar_id), rule.id, role)
            rule.role = role
        rule.send_notifications = _flag(request.query, "sendNotifications", default=True)
        rule.etag = self._next_etag()
        return _ApiResponse(200, rule.render())

    def _live_rule(self, user: str, calendar_id: str, rule_id: str) -> _AclRule:
        calendar = self._calendar_for(user, calendar_id, need="owner")
        rule = self._state.acl.get(calendar["id"], {}).get(rule_id)
        if rule is None or rule.deleted:
            raise _not_found()
        return rule

    def _guard_own_rule(self, calendar: JSON, rule_id: str, role: str) -> None:
        if rule_id == f"user:{str(calendar.get('dataOwner', '')).lower()}" and role != "owner":
            raise _ApiError(
                403, "cannotChangeOwnAcl", "Cannot change your own access level.", "calendar"
            )

    def _colors_get(self, request: _ApiRequest, user: str) -> _ApiResponse:
        def palette(colors: dict[str, str]) -> JSON:
            return {
                key: {"background": value, "foreground": _FOREGROUND}
                for key, value in colors.items()
            }

        return _ApiResponse(
            200,
            {
                "kind": "calendar#colors",
                "updated": "2012-02-14T00:00:00.000Z",
                "calendar": palette(_CALENDAR_COLORS),
                "event": palette(_EVENT_COLORS),
            },
        )

    # ---- control API --------------------------------------------------------------------

    async def _control_register(self, request: Request) -> Response:
        try:
            self.register_service_account(await request.json())
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"not a service-account key: {exc}"}, status_code=400)
        return Response(status_code=204)

    async def _control_list_calendars(self, request: Request) -> Response:
        owner = request.query_params.get("owner")
        with self._lock:
            calendars = [
                {**_render_calendar(calendar), "acl": self._control_acl(calendar_id)}
                for calendar_id, calendar in self._state.calendars.items()
                if owner is None or calendar.get("dataOwner") == owner
            ]
        return JSONResponse({"calendars": calendars})

    def _control_acl(self, calendar_id: str) -> list[JSON]:
        rules = self._state.acl.get(calendar_id, {}).values()
        return [
            {**rule.render(), "sendNotifications": rule.send_notifications}
            for rule in rules
            if not rule.deleted
        ]

    async def _control_edit_calendar(self, request: Request) -> Response:
        calendar_id = request.path_params["calendar_id"]
        changes = await request.json() if request.method == "PATCH" else {}
        with self._lock:
            calendar = self._state.calendars.get(calendar_id)
            if calendar is None:
                return JSONResponse({"error": f"no calendar {calendar_id}"}, status_code=404)
            if request.method == "DELETE":
                self._delete_calendar(calendar_id)
                return Response(status_code=204)
            calendar.update({k: v for k, v in changes.items() if k not in ("id", "kind", "etag")})
            calendar["etag"] = self._next_etag()
            return JSONResponse(_render_calendar(calendar))

    async def _control_calendar_list(self, request: Request) -> Response:
        user = request.query_params.get("user", "")
        with self._lock:
            entries = self._state.lists.get(user, {})
            items = [
                self._render_entry(user, calendar_id, entry)
                for calendar_id, entry in entries.items()
                if not entry.deleted and calendar_id in self._state.calendars
            ]
        return JSONResponse({"items": items})

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "GET":
            with self._lock:
                return JSONResponse({"faults": [fault.describe() for fault in self._state.faults]})
        if request.method == "DELETE":
            with self._lock:
                self._state.faults.clear()
            return Response(status_code=204)
        spec = await request.json()
        try:
            action = FaultAction(spec.get("action", "error"))
        except ValueError:
            return JSONResponse(
                {"error": f"unknown action {spec.get('action')!r}"}, status_code=400
            )
        with self._lock:
            self._fault_ids += 1
            fault = _Fault(
                id=f"fault-{self._fault_ids}",
                method=str(spec.get("method", "*")).upper(),
                path=str(spec.get("path", "/")),
                count=int(spec.get("count", 1)),
                action=action,
                status=int(spec.get("status", 500)),
                reason=str(spec.get("reason", "backendError")),
                message=str(spec.get("message", "Backend Error")),
                domain=str(spec.get("domain", "global")),
                seconds=float(spec.get("seconds", 0.0)),
                reset=bool(spec.get("reset", False)),
            )
            self._state.faults.append(fault)
        return JSONResponse({"id": fault.id}, status_code=201)

    async def _control_read_only(self, request: Request) -> Response:
        email = request.path_params["email"]
        if request.method == "DELETE":
            with self._lock:
                self._state.read_only_until.pop(email, None)
                self._state.creations.pop(email, None)
            return Response(status_code=204)
        body = await request.json() if await request.body() else {}
        seconds = float(body.get("seconds", self.quota_cooloff_s))
        with self._lock:
            self._state.read_only_until[email] = time.monotonic() + seconds
        return Response(status_code=204)

    async def _control_requests(self, request: Request) -> Response:
        with self._lock:
            if request.method == "DELETE":
                self._state.log.clear()
                return Response(status_code=204)
            return JSONResponse({"requests": copy.deepcopy(self._state.log)})

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return Response(status_code=204)


class _GrantError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


def _resolve(method: str, segments: list[str]) -> tuple[str, frozenset[str], list[str]]:
    for op_method, pattern, operation, scopes in _OPERATIONS:
        if op_method != method or len(pattern) != len(segments):
            continue
        args: list[str] = []
        for expected, actual in zip(pattern, segments, strict=True):
            if expected == "*":
                if not actual:
                    break
                args.append(actual)
            elif expected != actual:
                break
        else:
            return operation, scopes, args
    raise _not_found()


def _apply_calendar_fields(calendar: JSON, body: JSON) -> None:
    for name in ("summary", "description", "location", "timeZone"):
        if name not in body:
            continue
        value = body[name]
        if value is None:
            calendar.pop(name, None)
        elif not isinstance(value, str):
            raise _ApiError(400, "invalid", f"Invalid value for: {name}")
        else:
            calendar[name] = value
    if "timeZone" in body and body["timeZone"] is not None and not _known_zone(body["timeZone"]):
        raise _ApiError(
            400, "timeZoneInvalid", "Invalid time zone definition for calendar.", "calendar"
        )
    for name in ("conferenceProperties", "labelProperties"):
        if isinstance(body.get(name), dict):
            calendar[name] = copy.deepcopy(body[name])


def _apply_entry_fields(entry: _Subscription, body: JSON, *, rgb: bool) -> None:
    if "colorId" in body:
        if body["colorId"] not in _CALENDAR_COLORS:
            raise _ApiError(400, "invalid", "Invalid color ID.")
        entry.color_id, entry.background, entry.foreground = body["colorId"], None, None
    if rgb and ("backgroundColor" in body or "foregroundColor" in body):
        background, foreground = body.get("backgroundColor"), body.get("foregroundColor")
        if not _is_hex_colour(background) or not _is_hex_colour(foreground):
            raise _ApiError(400, "invalid", "Invalid RGB color value.")
        entry.background, entry.foreground = background.lower(), foreground.lower()
        entry.color_id = _nearest_colour_id(entry.background)
    for name, attribute in (("hidden", "hidden"), ("selected", "selected")):
        if name in body:
            if not isinstance(body[name], bool):
                raise _ApiError(400, "invalid", f"Invalid value for: {name}")
            setattr(entry, attribute, body[name])
    if "summaryOverride" in body:
        override = body["summaryOverride"]
        if override is not None and not isinstance(override, str):
            raise _ApiError(400, "invalid", "Invalid value for: summaryOverride")
        entry.summary_override = override
    if "defaultReminders" in body:
        reminders = body["defaultReminders"] or []
        for reminder in reminders:
            minutes = reminder.get("minutes") if isinstance(reminder, dict) else None
            if (
                not isinstance(reminder, dict)
                or reminder.get("method") not in ("email", "popup")
                or not isinstance(minutes, int)
                or not 0 <= minutes <= 40320
            ):
                raise _ApiError(400, "invalid", "Invalid value for: defaultReminders")
        entry.default_reminders = copy.deepcopy(reminders)
    if isinstance(body.get("notificationSettings"), dict):
        entry.notification_settings = copy.deepcopy(body["notificationSettings"])


def _render_calendar(calendar: JSON) -> JSON:
    order = (
        "kind",
        "etag",
        "id",
        "summary",
        "description",
        "location",
        "timeZone",
        "conferenceProperties",
        "labelProperties",
        "dataOwner",
    )
    rendered = {name: copy.deepcopy(calendar[name]) for name in order if name in calendar}
    rendered.update({k: copy.deepcopy(v) for k, v in calendar.items() if k not in rendered})
    return rendered


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


async def _stall(request: Request, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(0.05, left))
        if await request.is_disconnected():  # nobody is left to answer
            return


async def _drop_connection(request: Request, *, reset: bool) -> Response:
    # uvicorn offers no API for this; its protocol's `send` is a bound method of the request
    # cycle, which holds the asyncio transport of the connection.
    cycle = getattr(request.scope.get(_RAW_SEND), "__self__", None)
    transport = getattr(cycle, "transport", None)
    if not isinstance(transport, asyncio.Transport):
        raise RuntimeError("cannot reach the server transport to drop the connection")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:  # SO_LINGER 0 makes close() send RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    for _ in range(50):  # let connection_lost mark the cycle disconnected, so uvicorn sends nothing
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0.002)
    return Response(status_code=204)


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


def _valid_role(role: Any) -> str:
    if not role:
        raise _ApiError(400, "required", "Missing role.")
    if role not in _ROLES:
        raise _ApiError(400, "invalid", "Invalid role value.")
    return str(role)


def _non_empty_str(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _is_hex_colour(value: Any) -> TypeGuard[str]:
    if not isinstance(value, str) or len(value) != 7 or not value.startswith("#"):
        return False
    try:
        int(value[1:], 16)
    except ValueError:
        return False
    return True


def _nearest_colour_id(colour: str) -> str:
    def rgb(value: str) -> tuple[int, int, int]:
        return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)

    target = rgb(colour)
    return min(
        _CALENDAR_COLORS,
        key=lambda key: sum(
            (a - b) ** 2 for a, b in zip(rgb(_CALENDAR_COLORS[key]), target, strict=True)
        ),
    )


def _signature_valid(key: rsa.RSAPublicKey, signed: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
