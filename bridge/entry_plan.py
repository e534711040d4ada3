"""The plan for one entry: what its Google event needs, decided from plain values with no I/O.

From the entry (None when Bitrix24 no longer has it), its mapping (None when there never was one)
and the portal's scope (which sections are mirrored to which calendar, the options, the window
for single events), `plan_entry` returns one typed action; a skip carries its reason as an enum.
The worker's event path and the reconciliation both use it, so they converge on the same state.

A reconciliation also passes what Google holds in the destination calendar (`listed`): a mapped
event that differs there from the body in a field the bridge manages (`event_drift.drift`: a hand
edit) is put again, and one that is missing (deleted by hand) is restored, even when the mapping
says the body was applied. The event path passes nothing and trusts the mapping.

Window: a single entry is created only when it overlaps `[now - past_days, now + future_days)`;
a mapped one is kept up to date wherever it moves. Series and their edited occurrences are
mirrored whole, whatever their dates.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from bridge.entry_values import Entry
from bridge.event_body import EntryOptions, EventBody, desired_event
from bridge.event_drift import drift


class EntryMappingState(StrEnum):
    ACTIVE = "active"  # the event exists in `calendar_id` as last applied
    CLOSED = "closed"  # the event was deleted (Google keeps it as a cancelled event)


@dataclass(frozen=True)
class MappedEntry:
    """What the entry mapping table knows of an entry's event."""

    entry_id: str
    state: EntryMappingState
    calendar_id: str
    event_id: str
    fingerprint: str = ""  # EventBody.fingerprint() of what was last applied


@dataclass(frozen=True)
class EntryScope:
    """A portal's side of the decision: where entries go and how they look."""

    portal_key: str
    now: datetime
    calendars: Mapping[str, str]  # mirrored section id → Google calendar id
    options: EntryOptions = field(default_factory=EntryOptions)
    google_synced: frozenset[str] = frozenset()  # sections Bitrix24 itself syncs from Google
    rooms: Mapping[str, str] = field(default_factory=dict)  # room section id → room name
    names: Mapping[str, str] = field(default_factory=dict)  # user id → name
    past_days: int = 30
    future_days: int = 365

    def in_window(self, entry: Entry) -> bool:
        """The entry overlaps the window (an all-day one through the end of its last day)."""
        end = entry.end + timedelta(days=1) if entry.all_day else entry.end
        window_start = self.now - timedelta(days=self.past_days)
        window_end = self.now + timedelta(days=self.future_days)
        return entry.start < window_end and end >= window_start


class EntryActionKind(StrEnum):
    SKIP = "skip"
    CREATE = "create"  # insert (a 409 duplicate means it exists: update it instead)
    UPDATE = "update"  # the event exists and differs from the body
    MOVE = "move"  # events.move from `from_calendar` to `calendar_id`, then update if changed
    DELETE = "delete"  # delete the event (an instance override: cancel the occurrence)
    REVIVE = "revive"  # a deleted (cancelled) event with this id: update it back to confirmed


class SkipReason(StrEnum):
    NOT_MIRRORED_SECTION = "not_mirrored_section"
    SYNCED_FROM_GOOGLE = "synced_from_google"
    UNCHANGED = "unchanged"
    OUTSIDE_WINDOW = "outside_window"
    GONE = "gone"  # deleted in Bitrix24 and nothing of it in Google
    SERIES_UNKNOWN = "series_unknown"  # an edited occurrence whose series was not read


@dataclass(frozen=True)
class EntryAction:
    kind: EntryActionKind
    entry_id: str
    calendar_id: str | None = None  # where the event is (DELETE) or goes (the others)
    section_id: str | None = None  # the mirrored section whose calendar that is (not DELETE)
    event_id: str | None = None
    body: EventBody | None = None
    from_calendar: str | None = None  # MOVE
    body_changed: bool = True  # MOVE: the body differs from what was applied
    reason: SkipReason | None = None  # SKIP

    def describe(self, portal_key: str) -> str:
        what = {
            EntryActionKind.SKIP: f"skip ({self.reason})",
            EntryActionKind.CREATE: f"create event in {self.calendar_id}",
            EntryActionKind.UPDATE: f"update event in {self.calendar_id}",
            EntryActionKind.MOVE: f"move event from {self.from_calendar} to {self.calendar_id}",
            EntryActionKind.DELETE: f"delete event from {self.calendar_id}",
            EntryActionKind.REVIVE: f"restore deleted event in {self.calendar_id}",
        }[self.kind]
        title = f" {self.body.summary!r}" if self.body is not None else ""
        return f"{portal_key}: entry {self.entry_id}{title}: {what}"


