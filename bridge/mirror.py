"""What Google should look like for a section, and the step that makes it so.

Guarantee: one Google calendar per (portal, section). Before `calendars.insert` the mapping row
is committed in state `creating` with a fresh nonce, and the insert carries a marker naming the
portal, section and nonce in the calendar's description. If the insert's outcome is unknown (a
timeout, a dropped connection, a 5xx, a crash before the mapping was updated), the next attempt
looks for the marker in the owner's calendar list and adopts what it finds before it inserts
again; twins left by a transport that re-sent the POST are deleted. The unique constraint on
(portal, section) stops two rows from ever existing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bridge.bitrix import BitrixClient, BitrixError
from bridge.config import MirrorConfig, PortalConfig
from bridge.google_calendar import (
    TRANSIENT_ERRORS,
    CalendarGateway,
    CalendarSpec,
    OwnedCalendar,
)
from bridge.models import CalendarMapping, MappingState, utcnow

_MARKER = re.compile(r"\[bx24-bridge portal=(\S+) section=(\d+) nonce=([0-9a-f]+)\]")


@dataclass(frozen=True)
class Section:
    id: str
    type: str
    owner_id: str
    name: str
    description: str = ""
    color: str = ""
    text_color: str = ""


class SectionLookupFailed(Exception):
    """Bitrix24 refused one of the reads that make up the portal's selection."""

    def __init__(self, error: BitrixError) -> None:
        super().__init__(str(error))
        self.error = error


def owner_sets(mirror: MirrorConfig, client: BitrixClient | None = None) -> list[tuple[str, str]]:
    """The (type, ownerId) pairs whose sections the portal selects; `all` asks Bitrix24."""
    sets: list[tuple[str, str]] = []
    if mirror.company:
        sets.append(("company_calendar", "0"))
    if mirror.resources:
        sets.append(("resource", "0"))
    for kind, selection in (("group", mirror.groups), ("user", mirror.users)):
        if selection == "all":
            owners = list_owners(client, kind) if client is not None else []
        else:
            owners = [str(owner) for owner in selection]
        sets.extend((kind, owner) for owner in owners)
    return sets


def list_owners(client: BitrixClient, kind: str) -> list[str]:
    """Ids of every active workgroup or user, following the 50-per-page `next`."""
    if kind == "group":
        method, params = (
            "socialnetwork.api.workgroup.list",
            {"select": ["ID"], "filter": {"ACTIVE": "Y"}},
        )
    else:
        method, params = "user.get", {"FILTER": {"ACTIVE": True}}
    ids: list[str] = []
    start: int | None = 0
    while start is not None:
        envelope = client.call(method, {**params, "start": start})
        result = envelope.get("result")
        rows = result.get("workgroups", []) if isinstance(result, dict) else result
        for row in _rows(rows):
            owner = str(row.get("ID", row.get("id", "")))
            if owner.isdigit():
                ids.append(owner)
        next_start = envelope.get("next")
        start = (
            int(next_start)
            if isinstance(next_start, int | str) and str(next_start).isdigit()
            else None
        )
    return ids


def resolve_sections(client: BitrixClient, mirror: MirrorConfig) -> dict[str, Section]:
    """Every selected section, by id, read in one `batch` (split at 50 commands)."""
    sets = owner_sets(mirror, client)
    commands = {
        f"s{i}": f"calendar.section.get?type={kind}&ownerId={owner}"
        for i, (kind, owner) in enumerate(sets)
    }
    if mirror.resources:
        commands["resources"] = "calendar.resource.list"
    if not commands:
        return {}
    answer = client.batch(commands)
    if answer.errors:
        raise SectionLookupFailed(next(iter(answer.errors.values())))
    sections: dict[str, Section] = {}
    resource_rows: dict[str, dict[str, object]] = {}
    for i, (kind, _owner) in enumerate(sets):
        for row in _rows(answer.results.get(f"s{i}")):
            if kind == "resource":
                resource_rows[str(row.get("ID"))] = row
                continue
            section = _section_from_row(row)
            if section.type == kind:
                sections[section.id] = section
    # calendar.resource.list is the authority on which resources exist; section.get adds colours.
    for row in _rows(answer.results.get("resources")):
        rid = str(row.get("ID", ""))
        if rid.isdigit():
            merged = {**row, **resource_rows.get(rid, {}), "CAL_TYPE": "resource", "OWNER_ID": "0"}
            sections[rid] = _section_from_row(merged)
    return sections


