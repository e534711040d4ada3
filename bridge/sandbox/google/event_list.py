"""The emulator's `events.list` and `events.instances`: windows, filters, expansion and pages.

NOTES §13 and the events.list reference [doc]: `timeMin` bounds an event's end and `timeMax` its
start (both exclusive); `singleEvents` expands series into instances; `orderBy=startTime` needs
`singleEvents`; `privateExtendedProperty` / `sharedExtendedProperty` are repeatable `key=value`
constraints that must all hold; `maxResults` defaults to 250 and stops at 2500; cancelled events
show only with `showDeleted`, except that "cancelled instances of recurring events (but not the
underlying recurring event) will still be included if showDeleted and singleEvents are both False".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bridge.sandbox.google.event_times import parse_instant, updated_stamp
from bridge.sandbox.google.events import calendar_zone, events_of, render_event
from bridge.sandbox.google.instances import series_instances, span
from bridge.sandbox.google.recurrence import horizon, occurrences
from bridge.sandbox.google.state import Store
from bridge.sandbox.google.wire import (
    JSON,
    ApiError,
    ApiRequest,
    ApiResponse,
    flag,
    not_found,
    paginate,
)

_PAGE_DEFAULT, _PAGE_MAX = 250, 2500


@dataclass(frozen=True)
class _Query:
    time_min: datetime | None
    time_max: datetime | None
    show_deleted: bool
    single: bool
    order_by: str | None
    properties: dict[str, list[tuple[str, str]]]  # "private" / "shared" → constraints
    ical_uid: str | None

    @classmethod
    def parse(cls, request: ApiRequest) -> _Query:
        query = request.query
        time_min = parse_instant(query["timeMin"], "timeMin") if "timeMin" in query else None
        time_max = parse_instant(query["timeMax"], "timeMax") if "timeMax" in query else None
        if time_min is not None and time_max is not None and time_max <= time_min:
            raise ApiError(
                400,
                "timeRangeEmpty",
                "The specified time range is empty.",
                "calendar",
                locationType="parameter",
                location="timeMax",
            )
        single = flag(query, "singleEvents")
        order_by = query.get("orderBy")
        if order_by not in (None, "startTime", "updated"):
            raise ApiError(400, "invalid", "Invalid value for: orderBy", location="orderBy")
        if order_by == "startTime" and not single:
            raise ApiError(  # [inferred] wording
                400,
                "badRequest",
                "The requested ordering is not available for the particular query.",
            )
        properties = {
            scope: [_constraint(text) for text in request.query_values(f"{scope}ExtendedProperty")]
            for scope in ("private", "shared")
        }
        return cls(
            time_min,
            time_max,
            flag(query, "showDeleted"),
            single,
            order_by,
            properties,
            query.get("iCalUID"),
        )


def events_list(store: Store, request: ApiRequest, user: str, calendar_id: str) -> ApiResponse:
    calendar = store.calendar_for(user, calendar_id, need="reader")
    query = _Query.parse(request)
    zone = calendar_zone(calendar)
    events = events_of(store, calendar["id"])
    items: list[JSON] = []
    for event in events.values():
        if not _matches(event, query):
            continue
        if query.single and "recurringEventId" in event:
            continue  # listed in place of its occurrence, below
        if query.single and event.get("recurrence") and event["status"] != "cancelled":
            before = query.time_max or horizon(event, zone, query.time_min)
            instances = series_instances(events, event, zone, before=before)
            items += _window(instances, query, zone, show_cancelled=query.show_deleted)
        elif _visible(event, query) and _series_in_window(event, query, zone):
            items.append(event)
    if query.order_by == "startTime":
        items.sort(key=lambda item: span(item, zone)[0])
    elif query.order_by == "updated":
        items.sort(key=lambda item: str(item["updated"]))
    return _page(store, request, calendar, user, items)


def events_instances(
    store: Store, request: ApiRequest, user: str, calendar_id: str, event_id: str
) -> ApiResponse:
    calendar = store.calendar_for(user, calendar_id, need="reader")
    zone = calendar_zone(calendar)
    events = events_of(store, calendar["id"])
    series = events.get(event_id)
    if series is None or "recurringEventId" in series:
        raise not_found()
    query = _Query.parse(request)
    show_deleted = flag(request.query, "showDeleted")
    items: list[JSON] = []
    if not series.get("recurrence"):
        items = [series]  # [inferred] a single event is its own only instance
    elif series["status"] != "cancelled":  # [inferred] a deleted series has no instances
        before = query.time_max or horizon(series, zone, query.time_min)
        instances = series_instances(events, series, zone, before=before)
        items = _window(instances, query, zone, show_cancelled=show_deleted)
    original = request.query.get("originalStart")
    if original is not None:
        moment = parse_instant(original, "originalStart")
        items = [i for i in items if _original_start(i, zone) == moment]
    return _page(store, request, calendar, user, items)


def _page(
    store: Store, request: ApiRequest, calendar: JSON, user: str, items: list[JSON]
) -> ApiResponse:
    page = paginate(items, request.query, default=_PAGE_DEFAULT, maximum=_PAGE_MAX)
    page["items"] = [render_event(item) for item in page["items"]]  # copy only one page
    body: JSON = {
        "kind": "calendar#events",
        "etag": store.next_etag(),
        "summary": calendar.get("summary", ""),
        "updated": updated_stamp(),
        "timeZone": calendar.get("timeZone", "UTC"),
        "accessRole": store.role(calendar["id"], user),
        "defaultReminders": [],
        **page,
    }
    return ApiResponse(200, body)


def _visible(event: JSON, query: _Query) -> bool:
    if event["status"] != "cancelled" or query.show_deleted:
        return True
    return not query.single and "recurringEventId" in event  # the doc's exception, above


def _window(
    instances: Iterable[JSON], query: _Query, zone: ZoneInfo, *, show_cancelled: bool
) -> list[JSON]:
    kept = []
    for instance in instances:
        if instance["status"] == "cancelled" and not show_cancelled:
            continue
        begins, ends = span(instance, zone)
        if _overlaps(begins, ends, query):
            kept.append(instance)
    return kept


def _series_in_window(event: JSON, query: _Query, zone: ZoneInfo) -> bool:
    if query.time_min is None and query.time_max is None:
        return True
    if not event.get("recurrence") or event["status"] == "cancelled":
        return _overlaps(*span(event, zone), query)
    before = query.time_max or horizon(event, zone, query.time_min)
    return any(_overlaps(o.begins, o.ends, query) for o in occurrences(event, zone, before=before))


def _overlaps(begins: datetime, ends: datetime, query: _Query) -> bool:
    if query.time_max is not None and begins >= query.time_max:
        return False
    # [inferred] a zero-length event at timeMin is still inside the window
    return query.time_min is None or ends > query.time_min or begins == query.time_min


def _matches(event: JSON, query: _Query) -> bool:
    if query.ical_uid is not None and event.get("iCalUID") != query.ical_uid:
        return False
    extended = event.get("extendedProperties", {})
    return all(
        extended.get(scope, {}).get(key) == value
        for scope, constraints in query.properties.items()
        for key, value in constraints
    )


def _constraint(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ApiError(400, "invalid", "Invalid extended property constraint.")  # [inferred]
    return key, value


def _original_start(instance: JSON, zone: ZoneInfo) -> datetime | None:
    original = instance.get("originalStartTime") or instance["start"]
    return span({"start": original, "end": original}, zone)[0]