def plan_entry(
    scope: EntryScope,
    entry_id: str,
    entry: Entry | None,
    mapping: MappedEntry | None,
    *,
    series: Entry | None = None,
    overridden: Collection[date] = (),
    listed: Mapping[str, Mapping[str, Any]] | None = None,
) -> EntryAction:
    """The one action `entry` needs. An edited occurrence needs its `series` (it lives in the
    series' calendar, as an instance of the series' event); a series takes the days of its
    overridden occurrences (see `desired_event`). `listed`: the destination calendar's events by
    id as a reconciliation read them (None: not looked at)."""
    section_id, calendar_id, why_not = _destination(scope, entry, series)
    if entry is None or section_id is None or calendar_id is None:
        return _without_destination(entry_id, mapping, why_not)
    body = desired_event(
        scope.portal_key,
        entry,
        scope.options,
        scope.rooms,
        series=series,
        overridden=overridden,
        names=scope.names,
    )
    if mapping is None or mapping.state == EntryMappingState.CLOSED:
        if not (entry.is_series or entry.is_occurrence or scope.in_window(entry)):
            return EntryAction(EntryActionKind.SKIP, entry_id, reason=SkipReason.OUTSIDE_WINDOW)
        revive = mapping is not None and mapping.calendar_id == calendar_id
        kind = EntryActionKind.REVIVE if revive else EntryActionKind.CREATE
        return EntryAction(kind, entry_id, calendar_id, section_id, body.event_id, body)
    return _keep_up_to_date(entry_id, mapping, section_id, calendar_id, body, listed)


def _without_destination(
    entry_id: str, mapping: MappedEntry | None, why_not: SkipReason | None
) -> EntryAction:
    """An entry that is gone, or belongs in no mirrored calendar: its event goes, if it has one."""
    active = mapping is not None and mapping.state == EntryMappingState.ACTIVE
    if active and why_not != SkipReason.SERIES_UNKNOWN:  # not knowing is no reason to delete
        assert mapping is not None
        return EntryAction(
            EntryActionKind.DELETE, entry_id, mapping.calendar_id, event_id=mapping.event_id
        )
    return EntryAction(EntryActionKind.SKIP, entry_id, reason=why_not or SkipReason.GONE)


def _keep_up_to_date(
    entry_id: str,
    mapping: MappedEntry,
    section_id: str,
    calendar_id: str,
    body: EventBody,
    listed: Mapping[str, Mapping[str, Any]] | None,
) -> EntryAction:
    """A mapped event: moved to the entry's calendar, updated, restored or left as it is; with
    `listed`, what Google holds counts too (a hand edit is put again, a hand delete restored)."""
    changed = body.fingerprint() != mapping.fingerprint
    observed = None if listed is None else listed.get(body.event_id)
    missing = listed is not None and observed is None
    drifted = observed is not None and bool(drift(body, observed))
    if mapping.calendar_id != calendar_id:
        return EntryAction(
            EntryActionKind.MOVE,
            entry_id,
            calendar_id,
            section_id,
            mapping.event_id,
            body,
            from_calendar=mapping.calendar_id,
            body_changed=changed or drifted,
        )
    if missing:  # put brings a cancelled event back; one that is gone is inserted again
        return EntryAction(
            EntryActionKind.REVIVE, entry_id, calendar_id, section_id, mapping.event_id, body
        )
    if not (changed or drifted):
        return EntryAction(EntryActionKind.SKIP, entry_id, reason=SkipReason.UNCHANGED)
    return EntryAction(
        EntryActionKind.UPDATE, entry_id, calendar_id, section_id, mapping.event_id, body
    )


def _destination(
    scope: EntryScope, entry: Entry | None, series: Entry | None
) -> tuple[str | None, str | None, SkipReason | None]:
    """The section and calendar the entry's event belongs in, or why it has none."""
    if entry is None or entry.deleted:
        return None, None, SkipReason.GONE
    home = entry
    if entry.is_occurrence:
        if series is None or series.id != entry.series_id:
            return None, None, SkipReason.SERIES_UNKNOWN
        home = series
    for candidate in {entry.id: entry, home.id: home}.values():
        if candidate.synced_from_google or candidate.section_id in scope.google_synced:
            return None, None, SkipReason.SYNCED_FROM_GOOGLE
    calendar_id = scope.calendars.get(home.section_id)
    if calendar_id is None:
        return None, None, SkipReason.NOT_MIRRORED_SECTION
    return home.section_id, calendar_id, None
