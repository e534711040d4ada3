"""`GoogleControl`: the Google Calendar emulator's `/_control/` API as typed calls, for the demo,
the tests and the benchmarks. Every call raises `httpx.HTTPStatusError` on an error status."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bridge.sandbox.control import ControlClient


class GoogleControl(ControlClient):
    def add_service_account(self, account: dict[str, str]) -> None:
        """Register a service account's public key (from `generate_service_account`)."""
        self._call("POST", "/service-accounts", json=account)

    def calendars(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Every calendar (of `owner`, if given), each with its `acl` rules."""
        params = {} if owner is None else {"owner": owner}
        rows: list[dict[str, Any]] = self._call("GET", "/calendars", params=params)["calendars"]
        return rows

    def patch_calendar(self, calendar_id: str, **changes: Any) -> dict[str, Any]:
        """Change a calendar behind the bridge's back, as a person in Google Calendar would."""
        path = f"/calendars/{quote(calendar_id, safe='')}"
        calendar: dict[str, Any] = self._call("PATCH", path, json=changes)
        return calendar

    def delete_calendar(self, calendar_id: str) -> None:
        self._call("DELETE", f"/calendars/{quote(calendar_id, safe='')}")

    def calendar_list(self, user: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._call("GET", "/calendar-list", params={"user": user})[
            "items"
        ]
        return rows

    def fault(self, **fault: Any) -> None:
        self._call("POST", "/faults", json=fault)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def read_only(self, user: str, seconds: float | None = None) -> None:
        """Put `user` in Google's read-only mode (quota exceeded) for `seconds`."""
        body = {} if seconds is None else {"seconds": seconds}
        self._call("POST", f"/users/{user}/read-only", json=body)

    def requests(self, user: str | None = None) -> list[dict[str, Any]]:
        """The request log, or only the calls made as `user`."""
        rows: list[dict[str, Any]] = self._call("GET", "/requests")["requests"]
        return [r for r in rows if user is None or r.get("user") == user]

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def events(self, calendar_id: str, *, show_deleted: bool = False) -> list[dict[str, Any]]:
        """Every stored event of a calendar: series, single events and instance overrides
        (cancelled ones too with `show_deleted`); unchanged instances are not stored."""
        path = f"/calendars/{quote(calendar_id, safe='')}/events"
        params = {"show_deleted": "true"} if show_deleted else {}
        rows: list[dict[str, Any]] = self._call("GET", path, params=params)["items"]
        return rows

    def patch_event(self, calendar_id: str, event_id: str, **changes: Any) -> dict[str, Any]:
        """Edit an event (or one instance, making an override) by hand, as a person in Google
        Calendar would; patch semantics, no quota spent."""
        path = f"/calendars/{quote(calendar_id, safe='')}/events/{quote(event_id, safe='')}"
        event: dict[str, Any] = self._call("PATCH", path, json=changes)
        return event

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """Delete an event (or cancel one instance) by hand; it stays as a cancelled event."""
        path = f"/calendars/{quote(calendar_id, safe='')}/events/{quote(event_id, safe='')}"
        self._call("DELETE", path)

    def event_creation_budget(self, limit: int, window_s: float | None = None) -> None:
        """Events a user may create per window before Google's "Calendar usage limits exceeded"
        read-only mode (default 10,000 per hour)."""
        body: dict[str, Any] = {"limit": limit}
        if window_s is not None:
            body["window_s"] = window_s
        self._call("POST", "/event-budget", json=body)
