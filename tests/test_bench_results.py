"""`bench/results.json`, the benchmarks' figures as data (`bench/report.py`)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import Figure, Goal, write_results

KEYS = ["benchmark", "measure", "value", "floor", "ratio", "target", "met"]


def written(tmp_path: Path, *figures: Figure) -> list[dict[str, object]]:
    path = tmp_path / "results.json"
    write_results(list(figures), path)
    records = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(records, list)
    return records


def test_a_figure_against_its_floor_carries_value_floor_ratio_and_verdict(tmp_path: Path) -> None:
    above = Figure(
        "ingestion",
        "sqlite c=8: acks/s vs durable floor",
        "900/s vs 1,000/s (90%)",
        ">= 80% of durable floor",
        number=900.0,
        floor=1000.0,
        goal=Goal(0.8, at_most=False, of_floor=True),
    )
    below = Figure(
        "ingestion",
        "sqlite c=64: acks/s vs durable floor",
        "700/s vs 1,000/s (70%)",
        number=700.0,
        floor=1000.0,
        goal=Goal(0.8, at_most=False, of_floor=True),
    )

    first, second = written(tmp_path, above, below)

    assert list(first) == KEYS
    assert first == {
        "benchmark": "ingestion",
        "measure": "sqlite c=8: acks/s vs durable floor",
        "value": 900.0,
        "floor": 1000.0,
        "ratio": 0.9,
        "target": ">= 0.8",
        "met": True,
    }
    assert second["ratio"] == 0.7
    assert second["met"] is False
    assert (above.stands, below.stands) == ("met", "MISSED")


def test_an_upper_bound_on_the_value_itself_has_no_floor(tmp_path: Path) -> None:
    within = Figure("ingestion", "p99 ms", "9.50 ms", number=9.5, goal=Goal(10))
    over = Figure("ingestion", "p99 ms", "10.50 ms", number=10.5, goal=Goal(10))
    at = Figure("economy", "503s", "0", number=0, goal=Goal(0))

    records = written(tmp_path, within, over, at)

    assert [(r["value"], r["floor"], r["ratio"], r["target"]) for r in records] == [
        (9.5, None, None, "<= 10"),
        (10.5, None, None, "<= 10"),
        (0, None, None, "<= 0"),
    ]
    assert [r["met"] for r in records] == [True, False, True]


def test_a_ratio_bound_misses_when_the_benchmarks_own_condition_fails(tmp_path: Path) -> None:
    errors = Figure(
        "ingestion",
        "acks/s vs durable floor",
        "1,000/s, 3 non-200",
        met=False,  # non-200 answers, whatever the ratio
        number=1000.0,
        floor=1000.0,
        goal=Goal(0.8, at_most=False, of_floor=True),
    )
    zero_floor = Figure(
        "reconciliation",
        "wall s vs bucket floor",
        "2.0 s vs 0.0 s",
        number=2.0,
        floor=0.0,
        goal=Goal(1.2, of_floor=True),
    )

    first, second = written(tmp_path, errors, zero_floor)

    assert (first["ratio"], first["met"]) == (1.0, False)
    assert (second["floor"], second["ratio"], second["met"]) == (0.0, None, False)


def test_a_figure_without_numbers_keeps_its_text_and_nulls(tmp_path: Path) -> None:
    plain = Figure("economy", "calendars created / wall time", "1000 / 35.4 s")
    judged = Figure("economy", "Google requests per calendar", "2.00 (…)", "1 insert", True)

    first, second = written(tmp_path, plain, judged)

    assert first == {
        "benchmark": "economy",
        "measure": "calendars created / wall time",
        "value": "1000 / 35.4 s",
        "floor": None,
        "ratio": None,
        "target": None,
        "met": None,
    }
    assert (second["value"], second["target"], second["met"]) == ("2.00 (…)", "1 insert", True)
    assert plain.stands == "" and judged.stands == "met"
