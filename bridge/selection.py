"""Which Bitrix24 sections a portal selects, read with as few REST requests as possible.

`calendar.section.get` cannot look a section up by id; it lists one (type, owner) at a time. So a
read of the selection is: list the owners (`all` groups or users are enumerated page by page,
every page after the first fetched together in `batch` requests), then one `calendar.section.get`
per owner set, 50 to a `batch`, plus `calendar.resource.list`. The `batch` requests of one read
overlap (`OVERLAP` in flight): each still waits for its slot in the portal's bucket, but no longer
for the answer before it, which matters once the portal takes longer to answer a batch than the
bucket's spacing (0.5 s at 2 requests a second).

Listings depend on the caller's rights, so they are asked for as admin (`IS_ADMIN=Y`,
`ADMIN_MODE`). Still, an owner missing from an `all` listing proves nothing about its sections:
`confirm_gone` reads them directly before anything mapped to them is retired.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from bridge.bitrix import BitrixAccessDenied, BitrixBadRequest, BitrixClient, BitrixError
from bridge.bitrix_batch import batch_command, batch_rows
from bridge.config import MirrorConfig

PAGE = 50
OVERLAP = 4  # `batch` requests of one read in flight at once; the bucket still paces them
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
    owner_unnamed: bool = False  # no listing named the owner: keep the calendar's summary
    google_sync: str = ""  # how Bitrix24's own Google sync already mirrors it; "" when it does not


@dataclass
class Selection:
    sections: dict[str, Section] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)  # section id → why it is not mirrored
    read: set[tuple[str, str]] = field(default_factory=set)  # (type, owner) sets read directly
    # Mapped sections whose owner vanished from a listing and whose direct read failed for good
    # (section id → why): neither seen nor confirmed gone, so they must not be retired.
    unconfirmed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mapped:
    """A section as the mapping table knows it."""

    section_id: str
    type: str
    owner_id: str


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
        f"s{i}": batch_command("calendar.section.get", {"type": k, "ownerId": o})
        for i, (k, o) in enumerate(sets)
    }
    if mirror.resources:
        commands["resources"] = "calendar.resource.list"
    if not commands:
        return Selection()
    answer = client.batch(commands, overlap=OVERLAP)
    if answer.errors:
        raise SectionLookupFailed(next(iter(answer.errors.values())))

    selection = Selection(read=set(sets))
    resource_rows: dict[str, dict[str, object]] = {}
    for i, (kind, owner) in enumerate(sets):
        for row in batch_rows(answer.results.get(f"s{i}")):
            if kind == "resource":
                resource_rows[str(row.get("ID"))] = row
            elif str(row.get("CAL_TYPE")) == kind:
                name = owners.get(kind, {}).get(owner, "")
                section = _section(row, name)
                if kind in ("group", "user") and not name and "{owner_name}" in mirror.name:
                    section = replace(section, owner_unnamed=True)
                _add(selection, mirror, section)
    # calendar.resource.list is the authority on which resources exist; section.get adds colours.
    for row in batch_rows(answer.results.get("resources")):
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
    if section.google_sync and not mirror.include_google_synced:
        selection.excluded[section.id] = (
            f"Bitrix24 already syncs this section with Google itself ({section.google_sync}; "
            "include_google_synced: false)"
        )
        return
    selection.sections[section.id] = section


def vanished(selection: Selection, mirror: MirrorConfig, mapped: Iterable[Mapped]) -> list[Mapped]:
    """Mapped sections absent from `selection` only because their owner was missing from an
    `all` listing (rights, a deactivated owner, a listing glitch): nothing read them directly.
    Sections the config excludes (type flag off, owner not in an explicit list) and sections
    whose (type, owner) was read and came back without them are not among these."""
    return [
        m
        for m in mapped
        if m.section_id not in selection.sections
        and m.section_id not in selection.excluded
        and m.type in ("group", "user")
        and getattr(mirror, f"{m.type}s") == "all"
        and (m.type, m.owner_id) not in selection.read
    ]


def confirm_gone(
    client: BitrixClient, mirror: MirrorConfig, selection: Selection, candidates: Sequence[Mapped]
) -> list[str]:
    """Read each candidate's (type, owner) directly, one `calendar.section.get` per distinct
    pair, batched. A section found there is alive: it joins `selection.sections` (from that
    read) and is kept. One whose read is refused (400 "Access denied", 403) goes to
    `selection.unconfirmed`. Returns the ids confirmed gone. Any other failure (transient, time
    budget, credentials) raises `SectionLookupFailed`, so nothing is retired on a guess."""
    owners = sorted({(m.type, m.owner_id) for m in candidates})
    if not owners:
        return []
    answer = client.batch(
        {
            f"o{i}": batch_command("calendar.section.get", {"type": kind, "ownerId": owner})
            for i, (kind, owner) in enumerate(owners)
        },
        overlap=OVERLAP,
    )
    for error in answer.errors.values():
        if not isinstance(error, BitrixBadRequest | BitrixAccessDenied):
            raise SectionLookupFailed(error)
    wanted = {m.section_id for m in candidates}
    failed: dict[tuple[str, str], str] = {}
    for i, pair in enumerate(owners):
        if f"o{i}" in answer.errors:
            failed[pair] = str(answer.errors[f"o{i}"])
            continue
        selection.read.add(pair)
        for row in batch_rows(answer.results.get(f"o{i}")):
            if str(row.get("ID")) in wanted and str(row.get("CAL_TYPE")) == pair[0]:
                unnamed = "{owner_name}" in mirror.name
                _add(selection, mirror, replace(_section(row, ""), owner_unnamed=unnamed))
    gone = []
    for m in candidates:
        if m.section_id in selection.sections or m.section_id in selection.excluded:
            continue
        reason = failed.get((m.type, m.owner_id))
        if reason is None:
            gone.append(m.section_id)
        else:
            selection.unconfirmed[m.section_id] = (
                f"{m.type} {m.owner_id} is missing from the listing and its direct read "
                f"failed ({reason}); the calendar is kept"
            )
    return gone


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
    # Without `params[IS_ADMIN]=Y` the listing is filtered by the caller's rights and hides
    # secret groups (api-reference/sonet-group/socialnetwork-api-workgroup-list.md, "Parameter
    # params"); a non-admin's Y is ignored.
    "group": (
        "socialnetwork.api.workgroup.list",
        {"select": ["ID", "NAME"], "filter": {"ACTIVE": "Y"}, "params": {"IS_ADMIN": "Y"}},
    ),
    # `ADMIN_MODE` lists any user, extranet users too (api-reference/user/user-get.md, whose
    # footnote spells it `'ADMIN_MODE': 'True'`).
    "user": ("user.get", {"FILTER": {"ACTIVE": "true"}, "ADMIN_MODE": "True"}),
}


def _list_all(
    client: BitrixClient, listings: dict[str, tuple[str, dict[str, object]]]
) -> dict[str, dict[str, str]]:
    """Every row of each listing: the first pages in one batch, all the other pages in the next."""
    first = client.batch(
        {
            kind: batch_command(method, {**params, "start": 0})
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
                rest[f"{kind}:{start}"] = batch_command(method, {**params, "start": start})
    if rest:
        more = client.batch(rest, overlap=OVERLAP)
        if more.errors:
            raise SectionLookupFailed(next(iter(more.errors.values())))
        for key, value in more.results.items():
            pages[key.split(":", 1)[0]].append(value)
    return {kind: _names(kind, results) for kind, results in pages.items()}


def _names(kind: str, pages: list[object]) -> dict[str, str]:
    names: dict[str, str] = {}
    for page in pages:
        rows = page.get("workgroups") if isinstance(page, dict) and kind == "group" else page
        for row in batch_rows(rows):
            owner = str(row.get("ID", row.get("id", "")))
            if not owner.isdigit():
                continue
            if kind == "group":
                names[owner] = str(row.get("NAME", row.get("name", "")) or "")
            else:
                full = " ".join(str(row.get(k) or "") for k in ("NAME", "LAST_NAME")).strip()
                names[owner] = full or str(row.get("EMAIL") or "") or f"user {owner}"
    return names


def _section(row: dict[str, object], owner_name: str) -> Section:
    def text(key: str) -> str:
        value = row.get(key)
        return "" if value is None or value is False else str(value)

    kind = text("CAL_TYPE")
    return Section(
        id=text("ID"),
        type=kind,
        owner_id=text("OWNER_ID") or "0",
        name=text("NAME"),
        description=text("DESCRIPTION"),
        color=text("COLOR"),
        text_color=text("TEXT_COLOR"),
        owner_name=owner_name or SHARED_OWNER_LABELS.get(kind, ""),
        google_sync=_google_sync(text("GAPI_CALENDAR_ID"), text("EXTERNAL_TYPE")),
    )


# `EXTERNAL_TYPE` is the "Provider type for synchronization"
# (api-reference/calendar/calendar-section-get.md). The calendar module's values: `local` (none;
# CalDAV connections too), `icloud`, `office365`, `archive`, and the Google ones below, one per
# Google access role (module source modules/calendar/lib/sync/google/dictionary.php,
# ACCESS_ROLE_TO_EXTERNAL_TYPE). Only a Google sync can loop with the bridge's calendars.
GOOGLE_EXTERNAL_TYPES = frozenset(
    {"google", "google_readonly", "google_write_read", "google_freebusy"}
)


def _google_sync(gapi_calendar_id: str, external_type: str) -> str:
    if external_type.lower() in GOOGLE_EXTERNAL_TYPES:
        return f"EXTERNAL_TYPE {external_type}"
    if gapi_calendar_id:
        return "GAPI_CALENDAR_ID is set"
    return ""
