"""The `calendar.event.*` REST methods of the Bitrix24 emulator
(api-reference/calendar/calendar-event/).

They run through `methods.dispatch` like the section methods, so the `calendar` scope, the bucket,
the method time budget and `batch` apply alike. A caller sees entries of the sections it can see:
active ones, as `calendar.section.get` shows them (`rights.py` models no per-section access).
Changes queue ONCALENDARENTRY* deliveries like section changes queue theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta

from bridge.sandbox.bitrix.change_events import entry_events
from bridge.sandbox.bitrix.entries import (
    Change,
    Entry,
    EntryError,
    create,
    delete,
    edit_occurrence,
    occurrences,
    overlaps,
    split_series,
    start_day,
    update,
)
from bridge.sandbox.bitrix.entry_input import optional_attrs, parse_when
from bridge.sandbox.bitrix.entry_view import entry_row, parse_date, render_datetime
from bridge.sandbox.bitrix.rest import Call, Outcome, calendar_error, required
from bridge.sandbox.bitrix.state import Portal
from bridge.sandbox.bitrix.values import as_int, as_list, as_text

_BAD_SECTION = "You specified an invalid calendar section ID or the user does not have access to it"


def visible_entry(portal: Portal, entry_id: int) -> Entry | None:
    entry = portal.entries.live(entry_id)
    section = None if entry is None else portal.sections.get(entry.section_id)
    return entry if section is not None and section.active else None


def entry_view(portal: Portal, entry: Entry, occurrence: Any = None) -> dict[str, Any]:
    section = portal.sections[entry.section_id]
    host = portal.users.get(entry.created_by, {})
    return entry_row(
        entry,
        cal_type=section.cal_type,
        owner_id=section.owner_id,
        locale=portal.entries.locale,
        host_name=" ".join(p for p in (host.get("NAME"), host.get("LAST_NAME")) if p),
        occurrence=occurrence,
    )


def queue_changes(call: Call, changes: Iterable[Change]) -> None:
    connector = as_text(call.params.get("auth_connector"))
    for action, entry_id in changes:
        call.jobs.extend(
            entry_events(
                call.portal, action, entry_id, call.base_url, user_id=call.user_id,
                connector=connector,
            )
        )  # fmt: skip


def _get_by_id(call: Call) -> Outcome:
    entry_id = as_int(call.params.get("id"))
    if entry_id is None:
        raise required("id", "calendar.event.getbyid")
    entry = visible_entry(call.portal, entry_id)
    if entry is not None:
        return Outcome(entry_view(call.portal, entry))
    # The page lists no "not found" error; its one other error is "Access denied", which the
    # default plays; `missing_entry: "null"` answers `result: null` instead [inferred].
    if call.portal.entries.missing_entry == "null":
        return Outcome(None)
    raise calendar_error("Access denied")


def _get(call: Call) -> Outcome:
    """`type`* and `ownerId`* (`""` reads as 0, the company calendar example), `from` / `to`
    (default now -1 month / +3 months), `section[]` (calendar-event-get.md). The page's error
    texts are two translations of the module's one message; the other calendar pages' wording
    is used."""
    method = "calendar.event.get"
    cal_type, owner_id = _type_and_owner(call, method)
    first, last = _window(call)
    wanted = {s for s in (as_int(v) for v in as_list(call.params.get("section"))) if s}
    portal = call.portal
    rows: list[tuple[int, int, dict[str, Any]]] = []
    # Only the owner's sections are read (the indexes of sections.py and entries.py); the sort
    # below puts the rows in the same order whatever order they were found in.
    for section in portal.sections.owned_by(cal_type, owner_id):
        if not section.active or (wanted and section.id not in wanted):
            continue
        for entry in portal.entries.in_section(section.id):
            if entry.deleted:
                continue
            for index, when in _in_window(entry, first, last, portal.entries.expand_recurrence):
                occurrence = None if index is None else (index, when)
                row = entry_view(portal, entry, occurrence)
                rows.append((int(row["DATE_FROM_TS_UTC"]), entry.id, row))
    rows.sort(key=lambda item: item[:2])
    return Outcome([row for _, _, row in rows])


def _in_window(
    entry: Entry, first: date, last: date, expand: bool
) -> Iterable[tuple[int | None, Any]]:
    """Each occurrence in the window with its index (expanded), or the entry once."""
    for index, (_, when) in enumerate(occurrences(entry)):
        if start_day(when) > last + timedelta(days=1):
            return
        if overlaps(when, first, last):
            if entry.rule is None or not expand:
                yield None, entry.when
                return
            yield index, when


def _window(call: Call) -> tuple[date, date]:
    today = datetime.now(UTC).date()
    locale = call.portal.entries.locale
    bounds = []
    defaults = (today - relativedelta(months=1), today + relativedelta(months=3))
    for key, default in zip(("from", "to"), defaults, strict=True):
        text = as_text(call.params.get(key))
        try:
            bounds.append(parse_date(locale, text) if text else default)
        except ValueError as exc:
            raise calendar_error(f'Invalid value for the "{key}" parameter') from exc
    return bounds[0], bounds[1]


def _type_and_owner(call: Call, method: str, *, dot: bool = False) -> tuple[str, int]:
    cal_type = as_text(call.params.get("type"))
    if not cal_type:
        raise required("type", method, dot=dot)
    if "ownerId" not in call.params:
        raise required("ownerId", method, dot=dot)
    raw = call.params["ownerId"]
    owner_id = 0 if as_text(raw) == "" else as_int(raw)
    if owner_id is None:
        raise required("ownerId", method, dot=dot)
    return cal_type, owner_id


def _section_of(call: Call, cal_type: str, owner_id: int) -> int:
    section_id = as_int(call.params.get("section"))
    section = None if section_id is None else call.portal.sections.get(section_id)
    if (
        section is None
        or not section.active
        or (section.cal_type, section.owner_id)
        != (
            cal_type,
            owner_id,
        )
    ):
        raise calendar_error(_BAD_SECTION)
    return section.id


def _when_params(call: Call, fallback_zone: str) -> Any:
    params = call.params
    start, end = params.get("from"), params.get("to")
    if as_int(params.get("from_ts")) is not None:
        start = datetime.fromtimestamp(as_int(params["from_ts"]) or 0, UTC).isoformat()
    if as_int(params.get("to_ts")) is not None:
        end = datetime.fromtimestamp(as_int(params["to_ts"]) or 0, UTC).isoformat()
    skip = as_text(params.get("skip_time")).upper() == "Y"
    zone_from = as_text(params.get("timezone_from")) or fallback_zone
    return parse_when(
        start, end, zone_from=zone_from, zone_to=as_text(params.get("timezone_to")), all_day=skip
    )


def _caller(call: Call) -> int:
    return call.user_id or call.portal.webhook_user_id


def _user_zone(call: Call) -> str:
    """`timezone_from` defaults to the user's zone (calendar-event-add.md); UTC when unset."""
    return as_text(call.portal.users.get(_caller(call), {}).get("TIME_ZONE")) or "UTC"


