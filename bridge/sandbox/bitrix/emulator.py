"""Stateful local emulator of Bitrix24 portals: REST API, leaky bucket, faults and event delivery.

One `BitrixEmulator` serves many portals, each found by its incoming-webhook code or, in app
mode, by an OAuth access token; it also plays `oauth.bitrix.info` at `/oauth/token/`. The
behaviour follows `reference/bitrix24/NOTES.md` §9. A JSON control API under `/_control/` creates
portals, data, outgoing webhooks, apps and faults, and reads back the request and delivery logs.

This module assembles the app and answers `/rest/`; the rest lives next to it: the state in
`state.py` (sections in `sections.py`, users and groups in `directory.py`, calendar entries in
`entries.py`, rendered by `entry_view.py`), the REST methods in `methods.py`,
`directory_methods.py`, `entry_methods.py`, `events.py` and `batch.py` (what they share in
`rest.py` and `listing.py`), the method time budget in `budget.py`, app installs, tokens and the
offline queue in `apps.py` and `oauth.py`, the control API in `control_routes.py` (its URLs),
`control_api.py`, `section_control.py`, `entry_control.py` and `app_control.py`, fault injection
in `faults.py`, event delivery in `change_events.py` (which) and `delivery.py` (how).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge.sandbox.bitrix.address import moved_location
from bridge.sandbox.bitrix.batch import run_batch
from bridge.sandbox.bitrix.budget import OVER_BUDGET, WEBHOOK
from bridge.sandbox.bitrix.control_http import emulator_base_url
from bridge.sandbox.bitrix.control_routes import control_routes
from bridge.sandbox.bitrix.events import run_method
from bridge.sandbox.bitrix.faults import RAW_SEND, answer_fault
from bridge.sandbox.bitrix.oauth import TokenServer, find_app_caller
from bridge.sandbox.bitrix.php_query import parse_php_query
from bridge.sandbox.bitrix.rest import Call, Outcome, RestError, time_block
from bridge.sandbox.bitrix.state import Fault, Portal, State
from bridge.sandbox.bitrix.values import method_name

__all__ = ["BitrixEmulator"]


class _EmulatorApp(Starlette):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Middleware wraps `send`; the "drop" fault needs the server's own, bound to its transport.
        scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)


class BitrixEmulator:
    """Bitrix24 portals over real HTTP: webhook and OAuth REST, `/oauth/token/`, `/_control/`."""

    def __init__(self, *, deliver_timeout_s: float = 5.0) -> None:
        self._state = State(deliver_timeout_s=deliver_timeout_s)
        get_post = ["GET", "POST"]
        self.app: Starlette = _EmulatorApp(
            routes=[
                Route("/rest/{user_id}/{code}/{method}", self._rest, methods=get_post),
                Route("/rest/{method}", self._rest_app, methods=get_post),
                Route("/oauth/token/", TokenServer(self._state).token, methods=get_post),
                *control_routes(self._state),
            ],
            lifespan=self._lifespan,
        )

    def add_portal(
        self,
        *,
        member_id: str,
        domain: str,
        webhook_user_id: int = 1,
        webhook_code: str,
        bucket_burst: int = 50,
        bucket_drain_per_s: float = 2.0,
    ) -> None:
        """Create a portal reachable at `/rest/{webhook_user_id}/{webhook_code}/`."""
        self._state.add_portal(
            member_id=member_id,
            domain=domain,
            webhook_user_id=webhook_user_id,
            webhook_code=webhook_code,
            bucket_burst=bucket_burst,
            bucket_drain_per_s=bucket_drain_per_s,
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(self._state.deliveries.close)

    async def _rest(self, request: Request) -> Response:
        user_id, code = request.path_params["user_id"], request.path_params["code"]

        def find_webhook(params: dict[str, Any]) -> Call:
            portal = self._state.find_webhook_portal(user_id, code)
            if portal is None:
                raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
            return Call(portal, params, emulator_base_url(request), [])

        return await self._answer(request, find_webhook)

    async def _rest_app(self, request: Request) -> Response:
        def find_app(params: dict[str, Any]) -> Call:
            caller = find_app_caller(self._state, params)
            return Call(
                caller.portal,
                params,
                emulator_base_url(request),
                [],
                client_id=caller.install.client_id,
                user_id=caller.user_id,
            )

        return await self._answer(request, find_app)

    async def _answer(
        self, request: Request, find_caller: Callable[[dict[str, Any]], Call]
    ) -> Response:
        started = time.time()
        method = method_name(request.path_params["method"])
        entry = _log_entry(request, method, started)
        try:
            entry["params"] = params = await _read_params(request)
            call, moved, fault = self._identify(request, find_caller, params, method)
        except RestError as exc:
            return self._fail(entry, exc)
        entry["member_id"] = call.portal.member_id
        if moved is not None:  # the portal's address changed: change-domen.md
            entry.update(status=302, location=moved)
            self._state.record(entry)
            return Response(status_code=302, headers={"location": moved})
        entry["client_id"] = call.client_id
        try:
            if fault is not None:
                answer = await answer_fault(self._state, fault, request, entry)
                if answer is not None:
                    return answer
            body = await self._run(call, method, entry, started)
        except RestError as exc:
            return self._fail(entry, exc)
        entry["status"] = 200
        self._state.record(entry)
        return JSONResponse(body, background=self._state.background(call.jobs))

    def _identify(
        self,
        request: Request,
        find_caller: Callable[[dict[str, Any]], Call],
        params: dict[str, Any],
        method: str,
    ) -> tuple[Call, str | None, Fault | None]:
        """The caller, where its portal moved to (if it did), and the fault this call takes."""
        with self._state.lock:
            call = find_caller(params)
            moved = _moved_to(call.portal, request)
            fault = None if moved else self._state.take_fault(call.portal.member_id, method)
        return call, moved, fault

    async def _run(self, call: Call, method: str, entry: dict[str, Any], started: float) -> Any:
        """The method's answer, once the portal's leaky bucket and time budget admit it."""
        state, portal = self._state, call.portal
        with state.lock:
            admitted = portal.bucket.admit()
        if not admitted:
            raise RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        if method == "batch":
            return await run_batch(state, call, entry, started)
        with state.lock:
            caller = call.client_id or WEBHOOK
            if portal.budget.exhausted(caller, method, time.time()):
                raise RestError(*OVER_BUDGET)
            outcome = run_method(method, call)
            finished = time.time()
            spent = portal.budget.spend(caller, method, started, finished)
            return _envelope(outcome, started, finished, spent)

    def _fail(self, entry: dict[str, Any], exc: RestError) -> Response:
        entry.update(status=exc.status, error=exc.code, error_description=exc.description)
        self._state.record(entry)
        return JSONResponse(exc.body(), status_code=exc.status)


def _log_entry(request: Request, method: str, started: float) -> dict[str, Any]:
    """The request log's row for one REST call, completed as the call is answered."""
    return {
        "member_id": None,
        "client_id": None,
        "method": method,
        "http_method": request.method,
        "params": {},
        "status": None,
        "error": None,
        "t": started,
        "address": emulator_base_url(request),  # where the request came in (address.py)
    }


