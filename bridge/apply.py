"""Carry out planned actions against Google and record them in the mapping table.

Guarantee: one Google calendar per (portal, section). Before `calendars.insert` the mapping row
is committed in state `creating` with a fresh nonce, together with the creation's reservation
(`creation_pace.py`), and the insert carries a marker naming the portal, section and nonce in the
calendar's description. When an insert's outcome is unknown (a timeout, a dropped connection, a
5xx, a crash before the mapping was updated), the next attempt looks for the marker in the
owner's calendar list and adopts what it finds before inserting again; twins are deleted. Only a
marker on the description's last line that names this portal (key and member_id) and section
counts (`markers.read_marker`), so a section's text cannot forge one. The unique constraint on
(portal, section) stops two rows from ever existing.

The steps change the row in memory (`mappings.MappingRecord`); it is written before an insert and
once at the end, with what the caller settles in the same transaction (`settle`: the event path's
inbox rows), so a created calendar costs two transactions. A step that fails after Google changed
something still records what was made before the error goes on. What was applied is recorded, so
a retried action only does what is still missing.

`apply_action` runs one action as explicit steps (re-list or replace a calendar gone from the
list, adopt or insert, then update, the changes sent by `calendar_push.py`) and returns an
`Outcome` (`outcome.py`): the steps taken, which renders as the one-line account the logs, the
inbox and `bridge sync` show.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlmodel import Session

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
from bridge.mappings import MappingRecord, mapping_record, mapping_row, update_mapping
from bridge.markers import marks_section, read_marker
from bridge.mirror import Action, ActionKind
from bridge.models import MappingState
from bridge.outcome import Outcome, Step, StepKind
from bridge.removals import record_removal
from bridge.selection import Section

# An update that finds its calendar gone replaces it and updates again; a calendar that keeps
# vanishing (never in practice) ends the action with the last GoogleNotFound after this many.
_MAX_PASSES = 3

# What the caller records with the action's last write, in the same transaction.
Settle = Callable[[Session, Outcome], None]


def apply_action(
    lease: Lease,
    portal: PortalConfig,
    action: Action,
    google: CalendarGateway,
    observed: CalendarListEntry | None = None,
    settle: Settle | None = None,
) -> Outcome:
    """Do what the action says. `observed` is the calendar as a reconciliation read it;
    `settle` runs in the transaction that records the outcome."""
    if action.kind == ActionKind.RETIRE:
        return _retire(lease, portal, action, google, settle)
    section = action.section
    assert section is not None
    record = mapping_record(lease, section, action.mapping)
    try:
        steps = _steps(lease, portal, action, section, record, google, observed)
    except BaseException:
        if record.unsaved and record.row.google_calendar_id:
            record.save(lease)  # keep the calendar a step made before the error
        raise
    outcome = Outcome(action.kind, record.row.google_calendar_id, steps)
    record.save(lease, None if settle is None else lambda session: settle(session, outcome))
    return outcome


def _steps(
    lease: Lease,
    portal: PortalConfig,
    action: Action,
    section: Section,
    record: MappingRecord,
    google: CalendarGateway,
    observed: CalendarListEntry | None,
) -> tuple[Step, ...]:
    row = record.row
    current = None
    if action.kind == ActionKind.UPDATE and observed is not None:
        current = observed_state(observed, CalendarState.from_json(row.applied))
    gone = action.kind == ActionKind.RECREATE
    look_first = action.kind == ActionKind.ADOPT or not record.fresh
    steps: list[Step] = []
    for attempt in range(_MAX_PASSES):
        if gone:
            steps.append(_relist_or_replace(record, google))
            current, look_first = None, True
        if row.state == MappingState.CREATING or not row.google_calendar_id:
            steps.append(_create(lease, portal, record, section, google, look_first=look_first))
            current = None
        try:
            steps.append(_converge(portal, record, section, google, current))
        except GoogleNotFound:
            if attempt == _MAX_PASSES - 1:
                raise
            gone = True
            continue
        break
    return tuple(steps)


def _create(
    lease: Lease,
    portal: PortalConfig,
    record: MappingRecord,
    section: Section,
    google: CalendarGateway,
    *,
    look_first: bool,
) -> Step:
    """Adopt the section's marked calendar (when an earlier attempt may have made it and died
    before recording the id), else insert one; an insert with an unknown outcome looks again."""
    if look_first:
        adopted = _adopt_marked(portal, record, google)
        if adopted is not None:
            return adopted
    desired = desired_state(portal, section, record.row.nonce)
    subject, pace = portal.google.subject, portal.google.creation_pace
    window = timedelta(minutes=pace.minutes)
    record.save(lease, lambda session: reserve_creation(session, subject, pace.calendars, window))
    try:
        calendar_id = google.insert_calendar(
            desired.summary, desired.description, desired.time_zone
        )
    except TRANSIENT_ERRORS:
        adopted = _adopt_marked(portal, record, google)
        if adopted is None:
            raise
        return adopted
    inserted = CalendarState(desired.summary, desired.description, desired.time_zone)
    record.set(
        state=MappingState.ACTIVE, google_calendar_id=calendar_id, applied=inserted.to_json()
    )
    return Step(StepKind.CREATED, calendar_id)


def _converge(
    portal: PortalConfig,
    record: MappingRecord,
    section: Section,
    google: CalendarGateway,
    current: CalendarState | None,
) -> Step:
    """Converge the calendar to the section; `current` is what Google shows, when it was read.
    Raises GoogleNotFound when the calendar is gone."""
    mapping = record.row
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
    record.set(state=MappingState.ACTIVE, applied=desired.to_json())
    return Step(StepKind.UPDATED, calendar_id, tuple(changes))


def _relist_or_replace(record: MappingRecord, google: CalendarGateway) -> Step:
    """The mapped calendar left the owner's list: re-list it if it exists, else start the mapping
    over (state `creating`, a fresh nonce, written before the insert) so that a new calendar is
    made."""
    old_id = record.row.google_calendar_id
    if old_id and google.calendar_exists(old_id):
        google.add_to_list(old_id)
        record.set(applied=None)
        return Step(StepKind.RELISTED, old_id)
    record.set(
        state=MappingState.CREATING, nonce=uuid.uuid4().hex, google_calendar_id=None, applied=None
    )
    return Step(StepKind.REPLACED, old_id)


def _retire(
    lease: Lease,
    portal: PortalConfig,
    action: Action,
    google: CalendarGateway,
    settle: Settle | None,
) -> Outcome:
    """Apply the action's `on_delete` to a section that is gone or no longer selected; its
    entries' mappings are closed with it (their events went with the calendar or stay in it)."""
    mapping = action.mapping
    assert mapping is not None and action.on_delete is not None
    calendar_id = mapping.calendar_id
    policy = action.on_delete
    archived = None
    if calendar_id and policy == OnDelete.ARCHIVE:
        applied = mapping.applied or NOTHING_APPLIED
        archived = archived_state(applied)
        try:
            push_changes(
                google, calendar_id, archived, applied, archived.differences(applied), notify=False
            )
        except GoogleNotFound:
            archived = None  # nothing left to archive: forget it below, as `keep` would
    elif calendar_id and policy == OnDelete.DELETE:
        google.delete_calendar(calendar_id)
    step = _retired_step(calendar_id, policy, archived is not None)
    outcome = Outcome(action.kind, step.calendar_id, (step,))
    with fenced(lease) as session:
        row = mapping_row(session, lease.portal_key, mapping.section_id)
        if archived is not None:
            assert row is not None
            update_mapping(session, row, state=MappingState.ARCHIVED, applied=archived.to_json())
        elif row is not None:
            session.delete(row)
        if step.kind in (StepKind.ARCHIVED, StepKind.DELETED):
            record_removal(session, portal, mapping.section_id)
        close_section_mappings(session, lease.portal_key, mapping.section_id)
        if settle is not None:
            settle(session, outcome)
    return outcome


def _retired_step(calendar_id: str | None, policy: OnDelete, archived: bool) -> Step:
    if not calendar_id:
        return Step(StepKind.FORGOTTEN)
    if archived:
        return Step(StepKind.ARCHIVED, calendar_id)
    return Step(StepKind.DELETED if policy == OnDelete.DELETE else StepKind.UNMAPPED, calendar_id)


def _adopt_marked(
    portal: PortalConfig, record: MappingRecord, google: CalendarGateway
) -> Step | None:
    mapping = record.row
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
    record.set(state=MappingState.ACTIVE, google_calendar_id=keep.id, applied=observed.to_json())
    return Step(StepKind.ADOPTED, keep.id, duplicates=len(twins))
