"""A stateful local emulator of the Google Calendar API v3 and Google's OAuth token endpoint.

The real google-api-python-client, authorised by real google-auth service-account credentials, talks
to it over HTTP: `/token` verifies the RS256 JWT assertion against registered keys, and
`/calendar/v3/...` and `/batch/calendar/v3` serve calendars, calendarList, acl, colors and events
(with recurrence and instances) with Google's error envelopes, abuse limits (calendar and event
creation budgets, read-only mode, per-minute rate) and injectable faults. `/_control/...` is an
unauthenticated JSON API for tests and demos.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from bridge.sandbox.google.batch import (
    MAX_PARTS,
    BatchFormatError,
    PartResponse,
    parse_batch,
    serialise_batch,
)
from bridge.sandbox.google.control_api import (
    ControlApi,
    DropConnection,
    EmulatorApp,
    apply_fault_after,
    apply_fault_before,
    drop_connection,
    take_fault,
)
from bridge.sandbox.google.oauth import (
    add_service_account,
    authenticate,
    exchange_token,
)
from bridge.sandbox.google.routes import call_api
from bridge.sandbox.google.state import Store
from bridge.sandbox.google.wire import (
    JSON_TYPE,
    ApiError,
    ApiRequest,
    ApiResponse,
    error_response,
    read_request,
    to_starlette,
    unauthorized,
)

__all__ = ["GoogleEmulator"]


class GoogleEmulator:
    """Google Calendar v3 + OAuth token endpoint; serve `app` (e.g. with `ServerThread`)."""

    def __init__(
        self,
        *,
        creation_limit: int = 60,
        creation_window_s: float = 3600.0,
        quota_cooloff_s: float = 3 * 3600.0,
        user_rate_per_minute: int = 600,
        event_creation_limit: int = 10_000,
        event_creation_window_s: float = 3600.0,
    ) -> None:
        self._store = Store(
            creation_limit=creation_limit,
            creation_window_s=creation_window_s,
            quota_cooloff_s=quota_cooloff_s,
            user_rate_per_minute=user_rate_per_minute,
            event_creation_limit=event_creation_limit,
            event_creation_window_s=event_creation_window_s,
        )
        self.app: Starlette = self._build_app()

    @property
    def creation_limit(self) -> int:
        return self._store.creation_limit

    @creation_limit.setter
    def creation_limit(self, value: int) -> None:
        self._store.creation_limit = value

    @property
    def creation_window_s(self) -> float:
        return self._store.creation_window_s

    @creation_window_s.setter
    def creation_window_s(self, value: float) -> None:
        self._store.creation_window_s = value

    @property
    def quota_cooloff_s(self) -> float:
        return self._store.quota_cooloff_s

    @quota_cooloff_s.setter
    def quota_cooloff_s(self, value: float) -> None:
        self._store.quota_cooloff_s = value

    @property
    def user_rate_per_minute(self) -> int:
        return self._store.user_rate_per_minute

    @user_rate_per_minute.setter
    def user_rate_per_minute(self, value: int) -> None:
        self._store.user_rate_per_minute = value

    @property
    def event_creation_limit(self) -> int:
        return self._store.event_creation_limit

    @event_creation_limit.setter
    def event_creation_limit(self, value: int) -> None:
        self._store.event_creation_limit = value

    def register_service_account(self, info: Mapping[str, str]) -> None:
        """Trust JWT assertions signed by this key for `info["client_email"]`."""
        add_service_account(self._store, info)

    def reset(self) -> None:
        """Forget calendars, events, lists, ACLs, tokens, faults, logs and read-only modes; keep
        keys and limits."""
        self._store.reset()

    def _build_app(self) -> Starlette:
        return EmulatorApp(
            routes=[
                Route("/token", self._serve_single, methods=["POST"]),
                Route("/batch/calendar/v3", self._serve_batch, methods=["POST"]),
                Route(
                    "/calendar/v3/{rest:path}",
                    self._serve_single,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                ),
                Mount("/_control", routes=ControlApi(self._store).routes()),
            ]
        )

    async def _serve_single(self, request: Request) -> Response:
        api_request = await read_request(request)
        try:
            response = await self._serve(api_request, request)
        except DropConnection as drop:
            return await drop_connection(request, reset=drop.reset)
        return to_starlette(response)

    async def _serve_batch(self, request: Request) -> Response:
        outer = await read_request(request)
        try:
            fault = take_fault(self._store, outer)
            if fault is not None:
                early = await apply_fault_before(self._store, fault, outer)
                if early is not None:
                    return to_starlette(early)
            response = await self._dispatch_batch(outer, request)
            if fault is not None:
                await apply_fault_after(fault, request)
        except DropConnection as drop:
            return await drop_connection(request, reset=drop.reset)
        return response

    async def _dispatch_batch(self, outer: ApiRequest, request: Request) -> Response:
        with self._store.lock:
            outer_token = outer.headers.get("authorization")
            if outer_token is not None and authenticate(self._store, outer) is None:
                return self._finish(outer, None, error_response(unauthorized()))
            try:
                parts = parse_batch(outer.headers.get("content-type", ""), outer.body)
            except BatchFormatError as exc:
                error = ApiError(400, "badRequest", f"Invalid batch request: {exc}")
                return self._finish(outer, None, error_response(error))
            if len(parts) > MAX_PARTS:
                error = ApiError(400, "badRequest", f"A batch holds at most {MAX_PARTS} requests.")
                return self._finish(outer, None, error_response(error))
        answers: list[PartResponse] = []
        for part in parts:
            target = urlsplit(part.target)
            headers = dict(part.headers)
            if outer_token is not None:
                headers.setdefault("authorization", outer_token)
            pairs = parse_qsl(target.query, keep_blank_values=True)
            inner = ApiRequest(
                method=part.method,
                raw_path=target.path,
                query=dict(pairs),
                headers=headers,
                body=part.body,
                in_batch=True,
                query_pairs=pairs,
            )
            if not inner.path.startswith("/calendar/v3/"):
                result = error_response(ApiError(404, "notFound", "Not Found"))
            else:
                result = await self._serve(inner, request)
            body = b"" if result.body is None else json.dumps(result.body).encode()
            part_headers = {**result.headers}
            if result.body is not None:
                part_headers["Content-Type"] = JSON_TYPE
            answers.append(PartResponse(part.content_id, result.status, part_headers, body))
        with self._store.lock:
            self._finish(outer, None, ApiResponse(200))
        content_type, body = serialise_batch(answers)
        return Response(body, status_code=200, headers={"Content-Type": content_type})

    async def _serve(self, api_request: ApiRequest, request: Request) -> ApiResponse:
        store = self._store
        fault = take_fault(store, api_request)
        if fault is not None:
            early = await apply_fault_before(store, fault, api_request)
            if early is not None:
                return early
        with store.lock:
            if api_request.path == "/token":
                response = exchange_token(store, api_request)
                user = None
            else:
                token = authenticate(store, api_request)
                user = token.user if token is not None else None
                try:
                    response = call_api(store, api_request, token)
                except ApiError as error:
                    response = error_response(error)
            self._finish(api_request, user, response)
        if fault is not None:
            await apply_fault_after(fault, request)
        return response

    def _finish(self, request: ApiRequest, user: str | None, response: ApiResponse) -> Response:
        self._store.log_request(request, user, response.status)
        return to_starlette(response)
