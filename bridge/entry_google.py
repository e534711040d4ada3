"""The Google half of an entry reconciliation: each mirrored calendar's events that carry the
portal's mark (`extendedProperties.private.b24_portal`), and the strays among them: events
nothing claims, neither an active mapping in that calendar nor a write the plan makes there.
An instance override or a cancelled occurrence is never a stray."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from sqlmodel import Session, col, select

from bridge.clients import PortalClients
from bridge.entry_batches import EntryPlan, Events
from bridge.event_drift import StrayEvent
from bridge.google_errors import GoogleNotFound
from bridge.lease import Lease
from bridge.models import EntryMapping, EntryState


def marked_events(
    clients: PortalClients,
    portal_key: str,
    calendars: Sequence[str],
    inserted: Collection[str] = (),
) -> dict[str, Events]:
    """Each calendar's events with the portal's mark (a calendar Google no longer has: none).
    Calendars `inserted` by this run are not listed: only the bridge marks events, and it has
    written none there yet."""
    found: dict[str, Events] = {}
    for calendar_id in calendars:
        if calendar_id in inserted:
            found[calendar_id] = {}
            continue
        try:
            listed = clients.events.list_events(calendar_id, {"b24_portal": portal_key})
            found[calendar_id] = {str(event.get("id")): event for event in listed}
        except GoogleNotFound:
            found[calendar_id] = {}
    return found


def find_strays(
    lease: Lease, portal_key: str, google: Mapping[str, Events], plan: EntryPlan
) -> None:
    """Events with the portal's mark that nothing claims: neither an active mapping in that
    calendar nor a planned write there. Overrides and cancelled occurrences are left alone."""
    claimed: dict[str, set[str]] = {calendar_id: set() for calendar_id in google}
    with Session(lease.engine) as session:
        rows = session.exec(
            select(EntryMapping.google_calendar_id, EntryMapping.google_event_id).where(
                EntryMapping.portal_key == portal_key,
                EntryMapping.state == EntryState.ACTIVE,
                col(EntryMapping.google_calendar_id).in_(list(google)),
            )
        ).all()
    for calendar_id, event_id in rows:
        claimed[calendar_id].add(event_id)
    for action in plan.actions:
        if action.calendar_id in claimed and action.body is not None:
            claimed[action.calendar_id].add(action.body.event_id)
    for calendar_id, events in google.items():
        for event_id, event in events.items():
            if event.get("recurringEventId") or event.get("status") == "cancelled":
                continue
            if event_id not in claimed[calendar_id]:
                properties = (event.get("extendedProperties") or {}).get("private") or {}
                plan.strays.append(
                    StrayEvent(
                        calendar_id,
                        event_id,
                        str(properties.get("b24_entry") or ""),
                        str(event.get("summary") or ""),
                    )
                )
