"""The portal's date format, told from the evidence in one entry.

Bitrix24 answers with dates in the portal's locale (reference NOTES §2.4: `12/11/2024 05:59:00 pm`
on an English portal, `20.12.2024 00:00:00` on a German or Russian one, `12/11/2024` meaning 12
November on a Brazilian one). The bridge never takes an instant from such a string; it parses only
the date-only values that have no timestamp (`EXDATE`, `RRULE.UNTIL`, the date in
`RELATIONS.COMMENT_XML_ID`). Which format they are in is told by the strings that do come with a
timestamp: `DATE_FROM` beside `DATE_FROM_TS_UTC`, `DATE_TO` beside `DATE_TO_TS_UTC`, `UNTIL` beside
`UNTIL_TS`. Those are compared by date with a day of tolerance either way, because a string may be
written in another offset than its timestamp's UTC date (the doc's own example shows `DATE_FROM` in
an offset that is not `TZ_FROM`'s). Swapping day and month moves a date by four weeks or more
unless they are equal, and then the swap does not matter for that string. When nothing else
tells `m/d/Y` from `d/m/Y` (day equal to month), the clock does: am/pm is the English portal's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class DateFormat(StrEnum):
    """A portal's date format, in PHP's letters as Bitrix24 writes them."""

    MONTH_DAY_YEAR = "m/d/Y"  # en
    DAY_MONTH_YEAR_DOTS = "d.m.Y"  # de, ru, ua, …
    DAY_MONTH_YEAR_SLASHES = "d/m/Y"  # br, fr, es, …
    YEAR_MONTH_DAY = "Y-m-d"


# Each format: its pattern and where year, month and day are in the match.
_SHAPES: dict[DateFormat, tuple[re.Pattern[str], tuple[int, int, int]]] = {
    DateFormat.MONTH_DAY_YEAR: (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), (3, 1, 2)),
    DateFormat.DAY_MONTH_YEAR_DOTS: (re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})"), (3, 2, 1)),
    DateFormat.DAY_MONTH_YEAR_SLASHES: (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), (3, 2, 1)),
    DateFormat.YEAR_MONTH_DAY: (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})"), (1, 2, 3)),
}
_TWELVE_HOUR = re.compile(r"\d\s*[ap]\.?m\.?\s*$", re.IGNORECASE)
_TIME_OF_DAY = re.compile(r"\s\d{1,2}:\d{2}(:\d{2})?\b")
ALL_FORMATS = frozenset(DateFormat)


def parse_date(text: str, form: DateFormat) -> date | None:
    """The date a locale date or datetime (`12/11/2024 05:59:00 pm`) starts with in `form`, or
    None when it is not one."""
    words = text.strip().split()
    if not words:
        return None
    pattern, (year, month, day) = _SHAPES[form]
    match = pattern.fullmatch(words[0])
    if match is None:
        return None
    try:
        return date(int(match.group(year)), int(match.group(month)), int(match.group(day)))
    except ValueError:  # 13/25/2024 in m/d/Y, 31.02.2024, …
        return None


class Clock(StrEnum):
    """How a portal writes the time of day (in `DATE_FROM`)."""

    TWELVE_HOUR = "12h"  # `05:59:00 pm`: en, the one month-first locale
    TWENTY_FOUR_HOUR = "24h"  # `17:59:00`: every day-first locale


def clock_of(text: str) -> Clock | None:
    """The clock a locale datetime is written in; None for a date without a time."""
    if _TWELVE_HOUR.search(text.strip()):
        return Clock.TWELVE_HOUR
    if _TIME_OF_DAY.search(text.strip()):
        return Clock.TWENTY_FOUR_HOUR
    return None


_SLASH_FORMAT_OF = {
    Clock.TWELVE_HOUR: DateFormat.MONTH_DAY_YEAR,
    Clock.TWENTY_FOUR_HOUR: DateFormat.DAY_MONTH_YEAR_SLASHES,
}


@dataclass(frozen=True)
class DateEvidence:
    """A locale date string and, when it comes with a timestamp, that timestamp's UTC date."""

    text: str
    near: date | None = None


def matching_formats(
    evidence: Iterable[DateEvidence], start: frozenset[DateFormat] = ALL_FORMATS
) -> frozenset[DateFormat]:
    """The formats every piece of evidence is consistent with: it parses, and (when it has a
    timestamp) within a day of the timestamp's date. A piece no remaining format reads is left
    out (a locale this module does not know), so it cannot empty the set on its own."""
    formats = set(start)
    for item in evidence:
        fitting = {form for form in formats if _fits(item, form)}
        if fitting:
            formats = fitting
    return frozenset(formats)


def _fits(item: DateEvidence, form: DateFormat) -> bool:
    found = parse_date(item.text, form)
    if found is None:
        return False
    return item.near is None or abs((found - item.near).days) <= 1


def choose_format(
    candidates: frozenset[DateFormat], known: DateFormat | None, clock: Clock | None
) -> DateFormat | None:
    """The one format to read ambiguous strings with: the only candidate, else the format the
    caller knows for the portal, else what the clock tells between the two slash formats; None if
    none of these settles it.

    The clock: Bitrix24's one month-first locale (en, `m/d/Y h:i:s a`) writes am/pm; the
    day-first ones (`d/m/Y H:i:s`: br, fr, la, …) a 24-hour clock. Without this, the first series
    on a fresh Brazilian portal that starts on 11/11 and skips 12/11 could not be read at all."""
    if len(candidates) == 1:
        return next(iter(candidates))
    if known is not None and known in candidates:
        return known
    if clock is not None and _SLASH_FORMAT_OF[clock] in candidates:
        return _SLASH_FORMAT_OF[clock]
    return None
