"""The plan for a portal's sections: the one action each section needs to look as it should.

This is the decide step, with no I/O: from the selected sections, our mappings (`MappedCalendar`,
read from the table by `mappings.mapped_calendar`) and (when a reconciliation has read it) what
Google shows (`calendars.CalendarListEntry`), it plans one action per section that needs one; an
action's changes (`calendar_state.Change`) and its removal policy are enums, not text. What a
section's calendar should look like is `calendar_state.py`; whose a calendar is, `markers.py`.
It imports no database row and no gateway. `apply.py` carries the plan out. Both the worker's
event path and `bridge sync` use it, so a lost event and a missed one end in the same state.
`guard_deletions` is the mass-delete guard's rule over a plan (`removals.py` counts over time).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from bridge.calendar_state import (
    ARCHIVE_PREFIX,
    NOTHING_APPLIED,
    CalendarState,
    Change,
    desired_state,
    observed_state,
)
from bridge.calendars import CalendarListEntry, MappingState
from bridge.config import DeleteGuard, OnDelete, PortalConfig
from bridge.markers import marks_section, read_marker
from bridge.selection import Section


@dataclass(frozen=True)
class MappedCalendar:
    """What the mapping table knows of a section's calendar."""

    section_id: str
    state: MappingState
    nonce: str
    calendar_id: str | None = None
    applied: CalendarState | None = None  # what was last applied to Google, if known
    section_type: str = ""
    owner_id: str = ""


class ActionKind(StrEnum):
    CREATE = "create"  # no calendar yet (or an unfinished create)
    ADOPT = "adopt"  # a calendar carries our marker but no mapping points at it
    UPDATE = "update"  # the calendar exists and differs
    RECREATE = "recreate"  # mapped, but the calendar is gone from Google
    RETIRE = "retire"  # the section is gone or left the selection: apply on_delete


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    section_id: str
    section: Section | None = None
    mapping: MappedCalendar | None = None
    calendar_id: str | None = None
    changes: tuple[Change, ...] = ()
    on_delete: OnDelete | None = None  # RETIRE: the policy it carries out

    def describe(self, portal_key: str) -> str:
        what = {
            ActionKind.CREATE: "create calendar",
            ActionKind.ADOPT: f"adopt calendar {self.calendar_id}",
            ActionKind.UPDATE: f"update {', '.join(self.changes)}",
            ActionKind.RECREATE: "recreate calendar (gone from Google)",
            ActionKind.RETIRE: _RETIRE_VERBS[self.on_delete or OnDelete.KEEP],
        }[self.kind]
        name = f" {self.section.name!r}" if self.section else ""
        return f"{portal_key}: section {self.section_id}{name}: {what}"

    @property
    def removes_calendar(self) -> bool:
        return self.kind == ActionKind.RETIRE and self.on_delete in (
            OnDelete.DELETE,
            OnDelete.ARCHIVE,
        )


_RETIRE_VERBS = {
    OnDelete.DELETE: "delete calendar",
    OnDelete.ARCHIVE: "archive calendar",
    OnDelete.KEEP: "keep calendar, forget it",
}


def plan_section(
    portal: PortalConfig,
    section_id: str,
    section: Section | None,
    mapping: MappedCalendar | None,
    google: Mapping[str, CalendarListEntry] | None = None,
    marked: Sequence[CalendarListEntry] = (),
) -> Action | None:
    """The one action a section needs, or None. `google` (calendar id → view) and `marked`
    (calendars carrying this section's marker) come from a reconciliation's read of Google; the
    event path passes neither and trusts what was last applied."""
    if section is None:
        return _plan_retirement(portal, section_id, mapping)
    if mapping is None:
        if marked:
            return Action(ActionKind.ADOPT, section_id, section=section, calendar_id=marked[0].id)
        return Action(ActionKind.CREATE, section_id, section=section)
    if mapping.state == MappingState.CREATING or not mapping.calendar_id:
        return Action(ActionKind.CREATE, section_id, section=section, mapping=mapping)
    return _plan_mapped(portal, section_id, section, mapping, google)


def _plan_retirement(
    portal: PortalConfig, section_id: str, mapping: MappedCalendar | None
) -> Action | None:
    """A section that is gone or left the selection: its calendar gets the `on_delete` policy."""
    if mapping is None or mapping.state == MappingState.ARCHIVED:
        return None
    return Action(
        ActionKind.RETIRE,
        section_id,
        mapping=mapping,
        calendar_id=mapping.calendar_id,
        on_delete=portal.mirror.on_delete,
    )


