"""Stateful local emulator of Bitrix24 portals: REST API, leaky bucket, faults and event delivery.

One `BitrixEmulator` serves many portals, each found by its incoming-webhook code. The behaviour
follows `reference/bitrix24/NOTES.md` §9. A JSON control API under `/_control/` creates portals,
data, outgoing webhooks and faults, and reads back the request and delivery logs.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import re
import secrets
import string
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge.sandbox.bitrix_delivery import DeliveryJob, DeliveryQueue
from bridge.sandbox.php_query import http_build_query, parse_php_query, php_string

__all__ = ["BitrixEmulator", "http_build_query", "parse_php_query"]

PAGE_SIZE = 50
BATCH_MAX_LENGTH = 50
_SERVER_ENDPOINT = "https://oauth.bitrix.info/rest/"
_RAW_SEND = "bridge.sandbox.raw_send"
_BATCH_MAPS = ("result", "result_error", "result_total", "result_next", "result_time")
_FAULT_KINDS = frozenset({"error", "html", "delay", "drop"})
_REF = re.compile(
    r"\$(result|result_error|result_total|result_next|result_time)\[([^\]]*)\]"
    r"((?:\[[^\]]*\])*)"
)
_FILTER_OPS = ("!=%", "!%=", ">=", "<=", "=%", "%=", "!%", "!@", "!=", ">", "<", "@", "%", "=", "!")
_USER_PARAMS = frozenset(
    {"start", "sort", "order", "select", "filter", "admin_mode", "image_resize"}
)


class _RestError(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


class _ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class _Section:
    id: int
    cal_type: str
    owner_id: int
    created_by: int
    name: str = ""
    description: str = ""
    color: str = "#9dcf00"
    text_color: str = "#ffffff"
    export_allow: bool = True
    export_set: str = "all"
    gapi_calendar_id: str | None = None
    external_type: str = "local"
    date_create: str = field(default_factory=_now_text)
    timestamp_x: str = field(default_factory=_now_text)
    active: bool = True


@dataclass
class _Bucket:
    burst: int
    drain_per_s: float
    level: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def admit(self) -> bool:
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.at) * self.drain_per_s)
        self.at = now
        if self.level + 1 > self.burst:
            return False
        self.level += 1
        return True


@dataclass(frozen=True)
class _Hook:
    id: str
    url: str
    events: frozenset[str]
    application_token: str


@dataclass
class _Portal:
    member_id: str
    domain: str
    webhook_user_id: int
    webhook_code: str
    bucket: _Bucket
    sections: dict[int, _Section] = field(default_factory=dict)
    next_id: int = 1
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    hooks: list[_Hook] = field(default_factory=list)


@dataclass
class _Fault:
    id: str
    member_id: str | None
    method: str
    remaining: int | None  # None: until DELETE /_control/faults
    kind: str
    status: int
    error: str
    description: str
    seconds: float


@dataclass
class _Outcome:
    result: Any
    total: int | None = None
    next: int | None = None


@dataclass
class _Call:
    portal: _Portal
    params: dict[str, Any]
    base_url: str
    jobs: list[DeliveryJob]


class _EmulatorApp(Starlette):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Middleware wraps `send`; the "drop" fault needs the server's own, bound to its transport.
        scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


class BitrixEmulator:
    """Bitrix24 portals over real HTTP: `/rest/{user_id}/{code}/{method}` plus `/_control/`."""

    def __init__(self, *, deliver_timeout_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._portals: dict[str, _Portal] = {}
        self._faults: list[_Fault] = []
        self._requests: list[dict[str, Any]] = []
        self._sequence = 0
        self._deliveries = DeliveryQueue(timeout_s=deliver_timeout_s)
        self._methods: dict[str, Callable[[_Call], _Outcome]] = {
            "calendar.section.get": self._section_get,
            "calendar.section.add": self._section_add,
            "calendar.section.update": self._section_update,
            "calendar.section.delete": self._section_delete,
            "calendar.resource.list": self._resource_list,
            "calendar.resource.add": self._resource_add,
            "calendar.resource.update": self._resource_update,
            "calendar.resource.delete": self._resource_delete,
            "user.get": self._user_get,
            "socialnetwork.api.workgroup.list": self._workgroup_list,
        }
        portal = "/_control/portals/{member_id}"
        read = ["GET", "DELETE"]
        self.app: Starlette = _EmulatorApp(
            routes=[
                Route("/rest/{user_id}/{code}/{method}", self._rest, methods=["GET", "POST"]),
                Route("/_control/portals", _guard(self._c_add_portal), methods=["POST"]),
                Route("/_control/portals", _guard(self._c_list_portals), methods=["GET"]),
                Route(portal, _guard(self._c_patch_portal), methods=["PATCH"]),
                Route(f"{portal}/outgoing-webhooks", _guard(self._c_add_hook), methods=["POST"]),
                Route(
                    f"{portal}/outgoing-webhooks/{{hook_id}}",
                    _guard(self._c_delete_hook),
                    methods=["DELETE"],
                ),
                Route(f"{portal}/sections", _guard(self._c_add_section), methods=["POST"]),
                Route(f"{portal}/sections", _guard(self._c_list_sections), methods=["GET"]),
                Route(
                    f"{portal}/sections/{{section_id:int}}",
                    _guard(self._c_change_section),
                    methods=["PATCH", "DELETE"],
                ),
                Route(f"{portal}/users", _guard(self._c_add_users), methods=["POST"]),
                Route(f"{portal}/groups", _guard(self._c_add_groups), methods=["POST"]),
                Route("/_control/faults", _guard(self._c_faults), methods=[*read, "POST"]),
                Route("/_control/requests", _guard(self._c_requests), methods=read),
                Route("/_control/deliveries", _guard(self._c_deliveries), methods=read),
                Route("/_control/deliveries/flush", _guard(self._c_flush), methods=["POST"]),
                Route("/_control/reset", _guard(self._c_reset), methods=["POST"]),
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
        with self._lock:
            if member_id in self._portals:
                raise ValueError(f"portal {member_id!r} already exists")
            if any(p.webhook_code == webhook_code for p in self._portals.values()):
                raise ValueError("webhook_code is already used by another portal")
            portal = _Portal(
                member_id=member_id,
                domain=domain,
                webhook_user_id=webhook_user_id,
                webhook_code=webhook_code,
                bucket=_Bucket(burst=bucket_burst, drain_per_s=bucket_drain_per_s),
            )
            # A portal always has the user who created the incoming webhook.
            portal.users[webhook_user_id] = _user_row({"ID": webhook_user_id, "NAME": "Admin"})
            self._portals[member_id] = portal

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(self._deliveries.close)

    # REST

    async def _rest(self, request: Request) -> Response:
        started = time.time()
        method = _method_name(request.path_params["method"])
        entry: dict[str, Any] = {
            "member_id": None,
            "method": method,
            "http_method": request.method,
            "params": {},
            "status": None,
            "error": None,
            "t": started,
        }
        try:
            entry["params"] = params = await _read_params(request)
        except _RestError as exc:
            return self._fail(entry, exc)
        with self._lock:
            code = request.path_params["code"]
            portal = next((p for p in self._portals.values() if p.webhook_code == code), None)
            if portal is not None and str(portal.webhook_user_id) != request.path_params["user_id"]:
                portal = None
            fault = self._take_fault(portal.member_id, method) if portal else None
        if portal is None:
            return self._fail(entry, _RestError(401, "NO_AUTH_FOUND", "Wrong authorization data"))
        entry["member_id"] = portal.member_id
        if fault is not None:
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "drop":
                entry["error"] = "connection dropped"
                self._record(entry)
                await _drop_connection(request)
                return Response(status_code=fault.status)
            elif fault.kind == "html":
                entry.update(status=fault.status, error="html")
                self._record(entry)
                return HTMLResponse(_html_page(fault.status), status_code=fault.status)
            else:
                return self._fail(entry, _RestError(fault.status, fault.error, fault.description))
        with self._lock:
            admitted = portal.bucket.admit()
        if not admitted:
            return self._fail(entry, _RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"))
        call = _Call(portal, params, _base_url(request), [])
        try:
            if method == "batch":
                body = await self._run_batch(call, entry, started)
            else:
                with self._lock:
                    body = _envelope(self._dispatch(method, call), started)
        except _RestError as exc:
            return self._fail(entry, exc)
        entry["status"] = 200
        self._record(entry)
        return JSONResponse(body, background=self._background(call.jobs))

    def _dispatch(self, method: str, call: _Call) -> _Outcome:
        handler = self._methods.get(method)
        if handler is None:
            raise _RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        return handler(call)

    async def _run_batch(self, call: _Call, entry: dict[str, Any], started: float) -> Any:
        halt = _as_bool(call.params.get("halt"))
        maps: dict[str, dict[str, Any]] = {name: {} for name in _BATCH_MAPS}
        log: list[dict[str, Any]] = []
        for index, (key, raw) in enumerate(_batch_commands(call.params.get("cmd"))):
            began = time.time()
            method, params = "", dict[str, Any]()
            try:
                if index >= BATCH_MAX_LENGTH:
                    raise _RestError(
                        400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded"
                    )
                method, params = _parse_command(raw, maps)
                outcome = await self._run_command(call, method, params)
            except _RestError as exc:
                maps["result_error"][key] = exc.body()
                log.append(
                    {
                        "key": key,
                        "method": method,
                        "params": params,
                        "status": exc.status,
                        "error": exc.code,
                    }
                )
                if halt:
                    break
                continue
            maps["result"][key] = outcome.result
            if outcome.total is not None:
                maps["result_total"][key] = outcome.total
            if outcome.next is not None:
                maps["result_next"][key] = outcome.next
            maps["result_time"][key] = _time_block(began, time.time())
            log.append(
                {"key": key, "method": method, "params": params, "status": 200, "error": None}
            )
        entry["commands"] = log
        return {
            "result": {name: _php_array(values) for name, values in maps.items()},
            "time": _time_block(started, time.time()),
        }

    async def _run_command(self, call: _Call, method: str, params: dict[str, Any]) -> _Outcome:
        if method == "batch":
            raise _RestError(
                405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
            )
        with self._lock:
            fault = self._take_fault(call.portal.member_id, method)
        if fault is not None:
            if fault.kind != "delay":  # html and drop cannot hit one sub-command: report an error
                raise _RestError(fault.status, fault.error, fault.description)
            await asyncio.sleep(fault.seconds)
        with self._lock:
            return self._dispatch(method, _Call(call.portal, params, call.base_url, call.jobs))

    def _fail(self, entry: dict[str, Any], exc: _RestError) -> Response:
        entry.update(status=exc.status, error=exc.code, error_description=exc.description)
        self._record(entry)
        return JSONResponse(exc.body(), status_code=exc.status)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def _take_fault(self, member_id: str, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.member_id not in (None, member_id) or fault.method not in ("*", method):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
            return fault
        return None

    def _background(self, jobs: list[DeliveryJob]) -> BackgroundTask | None:
        if not jobs:
            return None
        # Reserved now so that a flush right after the answer waits for these deliveries too.
        ticket = self._deliveries.reserve(len(jobs))
        return BackgroundTask(self._deliveries.enqueue, ticket, list(jobs))

    def _fire(
        self, portal: _Portal, action: str, section_id: int, base_url: str
    ) -> list[DeliveryJob]:
        event = f"ONCALENDARSECTION{action}"
        return [
            DeliveryJob(
                member_id=portal.member_id,
                handler_id=hook.id,
                url=hook.url,
                event=event,
                section_id=section_id,
                auth={
                    "domain": portal.domain,
                    "client_endpoint": f"{base_url}/rest/",
                    "server_endpoint": _SERVER_ENDPOINT,
                    "member_id": portal.member_id,
                    "application_token": hook.application_token,
                },
            )
            for hook in portal.hooks
            if event in hook.events
        ]

    def _next_sequence(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    # calendar.section.* and calendar.resource.*

    def _section_get(self, call: _Call) -> _Outcome:
        cal_type, owner_id = _type_and_owner(call, "calendar.section.get", dot=False)
        rows = [
            _section_view(section)
            for section in sorted(call.portal.sections.values(), key=lambda s: s.id)
            if section.active and section.cal_type == cal_type and section.owner_id == owner_id
        ]
        return _Outcome(rows)

    def _section_add(self, call: _Call) -> _Outcome:
        method = "calendar.section.add"
        cal_type, owner_id = _type_and_owner(call, method, dot=True)
        if cal_type not in ("user", "group"):
            raise _calendar_error("Access denied")
        _check_texts(call.params, required_name=True)
        section = self._create_section(call.portal, cal_type, owner_id, call.params)
        call.jobs.extend(self._fire(call.portal, "ADD", section.id, call.base_url))
        return _Outcome(section.id)

    def _section_update(self, call: _Call) -> _Outcome:
        method = "calendar.section.update"
        cal_type, owner_id = _type_and_owner(call, method, dot=False)
        section_id = _as_int(call.params.get("id"))
        if section_id is None:
            raise _calendar_error("Section ID is not set")
        section = _find_section(call.portal, section_id, cal_type, owner_id)
        if section is None:
            raise _calendar_error("Access denied")
        _check_texts(call.params, required_name=False)
        _apply_fields(section, call.params)
        call.jobs.extend(self._fire(call.portal, "UPDATE", section.id, call.base_url))
        return _Outcome(section.id)

    def _section_delete(self, call: _Call) -> _Outcome:
        cal_type, owner_id = _type_and_owner(call, "calendar.section.delete", dot=True)
        section_id = _as_int(call.params.get("id"))
        if section_id is None:
            raise _calendar_error("Section ID is not set.")
        section = _find_section(call.portal, section_id, cal_type, owner_id)
        if section is None:
            raise _calendar_error("Access denied.")
        _deactivate(section)
        call.jobs.extend(self._fire(call.portal, "DELETE", section.id, call.base_url))
        return _Outcome(True)

    def _resource_list(self, call: _Call) -> _Outcome:
        return _Outcome(
            [
                {"ID": str(s.id), "NAME": s.name, "CREATED_BY": str(s.created_by)}
                for s in sorted(call.portal.sections.values(), key=lambda s: s.id)
                if s.active and s.cal_type == "resource"
            ]
        )

    def _resource_add(self, call: _Call) -> _Outcome:
        if not _text(call.params.get("name")):
            raise _required("name", "calendar.resource.add")
        section = self._create_section(call.portal, "resource", 0, {"name": call.params["name"]})
        call.jobs.extend(self._fire(call.portal, "ADD", section.id, call.base_url))
        return _Outcome(section.id)

    def _resource_update(self, call: _Call) -> _Outcome:
        method = "calendar.resource.update"
        resource_id = _as_int(call.params.get("resourceId"))
        if resource_id is None:
            raise _required("resourceId", method)
        if not _text(call.params.get("name")):
            raise _required("name", method)
        section = _find_section(call.portal, resource_id, "resource", 0)
        if section is None:
            raise _calendar_error("Access denied")
        _apply_fields(section, {"name": call.params["name"]})
        call.jobs.extend(self._fire(call.portal, "UPDATE", section.id, call.base_url))
        return _Outcome(section.id)

    def _resource_delete(self, call: _Call) -> _Outcome:
        resource_id = _as_int(call.params.get("resourceId"))
        if resource_id is None:
            raise _required("resourceId", "calendar.resource.delete")
        section = _find_section(call.portal, resource_id, "resource", 0)
        if section is None:
            raise _calendar_error("Access denied")
        _deactivate(section)
        call.jobs.extend(self._fire(call.portal, "DELETE", section.id, call.base_url))
        return _Outcome(True)

    def _create_section(
        self, portal: _Portal, cal_type: str, owner_id: int, fields: Mapping[str, Any]
    ) -> _Section:
        section = _Section(
            id=portal.next_id,
            cal_type=cal_type,
            owner_id=0 if cal_type == "resource" else owner_id,
            created_by=portal.webhook_user_id,
        )
        portal.next_id += 1
        _apply_fields(section, fields)
        portal.sections[section.id] = section
        return section

    # user.get, socialnetwork.api.workgroup.list

    def _user_get(self, call: _Call) -> _Outcome:
        params = call.params
        conditions: dict[str, Any] = {}
        for name in ("FILTER", "filter"):
            if isinstance(params.get(name), Mapping):
                conditions.update(params[name])
        known = set(_user_row({"ID": 0}))
        for key, value in params.items():
            if key.lower() not in _USER_PARAMS and _split_op(key)[1].upper() in known:
                conditions[key] = value
        rows = [row for row in call.portal.users.values() if _row_matches(row, conditions)]
        sort_field = _text(params.get("sort") or params.get("SORT")).upper() or "ID"
        descending = _text(params.get("order") or params.get("ORDER")).upper() == "DESC"
        rows.sort(key=lambda row: _sort_key(row.get(sort_field)), reverse=descending)
        page, total, next_start = _page(rows, params.get("start"))
        return _Outcome([dict(row) for row in page], total, next_start)

    def _workgroup_list(self, call: _Call) -> _Outcome:
        params = call.params
        given = params.get("filter")
        conditions: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        rows = [row for row in call.portal.groups.values() if _row_matches(row, conditions)]
        order = params.get("order")
        for name, direction in reversed(list(order.items()) if isinstance(order, Mapping) else []):
            rows.sort(
                key=lambda row: _sort_key(row.get(str(name).upper())),
                reverse=_text(direction).upper() == "DESC",
            )
        if not isinstance(order, Mapping) or not order:
            rows.sort(key=lambda row: _sort_key(row["ID"]))
        select = [str(name).upper() for name in _as_list(params.get("select"))] or ["ID"]
        page, total, next_start = _page(rows, params.get("start"))
        groups = [
            {_camel(key): value for key, value in row.items() if "*" in select or key in select}
            for row in page
        ]
        return _Outcome({"workgroups": groups}, total, next_start)

    # control API

    async def _c_add_portal(self, request: Request) -> Response:
        body = await _json_body(request)
        try:
            self.add_portal(
                member_id=_required_text(body, "member_id"),
                domain=_required_text(body, "domain"),
                webhook_user_id=_as_int(body.get("webhook_user_id")) or 1,
                webhook_code=_required_text(body, "webhook_code"),
                bucket_burst=_as_int(body.get("bucket_burst")) or 50,
                bucket_drain_per_s=float(body.get("bucket_drain_per_s") or 2.0),
            )
        except ValueError as exc:
            raise _ControlError(409, str(exc)) from exc
        with self._lock:
            view = self._portal_view(self._portals[body["member_id"]], _base_url(request))
        return JSONResponse(view, status_code=201)

    async def _c_list_portals(self, request: Request) -> Response:
        with self._lock:
            views = [self._portal_view(p, _base_url(request)) for p in self._portals.values()]
        return JSONResponse({"portals": views})

    async def _c_patch_portal(self, request: Request) -> Response:
        body = await _json_body(request)
        with self._lock:
            portal = self._portal(request)
            if "bucket_burst" in body:
                portal.bucket.burst = int(body["bucket_burst"])
            if "bucket_drain_per_s" in body:
                portal.bucket.drain_per_s = float(body["bucket_drain_per_s"])
            if body.get("reset_bucket"):
                portal.bucket.level = 0.0
            if "domain" in body:
                portal.domain = _required_text(body, "domain")
            view = self._portal_view(portal, _base_url(request))
        return JSONResponse(view)

    async def _c_add_hook(self, request: Request) -> Response:
        body = await _json_body(request)
        url = _required_text(body, "handler")
        events = body.get("events")
        if not isinstance(events, list) or not events:
            raise _ControlError(400, "events must be a non-empty list")
        token = _text(body.get("application_token")) or "".join(
            secrets.choice(string.ascii_lowercase + string.digits) for _ in range(32)
        )
        with self._lock:
            portal = self._portal(request)
            hook = _Hook(
                id=self._next_sequence(),
                url=url,
                events=frozenset(str(event).upper() for event in events),
                application_token=token,
            )
            portal.hooks.append(hook)
        return JSONResponse({"id": hook.id, "application_token": token}, status_code=201)

    async def _c_delete_hook(self, request: Request) -> Response:
        with self._lock:
            portal = self._portal(request)
            kept = [hook for hook in portal.hooks if hook.id != request.path_params["hook_id"]]
            if len(kept) == len(portal.hooks):
                raise _ControlError(404, "no such outgoing webhook")
            portal.hooks = kept
        return JSONResponse({"deleted": request.path_params["hook_id"]})

    async def _c_add_section(self, request: Request) -> Response:
        body = await _json_body(request)
        cal_type = _required_text(body, "type")
        with self._lock:
            portal = self._portal(request)
            owner_id = _as_int(body.get("owner_id"))
            if owner_id is None:
                owner_id = portal.webhook_user_id if cal_type == "user" else 0
            section = self._create_section(portal, cal_type, owner_id, body)
            if "created_by" in body:
                section.created_by = _as_int(body["created_by"]) or portal.webhook_user_id
            jobs = self._fire_if(body.get("deliver", True), portal, "ADD", section, request)
            view = _section_view(section)
        return JSONResponse(view, status_code=201, background=self._background(jobs))

    async def _c_list_sections(self, request: Request) -> Response:
        with self._lock:
            sections = sorted(self._portal(request).sections.values(), key=lambda s: s.id)
            views = [{**_section_view(s), "ACTIVE": "Y" if s.active else "N"} for s in sections]
        return JSONResponse({"sections": views})

    async def _c_change_section(self, request: Request) -> Response:
        body = await _json_body(request) if request.method == "PATCH" else {}
        deliver = body.get("deliver", request.query_params.get("deliver", True))
        with self._lock:
            portal = self._portal(request)
            section = portal.sections.get(request.path_params["section_id"])
            if section is None or not section.active:
                raise _ControlError(404, "no such active section")
            if request.method == "PATCH":
                _apply_fields(section, body)
                jobs = self._fire_if(deliver, portal, "UPDATE", section, request)
            else:
                _deactivate(section)
                jobs = self._fire_if(deliver, portal, "DELETE", section, request)
            view = {**_section_view(section), "ACTIVE": "Y" if section.active else "N"}
        return JSONResponse(view, background=self._background(jobs))

    def _fire_if(
        self, deliver: Any, portal: _Portal, action: str, section: _Section, request: Request
    ) -> list[DeliveryJob]:
        if not _as_bool(deliver):
            return []
        return self._fire(portal, action, section.id, _base_url(request))

    async def _c_add_users(self, request: Request) -> Response:
        return await self._add_rows(request, "users", _user_row)

    async def _c_add_groups(self, request: Request) -> Response:
        return await self._add_rows(request, "groups", _group_row)

    async def _add_rows(
        self, request: Request, kind: str, build: Callable[[Mapping[str, Any]], dict[str, Any]]
    ) -> Response:
        body = await _json_any(request)
        items = body if isinstance(body, list) else [body]
        try:
            rows = [build(item) for item in items if isinstance(item, Mapping)]
        except ValueError as exc:
            raise _ControlError(400, str(exc)) from exc
        with self._lock:
            table = getattr(self._portal(request), kind)
            for row in rows:
                table[int(row["ID"])] = row
        return JSONResponse({"count": len(rows)}, status_code=201)

    async def _c_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            with self._lock:
                count = len(self._faults)
                self._faults.clear()
            return JSONResponse({"deleted": count})
        if request.method == "GET":
            with self._lock:
                return JSONResponse({"faults": [vars(f).copy() for f in self._faults]})
        body = await _json_body(request)
        kind = _text(body.get("kind")) or "error"
        if kind not in _FAULT_KINDS:
            raise _ControlError(400, f"kind must be one of {sorted(_FAULT_KINDS)}")
        count = body.get("count", 1)
        with self._lock:
            fault = _Fault(
                id=self._next_sequence(),
                member_id=_text(body.get("member_id")) or None,
                method=_method_name(_text(body.get("method")) or "*"),
                remaining=None if count is None else max(1, int(count)),
                kind=kind,
                status=int(body.get("status") or 503),
                error=str(body.get("error", "QUERY_LIMIT_EXCEEDED")),
                description=str(body.get("description", "Too many requests")),
                seconds=float(body.get("seconds") or 0.0),
            )
            self._faults.append(fault)
        return JSONResponse({"id": fault.id}, status_code=201)

    async def _c_requests(self, request: Request) -> Response:
        member_id = request.query_params.get("member_id")
        with self._lock:
            if request.method == "DELETE":
                self._requests.clear()
                return JSONResponse({"requests": []})
            rows = [dict(r) for r in self._requests if member_id in (None, r["member_id"])]
        return JSONResponse({"requests": rows})

    async def _c_deliveries(self, request: Request) -> Response:
        if request.method == "DELETE":
            self._deliveries.clear()
        return JSONResponse({"deliveries": self._deliveries.entries()})

    async def _c_flush(self, request: Request) -> Response:
        body = await _json_body(request)
        timeout = float(body.get("timeout") or 10.0)
        pending = await anyio.to_thread.run_sync(self._deliveries.flush, timeout)
        return JSONResponse({"deliveries": self._deliveries.entries(), "pending": pending})

    async def _c_reset(self, request: Request) -> Response:
        with self._lock:
            self._portals.clear()
            self._faults.clear()
            self._requests.clear()
            self._sequence = 0
        self._deliveries.clear()
        return JSONResponse({"reset": True})

    def _portal(self, request: Request) -> _Portal:
        portal = self._portals.get(request.path_params["member_id"])
        if portal is None:
            raise _ControlError(404, "no such portal")
        return portal

    @staticmethod
    def _portal_view(portal: _Portal, base_url: str) -> dict[str, Any]:
        return {
            "member_id": portal.member_id,
            "domain": portal.domain,
            "webhook_url": f"{base_url}/rest/{portal.webhook_user_id}/{portal.webhook_code}/",
            "bucket_burst": portal.bucket.burst,
            "bucket_drain_per_s": portal.bucket.drain_per_s,
            "outgoing_webhooks": [
                {
                    "id": h.id,
                    "handler": h.url,
                    "events": sorted(h.events),
                    "application_token": h.application_token,
                }
                for h in portal.hooks
            ],
        }


# request parsing


def _guard(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except _ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return guarded


async def _json_any(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _ControlError(400, "body is not valid JSON") from exc


async def _json_body(request: Request) -> dict[str, Any]:
    body = await _json_any(request)
    if not isinstance(body, dict):
        raise _ControlError(400, "body must be a JSON object")
    return body


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
            raise _RestError(400, "INVALID_REQUEST", "Request body is not valid JSON") from exc
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


def _method_name(raw: str) -> str:
    name = raw.strip().lower()
    return name.removesuffix(".json")


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _drop_connection(request: Request) -> None:
    raw_send = request.scope.get(_RAW_SEND)
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("the server does not expose its transport; cannot drop the connection")
    transport.close()
    await asyncio.sleep(0.01)  # let the server see the disconnect before we return


def _html_page(status: int) -> str:
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = str(status)
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )


# values


def _text(value: Any) -> str:
    if value is None or isinstance(value, Mapping | list):
        return ""
    return php_string(value).strip()


def _required_text(body: Mapping[str, Any], name: str) -> str:
    value = _text(body.get(name))
    if not value:
        raise _ControlError(400, f"{name} is required")
    return value


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = _text(value)
    if text.lstrip("-").isdigit():
        return int(text)
    return None


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return _text(value).lower() in ("1", "y", "true", "yes", "on")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return list(value.values())
    return [] if value in (None, "") else [value]


def _camel(key: str) -> str:
    head, *rest = key.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _sort_key(value: Any) -> tuple[int, float, str]:
    number = _as_int(value)
    return (0, float(number), "") if number is not None else (1, 0.0, php_string(value).lower())


def _php_array(values: dict[str, Any]) -> Any:
    """How PHP's json_encode shows an array: `[]` when empty, a list when keyed 0..n-1."""
    if list(values) == [str(index) for index in range(len(values))]:
        return list(values.values())
    return values


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _time_block(start: float, finish: float) -> dict[str, Any]:
    return {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": finish - start,
        "date_start": _iso(start),
        "date_finish": _iso(finish),
        "operating_reset_at": int(start) + 600,
        "operating": 0,
    }


