"""Which Bitrix24 sections a portal selects, read with as few REST requests as possible.

`calendar.section.get` cannot look a section up by id; it lists one (type, owner) at a time. So a
read of the selection is: list the owners (`all` groups or users are enumerated page by page,
every page after the first fetched together in `batch` requests), then one `calendar.section.get`
per owner set, 50 to a `batch`, plus `calendar.resource.list`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from bridge.bitrix import BitrixClient, BitrixError
from bridge.config import MirrorConfig

PAGE = 50
SHARED_OWNER_LABELS = {
    "company_calendar": "Company",
    "location": "Meeting rooms",
    "resource": "Resources",
}


@dataclass(frozen=True)
class Section:
    id: str
    type: str
    owner_id: str
    name: str
    description: str = ""
    color: str = ""
    text_color: str = ""
    owner_name: str = ""
    google_synced: bool = False  # Bitrix24's own Google sync already mirrors it


@dataclass
class Selection:
    sections: dict[str, Section] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)  # section id → why it is not mirrored


class SectionLookupFailed(Exception):
    """Bitrix24 refused one of the reads that make up the portal's selection."""

    def __init__(self, error: BitrixError) -> None:
        super().__init__(str(error))
        self.error = error


def resolve_sections(client: BitrixClient, mirror: MirrorConfig) -> Selection:
    owners = _owners(client, mirror)
    sets = [
        (kind, "0")
        for kind in ("company_calendar", "location", "resource")
        if getattr(mirror, _FLAG[kind])
    ]
    sets += [("group", group_id) for group_id in owners.get("group", {})]
    sets += [("user", user_id) for user_id in owners.get("user", {})]
    commands = {
        f"s{i}": _command("calendar.section.get", {"type": k, "ownerId": o})
        for i, (k, o) in enumerate(sets)
    }
    if mirror.resources:
        commands["resources"] = "calendar.resource.list"
    if not commands:
        return Selection()
    answer = client.batch(commands)
    if answer.errors:
        raise SectionLookupFailed(next(iter(answer.errors.values())))

    selection = Selection()
    resource_rows: dict[str, dict[str, object]] = {}
    for i, (kind, owner) in enumerate(sets):
        for row in _rows(answer.results.get(f"s{i}")):
            if kind == "resource":
                resource_rows[str(row.get("ID"))] = row
            elif str(row.get("CAL_TYPE")) == kind:
                _add(selection, mirror, _section(row, owners.get(kind, {}).get(owner, "")))
    # calendar.resource.list is the authority on which resources exist; section.get adds colours.
    for row in _rows(answer.results.get("resources")):
        resource_id = str(row.get("ID", ""))
        if resource_id.isdigit():
            merged = {
                **row,
                **resource_rows.get(resource_id, {}),
                "CAL_TYPE": "resource",
                "OWNER_ID": "0",
            }
            _add(selection, mirror, _section(merged, ""))
    return selection


_FLAG = {"company_calendar": "company", "location": "locations", "resource": "resources"}


def _add(selection: Selection, mirror: MirrorConfig, section: Section) -> None:
    if section.google_synced and not mirror.include_google_synced:
        selection.excluded[section.id] = (
            "Bitrix24 already syncs this section with Google itself (include_google_synced: false)"
        )
        return
    selection.sections[section.id] = section


def _owners(client: BitrixClient, mirror: MirrorConfig) -> dict[str, dict[str, str]]:
    """Selected owner ids → display names, per kind ("group", "user")."""
    needs_names = "{owner_name}" in mirror.name
    listings: dict[str, tuple[str, dict[str, object]]] = {}
    for kind, selection in (("group", mirror.groups), ("user", mirror.users)):
        if selection == "all" or (selection and needs_names):
            listings[kind] = _LISTINGS[kind]
    found = _list_all(client, listings) if listings else {}
    owners: dict[str, dict[str, str]] = {}
    for kind, selection in (("group", mirror.groups), ("user", mirror.users)):
        if selection == "all":
            owners[kind] = found.get(kind, {})
        else:
            names = found.get(kind, {})
            owners[kind] = {str(owner): names.get(str(owner), "") for owner in selection}
    return owners


_LISTINGS: dict[str, tuple[str, dict[str, object]]] = {
    "group": (
        "socialnetwork.api.workgroup.list",
        {"select": ["ID", "NAME"], "filter": {"ACTIVE": "Y"}},
    ),
    "user": ("user.get", {"FILTER": {"ACTIVE": "true"}}),
}


def _list_all(
    client: BitrixClient, listings: dict[str, tuple[str, dict[str, object]]]
) -> dict[str, dict[str, str]]:
    """Every row of each listing: the first pages in one batch, all the other pages in the next."""
    first = client.batch(
        {
            kind: _command(method, {**params, "start": 0})
            for kind, (method, params) in listings.items()
        }
    )
    if first.errors:
        raise SectionLookupFailed(next(iter(first.errors.values())))
    pages = {kind: [first.results.get(kind)] for kind in listings}
    rest: dict[str, str] = {}
    for kind, (method, params) in listings.items():
        total = first.totals.get(kind, 0)
        if kind in first.next_starts:
            for start in range(PAGE, total, PAGE):
                rest[f"{kind}:{start}"] = _command(method, {**params, "start": start})
    if rest:
        more = client.batch(rest)
        if more.errors:
            raise SectionLookupFailed(next(iter(more.errors.values())))
        for key, value in more.results.items():
            pages[key.split(":", 1)[0]].append(value)
    return {kind: _names(kind, results) for kind, results in pages.items()}


def _names(kind: str, pages: list[object]) -> dict[str, str]:
    names: dict[str, str] = {}
    for page in pages:
        rows = page.get("workgroups") if isinstance(page, dict) and kind == "group" else page
        for row in _rows(rows):
            owner = str(row.get("ID", row.get("id", "")))
            if not owner.isdigit():
                continue
            if kind == "group":
                names[owner] = str(row.get("NAME", row.get("name", "")) or "")
            else:
                full = " ".join(str(row.get(k) or "") for k in ("NAME", "LAST_NAME")).strip()
                names[owner] = full or str(row.get("EMAIL") or "") or f"user {owner}"
    return names


def _command(method: str, params: Mapping[str, object]) -> str:
    """`method?query` with PHP bracket keys, as `batch` expects."""
    return f"{method}?{urlencode(_flatten(params))}" if params else method


def _flatten(params: Mapping[str, object], prefix: str = "") -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            pairs.extend(_flatten(value, name))
        elif isinstance(value, list):
            pairs.extend(_flatten({str(i): item for i, item in enumerate(value)}, name))
        else:
            pairs.append((name, str(value)))
    return pairs


def _rows(value: object) -> list[dict[str, object]]:
    if isinstance(value, list):
        return [row for row in value if isinstance(row, dict)]
    if isinstance(value, dict):
        return [row for row in value.values() if isinstance(row, dict)]
    return []


def _section(row: dict[str, object], owner_name: str) -> Section:
    def text(key: str) -> str:
        value = row.get(key)
        return "" if value is None or value is False else str(value)

    kind = text("CAL_TYPE")
    external = text("EXTERNAL_TYPE")
    return Section(
        id=text("ID"),
        type=kind,
        owner_id=text("OWNER_ID") or "0",
        name=text("NAME"),
        description=text("DESCRIPTION"),
        color=text("COLOR"),
        text_color=text("TEXT_COLOR"),
        owner_name=owner_name or SHARED_OWNER_LABELS.get(kind, ""),
        google_synced=bool(text("GAPI_CALENDAR_ID")) or external not in ("", "local"),
    )
