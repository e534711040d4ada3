"""Send a calendar's changes to Google: the calendar's own fields, its owner's list entry (colour,
hidden) and its sharing, each with as few calls as the changes need."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.calendar_state import CalendarState, Change
from bridge.google_calendar import CalendarGateway


def push_changes(
    google: CalendarGateway,
    calendar_id: str,
    desired: CalendarState,
    before: CalendarState,
    changes: list[Change],
    *,
    notify: bool,
) -> None:
    """Set the `changes` to `desired`; `before` is what the calendar had (its sharing names the
    rules the bridge added, the only ones it removes)."""
    fields = {
        key: value
        for change, key, value in (
            (Change.SUMMARY, "summary", desired.summary),
            (Change.DESCRIPTION, "description", desired.description),
            (Change.TIME_ZONE, "timeZone", desired.time_zone),
        )
        if change in changes
    }
    if fields:
        google.patch_calendar(calendar_id, fields)
    entry: dict[str, object] = {}
    if Change.COLOUR in changes:
        entry.update(backgroundColor=desired.background, foregroundColor=desired.foreground)
    if Change.HIDDEN in changes:
        entry["hidden"] = desired.hidden
    if entry:
        google.patch_list_entry(calendar_id, entry)
    if Change.SHARING in changes:
        _share(google, calendar_id, desired.acl, before.acl, notify=notify)


def _share(
    google: CalendarGateway,
    calendar_id: str,
    desired: Mapping[str, str],
    ours: Mapping[str, str],
    *,
    notify: bool,
) -> None:
    """Insert what is missing; remove only rules the bridge added that the config dropped."""
    current = google.list_acl(calendar_id)
    for rule_id, role in desired.items():
        if current.get(rule_id) != role:
            google.insert_acl(calendar_id, rule_id, role, notify=notify)
    for rule_id in ours:
        if rule_id not in desired and rule_id in current:
            google.delete_acl(calendar_id, rule_id)
