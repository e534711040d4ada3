"""The managed parts of a Google calendar as a plain value: what a section asks for, what Google
shows, what an archive leaves, and which parts (`Change`) differ between two of them.

Pure, like the planner that compares them (`mirror.py`); the mapping table stores the last applied
state as JSON (`CalendarState.to_json`), and `calendar_push.py` sends a list of changes to Google.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from bridge.calendars import CalendarListEntry
from bridge.config import PortalConfig
from bridge.markers import marker, neutralise
from bridge.selection import Section

ARCHIVE_PREFIX = "[archived] "
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


def _colour(value: str) -> str:
    match = _HEX_COLOUR.match(value.strip()) if value else None
    return f"#{match.group(1).lower()}" if match else ""


def _contrast(background: str) -> str:
    red, green, blue = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    return "#000000" if (red * 299 + green * 587 + blue * 114) / 1000 > 150 else "#ffffff"