def _rows(value: object) -> list[dict[str, object]]:
    if isinstance(value, list):
        return [row for row in value if isinstance(row, dict)]
    if isinstance(value, dict):
        return [row for row in value.values() if isinstance(row, dict)]
    return []


def _section_from_row(row: dict[str, object]) -> Section:
    def text(key: str) -> str:
        value = row.get(key)
        return "" if value is None or value is False else str(value)

    return Section(
        id=text("ID"),
        type=text("CAL_TYPE"),
        owner_id=text("OWNER_ID") or "0",
        name=text("NAME"),
        description=text("DESCRIPTION"),
        color=text("COLOR"),
        text_color=text("TEXT_COLOR"),
    )


def marker(portal_key: str, section_id: str, nonce: str) -> str:
    return f"[bx24-bridge portal={portal_key} section={section_id} nonce={nonce}]"


def desired_calendar(portal: PortalConfig, section: Section, nonce: str) -> CalendarSpec:
    summary = portal.mirror.name.format_map(
        {"name": section.name, "type": section.type, "owner_id": section.owner_id, "id": section.id}
    )
    lines = [section.description.strip()] if section.description.strip() else []
    lines.append(marker(portal.key, section.id, nonce))
    return CalendarSpec(
        summary=summary.strip() or f"Bitrix24 section {section.id}",
        description="\n\n".join(lines),
        time_zone=portal.google.time_zone,
    )


def find_marked(
    calendars: Iterable[OwnedCalendar], portal_key: str, section_id: str
) -> list[tuple[OwnedCalendar, str]]:
    """Calendars whose description carries our marker for this section, with their nonces."""
    found = []
    for calendar in calendars:
        for match in _MARKER.finditer(calendar.description):
            if match.group(1) == portal_key and match.group(2) == section_id:
                found.append((calendar, match.group(3)))
                break
    return found


def converge_section(
    engine: Engine, portal: PortalConfig, section: Section, google: CalendarGateway
) -> str:
    """Make the section's Google calendar exist exactly once and match; returns what was done."""
    mapping, fresh = _mapping_for(engine, portal.key, section)
    if mapping.state == MappingState.CREATING:
        return _create_once(engine, portal, section, mapping, google, fresh=fresh)
    spec = desired_calendar(portal, section, mapping.nonce)
    changes = {}
    if mapping.summary != spec.summary:
        changes["summary"] = spec.summary
    if mapping.time_zone != spec.time_zone:
        changes["timeZone"] = spec.time_zone
    if not changes:
        return f"calendar {mapping.google_calendar_id} is up to date"
    assert mapping.google_calendar_id is not None
    google.patch_calendar(mapping.google_calendar_id, changes)
    _save(engine, mapping, summary=spec.summary, time_zone=spec.time_zone)
    return f"updated calendar {mapping.google_calendar_id}: {', '.join(sorted(changes))}"


def _create_once(
    engine: Engine,
    portal: PortalConfig,
    section: Section,
    mapping: CalendarMapping,
    google: CalendarGateway,
    *,
    fresh: bool,
) -> str:
    spec = desired_calendar(portal, section, mapping.nonce)
    if not fresh:
        # An earlier attempt may have created it and died before recording the id.
        adopted = _adopt_marked(engine, portal, section, mapping, google, spec)
        if adopted:
            return adopted
    try:
        calendar_id = google.insert_calendar(spec)
    except TRANSIENT_ERRORS:
        adopted = _adopt_marked(engine, portal, section, mapping, google, spec)
        if adopted:
            return adopted
        raise
    _save(
        engine,
        mapping,
        state=MappingState.ACTIVE,
        google_calendar_id=calendar_id,
        summary=spec.summary,
        time_zone=spec.time_zone,
    )
    return f"created calendar {calendar_id}"


