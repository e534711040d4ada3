"""The `/_control/` JSON API of the Bitrix24 emulator: portals and their knobs, outgoing webhooks,
users, groups, faults, and the request and delivery logs.

Tests and the demo use it to set a portal up and to read back what the emulator saw; its other
parts are `section_control.py`, `entry_control.py` and `app_control.py`, its shared plumbing
`control_http.py`, the faults it queues are applied by `faults.py`.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.sandbox.bitrix.address import Address
from bridge.sandbox.bitrix.address import configure as configure_address
from bridge.sandbox.bitrix.address import view as address_view
from bridge.sandbox.bitrix.budget import configure as configure_budget
from bridge.sandbox.bitrix.budget import view as budget_view
from bridge.sandbox.bitrix.control_http import (
    ControlError,
    emulator_base_url,
    json_any,
    json_body,
    portal_of,
    required_text,
)
from bridge.sandbox.bitrix.directory import group_row, user_row
from bridge.sandbox.bitrix.entries import configure as configure_entries
from bridge.sandbox.bitrix.entries import view as entries_view
from bridge.sandbox.bitrix.faults import FAULT_KINDS
from bridge.sandbox.bitrix.rights import configure as configure_rights
from bridge.sandbox.bitrix.rights import view as rights_view
from bridge.sandbox.bitrix.state import Fault, Hook, Portal, State
from bridge.sandbox.bitrix.values import as_bool, as_int, as_text, method_name


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
            portal = portal_of(self._state, request)
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
            portal = portal_of(self._state, request)
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
            portal = portal_of(self._state, request)
            kept = [hook for hook in portal.hooks if hook.id != request.path_params["hook_id"]]
            if len(kept) == len(portal.hooks):
                raise ControlError(404, "no such outgoing webhook")
            portal.hooks = kept
        return JSONResponse({"deleted": request.path_params["hook_id"]})

    async def add_users(self, request: Request) -> Response:
        return await self._add_rows(request, "users", user_row)

    async def add_groups(self, request: Request) -> Response:
        return await self._add_rows(request, "groups", group_row)

    async def _add_rows(
        self, request: Request, kind: str, build: Callable[[Mapping[str, Any]], dict[str, Any]]
    ) -> Response:
        body = await json_any(request)
        items = body if isinstance(body, list) else [body]
        try:
            rows = [build(item) for item in items if isinstance(item, Mapping)]
        except ValueError as exc:
            raise ControlError(400, str(exc)) from exc
        with self._state.lock:
            table = getattr(portal_of(self._state, request), kind)
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
        if kind not in FAULT_KINDS:
            raise ControlError(400, f"kind must be one of {sorted(FAULT_KINDS)}")
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
        return JSONResponse({"notifications": list(portal_of(self._state, request).notifications)})

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
