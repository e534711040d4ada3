"""Which calendars `bridge purge` deletes, decided from plain values (pure, like `mirror.py`):
the portal's mappings and the owner's calendar list, read through their markers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bridge.calendars import CalendarListEntry
from bridge.config import PortalConfig
from bridge.markers import marks_portal, marks_section, read_marker
from bridge.mirror import MappedCalendar


@dataclass
class PurgePlan:
    delete: dict[str, str] = field(default_factory=dict)  # calendar id → summary
    left_alone: list[str] = field(default_factory=list)  # why a candidate is kept, one per line


def plan_purge(
    portal: PortalConfig,
    mappings: Iterable[MappedCalendar],
    google: Sequence[CalendarListEntry],
) -> PurgePlan:
    """The calendars `bridge purge` deletes: those with this portal's current-format marker (its
    key and member_id), and mapped ones unless their marker names another portal or section. A
    legacy marker counts only through a mapping: its portal key may be another deployment's."""
    plan = PurgePlan()
    by_id = {view.id: view for view in google}
    mapped: set[str] = set()
    for mapping in mappings:
        calendar_id = mapping.calendar_id
        if not calendar_id:
            continue
        mapped.add(calendar_id)
        view = by_id.get(calendar_id)
        found = read_marker(view.description) if view else None
        if found is not None and not marks_section(found, portal, mapping.section_id):
            plan.left_alone.append(
                f"{calendar_id}: mapped to section {mapping.section_id}, but its marker names "
                f"portal {found.portal_key} section {found.section_id}"
            )
            continue
        plan.delete[calendar_id] = view.summary if view else f"(section {mapping.section_id})"
    for view in google:
        found = read_marker(view.description)
        if view.id in mapped or found is None:
            continue
        if marks_portal(found, portal):
            plan.delete[view.id] = view.summary
        elif found.legacy and found.portal_key == portal.key:
            plan.left_alone.append(
                f"{view.id} {view.summary!r}: an earlier version's marker names portal key "
                f"{portal.key} but no mapping does (another deployment's?); delete it by hand"
            )
    return plan
