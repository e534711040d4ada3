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

`apply_action` runs one action as explicit steps (re-list or replace a calendar gone from the
list, adopt or insert, then update) and returns an `Outcome`: the steps taken, which renders as
the one-line account the logs, the inbox and `bridge sync` show. `mapped_calendar` turns a mapping
row into the plain value the planner reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from bridge.config import OnDelete, PortalConfig
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
    Change,
    MappedCalendar,
    archived_state,
    desired_state,
    marks_section,
    observed_state,
    read_marker,
)
from bridge.models import CalendarCreation, CalendarMapping, MappingState, utcnow
from bridge.removals import record_removal
from bridge.selection import Section

# An update that finds its calendar gone replaces it and updates again; a calendar that keeps
# vanishing (never in practice) ends the action with the last GoogleNotFound after this many.
_MAX_PASSES = 3


class StepKind(StrEnum):
    CREATED = "created"
    ADOPTED = "adopted"  # found by its marker (an earlier attempt made it), twins deleted
    RELISTED = "relisted"  # gone from the owner's list only: put back
    REPLACED = "replaced"  # deleted in Google: the mapping starts over with a fresh nonce
    UPDATED = "updated"
    UP_TO_DATE = "up_to_date"
    ARCHIVED = "archived"
    DELETED = "deleted"
    UNMAPPED = "unmapped"  # kept in Google, no longer mapped
    FORGOTTEN = "forgotten"  # an unfinished mapping without a calendar, dropped


@dataclass(frozen=True)
class Step:
    kind: StepKind
    calendar_id: str | None = None
    changes: tuple[Change, ...] = ()
    duplicates: int = 0  # ADOPTED: twins deleted

    def __str__(self) -> str:
        calendar = f"calendar {self.calendar_id}"
        match self.kind:
            case StepKind.CREATED:
                return f"created {calendar}"
            case StepKind.ADOPTED:
                removed = f" and removed {self.duplicates} duplicate(s)" if self.duplicates else ""
                return f"adopted {calendar}{removed}"
            case StepKind.RELISTED:
                return f"re-listed {calendar}"
            case StepKind.REPLACED:
                return f"{calendar} was deleted in Google"
            case StepKind.UPDATED:
                return f"updated {calendar}: {self.changed}"
            case StepKind.UP_TO_DATE:
                return f"{calendar} is up to date"
            case StepKind.ARCHIVED:
                return f"archived {calendar}"
            case StepKind.DELETED:
                return f"deleted {calendar}"
            case StepKind.UNMAPPED:
                return f"kept {calendar}, unmapped"
            case StepKind.FORGOTTEN:
                return "forgot an unfinished mapping"

    @property
    def changed(self) -> str:
        return ", ".join(self.changes) or "unarchived"


@dataclass(frozen=True)
class Outcome:
    """What one action did in Google: its steps, in order, and the calendar it left mapped."""

    kind: ActionKind
    calendar_id: str | None
    steps: tuple[Step, ...]

    def __str__(self) -> str:
        """One line: the steps joined by "; ", with the update that follows a creation told as
        "…, then set its colour, sharing" (insert takes no colour or sharing) or not at all."""
        parts: list[str] = []
        previous: Step | None = None
        for step in self.steps:
            created = previous is not None and previous.kind in (StepKind.CREATED, StepKind.ADOPTED)
            if created and step.kind == StepKind.UPDATED:
                parts[-1] += f", then set its {step.changed}"
            elif not (created and step.kind == StepKind.UP_TO_DATE):
                parts.append(str(step))
            previous = step
        return "; ".join(parts)


