"""What Google should look like for a portal's sections, and the plan that gets it there.

This is the decide step, with no I/O: from the selected sections, our mappings and (when a
reconciliation has read it) what Google shows, it plans one action per section that needs one.
`apply.py` carries the plan out. Both the worker's event path and `bridge sync` use it, so a lost
event and a missed one end in the same state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from bridge.config import PortalConfig
from bridge.google_calendar import CalendarListEntry
from bridge.models import CalendarMapping, MappingState
from bridge.selection import Section

ARCHIVE_PREFIX = "[archived] "
_MARKER = re.compile(r"\[bx24-bridge portal=(\S+) section=(\d+) nonce=([0-9a-f]+)\]")
_HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6})$")


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

    def differences(self, current: CalendarState) -> list[str]:
        """Names of what differs from `current` (what Google has, or what was last applied)."""
        changed = [
            name
            for name in ("summary", "description", "time_zone", "hidden")
            if getattr(self, name) != getattr(current, name)
        ]
        if self.background and (self.background, self.foreground) != (
            current.background,
            current.foreground,
        ):
            changed.append("colour")
        if dict(self.acl) != dict(current.acl):
            changed.append("sharing")
        return changed


# What a calendar is taken to have when nothing is known: every field then differs.
NOTHING_APPLIED = CalendarState(summary="", description="", time_zone="")


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
    mapping: CalendarMapping | None = None
    calendar_id: str | None = None
    changes: tuple[str, ...] = ()
    detail: str = ""

    def describe(self, portal_key: str) -> str:
        what = {
            ActionKind.CREATE: "create calendar",
            ActionKind.ADOPT: f"adopt calendar {self.calendar_id}",
            ActionKind.UPDATE: f"update {', '.join(self.changes)}",
            ActionKind.RECREATE: "recreate calendar (gone from Google)",
            ActionKind.RETIRE: self.detail,
        }[self.kind]
        name = f" {self.section.name!r}" if self.section else ""
        extra = f" ({self.detail})" if self.detail and self.kind != ActionKind.RETIRE else ""
        return f"{portal_key}: section {self.section_id}{name}: {what}{extra}"

    @property
    def removes_calendar(self) -> bool:
        return self.kind == ActionKind.RETIRE and self.detail.split(" ", 1)[0] in (
            "delete",
            "archive",
        )


def marker(portal_key: str, section_id: str, nonce: str) -> str:
    return f"[bx24-bridge portal={portal_key} section={section_id} nonce={nonce}]"


def read_marker(description: str) -> tuple[str, str, str] | None:
    """(portal key, section id, nonce) of the marker in a calendar's description, if any."""
    match = _MARKER.search(description or "")
    return (match.group(1), match.group(2), match.group(3)) if match else None


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
    lines = [section.description.strip()] if section.description.strip() else []
    lines.append(marker(portal.key, section.id, nonce))
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
    mapping: CalendarMapping | None,
    google: Mapping[str, CalendarListEntry] | None = None,
    marked: Sequence[CalendarListEntry] = (),
) -> Action | None:
    """The one action a section needs, or None. `google` (calendar id → view) and `marked`
    (calendars carrying this section's marker) come from a reconciliation's read of Google; the
    event path passes neither and trusts what was last applied."""
    if section is None:
        if mapping is None or mapping.state == MappingState.ARCHIVED:
            return None
        policy = portal.mirror.on_delete
        verb = {
            "delete": "delete calendar",
            "archive": "archive calendar",
            "keep": "keep calendar, forget it",
        }
        return Action(
            ActionKind.RETIRE,
            section_id,
            mapping=mapping,
            calendar_id=mapping.google_calendar_id,
            detail=verb[policy],
        )
    if mapping is None:
        if marked:
            return Action(ActionKind.ADOPT, section_id, section=section, calendar_id=marked[0].id)
        return Action(ActionKind.CREATE, section_id, section=section)
    if mapping.state == MappingState.CREATING or not mapping.google_calendar_id:
        return Action(ActionKind.CREATE, section_id, section=section, mapping=mapping)
    desired = desired_state(portal, section, mapping.nonce)
    applied = CalendarState.from_json(mapping.applied)
    if section.owner_unnamed and applied is not None:  # no listing named the owner this time
        desired = replace(desired, summary=applied.summary.removeprefix(ARCHIVE_PREFIX))
    if google is not None:
        view = google.get(mapping.google_calendar_id)
        if view is None:
            return Action(
                ActionKind.RECREATE,
                section_id,
                section=section,
                mapping=mapping,
                calendar_id=mapping.google_calendar_id,
            )
        current = observed_state(view, applied)
    else:
        current = applied or NOTHING_APPLIED
    changes = desired.differences(current)
    if mapping.state == MappingState.ARCHIVED:
        changes.insert(0, "unarchive")
    if not changes:
        return None
    return Action(
        ActionKind.UPDATE,
        section_id,
        section=section,
        mapping=mapping,
        calendar_id=mapping.google_calendar_id,
        changes=tuple(changes),
    )


def plan_portal(
    portal: PortalConfig,
    sections: Mapping[str, Section],
    mappings: Iterable[CalendarMapping],
    google: Sequence[CalendarListEntry],
) -> list[Action]:
    """Everything a full reconciliation would do, in section-id order."""
    by_section = {m.section_id: m for m in mappings}
    by_id = {view.id: view for view in google}
    marked: dict[str, list[CalendarListEntry]] = {}
    for view in google:
        found = read_marker(view.description)
        if found and found[0] == portal.key:
            marked.setdefault(found[1], []).append(view)
    actions = []
    for section_id in sorted(set(sections) | set(by_section), key=_numeric):
        mapping = by_section.get(section_id)
        action = plan_section(
            portal, section_id, sections.get(section_id), mapping, by_id, marked.get(section_id, ())
        )
        if action is not None:
            actions.append(action)
    return actions


def guard_deletions(portal: PortalConfig, actions: Sequence[Action], mapped: int) -> str | None:
    """Why the plan must not run unforced: it would remove too many of the portal's calendars."""
    removing = sum(1 for action in actions if action.removes_calendar)
    guard = portal.mirror.delete_guard
    if removing > guard.max_count and removing > guard.max_share * max(mapped, 1):
        return (
            f"would delete or archive {removing} of {mapped} calendars, more than "
            f"{guard.max_count} and more than {guard.max_share:.0%}; nothing was removed "
            f"(check the selection, then run `bridge sync --portal {portal.key} --force`)"
        )
    return None


def _colour(value: str) -> str:
    match = _HEX_COLOUR.match(value.strip()) if value else None
    return f"#{match.group(1).lower()}" if match else ""


def _contrast(background: str) -> str:
    red, green, blue = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    return "#000000" if (red * 299 + green * 587 + blue * 114) / 1000 > 150 else "#ffffff"


def _numeric(section_id: str) -> tuple[int, str]:
    return (int(section_id), "") if section_id.isdigit() else (0, section_id)
