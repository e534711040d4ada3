"""The emulator's `/_control` JSON API for tests and demos, and the faults it injects.

A queued fault matches calls by method and path prefix and fires `count` times: it answers with
an error, delays, or commits the call and then stalls or drops the TCP connection (FIN, or RST
with `reset`), so a client never learns whether its write happened.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import struct
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge.sandbox.google.calendar_list import render_entry
from bridge.sandbox.google.calendars import delete_calendar, render_calendar
from bridge.sandbox.google.event_control import EventControl
from bridge.sandbox.google.oauth import add_service_account, user_of
from bridge.sandbox.google.state import Fault, FaultAction, Store
from bridge.sandbox.google.wire import (
    JSON,
    ApiError,
    ApiRequest,
    ApiResponse,
    error_response,
)

_RAW_SEND = "sandbox.raw_send"


class EmulatorApp(Starlette):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette wraps `send` in closures; the server's own `send` leads to the TCP transport.
        if scope["type"] == "http":
            scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


class DropConnection(Exception):
    def __init__(self, *, reset: bool) -> None:
        super().__init__("drop the connection")
        self.reset = reset


def take_fault(store: Store, request: ApiRequest) -> Fault | None:
    with store.lock:
        for fault in store.state.faults:
            if fault.matches(request):
                fault.count -= 1
                if fault.count <= 0:
                    store.state.faults.remove(fault)
                return fault
    return None


async def apply_fault_before(store: Store, fault: Fault, request: ApiRequest) -> ApiResponse | None:
    if fault.action == FaultAction.DELAY:
        await asyncio.sleep(fault.seconds)
    elif fault.action == FaultAction.DROP:
        with store.lock:
            store.log_request(request, user_of(store, request), None)
        raise DropConnection(reset=fault.reset)
    elif fault.action == FaultAction.ERROR:
        if request.path == "/token":
            response = ApiResponse(
                fault.status, {"error": fault.reason, "error_description": fault.message}
            )
        else:
            error = ApiError(fault.status, fault.reason, fault.message, fault.domain)
            response = error_response(error)
        with store.lock:
            store.log_request(request, user_of(store, request), response.status)
        return response
    return None


async def apply_fault_after(fault: Fault, request: Request) -> None:
    if fault.action == FaultAction.COMMIT_THEN_STALL:
        await _stall(request, fault.seconds)
    elif fault.action == FaultAction.COMMIT_THEN_DROP:
        raise DropConnection(reset=fault.reset)


async def _stall(request: Request, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(0.05, left))
        if await request.is_disconnected():  # nobody is left to answer
            return


async def drop_connection(request: Request, *, reset: bool) -> Response:
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


class ControlApi:
    def __init__(self, store: Store) -> None:
        self._store = store

    def routes(self) -> list[Route]:
        return [
            Route("/service-accounts", self._register, methods=["POST"]),
            Route("/calendars", self._list_calendars, methods=["GET"]),
            *EventControl(self._store).routes(),
            Route(
                "/calendars/{calendar_id:path}",
                self._edit_calendar,
                methods=["PATCH", "DELETE"],
            ),
            Route("/calendar-list", self._calendar_list, methods=["GET"]),
            Route("/faults", self._faults, methods=["GET", "POST", "DELETE"]),
            Route("/users/{email}/read-only", self._read_only, methods=["POST", "DELETE"]),
            Route("/requests", self._requests, methods=["GET", "DELETE"]),
            Route("/reset", self._reset, methods=["POST"]),
        ]

    async def _register(self, request: Request) -> Response:
        try:
            add_service_account(self._store, await request.json())
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"not a service-account key: {exc}"}, status_code=400)
        return Response(status_code=204)

    async def _list_calendars(self, request: Request) -> Response:
        owner = request.query_params.get("owner")
        store = self._store
        with store.lock:
            calendars = [
                {**render_calendar(calendar), "acl": self._acl(calendar_id)}
                for calendar_id, calendar in store.state.calendars.items()
                if owner is None or calendar.get("dataOwner") == owner
            ]
        return JSONResponse({"calendars": calendars})

    def _acl(self, calendar_id: str) -> list[JSON]:
        rules = self._store.state.acl.get(calendar_id, {}).values()
        return [
            {**rule.render(), "sendNotifications": rule.send_notifications}
            for rule in rules
            if not rule.deleted
        ]

    async def _edit_calendar(self, request: Request) -> Response:
        calendar_id = request.path_params["calendar_id"]
        changes = await request.json() if request.method == "PATCH" else {}
        store = self._store
        with store.lock:
            calendar = store.state.calendars.get(calendar_id)
            if calendar is None:
                return JSONResponse({"error": f"no calendar {calendar_id}"}, status_code=404)
            if request.method == "DELETE":
                delete_calendar(store, calendar_id)
                return Response(status_code=204)
            calendar.update({k: v for k, v in changes.items() if k not in ("id", "kind", "etag")})
            calendar["etag"] = store.next_etag()
            return JSONResponse(render_calendar(calendar))

    async def _calendar_list(self, request: Request) -> Response:
        user = request.query_params.get("user", "")
        store = self._store
        with store.lock:
            entries = store.state.lists.get(user, {})
            items = [
                render_entry(store, user, calendar_id, entry)
                for calendar_id, entry in entries.items()
                if not entry.deleted and calendar_id in store.state.calendars
            ]
        return JSONResponse({"items": items})

    async def _faults(self, request: Request) -> Response:
        store = self._store
        if request.method == "GET":
            with store.lock:
                return JSONResponse({"faults": [fault.describe() for fault in store.state.faults]})
        if request.method == "DELETE":
            with store.lock:
                store.state.faults.clear()
            return Response(status_code=204)
        spec = await request.json()
        try:
            action = FaultAction(spec.get("action", "error"))
        except ValueError:
            return JSONResponse(
                {"error": f"unknown action {spec.get('action')!r}"}, status_code=400
            )
        with store.lock:
            store.fault_ids += 1
            fault = Fault(
                id=f"fault-{store.fault_ids}",
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
            store.state.faults.append(fault)
        return JSONResponse({"id": fault.id}, status_code=201)

    async def _read_only(self, request: Request) -> Response:
        email = request.path_params["email"]
        store = self._store
        if request.method == "DELETE":
            with store.lock:
                store.state.read_only_until.pop(email, None)
                store.state.creations.pop(email, None)
                store.state.event_creations.pop(email, None)
            return Response(status_code=204)
        body = await request.json() if await request.body() else {}
        seconds = float(body.get("seconds", store.quota_cooloff_s))
        with store.lock:
            store.state.read_only_until[email] = time.monotonic() + seconds
        return Response(status_code=204)

    async def _requests(self, request: Request) -> Response:
        with self._store.lock:
            if request.method == "DELETE":
                self._store.state.log.clear()
                return Response(status_code=204)
            return JSONResponse({"requests": copy.deepcopy(self._store.state.log)})

    async def _reset(self, request: Request) -> Response:
        self._store.reset()
        return Response(status_code=204)
