"""The leaky bucket on a fake clock: how long callers wait, and that a server metering the same
bucket on arrival never refuses them, even when arrivals lag the sends by up to the margin."""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import pairwise

from bridge.pacing import LeakyBucket

BURST, PER_SECOND, MARGIN = 50, 2.0, 0.1  # Bitrix24's bucket (`limits.md`) and the default margin


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def bitrix_bucket(clock: Clock) -> LeakyBucket:
    return LeakyBucket(burst=BURST, per_second=PER_SECOND, clock=clock, sleep=clock.sleep)


def refused(arrivals: Sequence[float], burst: int = BURST, per_second: float = PER_SECOND) -> int:
    """How many requests Bitrix24's bucket refuses, metering these arrival times: a counter that
    each request raises by one, refused when it would pass `burst`, drained `per_second`."""
    level, at, count = 0.0, 0.0, 0
    for arrival in sorted(arrivals):
        level, at = max(0.0, level - (arrival - at) * per_second), arrival
        if level + 1 > burst + 1e-9:
            count += 1
        else:
            level += 1
    return count


def test_the_whole_burst_goes_at_once_then_requests_go_at_the_drain_rate() -> None:
    clock = Clock()
    bucket = bitrix_bucket(clock)

    sends = []
    for _ in range(60):
        bucket.acquire()
        sends.append(clock.now)

    assert sends[:50] == [0.0] * 50
    assert abs(sends[50] - (0.5 + MARGIN)) < 1e-9  # the margin once, on the first wait
    assert all(abs(later - earlier - 0.5) < 1e-9 for earlier, later in pairwise(sends[50:]))
    assert abs(clock.now - (5.0 + MARGIN)) < 1e-9  # 60 requests: (60 - 50) / 2 s, plus the margin
    assert refused(sends) == 0
    # Every arrival of the burst as late as the margin allows, every later one on time.
    assert refused([s + MARGIN for s in sends[:50]] + sends[50:]) == 0


def test_without_the_margin_a_late_arrival_of_the_burst_meets_a_503() -> None:
    clock = Clock()
    bucket = LeakyBucket(
        burst=BURST, per_second=PER_SECOND, margin=0, clock=clock, sleep=clock.sleep
    )

    sends = []
    for _ in range(52):
        bucket.acquire()
        sends.append(clock.now)

    assert sends[-1] == 1.0
    assert refused([s + 0.05 for s in sends[:50]] + sends[50:]) > 0


def test_a_caller_back_from_a_pause_still_keeps_the_margin() -> None:
    clock = Clock()
    bucket = bitrix_bucket(clock)
    for _ in range(50):
        bucket.acquire()
    clock.now = 0.5  # exactly one slot drained: without the margin the 51st would go now

    wait = bucket.acquire()

    assert abs(wait - MARGIN) < 1e-9
    assert abs(bucket.wait_ready() - 0.5) < 1e-9  # then the drain rate again


def test_a_burst_after_an_idle_spell_goes_at_once_again() -> None:
    clock = Clock()
    bucket = bitrix_bucket(clock)
    for _ in range(55):
        bucket.acquire()
    clock.now += 60  # the counter has drained to zero

    assert [bucket.acquire() for _ in range(50)] == [0.0] * 50
    assert abs(bucket.acquire() - (0.5 + MARGIN)) < 1e-9


def test_wait_ready_waits_what_the_next_request_would_and_then_it_goes_at_once() -> None:
    clock = Clock()
    bucket = bitrix_bucket(clock)
    for _ in range(50):
        bucket.acquire()

    assert abs(bucket.wait_ready() - (0.5 + MARGIN)) < 1e-9
    assert bucket.acquire() == 0.0


def test_random_callers_never_overflow_with_late_arrivals_and_never_wait_longer_than_needed() -> (
    None
):
    generator = random.Random(14)
    for burst, per_second in ((50, 2.0), (5, 20.0), (1, 5.0), (250, 5.0)):
        clock = Clock()
        bucket = LeakyBucket(burst=burst, per_second=per_second, clock=clock, sleep=clock.sleep)
        sends: list[float] = []
        waits: list[float] = []
        for _ in range(4 * burst + 40):
            clock.now += generator.choice([0.0, 0.0, 0.0, 0.05, 0.2, 0.6, 1.2, 3.0]) / per_second
            waits.append(bucket.acquire())
            sends.append(clock.now)

        # However late each arrival is, within the margin, the server refuses none.
        for _ in range(20):
            late = [s + generator.uniform(0, MARGIN) for s in sends]
            assert refused(late, burst, per_second) == 0
        # Every run of more than `burst` requests spans at least the drain plus the margin, and
        # a request that waited goes the moment some run would otherwise fall short of that.
        for k, sent in enumerate(sends):
            slack = [
                sent - sends[j] - ((k - j + 1 - burst) / per_second + MARGIN)
                for j in range(k)
                if k - j + 1 > burst
            ]
            assert all(gap > -1e-9 for gap in slack)
            if waits[k] > 0:
                assert min(slack) < 1e-9


def test_a_full_bucket_reported_by_the_server_waits_a_slot_and_the_margin() -> None:
    clock = Clock()
    bucket = LeakyBucket(burst=10, per_second=5, clock=clock, sleep=clock.sleep)
    bucket.fill()

    assert abs(bucket.wait_ready() - (0.2 + MARGIN)) < 1e-9
    assert bucket.acquire() == 0.0
    assert abs(bucket.acquire() - 0.2) < 1e-9