def _add(call: Call) -> Outcome:
    method, params = "calendar.event.add", call.params
    cal_type, owner_id = _type_and_owner(call, method)
    for name in ("name", "from", "to"):
        if not as_text(params.get(name)) and (name == "name" or not params.get(f"{name}_ts")):
            raise required(name, method)
    section_id = _section_of(call, cal_type, owner_id)
    locale = call.portal.entries.locale
    try:
        attrs = {**optional_attrs(params, locale), "when": _when_params(call, _user_zone(call))}
        if as_text(params.get("is_meeting")).upper() != "Y":
            attrs.pop("attendees", None)
        entry = create(
            call.portal.entries, {**attrs, "section_id": section_id, "created_by": _caller(call)}
        )
    except EntryError as exc:
        raise calendar_error("An error occurred while creating the event") from exc
    queue_changes(call, [("ADD", entry.id)])
    return Outcome(entry.id)


def _update(call: Call) -> Outcome:
    """`recurrence_mode` this / next / all with `current_date_from` (calendar-event-update.md);
    a partial edit answers the page's "Recurring Event" object."""
    method, params = "calendar.event.update", call.params
    entry_id = as_int(params.get("id"))
    if entry_id is None:
        raise required("id", method, dot=True)
    cal_type, owner_id = _type_and_owner(call, method, dot=True)
    entry = visible_entry(call.portal, entry_id)
    if entry is None:
        raise calendar_error("Access denied.")
    mode = as_text(params.get("recurrence_mode")) or "all"
    if mode not in ("this", "next", "all"):
        raise calendar_error("An invalid editing type for the recurring event is specified.")
    locale = call.portal.entries.locale
    try:
        attrs = optional_attrs(params, locale)
        if "section" in params:
            attrs["section_id"] = _section_of(call, cal_type, owner_id)
        if params.get("from") or params.get("from_ts"):
            attrs["when"] = _when_params(call, _user_zone(call))
        if entry.rule is None or mode == "all":
            queue_changes(call, update(call.portal.entries, entry, attrs))
            return Outcome(entry.id)
        day = parse_date(locale, as_text(params.get("current_date_from")))
        edit = edit_occurrence if mode == "this" else split_series
        made, changes = edit(call.portal.entries, entry, day, attrs)
    except (EntryError, ValueError) as exc:
        raise calendar_error("An error occurred while modifying the event.") from exc
    queue_changes(call, changes)
    original = made.original_start or made.when
    return Outcome(
        {
            "originalDate": render_datetime(locale, original)
            if isinstance(original, datetime)
            else entry_view(call.portal, made)["DATE_FROM"],
            "originalDavXmlId": entry_view(call.portal, entry)["DAV_XML_ID"],
            "instanceTz": entry_view(call.portal, made)["TZ_FROM"],
            "recEventId": made.id,
            "id": entry.id,
        }
    )


def _delete(call: Call) -> Outcome:
    entry_id = as_int(call.params.get("id"))
    if entry_id is None:
        raise calendar_error("Event id not specified")  # calendar-event-delete.md
    entry = visible_entry(call.portal, entry_id)
    if entry is None:
        raise calendar_error("An error occurred while deleting the event")
    queue_changes(call, delete(call.portal.entries, entry))
    return Outcome(True)


ENTRY_METHODS: dict[str, Callable[[Call], Outcome]] = {
    "calendar.event.getbyid": _get_by_id,
    "calendar.event.get": _get,
    "calendar.event.add": _add,
    "calendar.event.update": _update,
    "calendar.event.delete": _delete,
}
