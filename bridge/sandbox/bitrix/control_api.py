"""The `/_control/` JSON API of the Bitrix24 emulator, and the faults it injects into REST calls.

Tests and the demo use it to create portals, sections, users, groups and outgoing webhooks, to
queue faults (an error, an nginx HTML page, a delay or a dropped connection) and to read back
the request and delivery logs.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from http import HTTPStatus
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from bridge.sandbox.bitrix.address import Address
from bridge.sandbox.bitrix.address import configure as configure_address
from bridge.sandbox.bitrix.address import view as address_view
from bridge.sandbox.bitrix.budget import configure as configure_budget
from bridge.sandbox.bitrix.budget import view as budget_view
from bridge.sandbox.bitrix.change_events import section_events
from bridge.sandbox.bitrix.delivery import DeliveryJob
from bridge.sandbox.bitrix.directory import group_row, user_row
from bridge.sandbox.bitrix.entries import configure as configure_entries
from bridge.sandbox.bitrix.entries import view as entries_view
from bridge.sandbox.bitrix.rest import RestError
from bridge.sandbox.bitrix.rights import configure as configure_rights
from bridge.sandbox.bitrix.rights import view as rights_view
from bridge.sandbox.bitrix.sections import Section, apply_fields, deactivate, section_view
from bridge.sandbox.bitrix.state import Fault, Hook, Portal, State, create_section
from bridge.sandbox.bitrix.values import as_bool, as_int, as_text, method_name

RAW_SEND = "bridge.sandbox.raw_send"
_FAULT_KINDS = frozenset({"error", "html", "delay", "drop"})


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Control:
    def __init__(self, state: State) -> None:
        self._state = state

    async def add_portal(self, request: Request) -> Response:
        body = await json_body(request)
        address = Address()
        configure_address(address, body)  # address.py: public address, OAuth server
        try:
            self._state.add_portal(
                member_id=required_text(body, "member_id"),
                domain=required_text(body, "domain"),
                webhook_user_id=as_int(body.get("webhook_user_id")) or 1,
                webhook_code=required_text(body, "webhook_code"),
                bucket_burst=as_int(body.get("bucket_burst")) or 50,
                bucket_drain_per_s=float(body.get("bucket_drain_per_s") or 2.0),
            )
        except ValueError as exc:
            raise ControlError(409, str(exc)) from exc
        with self._state.lock:
            portal = self._state.portals[body["member_id"]]
            portal.address = address
            view = _portal_view(portal, emulator_base_url(request))
        return JSONResponse(view, status_code=201)

    async def list_portals(self, request: Request) -> Response:
        with self._state.lock:
            portals = self._state.portals.values()
            views = [_portal_view(p, emulator_base_url(request)) for p in portals]
        return JSONResponse({"portals": views})

    async def patch_portal(self, request: Request) -> Response:
        body = await json_body(request)
        with self._state.lock:
            portal = self._portal(request)
            address = replace(portal.address, former=set(portal.address.former))
            configure_address(address, body)  # first: a bad knob changes nothing
            portal.address = address
            if "bucket_burst" in body:
                portal.bucket.burst = int(body["bucket_burst"])
            if "bucket_drain_per_s" in body:
                portal.bucket.drain_per_s = float(body["bucket_drain_per_s"])
            if body.get("reset_bucket"):
                portal.bucket.level = 0.0
            if "domain" in body:
                portal.domain = required_text(body, "domain")
            if "automation" in body:  # app events then carry no tokens, as for a robot's change
                portal.apps.automation = as_bool(body["automation"])
            configure_budget(portal.budget, body)
            configure_rights(portal.rights, body)
            configure_entries(portal.entries, body)
            view = _portal_view(portal, emulator_base_url(request))
        return JSONResponse(view)

    async def add_hook(self, request: Request) -> Response:
        body = await json_body(request)
        url = required_text(body, "handler")
        events = body.get("events")
        if not isinstance(events, list) or not events:
            raise ControlError(400, "events must be a non-empty list")
        token = as_text(body.get("application_token")) or "".join(
            secrets.choice(string.ascii_lowercase + string.digits) for _ in range(32)
        )
        with self._state.lock:
            portal = self._portal(request)
            hook = Hook(
                id=self._state.next_sequence(),
                url=url,
                events=frozenset(str(event).upper() for event in events),
                application_token=token,
            )
            portal.hooks.append(hook)
        return JSONResponse({"id": hook.id, "application_token": token}, status_code=201)

    async def delete_hook(self, request: Request) -> Response:
        with self._state.lock:
            portal = self._portal(request)
            kept = [hook for hook in portal.hooks if hook.id != request.path_params["hook_id"]]
            if len(kept) == len(portal.hooks):
                raise ControlError(404, "no such outgoing webhook")
            portal.hooks = kept
        return JSONResponse({"deleted": request.path_params["hook_id"]})

    async def add_section(self, request: Request) -> Response:
        body = await json_body(request)
        cal_type = required_text(body, "type")
        with self._state.lock:
            portal = self._portal(request)
            owner_id = as_int(body.get("owner_id"))
            if owner_id is None:
                owner_id = portal.webhook_user_id if cal_type == "user" else 0
            section = create_section(portal, cal_type, owner_id, body)
            if "created_by" in body:
                section.created_by = as_int(body["created_by"]) or portal.webhook_user_id
            jobs = _events_if(body.get("deliver", True), portal, "ADD", section, request)
            view = section_view(section)
        return JSONResponse(view, status_code=201, background=self._state.background(jobs))

    async def list_sections(self, request: Request) -> Response:
        with self._state.lock:
            sections = sorted(self._portal(request).sections.values(), key=lambda s: s.id)
            views = [{**section_view(s), "ACTIVE": "Y" if s.active else "N"} for s in sections]
        return JSONResponse({"sections": views})

    async def change_section(self, request: Request) -> Response:
        body = await json_body(request) if request.method == "PATCH" else {}
        deliver = body.get("deliver", request.query_params.get("deliver", True))
        with self._state.lock:
            portal = self._portal(request)
            section = portal.sections.get(request.path_params["section_id"])
            if section is None or not section.active:
                raise ControlError(404, "no such active section")
            if request.method == "PATCH":
                apply_fields(section, body)
                jobs = _events_if(deliver, portal, "UPDATE", section, request)
            else:
                deactivate(section)
                jobs = _events_if(deliver, portal, "DELETE", section, request)
            view = {**section_view(section), "ACTIVE": "Y" if section.active else "N"}
        return JSONResponse(view, background=self._state.background(jobs))

    async def add_users(self, request: Request) -> Response:
        return await self._add_rows(request, "users", user_row)

    async def add_groups(self, request: Request) -> Response:
        return await self._add_rows(request, "groups", group_row)

    async def _add_rows(
        self, request: Request, kind: str, build: Callable[[Mapping[str, Any]], dict[str, Any]]
    ) -> Response:
        body = await _json_any(request)
        items = body if isinstance(body, list) else [body]
        try:
            rows = [build(item) for item in items if isinstance(item, Mapping)]
        except ValueError as exc:
            raise ControlError(400, str(exc)) from exc
        with self._state.lock:
            table = getattr(self._portal(request), kind)
            for row in rows:
                table[int(row["ID"])] = row
        return JSONResponse({"count": len(rows)}, status_code=201)

    async def faults(self, request: Request) -> Response:
        state = self._state
        if request.method == "DELETE":
            with state.lock:
                count = len(state.faults)
                state.faults.clear()
            return JSONResponse({"deleted": count})
        if request.method == "GET":
            with state.lock:
                return JSONResponse({"faults": [vars(f).copy() for f in state.faults]})
        body = await json_body(request)
        kind = as_text(body.get("kind")) or "error"
        if kind not in _FAULT_KINDS:
            raise ControlError(400, f"kind must be one of {sorted(_FAULT_KINDS)}")
        count = body.get("count", 1)
        with state.lock:
            fault = Fault(
                id=state.next_sequence(),
                member_id=as_text(body.get("member_id")) or None,
                method=method_name(as_text(body.get("method")) or "*"),
                remaining=None if count is None else max(1, int(count)),
                kind=kind,
                status=int(body.get("status") or 503),
                error=str(body.get("error", "QUERY_LIMIT_EXCEEDED")),
                description=str(body.get("description", "Too many requests")),
                seconds=float(body.get("seconds") or 0.0),
            )
            state.faults.append(fault)
        return JSONResponse({"id": fault.id}, status_code=201)

    async def requests(self, request: Request) -> Response:
        member_id = request.query_params.get("member_id")
        with self._state.lock:
            if request.method == "DELETE":
                self._state.requests.clear()
                return JSONResponse({"requests": []})
            log = self._state.requests
            rows = [dict(r) for r in log if member_id in (None, r["member_id"])]
        return JSONResponse({"requests": rows})

    async def notifications(self, request: Request) -> Response:
        return JSONResponse({"notifications": list(self._portal(request).notifications)})

    async def deliveries(self, request: Request) -> Response:
        if request.method == "DELETE":
            self._state.deliveries.clear()
        return JSONResponse({"deliveries": self._state.deliveries.entries()})

    async def flush(self, request: Request) -> Response:
        body = await json_body(request)
        timeout = float(body.get("timeout") or 10.0)
        deliveries = self._state.deliveries
        pending = await anyio.to_thread.run_sync(deliveries.flush, timeout)
        return JSONResponse({"deliveries": deliveries.entries(), "pending": pending})

    async def reset(self, request: Request) -> Response:
        self._state.reset()
        return JSONResponse({"reset": True})

    def _portal(self, request: Request) -> Portal:
        portal = self._state.portals.get(request.path_params["member_id"])
        if portal is None:
            raise ControlError(404, "no such portal")
        return portal


def _portal_view(portal: Portal, base_url: str) -> dict[str, Any]:
    return {
        "member_id": portal.member_id,
        "domain": portal.domain,
        "webhook_url": f"{base_url}/rest/{portal.webhook_user_id}/{portal.webhook_code}/",
        "bucket_burst": portal.bucket.burst,
        "bucket_drain_per_s": portal.bucket.drain_per_s,
        "automation": portal.apps.automation,
        **budget_view(portal.budget),
        **address_view(portal.address),
        **rights_view(portal.rights),
        **entries_view(portal.entries),
        "apps": sorted(portal.apps.installs),
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


def _events_if(
    deliver: Any, portal: Portal, action: str, section: Section, request: Request
) -> list[DeliveryJob]:
    if not as_bool(deliver):
        return []
    return section_events(portal, action, section.id, emulator_base_url(request))


# request parsing


def guard(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ControlError as exc:
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
        raise ControlError(400, "body is not valid JSON") from exc


async def json_body(request: Request) -> dict[str, Any]:
    body = await _json_any(request)
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    return body


def required_text(body: Mapping[str, Any], name: str) -> str:
    value = as_text(body.get(name))
    if not value:
        raise ControlError(400, f"{name} is required")
    return value


def emulator_base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# fault injection


async def answer_fault(
    state: State, fault: Fault, request: Request, entry: dict[str, Any]
) -> Response | None:
    """Apply `fault` to a whole REST call; None lets the call go on after the fault's delay."""
    if fault.kind == "delay":
        await asyncio.sleep(fault.seconds)
        return None
    if fault.kind == "drop":
        entry["error"] = "connection dropped"
        state.record(entry)
        await _drop_connection(request)
        return Response(status_code=fault.status)
    if fault.kind == "html":
        entry.update(status=fault.status, error="html")
        state.record(entry)
        return HTMLResponse(_html_page(fault.status), status_code=fault.status)
    raise RestError(fault.status, fault.error, fault.description)


async def _drop_connection(request: Request) -> None:
    raw_send = request.scope.get(RAW_SEND)
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
