"""Carry out planned actions against Google and record them in the mapping table.

Guarantee: one Google calendar per (portal, section). Before `calendars.insert` the mapping row
is committed in state `creating` with a fresh nonce, and the insert carries a marker naming the
portal, section and nonce in the calendar's description. When an insert's outcome is unknown (a
timeout, a dropped connection, a 5xx, a crash before the mapping was updated), the next attempt
looks for the marker in the owner's calendar list and adopts what it finds before inserting again;
twins are deleted. Only a marker on the description's last line that names this portal (key and
member_id) and section counts (`markers.read_marker`), so a section's text cannot forge one. The
unique constraint on (portal, section) stops two rows from ever existing. Every step records
what it applied (`mappings.py`), so a retried action only does what is still missing. Creations
are paced per owner (`creation_pace.py`).

`apply_action` runs one action as explicit steps (re-list or replace a calendar gone from the
list, adopt or insert, then update, the changes sent by `calendar_push.py`) and returns an
`Outcome` (`outcome.py`): the steps taken, which renders as the one-line account the logs, the
inbox and `bridge sync` show.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from bridge.calendar_push import push_changes
from bridge.calendar_state import (
    NOTHING_APPLIED,
    CalendarState,
    archived_state,
    desired_state,
    observed_state,
)
from bridge.config import OnDelete, PortalConfig
from bridge.creation_pace import reserve_creation
from bridge.entry_mappings import close_section_mappings
from bridge.google_calendar import CalendarGateway, CalendarListEntry
from bridge.google_errors import TRANSIENT_ERRORS, GoogleNotFound
from bridge.lease import Lease, fenced
from bridge.mappings import mapping_for, mapping_row, save_mapping, update_mapping
from bridge.markers import marks_section, read_marker
from bridge.mirror import Action, ActionKind
from bridge.models import CalendarMapping, MappingState
from bridge.outcome import Outcome, Step, StepKind
from bridge.removals import record_removal
from bridge.selection import Section

# An update that finds its calendar gone replaces it and updates again; a calendar that keeps
# vanishing (never in practice) ends the action with the last GoogleNotFound after this many.
_MAX_PASSES = 3


def apply_action(
    lease: Lease,
    portal: PortalConfig,
    action: Action,
    google: CalendarGateway,
    observed: CalendarListEntry | None = None,
) -> Outcome:
    """Do what the action says. `observed` is the calendar as a reconciliation read it."""
    if action.kind == ActionKind.RETIRE:
        step = _retire(lease, portal, action, google)
        return Outcome(action.kind, step.calendar_id, (step,))
    section = action.section
    assert section is not None
    row, fresh = mapping_for(lease, section)
    current = None
    if action.kind == ActionKind.UPDATE and observed is not None:
        current = observed_state(observed, CalendarState.from_json(row.applied))
    gone = action.kind == ActionKind.RECREATE
    look_first = action.kind == ActionKind.ADOPT or not fresh
    steps: list[Step] = []
    for attempt in range(_MAX_PASSES):
        if gone:
            steps.append(_relist_or_replace(lease, row, google))
            current, look_first = None, True
        if row.state == MappingState.CREATING or not row.google_calendar_id:
            steps.append(_create(lease, portal, row, section, google, look_first=look_first))
            current = None
        try:
            steps.append(_converge(lease, portal, row, section, google, current))
        except GoogleNotFound:
            if attempt == _MAX_PASSES - 1:
                raise
            gone = True
            continue
        break
    return Outcome(action.kind, row.google_calendar_id, tuple(steps))


def _create(
    lease: Lease,
    portal: PortalConfig,
    mapping: CalendarMapping,
    section: Section,
    google: CalendarGateway,
    *,
    look_first: bool,
) -> Step:
    """Adopt the section's marked calendar (when an earlier attempt may have made it and died
    before recording the id), else insert one; an insert with an unknown outcome looks again."""
    if look_first:
        adopted = _adopt_marked(lease, portal, mapping, google)
        if adopted is not None:
            return adopted
    desired = desired_state(portal, section, mapping.nonce)
    pace = portal.google.creation_pace
    reserve_creation(
        lease.engine, portal.google.subject, pace.calendars, timedelta(minutes=pace.minutes)
    )
    try:
        calendar_id = google.insert_calendar(
            desired.summary, desired.description, desired.time_zone
        )
    except TRANSIENT_ERRORS:
        adopted = _adopt_marked(lease, portal, mapping, google)
        if adopted is None:
            raise
        return adopted
    inserted = CalendarState(desired.summary, desired.description, desired.time_zone)
    save_mapping(
        lease,
        mapping,
        state=MappingState.ACTIVE,
        google_calendar_id=calendar_id,
        applied=inserted.to_json(),
    )
    return Step(StepKind.CREATED, calendar_id)


def _converge(
    lease: Lease,
    portal: PortalConfig,
    mapping: CalendarMapping,
    section: Section,
    google: CalendarGateway,
    current: CalendarState | None,
) -> Step:
    """Converge the calendar to the section; `current` is what Google shows, when it was read.
    Raises GoogleNotFound when the calendar is gone."""
    assert mapping.google_calendar_id is not None
    calendar_id = mapping.google_calendar_id
    desired = desired_state(portal, section, mapping.nonce)
    before = current or CalendarState.from_json(mapping.applied) or NOTHING_APPLIED
    changes = desired.differences(before)
    if not changes and mapping.state == MappingState.ACTIVE:
        return Step(StepKind.UP_TO_DATE, calendar_id)
    push_changes(
        google, calendar_id, desired, before, changes, notify=portal.mirror.share_notifications
    )
    save_mapping(lease, mapping, state=MappingState.ACTIVE, applied=desired.to_json())
    return Step(StepKind.UPDATED, calendar_id, tuple(changes))


def _relist_or_replace(lease: Lease, mapping: CalendarMapping, google: CalendarGateway) -> Step:
    """The mapped calendar left the owner's list: re-list it if it exists, else start the mapping
    over (state `creating`, a fresh nonce) so that a new calendar is made."""
    old_id = mapping.google_calendar_id
    if old_id and google.calendar_exists(old_id):
        google.add_to_list(old_id)
        save_mapping(lease, mapping, applied=None)
        return Step(StepKind.RELISTED, old_id)
    save_mapping(
        lease,
        mapping,
        state=MappingState.CREATING,
        nonce=uuid.uuid4().hex,
        google_calendar_id=None,
        applied=None,
    )
    return Step(StepKind.REPLACED, old_id)


def _retire(lease: Lease, portal: PortalConfig, action: Action, google: CalendarGateway) -> Step:
    """Apply the action's `on_delete` to a section that is gone or no longer selected; its
    entries' mappings are closed with it (their events went with the calendar or stay in it)."""
    mapping = action.mapping
    assert mapping is not None and action.on_delete is not None
    calendar_id = mapping.calendar_id
    policy = action.on_delete
    if calendar_id and policy == OnDelete.ARCHIVE:
        applied = mapping.applied or NOTHING_APPLIED
        archived = archived_state(applied)
        try:
            push_changes(
                google, calendar_id, archived, applied, archived.differences(applied), notify=False
            )
        except GoogleNotFound:
            pass  # nothing left to archive: forget it below, as `keep` would
        else:
            with fenced(lease) as session:
                row = mapping_row(session, lease.portal_key, mapping.section_id)
                assert row is not None
                update_mapping(
                    session, row, state=MappingState.ARCHIVED, applied=archived.to_json()
                )
                record_removal(session, portal, mapping.section_id)
                close_section_mappings(session, lease.portal_key, mapping.section_id)
            return Step(StepKind.ARCHIVED, calendar_id)
    elif calendar_id and policy == OnDelete.DELETE:
        google.delete_calendar(calendar_id)
    with fenced(lease) as session:
        row = mapping_row(session, lease.portal_key, mapping.section_id)
        if row is not None:
            session.delete(row)
        close_section_mappings(session, lease.portal_key, mapping.section_id)
        if calendar_id and policy == OnDelete.DELETE:
            record_removal(session, portal, mapping.section_id)
    if not calendar_id:
        return Step(StepKind.FORGOTTEN)
    return Step(StepKind.DELETED if policy == OnDelete.DELETE else StepKind.UNMAPPED, calendar_id)


def _adopt_marked(
    lease: Lease, portal: PortalConfig, mapping: CalendarMapping, google: CalendarGateway
) -> Step | None:
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
    save_mapping(
        lease,
        mapping,
        state=MappingState.ACTIVE,
        google_calendar_id=keep.id,
        applied=observed.to_json(),
    )
    return Step(StepKind.ADOPTED, keep.id, duplicates=len(twins))
