"""Instances of recurring events: found by id, expanded for listings, turned into overrides.

NOTES §13 "Instances": an occurrence nobody changed is not stored; it is the series seen at one
original start. Writing to an instance id stores an override under that id, with
`recurringEventId` and `originalStartTime`; deleting one stores it as a cancelled occurrence.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from bridge.sandbox.google.event_times import parse_when
from bridge.sandbox.google.recurrence import (
    Occurrence,
    instance_id,
    occurrence_at,
    occurrences,
    split_instance_id,
)
from bridge.sandbox.google.wire import JSON, not_found

_NOT_INHERITED = ("recurrence", "start", "end", "id")


def find_event(events: dict[str, JSON], event_id: str, zone: ZoneInfo) -> JSON | None:
    """A stored event or override, else the unchanged instance `event_id` names, else None."""
    if event_id in events:
        return events[event_id]
    named = split_instance_id(event_id)
    if named is None:
        return None
    series = events.get(named[0])
    if series is None or not series.get("recurrence") or series["status"] == "cancelled":
        return None
    occurrence = occurrence_at(series, zone, named[1])
    return None if occurrence is None else unchanged_instance(series, occurrence)


def editable_event(events: dict[str, JSON], event_id: str, zone: ZoneInfo) -> JSON:
    """What a write to `event_id` changes; an unchanged instance becomes a new override, which the
    caller stores under its id once the write is checked."""
    event = find_event(events, event_id, zone)
    if event is None:
        raise not_found()
    return event if event["id"] in events else copy.deepcopy(event)


def unchanged_instance(series: JSON, occurrence: Occurrence) -> JSON:
    instance: JSON = {}
    for name, value in series.items():
        if name == "id":
            instance["id"] = instance_id(series["id"], occurrence.key)
        elif name == "start":
            instance["start"] = copy.deepcopy(occurrence.start)
            instance["end"] = copy.deepcopy(occurrence.end)
            instance["recurringEventId"] = series["id"]
            instance["originalStartTime"] = copy.deepcopy(occurrence.original)
        elif name not in _NOT_INHERITED:
            instance[name] = copy.deepcopy(value)
    return instance


def series_instances(
    events: dict[str, JSON], series: JSON, zone: ZoneInfo, *, before: datetime
) -> Iterator[JSON]:
    """The series' instances beginning before `before`, overrides (cancelled ones too) in place
    of the occurrences they replace."""
    for occurrence in occurrences(series, zone, before=before):
        override = events.get(instance_id(series["id"], occurrence.key))
        yield override if override is not None else unchanged_instance(series, occurrence)


def overrides_of(events: dict[str, JSON], series_id: str) -> list[JSON]:
    return [event for event in events.values() if event.get("recurringEventId") == series_id]


def span(event: JSON, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """When an event (or instance) begins and ends, as instants."""
    start, end = parse_when(event["start"], "start"), parse_when(event["end"], "end")
    return start.begins(zone), end.begins(zone)