def _envelope(outcome: _Outcome, started: float) -> dict[str, Any]:
    body: dict[str, Any] = {"result": outcome.result}
    if outcome.next is not None:
        body["next"] = outcome.next
    if outcome.total is not None:
        body["total"] = outcome.total
    body["time"] = _time_block(started, time.time())
    return body


def _page(
    rows: list[dict[str, Any]], start: Any
) -> tuple[list[dict[str, Any]], int | None, int | None]:
    offset = _as_int(start) or 0
    if offset < 0:  # start=-1: no count, the caller pages by id
        return rows[:PAGE_SIZE], None, None
    following = offset + PAGE_SIZE
    return rows[offset:following], len(rows), following if following < len(rows) else None


# batch


def _batch_commands(cmd: Any) -> list[tuple[str, Any]]:
    if isinstance(cmd, Mapping):
        return [(str(key), value) for key, value in cmd.items()]
    if isinstance(cmd, list):
        return [(str(index), value) for index, value in enumerate(cmd)]
    return []


def _parse_command(raw: Any, refs: Mapping[str, Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    if isinstance(raw, Mapping) and "method" in raw:
        method = _text(raw["method"])
        given = raw.get("params")
        params = dict(given) if isinstance(given, Mapping) else {}
    else:
        method, _, query = php_string(raw).partition("?")
        params = parse_php_query(parse_qsl(query, keep_blank_values=True))
    substituted = _substitute(params, refs)
    return _method_name(method), substituted if isinstance(substituted, dict) else {}


def _substitute(value: Any, refs: Mapping[str, Mapping[str, Any]]) -> Any:
    if isinstance(value, dict):
        return {key: _substitute(child, refs) for key, child in value.items()}
    if isinstance(value, list):
        return [_substitute(child, refs) for child in value]
    if not isinstance(value, str) or "$result" not in value:
        return value
    whole = _REF.fullmatch(value)
    if whole is not None:
        resolved = _resolve(whole, refs)
        return "" if resolved is None else resolved
    return _REF.sub(lambda match: _php_text(_resolve(match, refs)), value)


def _resolve(match: re.Match[str], refs: Mapping[str, Mapping[str, Any]]) -> Any:
    node: Any = refs[match.group(1)].get(match.group(2))
    for segment in re.findall(r"\[([^\]]*)\]", match.group(3)):
        if isinstance(node, Mapping):
            node = node.get(segment)
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return None
    return node


def _php_text(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return "Array"
    return "" if value is False else php_string(value)


# sections


def _calendar_error(description: str) -> _RestError:
    return _RestError(400, "", description)


def _required(name: str, method: str, *, dot: bool = False) -> _RestError:
    suffix = "." if dot else ""
    text = f'The required parameter "{name}" for the method "{method}" is not set{suffix}'
    return _calendar_error(text)


def _type_and_owner(call: _Call, method: str, *, dot: bool) -> tuple[str, int]:
    cal_type = _text(call.params.get("type"))
    if not cal_type:
        raise _required("type", method, dot=dot)
    owner_id = _as_int(call.params.get("ownerId"))
    if owner_id is None:
        if cal_type != "user":
            raise _required("ownerId", method, dot=dot)
        owner_id = call.portal.webhook_user_id
    return cal_type, owner_id


def _check_texts(params: Mapping[str, Any], *, required_name: bool) -> None:
    name = params.get("name")
    if (required_name or name is not None) and (not _text(name) or not _is_scalar(name)):
        raise _calendar_error('Invalid value for the "name" parameter')
    description = params.get("description")
    if description is not None and not _is_scalar(description):
        raise _calendar_error('Invalid value for the "description" parameter')


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list)


def _find_section(
    portal: _Portal, section_id: int, cal_type: str, owner_id: int
) -> _Section | None:
    section = portal.sections.get(section_id)
    if section is None or not section.active:
        return None
    if section.cal_type != cal_type or section.owner_id != owner_id:
        return None
    return section


def _apply_fields(section: _Section, fields: Mapping[str, Any]) -> None:
    for key in ("name", "description", "color", "text_color", "external_type"):
        if key in fields and fields[key] is not None:
            setattr(section, key, _text(fields[key]))
    if "gapi_calendar_id" in fields:
        section.gapi_calendar_id = _text(fields["gapi_calendar_id"]) or None
    export = fields.get("export")
    if isinstance(export, Mapping):
        if "ALLOW" in export:
            section.export_allow = _as_bool(export["ALLOW"])
        if "SET" in export:
            section.export_set = _text(export["SET"])
    section.timestamp_x = _now_text()


def _deactivate(section: _Section) -> None:
    section.active = False
    section.timestamp_x = _now_text()


def _section_view(section: _Section) -> dict[str, Any]:
    return {
        "ID": str(section.id),
        "NAME": section.name,
        "GAPI_CALENDAR_ID": section.gapi_calendar_id,
        "DESCRIPTION": section.description,
        "COLOR": section.color,
        "TEXT_COLOR": section.text_color,
        "EXPORT": {"ALLOW": section.export_allow},
        "CAL_TYPE": section.cal_type,
        "OWNER_ID": str(section.owner_id),
        "CREATED_BY": str(section.created_by),
        "DATE_CREATE": section.date_create,
        "TIMESTAMP_X": section.timestamp_x,
        "CAL_DAV_CON": None,
        "SYNC_TOKEN": None,
        "PAGE_TOKEN": None,
        "EXTERNAL_TYPE": section.external_type,
        "ACCESS": {"G2": 13, f"U{section.created_by}": 19},
        "IS_COLLAB": False,
        "PERM": {
            "view_time": True,
            "view_title": True,
            "view_full": True,
            "add": True,
            "edit": True,
            "edit_section": True,
            "access": True,
        },
    }


# users, groups, filters


def _user_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    user_id = _as_int(raw.get("ID"))
    if user_id is None:
        raise ValueError("every user needs a numeric ID")
    row: dict[str, Any] = {
        "ID": str(user_id),
        "ACTIVE": True,
        "NAME": "",
        "LAST_NAME": "",
        "SECOND_NAME": "",
        "EMAIL": f"user{user_id}@example.com",
        "LAST_LOGIN": "",
        "DATE_REGISTER": "2024-01-01T00:00:00+00:00",
        "TIME_ZONE": "",
        "IS_ONLINE": "N",
        "PERSONAL_GENDER": "",
        "PERSONAL_BIRTHDAY": "",
        "WORK_POSITION": "",
        "UF_EMPLOYMENT_DATE": "",
        "UF_DEPARTMENT": [1],
        "USER_TYPE": "employee",
    }
    row.update({str(key).upper(): value for key, value in raw.items()})
    row["ID"] = str(user_id)
    row["ACTIVE"] = _as_bool(row["ACTIVE"])
    return row


def _group_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    group_id = _as_int(raw.get("ID"))
    if group_id is None:
        raise ValueError("every group needs a numeric ID")
    row: dict[str, Any] = {
        "ID": str(group_id),
        "NAME": f"Group {group_id}",
        "DESCRIPTION": "",
        "ACTIVE": "Y",
        "VISIBLE": "Y",
        "OPENED": "N",
        "CLOSED": "N",
        "PROJECT": "N",
        "TYPE": "group",
        "OWNER_ID": "1",
        "SUBJECT_ID": "1",
        "SITE_ID": "s1",
        "DATE_CREATE": "2024-01-01T00:00:00+00:00",
        "NUMBER_OF_MEMBERS": "1",
    }
    row.update({str(key).upper(): value for key, value in raw.items()})
    row["ID"] = str(group_id)
    for flag in ("ACTIVE", "VISIBLE", "OPENED", "CLOSED", "PROJECT"):
        if isinstance(row[flag], bool):
            row[flag] = "Y" if row[flag] else "N"
    return row


def _split_op(key: str) -> tuple[str, str]:
    for op in _FILTER_OPS:
        if key.startswith(op):
            return op, key[len(op) :]
    return "", key


def _row_matches(row: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    for raw_key, expected in conditions.items():
        op, name = _split_op(str(raw_key))
        if not _condition(op, row.get(name.upper()), expected):
            return False
    return True


def _condition(op: str, actual: Any, expected: Any) -> bool:
    negate = op.startswith("!")
    base = op.lstrip("!") or "="
    if base in ("=", "@"):
        hit = any(_same(actual, option) for option in _as_list(expected) or [""])
    elif base == "%":
        hit = php_string(expected).lower() in _php_text(actual).lower()
    elif base in ("=%", "%="):
        pattern = ".*".join(re.escape(part) for part in php_string(expected).lower().split("%"))
        hit = re.fullmatch(pattern, _php_text(actual).lower(), re.DOTALL) is not None
    else:
        hit = _compare(base, actual, expected)
    return hit != negate


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool):
        return actual == _as_bool(expected)
    if isinstance(actual, list):
        return any(_same(item, expected) for item in actual)
    return _php_text(actual) == _php_text(expected)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    left: Any = _as_int(actual)
    right: Any = _as_int(expected)
    if left is None or right is None:
        left, right = _php_text(actual), _php_text(expected)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    return bool(left <= right)
