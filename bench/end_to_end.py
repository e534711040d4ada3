"""End to end: time from the web process's 200 to the Google calendar existing, below the drain
rate and at saturation against its floor.

`--slow-events` + `--events` company-calendar sections exist in the Bitrix24 emulator (real leaky
bucket: 50, then 2/s); their ONCALENDARSECTIONADD events are posted one at a time to `python -m
bridge serve`, while `python -m bridge worker` runs: first `--slow-events` at `--slow-rate` a
second (under the bucket's 2 reads a second, so every event can have a read of its own: held to
p50 <= 100 ms and p99 <= 1 s), then `--events` at `--rate` (above it once the burst is spent:
saturation, held against the floor). The moment a calendar exists is the Google emulator's own
log time of the successful `calendars.insert` (taken under its lock when the calendar is
stored; `time.time()`, µs resolution, same clock as the 200), matched to the section by the
marker in the calendar's description. No polling is involved in the figure.

The events come as a Poisson stream (exponential gaps, the same seeded ones every run), as
independent deliveries do, not evenly spaced: at saturation the bucket's slots come every 1/2 s,
and evenly spaced events would each sit at a fixed distance before the next slot, set by where
the slots happen to fall (a phase neither the bridge nor the floor chooses): the same run's
mean wait would land anywhere from 0.2 to 0.3 s, for the bridge and the floor alike. Random
arrivals wait for the next slot uniformly, 1/4 s on average, in every run.

An event's floor is the bucket's part plus the processing:

- The bucket's part is `bench.bucket.read_waits` over every 200 of the run in order: how long an
  ideal reader, reading the moment the bucket admits a request, leaves the event waiting for
  the read that covers it (0 below the drain rate; at saturation up to 1/2 s, the next slot).
- The processing is the bridge's own time from the read to the calendar existing, measured in
  the same run from the emulators' logs: for each event, from the Bitrix24 request that served
  it (the last one to reach the emulator before its calendar's insert; a worker pass makes one
  read) to that insert, and its median over the events the ideal reader serves at once (no
  bucket wait: the slow phase, and the fast one until the burst is spent). Those are taken one
  read each, so the median is one event's read, plan, mapping commit and insert, not a pass's
  queue: at saturation a read serves several sections, applied one after another, and that
  queue is the bridge's cost, held against the floor rather than part of it. The part before the
  read (the wake-up: PostgreSQL's NOTIFY or SQLite's 50 ms poll; the lease; the take of the
  rows, a few ms) is left out: at saturation the worker is awake and holds the lease while it
  waits for the bucket.

The fast phase's mean, p50 and p99 are held against the same statistic of the floor (target
<= 1.2x), once its bucket part is more than 0 (at `--quick` sizes the burst covers every event).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import statistics
import time
from typing import Any

from bench.bucket import PER_SECOND, Phase, against_floor, below_drain, phase_latencies, phase_waits
from bench.harness import (
    ACTIVE_CALENDARS,
    Portal,
    add_database_argument,
    company_sections_ready,
    count_rows,
    google_inserts,
)
from bench.load import Connection, percentile
from bench.progress import Progress
from bench.report import Figure
from bridge.harness import wait_for
from bridge.markers import read_marker

NAME = "end-to-end"
P50_MS = 100.0
P99_MS = 1000.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events",
        type=int,
        default=500,
        help="events timed at --rate, held against the floor (default 500)",
    )
    parser.add_argument(
        "--rate", type=float, default=10.0, help="events posted per second (default 10)"
    )
    parser.add_argument(
        "--slow-events",
        type=int,
        default=40,
        help="events timed below the drain rate, first (default 40; 0 skips)",
    )
    parser.add_argument(
        "--slow-rate",
        type=float,
        default=1.5,
        help=f"events a second below the drain rate ({PER_SECOND:g} requests/s; default 1.5)",
    )
    add_database_argument(parser)


def run(args: argparse.Namespace) -> list[Figure]:
    phases = [Phase(args.slow_rate), Phase(args.rate)]
    counts: list[int] = [args.slow_events, args.events]
    with company_sections_ready(args.database, NAME, sum(counts), "E2E") as ready:
        emulators, portal, url = ready.emulators, ready.portal, ready.database_url
        started = time.monotonic()
        ids = iter(ready.section_ids)
        events = f"{ready.web_url}/bitrix/events"
        for phase, count in zip(phases, counts, strict=True):
            if count > 0:
                sections = [next(ids) for _ in range(count)]
                asyncio.run(_post_paced(events, portal, sections, phase))
        made = sum(counts)
        progress = Progress(f"{NAME} calendars", made)

        def created() -> bool:
            progress.update(count_rows(url, ACTIVE_CALENDARS))
            return progress.done >= made

        wait_for(created, 600, "every calendar", every=0.25)
        progress.close()
        wall = time.monotonic() - started
        google = emulators.google.requests(portal.subject)
        bitrix = emulators.bitrix.requests(portal.member_id)
    return _figures(phases, google, bitrix, wall, args.database)


async def _post_paced(url: str, portal: Portal, ids: list[str], phase: Phase) -> None:
    """Post one event per section, `phase.rate` a second on average (`_poisson`); each
    section's 200 time goes into `phase.arrived`."""
    connection = Connection(url)
    progress = Progress(f"{NAME} events {phase.label}", len(ids))
    start = time.monotonic()
    try:
        for section_id, due in zip(ids, _poisson(len(ids), phase.rate), strict=True):
            await asyncio.sleep(max(0.0, start + due - time.monotonic()))
            status, answer = await connection.post(portal.event(section_id))
            if status != 200:
                raise RuntimeError(f"event for section {section_id}: {status} {answer!r}")
            phase.arrived[section_id] = time.time()
            progress.advance()
    finally:
        await connection.close()
        progress.close()


