"""A portal's calendar sections as the emulator keeps them: the record, the book that finds them
by id and by (type, owner), their changes and their REST view (`calendar.section.get`). Changes
here deliver no events: `change_events.py` says which."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.sandbox.bitrix.values import as_bool, as_text


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Section:
    id: int
    cal_type: str
    owner_id: int
    created_by: int
    name: str = ""
    description: str = ""
    color: str = "#9dcf00"
    text_color: str = "#ffffff"
    export_allow: bool = True
    export_set: str = "all"
    gapi_calendar_id: str | None = None
    external_type: str = "local"
    date_create: str = field(default_factory=_now_text)
    timestamp_x: str = field(default_factory=_now_text)
    active: bool = True


class SectionBook:
    """Every section of a portal, deactivated ones too, in id order, and indexed by (type,
    owner) so that `calendar.section.get` costs its answer's size, not the portal's. A section's
    type and owner never change after `add`."""

    def __init__(self) -> None:
        self._by_id: dict[int, Section] = {}
        self._by_owner: dict[tuple[str, int], list[Section]] = {}

    def add(self, section: Section) -> None:
        """Ids only grow, so both the book and each owner's list stay in id order."""
        self._by_id[section.id] = section
        self._by_owner.setdefault((section.cal_type, section.owner_id), []).append(section)

    def get(self, section_id: int) -> Section | None:
        return self._by_id.get(section_id)

    def __getitem__(self, section_id: int) -> Section:
        return self._by_id[section_id]

    def values(self) -> list[Section]:
        """In id order."""
        return list(self._by_id.values())

    def owned_by(self, cal_type: str, owner_id: int) -> list[Section]:
        """The (type, owner)'s sections, deactivated ones too, in id order."""
        return list(self._by_owner.get((cal_type, owner_id), ()))


def apply_fields(section: Section, fields: Mapping[str, Any]) -> None:
    for key in ("name", "description", "color", "text_color", "external_type"):
        if key in fields and fields[key] is not None:
            setattr(section, key, as_text(fields[key]))
    if "gapi_calendar_id" in fields:
        section.gapi_calendar_id = as_text(fields["gapi_calendar_id"]) or None
    export = fields.get("export")
    if isinstance(export, Mapping):
        if "ALLOW" in export:
            section.export_allow = as_bool(export["ALLOW"])
        if "SET" in export:
            section.export_set = as_text(export["SET"])
    section.timestamp_x = _now_text()


def deactivate(section: Section) -> None:
    section.active = False
    section.timestamp_x = _now_text()


def section_view(section: Section) -> dict[str, Any]:
    return {
        "ID": str(section.id),
        "NAME": section.name,
        "GAPI_CALENDAR_ID": section.gapi_calendar_id,
        "DESCRIPTION": section.description,
        "COLOR": section.color,
        "TEXT_COLOR": section.text_color,
        "EXPORT": {"ALLOW": section.export_allow},
        "CAL_TYPE": section.cal_type,
        "OWNER_ID": str(section.owner_id),
        "CREATED_BY": str(section.created_by),
        "DATE_CREATE": section.date_create,
        "TIMESTAMP_X": section.timestamp_x,
        "CAL_DAV_CON": None,
        "SYNC_TOKEN": None,
        "PAGE_TOKEN": None,
        "EXTERNAL_TYPE": section.external_type,
        "ACCESS": {"G2": 13, f"U{section.created_by}": 19},
        "IS_COLLAB": False,
        "PERM": {
            "view_time": True,
            "view_title": True,
            "view_full": True,
            "add": True,
            "edit": True,
            "edit_section": True,
            "access": True,
        },
    }