def _plan_mapped(
    portal: PortalConfig,
    section_id: str,
    section: Section,
    mapping: MappedCalendar,
    google: Mapping[str, CalendarListEntry] | None,
) -> Action | None:
    """A section whose calendar exists (as far as the mapping knows): recreate it if Google was
    read and lacks it, else update what differs (unarchiving first), or nothing."""
    if google is None:
        current = mapping.applied or NOTHING_APPLIED
    else:
        view = google.get(mapping.calendar_id) if mapping.calendar_id else None
        if view is None:
            return Action(
                ActionKind.RECREATE,
                section_id,
                section=section,
                mapping=mapping,
                calendar_id=mapping.calendar_id,
            )
        current = observed_state(view, mapping.applied)
    changes = _desired(portal, section, mapping).differences(current)
    if mapping.state == MappingState.ARCHIVED:
        changes.insert(0, Change.UNARCHIVE)
    if not changes:
        return None
    return Action(
        ActionKind.UPDATE,
        section_id,
        section=section,
        mapping=mapping,
        calendar_id=mapping.calendar_id,
        changes=tuple(changes),
    )


def _desired(portal: PortalConfig, section: Section, mapping: MappedCalendar) -> CalendarState:
    """The section's desired state; when no listing named its owner this time, the summary stays
    as last applied (without the archive prefix)."""
    desired = desired_state(portal, section, mapping.nonce)
    applied = mapping.applied
    if section.owner_unnamed and applied is not None:
        desired = replace(desired, summary=applied.summary.removeprefix(ARCHIVE_PREFIX))
    return desired


def plan_portal(
    portal: PortalConfig,
    sections: Mapping[str, Section],
    mappings: Iterable[MappedCalendar],
    google: Sequence[CalendarListEntry],
) -> list[Action]:
    """Everything a full reconciliation would do, in section-id order."""
    by_section = {m.section_id: m for m in mappings}
    by_id = {view.id: view for view in google}
    marked: dict[str, list[CalendarListEntry]] = {}
    read = [(read_marker(view.description), view) for view in google]
    for found, view in sorted(read, key=lambda pair: pair[0] is not None and pair[0].legacy):
        if found is not None and marks_section(found, portal, found.section_id):
            marked.setdefault(found.section_id, []).append(view)
    actions = []
    for section_id in sorted(set(sections) | set(by_section), key=_numeric):
        mapping = by_section.get(section_id)
        action = plan_section(
            portal, section_id, sections.get(section_id), mapping, by_id, marked.get(section_id, ())
        )
        if action is not None:
            actions.append(action)
    return actions


def removal_limit(guard: DeleteGuard, calendars: int) -> int:
    """How many of a portal's `calendars` may be deleted or archived within the guard's window:
    `max_share` of them, rounded down, but at least `min_count` and at most `max_count`."""
    return max(guard.min_count, min(guard.max_count, math.floor(guard.max_share * calendars)))


def guard_deletions(
    portal: PortalConfig, actions: Sequence[Action], mapped: int, removed: int = 0
) -> str | None:
    """Why the plan's removals must not run unforced: with the `removed` calendars the portal
    already lost within the guard's window, they would be more than its limit. The limit is
    taken of the calendars the portal had at the start of the window (`mapped` now, plus those
    removed since), so it does not shrink as calendars go."""
    removing = sum(1 for action in actions if action.removes_calendar)
    if not removing:
        return None
    guard = portal.mirror.delete_guard
    limit = removal_limit(guard, mapped + removed)
    if removed + removing <= limit:
        return None
    window = f"{guard.window_hours:g} h"
    return (
        f"would delete or archive {removing} of {mapped} calendars after {removed} removed in "
        f"the last {window}, more than the {limit} allowed per {window} ({guard.max_share:.0%} "
        f"of {mapped + removed}, at least {guard.min_count}, at most {guard.max_count}); "
        f"no calendar was removed (check the selection, then run "
        f"`bridge sync --portal {portal.key} --force`)"
    )


def _numeric(section_id: str) -> tuple[int, str]:
    return (int(section_id), "") if section_id.isdigit() else (0, section_id)
