"""Carry out planned actions against Google and record them in the mapping table.

Guarantee: one Google calendar per (portal, section). Before `calendars.insert` the mapping row
is committed in state `creating` with a fresh nonce, and the insert carries a marker naming the
portal, section and nonce in the calendar's description. When an insert's outcome is unknown (a
timeout, a dropped connection, a 5xx, a crash before the mapping was updated), the next attempt
looks for the marker in the owner's calendar list and adopts what it finds before inserting again;
twins are deleted. Only a marker on the description's last line that names this portal (key and
member_id) and section counts (`mirror.read_marker`), so a section's text cannot forge one. The
unique constraint on (portal, section) stops two rows from ever existing. Every step records
what it applied, so a retried action only does what is still missing. Creations are paced per
owner, counted in the database so every worker shares the count: more than about 60 new
calendars in a short period puts the owner in read-only mode for hours.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from bridge.config import PortalConfig
from bridge.google_calendar import (
    TRANSIENT_ERRORS,
    CalendarGateway,
    CalendarListEntry,
    GoogleError,
    GoogleNotFound,
)
from bridge.lease import Lease, fenced
from bridge.mirror import (
    NOTHING_APPLIED,
    Action,
    ActionKind,
    CalendarState,
    archived_state,
    desired_state,
    marks_section,
    observed_state,
    read_marker,
)
from bridge.models import CalendarCreation, CalendarMapping, MappingState, utcnow
from bridge.removals import record_removal
from bridge.selection import Section


def apply_action(
    lease: Lease,
    portal: PortalConfig,
    action: Action,
    google: CalendarGateway,
    observed: CalendarListEntry | None = None,
) -> str:
    """Do what the action says; returns a one-line account of what changed in Google."""
    section = action.section
    if action.kind == ActionKind.RETIRE:
        assert action.mapping is not None
        return retire_calendar(lease, portal, action.mapping, google)
    assert section is not None
    if action.kind in (ActionKind.CREATE, ActionKind.ADOPT):
        return create_calendar(
            lease, portal, section, google, look_first=action.kind == ActionKind.ADOPT
        )
    assert action.mapping is not None
    if action.kind == ActionKind.RECREATE:
        return recreate_calendar(lease, portal, action.mapping, section, google)
    current = (
        observed_state(observed, CalendarState.from_json(action.mapping.applied))
        if observed
        else None
    )
    return update_calendar(lease, portal, action.mapping, section, google, current)


def create_calendar(
    lease: Lease,
    portal: PortalConfig,
    section: Section,
    google: CalendarGateway,
    *,
    look_first: bool = False,
) -> str:
    mapping, fresh = _mapping_for(lease, section)
    if mapping.state != MappingState.CREATING and mapping.google_calendar_id:
        return update_calendar(lease, portal, mapping, section, google)
    desired = desired_state(portal, section, mapping.nonce)
    outcome = None
    if look_first or not fresh:
        # An earlier attempt may have created it and died before recording the id.
        outcome = _adopt_marked(lease, portal, mapping, google)
    if outcome is None:
        pace = portal.google.creation_pace
        reserve_creation(
            lease.engine, portal.google.subject, pace.calendars, timedelta(minutes=pace.minutes)
        )
        try:
            calendar_id = google.insert_calendar(
                desired.summary, desired.description, desired.time_zone
            )
        except TRANSIENT_ERRORS:
            outcome = _adopt_marked(lease, portal, mapping, google)
            if outcome is None:
                raise
        else:
            inserted = CalendarState(desired.summary, desired.description, desired.time_zone)
            _save(
                lease,
                mapping,
                state=MappingState.ACTIVE,
                google_calendar_id=calendar_id,
                applied=inserted.to_json(),
            )
            outcome = f"created calendar {calendar_id}"
    rest = update_calendar(lease, portal, mapping, section, google)
    if rest.startswith("updated calendar"):
        return f"{outcome}, then set its {rest.split(': ', 1)[1]}"  # colour, sharing: not in insert
    return outcome if rest.endswith("up to date") else f"{outcome}; {rest}"


def update_calendar(
    lease: Lease,
    portal: PortalConfig,
    mapping: CalendarMapping,
    section: Section,
    google: CalendarGateway,
    current: CalendarState | None = None,
) -> str:
    """Converge the calendar to the section; `current` is what Google shows, when it was read."""
    assert mapping.google_calendar_id is not None
    calendar_id = mapping.google_calendar_id
    desired = desired_state(portal, section, mapping.nonce)
    before = current or CalendarState.from_json(mapping.applied) or NOTHING_APPLIED
    changes = desired.differences(before)
    if not changes and mapping.state == MappingState.ACTIVE:
        return f"calendar {calendar_id} is up to date"
    try:
        _push(
            google, calendar_id, desired, before, changes, notify=portal.mirror.share_notifications
        )
    except GoogleNotFound:
        return recreate_calendar(lease, portal, mapping, section, google)
    _save(lease, mapping, state=MappingState.ACTIVE, applied=desired.to_json())
    return f"updated calendar {calendar_id}: {', '.join(changes) or 'unarchived'}"


def recreate_calendar(
    lease: Lease,
    portal: PortalConfig,
    mapping: CalendarMapping,
    section: Section,
    google: CalendarGateway,
) -> str:
    """The mapped calendar left the owner's list: re-list it if it exists, else make a new one."""
    old_id = mapping.google_calendar_id
    if old_id and google.calendar_exists(old_id):
        google.add_to_list(old_id)
        _save(lease, mapping, applied=None)
        return f"re-listed calendar {old_id}; " + update_calendar(
            lease, portal, mapping, section, google
        )
    _save(
        lease,
        mapping,
        state=MappingState.CREATING,
        nonce=uuid.uuid4().hex,
        google_calendar_id=None,
        applied=None,
    )
    return f"calendar {old_id} was deleted in Google; " + create_calendar(
        lease, portal, section, google
    )