def _adopt_marked(
    engine: Engine,
    portal: PortalConfig,
    section: Section,
    mapping: CalendarMapping,
    google: CalendarGateway,
    spec: CalendarSpec,
) -> str | None:
    found = find_marked(google.owned_calendars(), portal.key, section.id)
    if not found:
        return None
    found.sort(key=lambda pair: pair[1] != mapping.nonce)  # ours first, then older attempts
    keep, _nonce = found[0]
    for twin, _ in found[1:]:
        google.delete_calendar(twin.id)
    _save(
        engine,
        mapping,
        state=MappingState.ACTIVE,
        google_calendar_id=keep.id,
        summary=keep.summary,
        time_zone=None,
    )
    note = f" and removed {len(found) - 1} duplicate(s)" if len(found) > 1 else ""
    # Bring it in line (summary may be stale, time zone unknown) through the normal path.
    converge_result = converge_section(engine, portal, section, google)
    return f"adopted calendar {keep.id}{note}; {converge_result}"


def _mapping_for(engine: Engine, portal_key: str, section: Section) -> tuple[CalendarMapping, bool]:
    with Session(engine, expire_on_commit=False) as session:
        existing = session.exec(
            select(CalendarMapping).where(
                CalendarMapping.portal_key == portal_key, CalendarMapping.section_id == section.id
            )
        ).first()
        if existing is not None:
            return existing, False
        mapping = CalendarMapping(
            portal_key=portal_key,
            section_id=section.id,
            section_type=section.type,
            owner_id=section.owner_id,
            nonce=uuid.uuid4().hex,
        )
        session.add(mapping)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            raced = session.exec(
                select(CalendarMapping).where(
                    CalendarMapping.portal_key == portal_key,
                    CalendarMapping.section_id == section.id,
                )
            ).one()
            return raced, False
        return mapping, True


def _save(engine: Engine, mapping: CalendarMapping, **values: object) -> None:
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(CalendarMapping, mapping.id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)
            setattr(mapping, name, value)
        row.updated_at = utcnow()
        session.add(row)
        session.commit()


ARCHIVE_PREFIX = "[archived] "


def retire_section(
    engine: Engine, portal: PortalConfig, section_id: str, google: CalendarGateway
) -> str | None:
    """Apply the portal's `on_delete` to a section that is gone; None if it was never mirrored."""
    with Session(engine, expire_on_commit=False) as session:
        mapping = session.exec(
            select(CalendarMapping).where(
                CalendarMapping.portal_key == portal.key, CalendarMapping.section_id == section_id
            )
        ).first()
    if mapping is None or mapping.state == MappingState.ARCHIVED:
        return None
    calendar_id = mapping.google_calendar_id
    policy = portal.mirror.on_delete
    if calendar_id and policy == "delete":
        google.delete_calendar(calendar_id)
    elif calendar_id and policy == "archive":
        summary = ARCHIVE_PREFIX + (mapping.summary or "").removeprefix(ARCHIVE_PREFIX)
        google.patch_calendar(calendar_id, {"summary": summary})
        _save(engine, mapping, state=MappingState.ARCHIVED, summary=summary)
        return f"archived calendar {calendar_id}"
    with Session(engine) as session:
        row = session.get(CalendarMapping, mapping.id)
        if row is not None:
            session.delete(row)
            session.commit()
    if not calendar_id:
        return "forgot an unfinished mapping"
    return (
        f"deleted calendar {calendar_id}"
        if policy == "delete"
        else f"kept calendar {calendar_id}, unmapped"
    )
