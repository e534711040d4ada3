"""What Google should look like for a portal's sections, and the plan that gets it there.

This is the decide step, with no I/O: from the selected sections, our mappings (`MappedCalendar`,
read from the table by `apply.mapped_calendar`) and (when a reconciliation has read it) what Google
shows (`calendars.CalendarListEntry`), it plans one action per section that needs one; an action's
changes and its removal policy are enums, not text. It imports no database row and no gateway.
`apply.py` carries the plan out. Both the worker's event path and `bridge sync` use it, so a lost
event and a missed one end in the same state.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import NamedTuple

from bridge.calendars import CalendarListEntry, MappingState
from bridge.config import DeleteGuard, OnDelete, PortalConfig
from bridge.selection import Section

ARCHIVE_PREFIX = "[archived] "
_MARKER = re.compile(
    r"\[bx24-bridge portal=([a-z0-9][a-z0-9_-]*)(?: member=([0-9a-f]{16}))?"
    r" section=(\d+) nonce=([0-9a-f]+)\]"
)
_MARKER_WORD = re.compile(r"bx24-bridge", re.IGNORECASE)
_HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6})$")


class Change(StrEnum):
    """A managed part of a calendar that an update sets (or, first, taking it out of archive)."""

    UNARCHIVE = "unarchive"
    SUMMARY = "summary"
    DESCRIPTION = "description"
    TIME_ZONE = "time_zone"
    HIDDEN = "hidden"
    COLOUR = "colour"
    SHARING = "sharing"


_PLAIN_FIELDS = (Change.SUMMARY, Change.DESCRIPTION, Change.TIME_ZONE, Change.HIDDEN)


@dataclass(frozen=True)
class CalendarState:
    """The parts of a Google calendar (and its owner's list entry) that the bridge manages."""

    summary: str
    description: str
    time_zone: str
    background: str = ""  # "#rrggbb"; "" leaves the owner's colour alone
    foreground: str = ""
    acl: Mapping[str, str] = field(default_factory=dict)  # rule id → role, only rules we added
    hidden: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "summary": self.summary,
                "description": self.description,
                "time_zone": self.time_zone,
                "background": self.background,
                "foreground": self.foreground,
                "acl": dict(sorted(self.acl.items())),
                "hidden": self.hidden,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str | None) -> CalendarState | None:
        if not text:
            return None
        raw = json.loads(text)
        return cls(
            summary=raw["summary"],
            description=raw["description"],
            time_zone=raw["time_zone"],
            background=raw.get("background", ""),
            foreground=raw.get("foreground", ""),
            acl=dict(raw.get("acl", {})),
            hidden=bool(raw.get("hidden", False)),
        )

    def differences(self, current: CalendarState) -> list[Change]:
        """What differs from `current` (what Google has, or what was last applied)."""
        changed = [
            change
            for change in _PLAIN_FIELDS
            if getattr(self, change.value) != getattr(current, change.value)
        ]
        if self.background and (self.background, self.foreground) != (
            current.background,
            current.foreground,
        ):
            changed.append(Change.COLOUR)
        if dict(self.acl) != dict(current.acl):
            changed.append(Change.SHARING)
        return changed


# What a calendar is taken to have when nothing is known: every field then differs.
NOTHING_APPLIED = CalendarState(summary="", description="", time_zone="")


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


class Marker(NamedTuple):
    """The line the bridge writes last in a calendar's description: whose calendar it is."""

    portal_key: str
    section_id: str
    nonce: str
    member: str | None = None  # member_tag(member_id); None in markers of earlier versions

    @property
    def legacy(self) -> bool:
        return self.member is None


def member_tag(member_id: str) -> str:
    """Names the portal in a marker without showing its member_id to whoever sees the calendar:
    portal keys are only unique within one config, and deployments can share a Google subject."""
    return hashlib.sha256(f"bx24-bridge member {member_id}".encode()).hexdigest()[:16]


def marker(portal_key: str, member_id: str, section_id: str, nonce: str) -> str:
    tag = member_tag(member_id)
    return f"[bx24-bridge portal={portal_key} member={tag} section={section_id} nonce={nonce}]"


def read_marker(description: str) -> Marker | None:
    """The marker on the description's last line, the bridge's own position, if it is one.

    Marker-like text anywhere else is not a marker: the section's description comes first and is
    neutralised (`neutralise`) before it is written, so only the bridge can write that line.
    Markers written before the member tag existed (`[bx24-bridge portal=… section=… nonce=…]`) are
    still read, as `legacy`, because such calendars exist in the field. They name only the portal
    key, which another deployment sharing the Google subject may use too, so they are trusted
    less: adoption takes one only for the same key and section (and prefers a tagged one), an
    ambiguous insert never deletes one as a duplicate, and `purge` deletes one only through its
    mapping. The next update of a mapped calendar rewrites its marker in the current format.
    """
    lines = (description or "").rstrip().rsplit("\n", 1)
    match = _MARKER.fullmatch(lines[-1].strip())
    if match is None:
        return None
    portal_key, member, section_id, nonce = match.groups()
    return Marker(portal_key, section_id, nonce, member)