def retire_calendar(
    lease: Lease, portal: PortalConfig, mapping: CalendarMapping, google: CalendarGateway
) -> str:
    """Apply the portal's `on_delete` to a section that is gone or no longer selected."""
    calendar_id = mapping.google_calendar_id
    policy = portal.mirror.on_delete
    if calendar_id and policy == "archive":
        applied = CalendarState.from_json(mapping.applied) or NOTHING_APPLIED
        archived = archived_state(applied)
        try:
            _push(
                google, calendar_id, archived, applied, archived.differences(applied), notify=False
            )
        except GoogleNotFound:
            pass  # nothing left to archive
        else:
            with fenced(lease) as session:
                _update(session, mapping, state=MappingState.ARCHIVED, applied=archived.to_json())
                record_removal(session, portal, mapping.section_id)
            return f"archived calendar {calendar_id}"
    elif calendar_id and policy == "delete":
        google.delete_calendar(calendar_id)
    with fenced(lease) as session:
        row = session.get(CalendarMapping, mapping.id)
        if row is not None:
            session.delete(row)
        if calendar_id and policy == "delete":
            record_removal(session, portal, mapping.section_id)
    if not calendar_id:
        return "forgot an unfinished mapping"
    return (
        f"deleted calendar {calendar_id}"
        if policy == "delete"
        else f"kept calendar {calendar_id}, unmapped"
    )


def _push(
    google: CalendarGateway,
    calendar_id: str,
    desired: CalendarState,
    before: CalendarState,
    changes: list[str],
    *,
    notify: bool,
) -> None:
    fields = {
        key: value
        for name, key, value in (
            ("summary", "summary", desired.summary),
            ("description", "description", desired.description),
            ("time_zone", "timeZone", desired.time_zone),
        )
        if name in changes
    }
    if fields:
        google.patch_calendar(calendar_id, fields)
    entry: dict[str, object] = {}
    if "colour" in changes:
        entry.update(backgroundColor=desired.background, foregroundColor=desired.foreground)
    if "hidden" in changes:
        entry["hidden"] = desired.hidden
    if entry:
        google.patch_list_entry(calendar_id, entry)
    if "sharing" in changes:
        _share(google, calendar_id, desired.acl, before.acl, notify=notify)


