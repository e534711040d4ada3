"""Locale dates: which format a portal writes, told from an entry's own evidence, and the
date-only strings (EXDATE, UNTIL, COMMENT_XML_ID) read in it."""

from __future__ import annotations

from datetime import date

import pytest

from bridge.entries import AmbiguousDateFormat, MalformedEntry, parse_entry
from bridge.locale_dates import (
    Clock,
    DateEvidence,
    DateFormat,
    choose_format,
    clock_of,
    matching_formats,
    parse_date,
)
from tests.entry_samples import all_day, rrule, timed


@pytest.mark.parametrize(
    ("text", "form", "expected"),
    [
        ("12/11/2024 05:59:00 pm", DateFormat.MONTH_DAY_YEAR, date(2024, 12, 11)),
        ("12/11/2024 05:59:00 pm", DateFormat.DAY_MONTH_YEAR_SLASHES, date(2024, 11, 12)),
        ("11.12.2024 17:59:00", DateFormat.DAY_MONTH_YEAR_DOTS, date(2024, 12, 11)),
        ("2024-12-11 17:59:00", DateFormat.YEAR_MONTH_DAY, date(2024, 12, 11)),
        ("24/12/2024", DateFormat.DAY_MONTH_YEAR_SLASHES, date(2024, 12, 24)),
        ("24/12/2024", DateFormat.MONTH_DAY_YEAR, None),  # no 24th month
        ("31.02.2024", DateFormat.DAY_MONTH_YEAR_DOTS, None),
        ("11.12.2024", DateFormat.MONTH_DAY_YEAR, None),
        ("", DateFormat.MONTH_DAY_YEAR, None),
        ("Wed Dec 11 2024", DateFormat.MONTH_DAY_YEAR, None),
    ],
)
def test_parse_date_reads_only_its_own_format(
    text: str, form: DateFormat, expected: date | None
) -> None:
    assert parse_date(text, form) == expected


def test_the_clock_a_datetime_is_written_in() -> None:
    assert clock_of("12/11/2024 05:59:00 pm") == Clock.TWELVE_HOUR
    assert clock_of("12/11/2024 05:59:00 AM") == Clock.TWELVE_HOUR
    assert clock_of("11.12.2024 17:59:00") == Clock.TWENTY_FOUR_HOUR
    assert clock_of("11/12/2024 00:00") == Clock.TWENTY_FOUR_HOUR
    assert clock_of("12/11/2024") is None


def test_a_timestamp_tells_month_first_from_day_first() -> None:
    evidence = [DateEvidence("12/11/2024 05:59:00 pm", date(2024, 12, 11))]
    assert matching_formats(evidence) == {DateFormat.MONTH_DAY_YEAR}
    evidence = [DateEvidence("12/11/2024 17:59:00", date(2024, 11, 12))]
    assert matching_formats(evidence) == {DateFormat.DAY_MONTH_YEAR_SLASHES}


def test_a_day_of_tolerance_either_way_but_not_two() -> None:
    # DATE_FROM may be written in another offset than the timestamp's UTC date (doc example).
    assert matching_formats([DateEvidence("11.12.2024 00:30:00", date(2024, 12, 10))]) == {
        DateFormat.DAY_MONTH_YEAR_DOTS
    }
    assert matching_formats([DateEvidence("11.12.2024 00:30:00", date(2024, 12, 12))]) == {
        DateFormat.DAY_MONTH_YEAR_DOTS
    }
    untouched = matching_formats([DateEvidence("11.12.2024 00:30:00", date(2024, 12, 13))])
    assert untouched == set(DateFormat)  # nothing fits: the piece is left out, not trusted


def test_equal_day_and_month_leave_both_slash_formats() -> None:
    evidence = [DateEvidence("12/12/2024 10:00:00", date(2024, 12, 12))]
    assert matching_formats(evidence) == {
        DateFormat.MONTH_DAY_YEAR,
        DateFormat.DAY_MONTH_YEAR_SLASHES,
    }


def test_choosing_among_candidates() -> None:
    both = frozenset({DateFormat.MONTH_DAY_YEAR, DateFormat.DAY_MONTH_YEAR_SLASHES})
    assert choose_format(both, None, None) is None
    assert choose_format(both, None, Clock.TWELVE_HOUR) == DateFormat.MONTH_DAY_YEAR
    assert choose_format(both, None, Clock.TWENTY_FOUR_HOUR) == (DateFormat.DAY_MONTH_YEAR_SLASHES)
    assert choose_format(both, DateFormat.DAY_MONTH_YEAR_SLASHES, Clock.TWELVE_HOUR) == (
        DateFormat.DAY_MONTH_YEAR_SLASHES
    )
    only = frozenset({DateFormat.DAY_MONTH_YEAR_DOTS})
    assert choose_format(only, DateFormat.MONTH_DAY_YEAR, Clock.TWELVE_HOUR) == (
        DateFormat.DAY_MONTH_YEAR_DOTS
    )
    dots_or_iso = frozenset({DateFormat.DAY_MONTH_YEAR_DOTS, DateFormat.YEAR_MONTH_DAY})
    assert choose_format(dots_or_iso, None, Clock.TWENTY_FOUR_HOUR) is None