def _poisson(count: int, rate: float) -> list[float]:
    """`count` offsets (s) from 0 with exponential gaps, the same every run, scaled so that they
    average exactly 1/`rate` (a few hundred draws alone stray by several percent)."""
    draws = random.Random(f"{NAME} {rate}")
    gaps = [draws.expovariate(rate) for _ in range(count - 1)]
    scale = (len(gaps) / rate) / sum(gaps) if gaps else 1.0
    return list(itertools.accumulate((gap * scale for gap in gaps), initial=0.0))


def _figures(
    phases: list[Phase],
    google: list[dict[str, Any]],
    bitrix: list[dict[str, Any]],
    wall: float,
    database: str,
) -> list[Figure]:
    exists: dict[str, float] = {}
    for row in google_inserts(google):
        found = read_marker(str((row.get("body") or {}).get("description", "")))
        if found:
            exists.setdefault(found[1], float(row["t"]))
    served = _served(exists, sorted(float(r["t"]) for r in bitrix))
    waits = phase_waits(phases)
    unwaited = [served[s] for s, wait in waits.items() if wait <= 0 and s in served]
    processing = statistics.median(unwaited) * 1000 if unwaited else 0.0
    figures: list[Figure] = []
    for phase in phases:
        if not phase.arrived:
            continue
        latencies, (p50, p95, p99, top) = phase_latencies(NAME, phase, exists)
        setup = f"{len(phase.arrived)} events at {phase.rate:g}/s, {database}"
        if phase.below_drain:
            figures += below_drain(
                NAME,
                "200 → calendar exists",
                setup,
                (p50, p95, p99, top),
                complete=len(latencies) == len(phase.arrived),
                p50_ms=P50_MS,
                p99_ms=P99_MS,
            )
        else:
            floor = [waits[s] for s in phase.arrived]
            w50, w99 = (percentile(floor, q) * 1000 for q in (50, 99))
            mean = statistics.fmean(latencies) * 1000 if latencies else 0.0
            wmean = statistics.fmean(floor) * 1000
            figures += [
                _held(
                    f"200 → calendar exists, mean ms vs floor ({setup})", mean, wmean, processing
                ),
                _held("200 → calendar exists, p50 ms vs floor", p50, w50, processing),
                Figure(NAME, "200 → calendar exists, p95", f"{p95:.0f} ms"),
                _held("200 → calendar exists, p99 ms vs floor", p99, w99, processing),
                Figure(NAME, "200 → calendar exists, max", f"{top:.0f} ms"),
                Figure(
                    NAME,
                    "floor: bucket wait mean / p50 / p99",
                    f"{wmean:.0f} / {w50:.0f} / {w99:.0f} ms",
                ),
            ]
        before = [exists[s] - served[s] - t for s, t in phase.arrived.items() if s in served]
        after = [served[s] for s in phase.arrived if s in served]
        figures += [
            Figure(NAME, "of which 200 → its read, p50 / p99", _p50_p99(before)),
            Figure(NAME, "of which its read → calendar exists, p50 / p99", _p50_p99(after)),
        ]
    refused = sum(1 for r in bitrix if r["status"] == 503)
    made = sum(len(p.arrived) for p in phases)
    figures += [
        Figure(
            NAME,
            "floor: processing, read → calendar exists (median of the events with no bucket wait)",
            f"{processing:.0f} ms (of {len(unwaited)})",
        ),
        Figure(NAME, "Bitrix24 requests (503s) during the run", f"{len(bitrix)} ({refused})"),
        Figure(NAME, "calendars created / wall time", f"{len(exists)} of {made} / {wall:.1f} s"),
    ]
    return figures


def _p50_p99(seconds: list[float]) -> str:
    return f"{percentile(seconds, 50) * 1000:.0f} / {percentile(seconds, 99) * 1000:.0f} ms"


def _held(measure: str, value_ms: float, wait_ms: float, processing_ms: float) -> Figure:
    return against_floor(
        NAME, measure, value_ms, wait_ms, processing_ms=processing_ms, more="more --events"
    )


def _served(exists: dict[str, float], reads: list[float]) -> dict[str, float]:
    """Section → seconds from the Bitrix24 request that served it (the last to reach the
    emulator before its calendar's insert) to that insert."""
    served: dict[str, float] = {}
    for section, at in exists.items():
        before = bisect.bisect_right(reads, at)
        if before:
            served[section] = at - reads[before - 1]
    return served