def _share(
    google: CalendarGateway,
    calendar_id: str,
    desired: Mapping[str, str],
    ours: Mapping[str, str],
    *,
    notify: bool,
) -> None:
    """Insert what is missing; remove only rules the bridge added that the config dropped."""
    current = google.list_acl(calendar_id)
    for rule_id, role in desired.items():
        if current.get(rule_id) != role:
            google.insert_acl(calendar_id, rule_id, role, notify=notify)
    for rule_id in ours:
        if rule_id not in desired and rule_id in current:
            google.delete_acl(calendar_id, rule_id)


def _adopt_marked(
    lease: Lease, portal: PortalConfig, mapping: CalendarMapping, google: CalendarGateway
) -> str | None:
    found = []
    for entry in google.owned_calendars():
        marker = read_marker(entry.description)
        if marker is not None and marks_section(marker, portal, mapping.section_id):
            # this attempt's first, then older attempts, tagged ones before legacy ones
            found.append(((marker.nonce != mapping.nonce, marker.legacy), entry))
    if not found:
        return None
    found.sort(key=lambda pair: pair[0])
    keep = found[0][1]
    # A legacy marker names only the portal key, which another deployment may share: never
    # delete on its word (see `read_marker`).
    twins = [twin for (_, legacy), twin in found[1:] if not legacy]
    for twin in twins:
        google.delete_calendar(twin.id)
    observed = observed_state(keep, None)
    _save(
        lease,
        mapping,
        state=MappingState.ACTIVE,
        google_calendar_id=keep.id,
        applied=observed.to_json(),
    )
    removed = f" and removed {len(twins)} duplicate(s)" if twins else ""
    return f"adopted calendar {keep.id}{removed}"


def _mapping_for(lease: Lease, section: Section) -> tuple[CalendarMapping, bool]:
    """The section's mapping row, and whether this call created it (committed before any insert)."""
    query = select(CalendarMapping).where(
        CalendarMapping.portal_key == lease.portal_key, CalendarMapping.section_id == section.id
    )
    with fenced(lease) as session:
        existing = session.exec(query).first()
        if existing is not None:
            return existing, False
        mapping = CalendarMapping(
            portal_key=lease.portal_key,
            section_id=section.id,
            section_type=section.type,
            owner_id=section.owner_id,
            nonce=uuid.uuid4().hex,
        )
        session.add(mapping)
    return mapping, True


def _save(lease: Lease, mapping: CalendarMapping, **values: object) -> None:
    with fenced(lease) as session:
        _update(session, mapping, **values)


def _update(session: Session, mapping: CalendarMapping, **values: object) -> None:
    row = session.get(CalendarMapping, mapping.id)
    assert row is not None
    for name, value in values.items():
        setattr(row, name, value)
        setattr(mapping, name, value)
    row.updated_at = utcnow()
    session.add(row)


class CreationPaced(GoogleError):
    """The owner has created as many calendars as the pace allows; try again at `retry_at`."""

    def __init__(self, subject: str, retry_at: datetime, limit: int, window: timedelta) -> None:
        minutes = window.total_seconds() / 60
        super().__init__(
            f"{subject} created {limit} calendars in the last {minutes:g} minutes, the configured "
            f"pace; the next one waits until {retry_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        self.retry_at = retry_at


def reserve_creation(engine: Engine, subject: str, limit: int, window: timedelta) -> None:
    """Record one calendar creation by `subject`, or raise CreationPaced if over the pace."""
    now = utcnow()
    with Session(engine) as session:
        since = now - window
        recent = session.exec(
            select(func.count(), func.min(CalendarCreation.created_at)).where(
                CalendarCreation.subject == subject, col(CalendarCreation.created_at) > since
            )
        ).one()
        count, oldest = int(recent[0]), recent[1]
        if count >= limit:
            raise CreationPaced(subject, (oldest or now) + window, limit, window)
        session.add(CalendarCreation(subject=subject, created_at=now))
        session.commit()
