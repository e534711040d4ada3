"""The events part of the emulator's `/_control` API: every stored event of a calendar, edits and
deletes made by hand as a person would in Google Calendar (for drift tests), and the knob of the
"too many events created in a short period" budget (NOTES §7.1, §13 "Limits")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.google.event_routes import delete_event, patch_event
from bridge.sandbox.google.events import events_of, render_event
from bridge.sandbox.google.state import Store
from bridge.sandbox.google.wire import ApiError


class EventControl:
    def __init__(self, store: Store) -> None:
        self._store = store

    def routes(self) -> list[Route]:
        """Mounted before the calendar routes, whose `{calendar_id:path}` would swallow these."""
        return [
            Route("/calendars/{calendar_id}/events", self._list, methods=["GET"]),
            Route(
                "/calendars/{calendar_id}/events/{event_id}",
                self._edit,
                methods=["PATCH", "DELETE"],
            ),
            Route("/event-budget", self._budget, methods=["POST"]),
        ]

    async def _list(self, request: Request) -> Response:
        calendar_id = request.path_params["calendar_id"]
        show_deleted = request.query_params.get("show_deleted", "").lower() == "true"
        with self._store.lock:
            if calendar_id not in self._store.state.calendars:
                return JSONResponse({"error": f"no calendar {calendar_id}"}, status_code=404)
            events = [
                render_event(event)
                for event in events_of(self._store, calendar_id).values()
                if show_deleted or event["status"] != "cancelled"
            ]
        return JSONResponse({"items": events})

    async def _edit(self, request: Request) -> Response:
        calendar_id = request.path_params["calendar_id"]
        event_id = request.path_params["event_id"]
        changes = await request.json() if request.method == "PATCH" else {}
        store = self._store
        with store.lock:
            calendar = store.state.calendars.get(calendar_id)
            if calendar is None:
                return JSONResponse({"error": f"no calendar {calendar_id}"}, status_code=404)
            try:
                if request.method == "DELETE":
                    delete_event(store, calendar, event_id)
                    return Response(status_code=204)
                return JSONResponse(patch_event(store, calendar, event_id, changes))
            except ApiError as error:
                return JSONResponse(error.envelope, status_code=error.status)

    async def _budget(self, request: Request) -> Response:
        body = await request.json()
        store = self._store
        with store.lock:
            if body.get("limit") is not None:
                store.event_creation_limit = int(body["limit"])
            if body.get("window_s") is not None:
                store.event_creation_window_s = float(body["window_s"])
            return JSONResponse(
                {"limit": store.event_creation_limit, "window_s": store.event_creation_window_s}
            )
