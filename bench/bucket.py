"""Bitrix24's leaky bucket (50 requests at once, then 2 a second) as a floor: the least time a
number of requests needs, the least wait each event of a stream has before a read can cover it,
and a latency figure held against that floor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.load import percentile
from bench.report import Figure, Goal, say

BURST, PER_SECOND = 50, 2.0  # Bitrix24's bucket, in the emulator and in the bridge's client
PER_READ = 50  # ids one `batch` request reads (`bridge.entry_reads.BATCH`)
WITHIN = 1.2  # the latency benchmarks' target: at most this many times their floor


def bucket_floor(requests: int) -> float:
    """Seconds Bitrix24's bucket needs to admit `requests` made back to back."""
    return max(0, requests - BURST) / PER_SECOND


def read_waits(
    arrivals: Sequence[float],
    *,
    burst: int = BURST,
    per_second: float = PER_SECOND,
    per_read: int = PER_READ,
) -> list[float]:
    """The bucket's part of each event's latency, in the order of `arrivals` (sorted times,
    seconds): how long the event waits until a read that covers it may start, for an ideal
    reader that reads the moment the bucket admits a request, covers every event waiting (at
    most `per_read` a request) and spends no time on the work itself. The bucket starts empty.

    Below the drain rate every wait is 0; above it, once the burst is spent, reads go at
    `per_second` and an event waits for the next one (uniformly up to 1/`per_second`)."""
    waits: list[float] = []
    level, at = 0.0, arrivals[0] if arrivals else 0.0
    index = 0
    while index < len(arrivals):
        admitted = at + max(0.0, level + 1 - burst) / per_second
        read_at = max(arrivals[index], admitted)
        level = max(0.0, level - (read_at - at) * per_second) + 1
        at = read_at
        end = index
        while end < len(arrivals) and end - index < per_read and arrivals[end] <= read_at:
            end += 1
        waits += [read_at - arrivals[i] for i in range(index, end)]
        index = end
    return waits


@dataclass
class Phase:
    """Events made one after another at `rate` a second; `arrived`: each event's key → the
    `time.time()` its latency counts from."""

    rate: float
    arrived: dict[str, float] = field(default_factory=dict)

    @property
    def below_drain(self) -> bool:
        return self.rate < PER_SECOND

    @property
    def label(self) -> str:
        return f"at {self.rate:g}/s"


def phase_waits(phases: Sequence[Phase]) -> dict[str, float]:
    """Each event's `read_waits`, over every arrival of the run in order: a later phase starts
    with whatever the earlier ones left in the bucket (nearly nothing below the drain rate)."""
    arrivals = sorted((t, key) for phase in phases for key, t in phase.arrived.items())
    waits = read_waits([t for t, _ in arrivals])
    return dict(zip((key for _, key in arrivals), waits, strict=True))


def against_floor(
    benchmark: str,
    measure: str,
    value_ms: float,
    wait_ms: float,
    *,
    processing_ms: float = 0.0,
    more: str = "more events",
) -> Figure:
    """A latency held against its floor, `wait_ms` (the bucket's part) + `processing_ms` (the
    work's), at most `WITHIN` times it; no target when the bucket's burst covered the events
    (`wait_ms` 0: nothing of the bucket to hold them against; `more` says how to spend it)."""
    floor_ms = wait_ms + processing_ms
    if wait_ms <= 0:
        shown = f"{value_ms:.0f} ms vs floor {floor_ms:.0f} ms (burst not spent; {more})"
        return Figure(benchmark, measure, shown, number=value_ms)
    return Figure(
        benchmark,
        measure,
        f"{value_ms:.0f} ms vs {floor_ms:.0f} ms ({value_ms / floor_ms:.2f}x)",
        f"<= {WITHIN:g}x floor",
        number=value_ms,
        floor=floor_ms,
        goal=Goal(WITHIN, of_floor=True),
    )


def below_drain(
    benchmark: str,
    what: str,
    setup: str,
    percentiles_ms: tuple[float, float, float, float],
    *,
    complete: bool,
    p50_ms: float,
    p99_ms: float,
) -> list[Figure]:
    """A phase below the drain rate, held to absolute targets: `what` is the latency's name
    ("200 → calendar exists"), `percentiles_ms` its p50, p95, p99 and max; `complete` is whether
    every event of the phase got there (the p50 stands only then)."""
    p50, p95, p99, top = percentiles_ms
    return [
        Figure(
            benchmark,
            f"{what}, p50 ms ({setup})",
            f"{p50:.0f} ms",
            f"<= {p50_ms:.0f} ms",
            complete,
            number=p50,
            goal=Goal(p50_ms),
        ),
        Figure(benchmark, f"{what}, p95", f"{p95:.0f} ms"),
        Figure(
            benchmark,
            f"{what}, p99 ms (max)",
            f"{p99:.0f} ms ({top:.0f} ms)",
            f"p99 <= {p99_ms / 1000:g} s",
            number=p99,
            goal=Goal(p99_ms),
        ),
    ]


def phase_latencies(
    benchmark: str, phase: Phase, exists: Mapping[str, float]
) -> tuple[list[float], tuple[float, float, float, float]]:
    """The phase's latencies in seconds (arrival → `exists`, for the events that got there), and
    their p50, p95, p99 and max in ms, also said as a line of progress."""
    latencies = [exists[key] - t for key, t in phase.arrived.items() if key in exists]
    p50, p95, p99 = (percentile(latencies, q) * 1000 for q in (50, 95, 99))
    top = max(latencies, default=0.0) * 1000
    say(
        f"  {benchmark} {phase.label}: p50 {p50:.0f} ms p95 {p95:.0f} ms p99 {p99:.0f} ms "
        f"over {len(latencies)} of {len(phase.arrived)}"
    )
    return latencies, (p50, p95, p99, top)
