"""The `/_control/` API for calendar entries: add, change, delete, and the series edits a user makes
in the Bitrix24 UI (one occurrence edited or cancelled, "this and following").

Bodies (JSON): `section`, `name`, `start` / `end` (ISO instants, or `Y-m-d` dates for an all-day
entry, `end` its last day), `zone` / `zone_to`, `rrule`, `exdates`, `private`, `accessibility`,
`color`, `location`, `remind`, `attendees`, `description`, `g_event_id`, `event_type`,
`importance`, `created_by`; `room` (a `location` section) also books that meeting room: a booking
entry in the room's section, and `LOCATION` `calendar_<room>_<booking>`. Every change delivers
ONCALENDARENTRY* unless `deliver` is false; answers are the entries as REST shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.sandbox.bitrix.change_events import entry_events
from bridge.sandbox.bitrix.control_http import ControlError, emulator_base_url, json_body, portal_of
from bridge.sandbox.bitrix.delivery import DeliveryJob
from bridge.sandbox.bitrix.entries import (
    AllDay,
    Change,
    Entry,
    EntryError,
    When,
    cancel_occurrence,
    create,
    delete,
    edit_occurrence,
    split_series,
    update,
)
from bridge.sandbox.bitrix.entry_input import optional_attrs, parse_when
from bridge.sandbox.bitrix.entry_methods import entry_view
from bridge.sandbox.bitrix.state import Portal, State
from bridge.sandbox.bitrix.values import as_bool, as_int, as_text

T = TypeVar("T")
_ACTIONS = ("edit-occurrence", "cancel-occurrence", "split")


class EntryControl:
    def __init__(self, state: State) -> None:
        self._state = state

    async def add_entry(self, request: Request) -> Response:
        body = await json_body(request)
        with self._state.lock:
            portal = portal_of(self._state, request)
            attrs = _attrs(portal, body, need_when=True)
            attrs.setdefault("created_by", portal.webhook_user_id)
            room = as_int(body.get("room"))
            changes: list[Change] = []
            if room is not None:
                booking = _book_room(portal, room, attrs)
                changes.append(("ADD", booking.id))
                attrs["location"] = f"calendar_{room}_{booking.id}"
            entry = _guarded(lambda: create(portal.entries, attrs))
            changes.insert(0, ("ADD", entry.id))
            view = entry_view(portal, entry)
            jobs = self._jobs(portal, request, body, changes)
        return JSONResponse(view, status_code=201, background=self._state.background(jobs))

    async def list_entries(self, request: Request) -> Response:
        with self._state.lock:
            portal = portal_of(self._state, request)
            rows = [entry_view(portal, e) for e in portal.entries.entries.values()]
        return JSONResponse({"entries": rows})

    async def change_entry(self, request: Request) -> Response:
        body = await json_body(request) if request.method == "PATCH" else {}
        deliver = body.get("deliver", request.query_params.get("deliver", True))
        with self._state.lock:
            portal = portal_of(self._state, request)
            entry = self._entry(portal, request)
            if request.method == "PATCH":
                attrs = _attrs(portal, body, need_when=False, current=entry)
                changes = _guarded(lambda: update(portal.entries, entry, attrs))
            else:
                changes = delete(portal.entries, entry)
            view = entry_view(portal, entry)
            jobs = self._jobs(portal, request, {"deliver": deliver}, changes)
        return JSONResponse(view, background=self._state.background(jobs))

    async def occurrence(self, request: Request) -> Response:
        """POST .../entries/{id}/{edit-occurrence|cancel-occurrence|split}: `date` names the
        occurrence by its original day in the series zone; edits take the add fields."""
        body = await json_body(request)
        action = request.path_params["action"]
        if action not in _ACTIONS:
            raise ControlError(404, f"action must be one of {list(_ACTIONS)}")
        with self._state.lock:
            portal = portal_of(self._state, request)
            series = self._entry(portal, request)
            day = _day(body)
            book = portal.entries
            made: Entry | None = None
            if action == "cancel-occurrence":
                changes = _guarded(lambda: cancel_occurrence(series, day))
            else:
                attrs = _attrs(portal, body, need_when=False, current=series)
                edit = edit_occurrence if action == "edit-occurrence" else split_series
                made, changes = _guarded(lambda: edit(book, series, day, attrs))
            view = {
                "series": entry_view(portal, series),
                "entry": None if made is None else entry_view(portal, made),
            }
            jobs = self._jobs(portal, request, body, changes)
        return JSONResponse(view, background=self._state.background(jobs))

    def _entry(self, portal: Portal, request: Request) -> Entry:
        entry = portal.entries.live(request.path_params["entry_id"])
        if entry is None:
            raise ControlError(404, "no such entry")
        return entry

    def _jobs(
        self, portal: Portal, request: Request, body: Mapping[str, Any], changes: list[Change]
    ) -> list[DeliveryJob]:
        if not as_bool(body.get("deliver", True)):
            return []
        base_url = emulator_base_url(request)
        return [job for a, i in changes for job in entry_events(portal, a, i, base_url)]


def _attrs(
    portal: Portal, body: Mapping[str, Any], *, need_when: bool, current: Entry | None = None
) -> dict[str, Any]:
    attrs = _guarded(lambda: optional_attrs(body, portal.entries.locale))
    if "section" in body or need_when:
        section = portal.sections.get(as_int(body.get("section")) or 0)
        if section is None or not section.active:
            raise ControlError(400, "section must name an active section of the portal")
        attrs["section_id"] = section.id
    if need_when and not as_text(body.get("name")):
        raise ControlError(400, "name is required")
    if "created_by" in body:
        attrs["created_by"] = as_int(body["created_by"]) or portal.webhook_user_id
    if need_when or "start" in body or "end" in body:
        attrs["when"] = _guarded(lambda: _when(body, current))
    return attrs


def _when(body: Mapping[str, Any], current: Entry | None) -> When:
    if current is not None:  # the entry's zone unless the body names one
        when = current.when
        zone = when.zone if isinstance(when, AllDay) else when.zone_from
        body = {"zone": zone.key, **body}
    all_day = body.get("all_day")
    return parse_when(
        body.get("start"),
        body.get("end"),
        zone_from=as_text(body.get("zone")),
        zone_to=as_text(body.get("zone_to")),
        all_day=None if all_day is None else as_bool(all_day),
    )


def _book_room(portal: Portal, room: int, attrs: Mapping[str, Any]) -> Entry:
    """The room's own booking entry, in the room's `location` section (issue 13 design)."""
    section = portal.sections.get(room)
    if section is None or not section.active or section.cal_type != "location":
        raise ControlError(400, "room must name an active section of type location")
    booking = {key: attrs[key] for key in ("name", "when", "created_by")}
    return _guarded(lambda: create(portal.entries, {**booking, "section_id": room}))


def _day(body: Mapping[str, Any]) -> date:
    try:
        return date.fromisoformat(as_text(body.get("date")))
    except ValueError as exc:
        raise ControlError(400, "date must be the occurrence's day, Y-m-d") from exc


def _guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except EntryError as exc:
        raise ControlError(400, str(exc)) from exc
