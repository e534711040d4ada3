"""`BitrixControl`: the Bitrix24 emulator's `/_control/` API as typed calls, for the demo, the
tests and the benchmarks. Every call raises `httpx.HTTPStatusError` on an error status."""

from __future__ import annotations

from typing import Any

from bridge.sandbox.control import ControlClient

SECTION_EVENTS = ("ONCALENDARSECTIONADD", "ONCALENDARSECTIONUPDATE", "ONCALENDARSECTIONDELETE")
ENTRY_EVENTS = ("ONCALENDARENTRYADD", "ONCALENDARENTRYUPDATE", "ONCALENDARENTRYDELETE")


class BitrixControl(ControlClient):
    def reset(self) -> None:
        """Forget every portal, app, fault and log."""
        self._call("POST", "/reset")

    # Portals and their data
    def add_portal(self, member_id: str, domain: str, webhook_code: str, **fields: Any) -> Any:
        """A portal with an incoming webhook; the answer names its `webhook_url`."""
        body = {"member_id": member_id, "domain": domain, "webhook_code": webhook_code, **fields}
        return self._call("POST", "/portals", json=body)

    def portals(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._call("GET", "/portals")["portals"]
        return rows

    def patch_portal(self, member_id: str, **knobs: Any) -> dict[str, Any]:
        """Change the portal (address, plan, rights, budget…); returns its view."""
        view: dict[str, Any] = self._call("PATCH", f"/portals/{member_id}", json=knobs)
        return view

    def bind_outgoing_webhook(
        self,
        member_id: str,
        handler: str,
        application_token: str | None = None,
        events: tuple[str, ...] | list[str] = SECTION_EVENTS,
    ) -> Any:
        """The answer names the hook's `id` and `application_token` (made up unless given)."""
        body: dict[str, Any] = {"handler": handler, "events": list(events)}
        if application_token is not None:
            body["application_token"] = application_token
        return self._call("POST", f"/portals/{member_id}/outgoing-webhooks", json=body)

    def add_section(
        self, member_id: str, kind: str, owner_id: int | None, name: str, **fields: Any
    ) -> dict[str, Any]:
        """A section (`deliver=False`: without its event); with no `owner_id`, a "user"
        section is the webhook user's."""
        body = {"type": kind, "owner_id": owner_id, "name": name, **fields}
        section: dict[str, Any] = self._call("POST", f"/portals/{member_id}/sections", json=body)
        return section

    def update_section(self, member_id: str, section_id: str, **fields: Any) -> dict[str, Any]:
        path = f"/portals/{member_id}/sections/{section_id}"
        section: dict[str, Any] = self._call("PATCH", path, json=fields)
        return section

    def delete_section(self, member_id: str, section_id: str, *, deliver: bool = True) -> None:
        path = f"/portals/{member_id}/sections/{section_id}"
        self._call("DELETE", path, params={"deliver": int(deliver)})

    def add_owners(self, member_id: str, kind: str, rows: list[dict[str, Any]]) -> None:
        """`kind` is "users" or "groups"."""
        self._call("POST", f"/portals/{member_id}/{kind}", json=rows)

    def notifications(self, member_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._call("GET", f"/portals/{member_id}/notifications")[
            "notifications"
        ]
        return rows

    # App mode
    def add_app(self, **fields: Any) -> dict[str, Any]:
        """A registered app (`client_id`, `client_secret` made up unless given)."""
        app: dict[str, Any] = self._call("POST", "/apps", json=fields)
        return app

    def install(
        self, member_id: str, client_id: str, handler: str | None = None, **fields: Any
    ) -> Any:
        """Install the app (with no `handler`, ONAPPINSTALL goes nowhere); the answer holds
        the install's tokens."""
        body = {"client_id": client_id, **fields}
        if handler is not None:
            body["handler"] = handler
        return self._call("POST", f"/portals/{member_id}/install", json=body)

    def uninstall(self, member_id: str, client_id: str, *, clean: bool = False) -> Any:
        """The answer counts the ONAPPUNINSTALL `deliveries` queued."""
        body = {"client_id": client_id, "clean": clean}
        return self._call("POST", f"/portals/{member_id}/uninstall", json=body)

    def expire_tokens(self, member_id: str) -> int:
        """Expire the portal's access tokens now; how many were live."""
        return int(self._call("POST", f"/portals/{member_id}/expire-tokens")["expired"])

    def app(self, member_id: str) -> dict[str, Any]:
        state: dict[str, Any] = self._call("GET", f"/portals/{member_id}/app")
        return state

    def offline(self, member_id: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self._call("GET", f"/portals/{member_id}/offline")[
            "records"
        ]
        return records

    def set_plan(self, member_id: str, **plan: Any) -> Any:
        return self._call("PUT", f"/portals/{member_id}/plan", json=plan)

    # Faults, logs and deliveries
    def fault(self, **fault: Any) -> None:
        self._call("POST", "/faults", json=fault)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self, member_id: str | None = None) -> list[dict[str, Any]]:
        params = {} if member_id is None else {"member_id": member_id}
        rows: list[dict[str, Any]] = self._call("GET", "/requests", params=params)["requests"]
        return rows

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def flush_deliveries(self, timeout: float = 10) -> list[dict[str, Any]]:
        """Wait until queued event deliveries are sent; returns what was delivered."""
        rows: list[dict[str, Any]] = self._call(
            "POST", "/deliveries/flush", json={"timeout": timeout}
        )["deliveries"]
        return rows

    # Calendar entries (entry_control.py): each change delivers ONCALENDARENTRY* unless
    # `deliver=False`; answers are the entries as `calendar.event.getbyid` shows them.
    def add_entry(
        self,
        member_id: str,
        section: int | str,
        name: str,
        start: str,
        end: str,
        *,
        zone: str = "UTC",
        **fields: Any,
    ) -> dict[str, Any]:
        """`start` / `end`: ISO instants (read in `zone` without an offset), or `Y-m-d` dates for
        an all-day entry (`end` its last day). Fields: `zone_to`, `rrule`, `exdates`, `private`,
        `accessibility`, `color`, `location`, `remind`, `attendees`, `description`,
        `g_event_id`, `event_type`, `importance`, `created_by`, `room` (books that meeting room)."""
        body = {"section": section, "name": name, "start": start, "end": end, "zone": zone}
        entry: dict[str, Any] = self._call(
            "POST", f"/portals/{member_id}/entries", json={**body, **fields}
        )
        return entry

    def entries(self, member_id: str) -> list[dict[str, Any]]:
        """Every entry, deleted ones too (`DELETED` "Y")."""
        rows: list[dict[str, Any]] = self._call("GET", f"/portals/{member_id}/entries")["entries"]
        return rows

    def update_entry(self, member_id: str, entry_id: int | str, **fields: Any) -> dict[str, Any]:
        entry: dict[str, Any] = self._call(
            "PATCH", f"/portals/{member_id}/entries/{entry_id}", json=fields
        )
        return entry

    def delete_entry(self, member_id: str, entry_id: int | str, *, deliver: bool = True) -> None:
        """A series goes with its edited occurrences (a DELETE event for each)."""
        path = f"/portals/{member_id}/entries/{entry_id}"
        self._call("DELETE", path, params={"deliver": int(deliver)})

    def edit_occurrence(
        self, member_id: str, series_id: int | str, day: str, **fields: Any
    ) -> dict[str, Any]:
        """ "Only this one": `day` (Y-m-d, series zone) joins the series' EXDATE and a new entry
        with `RECURRENCE_ID` takes the changed `fields`; returns {"series", "entry"}."""
        return self._occurrence(member_id, series_id, "edit-occurrence", day, fields)

    def cancel_occurrence(self, member_id: str, series_id: int | str, day: str) -> dict[str, Any]:
        return self._occurrence(member_id, series_id, "cancel-occurrence", day, {})

    def split_series(
        self, member_id: str, series_id: int | str, day: str, **fields: Any
    ) -> dict[str, Any]:
        """ "This and following" from `day`: the series ends the day before; a new series starts
        at that occurrence with the changed `fields`; returns {"series", "entry"}."""
        return self._occurrence(member_id, series_id, "split", day, fields)

    def add_room(self, member_id: str, name: str, **fields: Any) -> dict[str, Any]:
        """A meeting room: a section of type `location`, owner 0."""
        return self.add_section(member_id, "location", 0, name, **fields)

    def set_locale(self, member_id: str, locale: str) -> dict[str, Any]:
        """Dates in answers follow it: `en`, `de`, `ru`, `br`."""
        return self.patch_portal(member_id, locale=locale)

    def _occurrence(
        self, member_id: str, series_id: int | str, action: str, day: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        path = f"/portals/{member_id}/entries/{series_id}/{action}"
        answer: dict[str, Any] = self._call("POST", path, json={"date": day, **fields})
        return answer