# The same weekly series, 11 December 2024 (day ≠ month), on each locale: EXDATE 18 December.
@pytest.mark.parametrize(
    ("locale", "form"),
    [
        ("en", DateFormat.MONTH_DAY_YEAR),
        ("de", DateFormat.DAY_MONTH_YEAR_DOTS),
        ("br", DateFormat.DAY_MONTH_YEAR_SLASHES),
        ("iso", DateFormat.YEAR_MONTH_DAY),
    ],
)
def test_each_locale_is_told_and_read(locale: str, form: DateFormat) -> None:
    exdate = {"en": "12/18/2024", "de": "18.12.2024", "br": "18/12/2024", "iso": "2024-12-18"}
    raw = timed(
        "2024-12-11 17:59",
        locale=locale,
        RRULE=rrule("WEEKLY", until="2025-01-08", locale=locale),
        EXDATE=exdate[locale],
    )
    entry = parse_entry(raw)
    assert entry.date_format == form
    assert entry.exdates == (date(2024, 12, 18),)
    assert entry.recurrence is not None and entry.recurrence.until == date(2025, 1, 8)


def test_br_12_11_is_the_twelfth_of_november() -> None:
    raw = timed("2024-11-12 09:00", locale="br", RRULE=rrule("DAILY"), EXDATE="13/11/2024")
    assert raw["DATE_FROM"] == "12/11/2024 09:00:00"
    entry = parse_entry(raw)
    assert entry.date_format == DateFormat.DAY_MONTH_YEAR_SLASHES
    assert entry.exdates == (date(2024, 11, 13),)


def test_en_12_11_is_the_eleventh_of_december() -> None:
    raw = timed("2024-12-11 09:00", locale="en", RRULE=rrule("DAILY"), EXDATE="12/12/2024")
    assert raw["DATE_FROM"] == "12/11/2024 09:00:00 am"
    assert parse_entry(raw).exdates == (date(2024, 12, 12),)


def test_ambiguous_exdate_on_a_24_hour_portal_is_day_first() -> None:
    # 12/12 gives no evidence; 12/11 is 11 December or 12 November: the 24-hour clock tells.
    raw = timed("2024-12-12 09:00", locale="br", RRULE=rrule("WEEKLY"), EXDATE="12/11/2024")
    entry = parse_entry(raw)
    assert entry.exdates == (date(2024, 11, 12),)
    assert entry.date_format == DateFormat.DAY_MONTH_YEAR_SLASHES
    # the portal's known format wins over the clock
    assert parse_entry(raw, DateFormat.MONTH_DAY_YEAR).exdates == (date(2024, 12, 11),)


def test_ambiguous_exdate_without_a_clock_needs_the_known_format() -> None:
    raw = timed(
        "2024-12-12 09:00",
        locale="br",
        RRULE=rrule("WEEKLY"),
        EXDATE="12/11/2024",
        DATE_FROM="12/12/2024",
        DATE_TO="12/12/2024",
    )
    with pytest.raises(AmbiguousDateFormat) as raised:
        parse_entry(raw)
    assert raised.value.field == "EXDATE"
    assert isinstance(raised.value, MalformedEntry)
    entry = parse_entry(raw, DateFormat.DAY_MONTH_YEAR_SLASHES)
    assert entry.exdates == (date(2024, 11, 12),)


def test_ambiguous_exdate_on_an_am_pm_portal_is_month_first() -> None:
    raw = timed("2024-12-12 09:00", locale="en", RRULE=rrule("WEEKLY"), EXDATE="12/11/2024")
    entry = parse_entry(raw)
    assert entry.exdates == (date(2024, 12, 11),)
    assert entry.date_format == DateFormat.MONTH_DAY_YEAR


def test_until_with_its_timestamp_settles_an_ambiguous_exdate() -> None:
    raw = timed(
        "2024-12-12 09:00",
        locale="br",
        RRULE=rrule("WEEKLY", until="2025-01-05", locale="br"),  # "05/01/2025" + UNTIL_TS
        EXDATE="02/01/2025",
    )
    entry = parse_entry(raw)
    assert entry.exdates == (date(2025, 1, 2),)


def test_one_unambiguous_exdate_settles_the_others() -> None:
    raw = timed(
        "2024-12-12 09:00", locale="br", RRULE=rrule("DAILY"), EXDATE="02/01/2025;25/12/2024"
    )
    assert parse_entry(raw).exdates == (date(2024, 12, 25), date(2025, 1, 2))


def test_evidence_wins_over_a_wrong_known_format() -> None:
    raw = timed("2024-12-25 09:00", locale="br", RRULE=rrule("DAILY"), EXDATE="02/01/2025")
    entry = parse_entry(raw, DateFormat.MONTH_DAY_YEAR)
    assert entry.date_format == DateFormat.DAY_MONTH_YEAR_SLASHES
    assert entry.exdates == (date(2025, 1, 2),)


def test_an_entry_without_date_only_strings_never_needs_the_format() -> None:
    undecided = timed("2024-12-12 09:00", locale="br", DATE_FROM="12/12/2024", DATE_TO="12/12/2024")
    entry = parse_entry(undecided)
    assert entry.date_format is None
    assert entry.exdates == ()
    # with its time of day, the 24-hour clock tells the day-first format
    assert parse_entry(timed("2024-12-12 09:00", locale="br")).date_format == (
        DateFormat.DAY_MONTH_YEAR_SLASHES
    )


def test_an_exdate_in_no_known_format_is_malformed() -> None:
    raw = all_day("2024-12-20", RRULE=rrule("DAILY", locale="de"), EXDATE="20.12.2024;Dec 21")
    with pytest.raises(MalformedEntry) as raised:
        parse_entry(raw)
    assert raised.value.field == "EXDATE"
    assert "Dec 21" in str(raised.value)