def mapped_calendar(row: CalendarMapping) -> MappedCalendar:
    """The plain value the planner reads for a mapping row."""
    return MappedCalendar(
        section_id=row.section_id,
        state=row.state,
        nonce=row.nonce,
        calendar_id=row.google_calendar_id,
        applied=CalendarState.from_json(row.applied),
        section_type=row.section_type,
        owner_id=row.owner_id,
    )


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
    row, fresh = _mapping_for(lease, section)
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
    _save(
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
    _push(google, calendar_id, desired, before, changes, notify=portal.mirror.share_notifications)
    _save(lease, mapping, state=MappingState.ACTIVE, applied=desired.to_json())
    return Step(StepKind.UPDATED, calendar_id, tuple(changes))


def _relist_or_replace(lease: Lease, mapping: CalendarMapping, google: CalendarGateway) -> Step:
    """The mapped calendar left the owner's list: re-list it if it exists, else start the mapping
    over (state `creating`, a fresh nonce) so that a new calendar is made."""
    old_id = mapping.google_calendar_id
    if old_id and google.calendar_exists(old_id):
        google.add_to_list(old_id)
        _save(lease, mapping, applied=None)
        return Step(StepKind.RELISTED, old_id)
    _save(
        lease,
        mapping,
        state=MappingState.CREATING,
        nonce=uuid.uuid4().hex,
        google_calendar_id=None,
        applied=None,
    )
    return Step(StepKind.REPLACED, old_id)


def _retire(lease: Lease, portal: PortalConfig, action: Action, google: CalendarGateway) -> Step:
    """Apply the action's `on_delete` to a section that is gone or no longer selected."""
    mapping = action.mapping
    assert mapping is not None and action.on_delete is not None
    calendar_id = mapping.calendar_id
    policy = action.on_delete
    if calendar_id and policy == OnDelete.ARCHIVE:
        applied = mapping.applied or NOTHING_APPLIED
        archived = archived_state(applied)
        try:
            _push(
                google, calendar_id, archived, applied, archived.differences(applied), notify=False
            )
        except GoogleNotFound:
            pass  # nothing left to archive: forget it below, as `keep` would
        else:
            with fenced(lease) as session:
                row = _row(session, lease.portal_key, mapping.section_id)
                assert row is not None
                _update(session, row, state=MappingState.ARCHIVED, applied=archived.to_json())
                record_removal(session, portal, mapping.section_id)
            return Step(StepKind.ARCHIVED, calendar_id)
    elif calendar_id and policy == OnDelete.DELETE:
        google.delete_calendar(calendar_id)
    with fenced(lease) as session:
        row = _row(session, lease.portal_key, mapping.section_id)
        if row is not None:
            session.delete(row)
        if calendar_id and policy == OnDelete.DELETE:
            record_removal(session, portal, mapping.section_id)
    if not calendar_id:
        return Step(StepKind.FORGOTTEN)
    return Step(StepKind.DELETED if policy == OnDelete.DELETE else StepKind.UNMAPPED, calendar_id)


def _push(
    google: CalendarGateway,
    calendar_id: str,
    desired: CalendarState,
    before: CalendarState,
    changes: list[Change],
    *,
    notify: bool,
) -> None:
    fields = {
        key: value
        for change, key, value in (
            (Change.SUMMARY, "summary", desired.summary),
            (Change.DESCRIPTION, "description", desired.description),
            (Change.TIME_ZONE, "timeZone", desired.time_zone),
        )
        if change in changes
    }
    if fields:
        google.patch_calendar(calendar_id, fields)
    entry: dict[str, object] = {}
    if Change.COLOUR in changes:
        entry.update(backgroundColor=desired.background, foregroundColor=desired.foreground)
    if Change.HIDDEN in changes:
        entry["hidden"] = desired.hidden
    if entry:
        google.patch_list_entry(calendar_id, entry)
    if Change.SHARING in changes:
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
    _save(
        lease,
        mapping,
        state=MappingState.ACTIVE,
        google_calendar_id=keep.id,
        applied=observed.to_json(),
    )
    return Step(StepKind.ADOPTED, keep.id, duplicates=len(twins))


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


def _row(session: Session, portal_key: str, section_id: str) -> CalendarMapping | None:
    query = select(CalendarMapping).where(
        CalendarMapping.portal_key == portal_key, CalendarMapping.section_id == section_id
    )
    return session.exec(query).first()


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