def marks_portal(found: Marker | None, portal: PortalConfig) -> bool:
    """A current-format marker of this portal: its key and its member_id (through the tag)."""
    return (
        found is not None
        and found.portal_key == portal.key
        and found.member == member_tag(portal.member_id)
    )


def marks_section(found: Marker | None, portal: PortalConfig, section_id: str) -> bool:
    """The marker names this portal's section: tagged with its member_id, or legacy."""
    return (
        found is not None
        and found.section_id == section_id
        and (marks_portal(found, portal) or (found.legacy and found.portal_key == portal.key))
    )


def neutralise(text: str) -> str:
    """Section text that cannot pass for a marker: the hyphen of `bx24-bridge` becomes U+2011
    (a non-breaking hyphen, which looks the same), wherever and in whatever case it appears."""
    return _MARKER_WORD.sub(lambda found: found.group(0).replace("-", "\u2011"), text)


def desired_state(portal: PortalConfig, section: Section, nonce: str) -> CalendarState:
    summary = portal.mirror.name.format_map(
        {
            "name": section.name,
            "type": section.type,
            "owner_id": section.owner_id,
            "owner_name": section.owner_name,
            "id": section.id,
        }
    ).strip()
    text = neutralise(section.description).strip()
    lines = [text] if text else []
    lines.append(marker(portal.key, portal.member_id, section.id, nonce))  # always the last line
    background = _colour(section.color)
    foreground = _colour(section.text_color) or (_contrast(background) if background else "")
    return CalendarState(
        summary=summary or f"Bitrix24 section {section.id}",
        description="\n\n".join(lines),
        time_zone=portal.google.time_zone,
        background=background,
        foreground=foreground,
        acl={rule.rule_id: rule.role for rule in portal.mirror.share_for(section.type)},
    )


def archived_state(applied: CalendarState) -> CalendarState:
    summary = ARCHIVE_PREFIX + applied.summary.removeprefix(ARCHIVE_PREFIX)
    return replace(applied, summary=summary, acl={}, hidden=True)


def observed_state(view: CalendarListEntry, applied: CalendarState | None) -> CalendarState:
    """What Google shows; sharing is taken as last applied (reading every ACL costs a request)."""
    return CalendarState(
        summary=view.summary,
        description=view.description,
        time_zone=view.time_zone,
        background=_colour(view.background),
        foreground=_colour(view.foreground),
        acl=dict(applied.acl) if applied else {},
        hidden=view.hidden,
    )


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
        if mapping is None or mapping.state == MappingState.ARCHIVED:
            return None
        return Action(
            ActionKind.RETIRE,
            section_id,
            mapping=mapping,
            calendar_id=mapping.calendar_id,
            on_delete=portal.mirror.on_delete,
        )
    if mapping is None:
        if marked:
            return Action(ActionKind.ADOPT, section_id, section=section, calendar_id=marked[0].id)
        return Action(ActionKind.CREATE, section_id, section=section)
    if mapping.state == MappingState.CREATING or not mapping.calendar_id:
        return Action(ActionKind.CREATE, section_id, section=section, mapping=mapping)
    desired = desired_state(portal, section, mapping.nonce)
    applied = mapping.applied
    if section.owner_unnamed and applied is not None:  # no listing named the owner this time
        desired = replace(desired, summary=applied.summary.removeprefix(ARCHIVE_PREFIX))
    if google is not None:
        view = google.get(mapping.calendar_id)
        if view is None:
            return Action(
                ActionKind.RECREATE,
                section_id,
                section=section,
                mapping=mapping,
                calendar_id=mapping.calendar_id,
            )
        current = observed_state(view, applied)
    else:
        current = applied or NOTHING_APPLIED
    changes = desired.differences(current)
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


def _colour(value: str) -> str:
    match = _HEX_COLOUR.match(value.strip()) if value else None
    return f"#{match.group(1).lower()}" if match else ""


def _contrast(background: str) -> str:
    red, green, blue = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    return "#000000" if (red * 299 + green * 587 + blue * 114) / 1000 > 150 else "#ffffff"


def _numeric(section_id: str) -> tuple[int, str]:
    return (int(section_id), "") if section_id.isdigit() else (0, section_id)
