"""Google event ids for Bitrix24 entries, derived with no I/O: the event id of a portal's entry,
and the instance id of one occurrence of a series (Google's `<event id>_<original start>`) and back.

An instance id names the original start in UTC for a timed series (`_20241211T165900Z`) and the
day for an all-day one (`_20241211`); the original start is the series' wall-clock start time on
that day in the series' zone, so it moves in UTC across a daylight-saving change.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from bridge.entry_values import Entry


def google_event_id(portal_key: str, entry_id: str) -> str:
    """The Google event id of a portal's entry, the same on every run and every host.

    base32hex (`0-9a-v`) of the first 20 bytes of a SHA-256 of the portal key and the entry id:
    32 characters, inside Google's 5 to 1024. Inserts are idempotent through it (a retry gets
    `409 duplicate`), so it must never change: a new derivation would orphan every mirrored event
    and create each one again. Changing a portal's key has the same effect.
    """
    digest = hashlib.sha256(f"bx24-bridge entry v1\n{portal_key}\n{entry_id}".encode()).digest()
    return base64.b32hexencode(digest[:20]).decode("ascii").lower()


def instance_id(series_event_id: str, series: Entry, original_day: date) -> str:
    """Google's id for the occurrence of `series` on `original_day` (in the series' zone)."""
    if series.all_day:
        return f"{series_event_id}_{original_day:%Y%m%d}"
    start = original_start(series, original_day).astimezone(UTC)
    return f"{series_event_id}_{start:%Y%m%dT%H%M%SZ}"


def instance_day(event_id: str, series: Entry) -> date | None:
    """The original day (in the series' zone) of the occurrence an instance id names: the inverse
    of `instance_id`. None for an id that is not an instance id (no `_<YYYYMMDD>` or
    `_<YYYYMMDDTHHMMSSZ>` suffix)."""
    _, underscore, suffix = event_id.rpartition("_")
    if not underscore:
        return None
    try:
        if len(suffix) == len("YYYYMMDD"):
            return datetime.strptime(suffix, "%Y%m%d").date()
        if len(suffix) == len("YYYYMMDDTHHMMSSZ"):
            start = datetime.strptime(suffix, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            return start.astimezone(ZoneInfo(series.zone_from)).date()
    except ValueError:
        return None
    return None


def original_start(series: Entry, day: date) -> datetime:
    """The start of the series' occurrence on `day`: the series' wall-clock start time that day."""
    zone = ZoneInfo(series.zone_from)
    return datetime.combine(day, series.start.astimezone(zone).time(), tzinfo=zone)
