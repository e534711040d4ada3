"""The end-to-end benchmark's floor (`bench/end_to_end.py`): the figures it draws from the
emulators' logs, for a bridge simulated at the floor and one that queues sections in a pass."""

from __future__ import annotations

import itertools
from typing import Any

from bench.bucket import Phase, phase_waits
from bench.end_to_end import _figures, _poisson
from bench.report import Figure
from bridge.markers import marker

PROCESSING = 0.020  # seconds from a read to its first calendar


def simulated_run(queue: float) -> tuple[list[Phase], list[dict[str, Any]], list[dict[str, Any]]]:
    """10 events at 1.5/s, then 300 at 10/s, as the benchmark posts them; the bridge reads when
    the ideal reader does, makes the first calendar of a read `PROCESSING` after it and each
    further one `queue` later."""
    slow, fast = Phase(1.5), Phase(10.0)
    slow.arrived = {str(i): 100 + t for i, t in enumerate(_poisson(10, 1.5))}
    fast.arrived = {str(10 + i): 108 + t for i, t in enumerate(_poisson(300, 10.0))}
    waits = phase_waits([slow, fast])
    reads: dict[float, list[str]] = {}
    for section, t in sorted({**slow.arrived, **fast.arrived}.items(), key=lambda kv: kv[1]):
        reads.setdefault(round(t + waits[section], 9), []).append(section)
    bitrix = [{"t": at, "status": 200} for at in reads]
    google = [
        {
            "method": "POST",
            "path": "/calendar/v3/calendars",
            "status": 200,
            "body": {"description": f"E2E\n{marker('bench', 'member', section, 'ab')}"},
            "t": at + PROCESSING + k * queue,
        }
        for at, sections in reads.items()
        for k, section in enumerate(sections)
    ]
    return [slow, fast], google, bitrix


def figure(figures: list[Figure], starts: str) -> Figure:
    return next(f for f in figures if f.measure.startswith(starts))


def test_a_bridge_that_reads_when_the_bucket_allows_and_works_at_once_is_at_its_floor() -> None:
    figures = _figures(*simulated_run(queue=0.0), wall=40.0, database="sqlite")

    held = [f for f in figures if f.goal is not None and f.goal.of_floor]
    assert [f.measure.split(",")[1].split(" vs")[0] for f in held] == [
        " mean ms",
        " p50 ms",
        " p99 ms",
    ]
    for f in held:
        assert f.ratio is not None and abs(f.ratio - 1) < 1e-6, f
        assert f.stands == "met"
    assert figure(figures, "floor: processing").value.startswith("20 ms")
    # Below the drain rate, the absolute targets.
    slow = figure(figures, "200 → calendar exists, p50 ms (10 events at 1.5/s")
    assert slow.number is not None and round(slow.number, 3) == 20.0
    assert slow.stands == "met"


def test_sections_made_one_after_another_in_a_pass_count_against_the_bridge() -> None:
    figures = _figures(*simulated_run(queue=0.040), wall=40.0, database="sqlite")

    p50 = figure(figures, "200 → calendar exists, p50 ms vs floor")
    # Five events a read: the middle one waits for two others' 40 ms.
    assert p50.ratio is not None and p50.ratio > 1.2
    assert p50.stands == "MISSED"
    # The floor's processing is still one section's: an event the bucket did not hold is the
    # first of its read.
    assert figure(figures, "floor: processing").value.startswith("20 ms")


def test_the_stream_is_the_same_every_run_and_keeps_its_rate() -> None:
    offsets = _poisson(500, 10.0)

    assert offsets == _poisson(500, 10.0)
    assert offsets[0] == 0.0 and abs(offsets[-1] - 49.9) < 1e-9
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert min(gaps) < 0.01 and max(gaps) > 0.3  # not evenly spaced