def _moved_to(portal: Portal, request: Request) -> str | None:
    return moved_location(
        portal.address, emulator_base_url(request), request.url.path, request.url.query
    )


def _envelope(
    outcome: Outcome, started: float, finished: float, operating: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"result": outcome.result}
    if outcome.next is not None:
        body["next"] = outcome.next
    if outcome.total is not None:
        body["total"] = outcome.total
    body["time"] = time_block(started, finished, operating)
    return body


# request parsing


async def _read_params(request: Request) -> dict[str, Any]:
    # Query and body merge like PHP's $_REQUEST: body keys win.
    params = parse_php_query(parse_qsl(request.url.query, keep_blank_values=True))
    raw = await request.body()
    if not raw.strip():
        return params
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media in ("", "text/plain") and raw.lstrip()[:1] == b"{"):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise RestError(400, "INVALID_REQUEST", "Request body is not valid JSON") from exc
        if isinstance(data, dict):
            params.update(data)
    elif media == "multipart/form-data":
        params.update(parse_php_query(_multipart_pairs(content_type, raw)))
    else:
        text = raw.decode("utf-8", "replace")
        params.update(parse_php_query(parse_qsl(text, keep_blank_values=True)))
    return params


def _multipart_pairs(content_type: str, raw: bytes) -> list[tuple[str, str]]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    pairs: list[tuple[str, str]] = []
    for part in message.walk():
        name = part.get_param("name", header="content-disposition")
        if part.is_multipart() or not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        pairs.append((name, text))
    return pairs
