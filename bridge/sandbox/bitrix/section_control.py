"""The sections part of the Bitrix24 emulator's `/_control/` API: add, list, change and delete a
portal's sections as an admin would in the portal's UI, delivering their events or not."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.sandbox.bitrix.change_events import section_events
from bridge.sandbox.bitrix.control_http import (
    ControlError,
    emulator_base_url,
    json_body,
    portal_of,
    required_text,
)
from bridge.sandbox.bitrix.delivery import DeliveryJob
from bridge.sandbox.bitrix.sections import Section, apply_fields, deactivate, section_view
from bridge.sandbox.bitrix.state import Portal, State, create_section
from bridge.sandbox.bitrix.values import as_bool, as_int


class SectionControl:
    def __init__(self, state: State) -> None:
        self._state = state

    async def add_section(self, request: Request) -> Response:
        body = await json_body(request)
        cal_type = required_text(body, "type")
        with self._state.lock:
            portal = portal_of(self._state, request)
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
            sections = sorted(portal_of(self._state, request).sections.values(), key=lambda s: s.id)
            views = [{**section_view(s), "ACTIVE": "Y" if s.active else "N"} for s in sections]
        return JSONResponse({"sections": views})

    async def change_section(self, request: Request) -> Response:
        body = await json_body(request) if request.method == "PATCH" else {}
        deliver = body.get("deliver", request.query_params.get("deliver", True))
        with self._state.lock:
            portal = portal_of(self._state, request)
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


def _events_if(
    deliver: Any, portal: Portal, action: str, section: Section, request: Request
) -> list[DeliveryJob]:
    if not as_bool(deliver):
        return []
    return section_events(portal, action, section.id, emulator_base_url(request))
