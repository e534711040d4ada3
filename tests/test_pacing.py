"""The leaky bucket on a fake clock: how long callers wait, and that they never overflow it."""

from __future__ import annotations

from bridge.pacing import LeakyBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_passes_then_requests_are_paced_at_the_drain_rate() -> None:
    clock = Clock()
    bucket = LeakyBucket(burst=50, per_second=2, clock=clock, sleep=clock.sleep)

    waits = [bucket.acquire() for _ in range(60)]

    assert waits[:49] == [0.0] * 49  # one slot of headroom below the portal's 50
    assert all(abs(wait - 0.5) < 1e-9 for wait in waits[49:])
    assert abs(clock.now - 5.5) < 1e-9


def test_a_full_bucket_reported_by_the_server_waits_a_full_turn() -> None:
    clock = Clock()
    bucket = LeakyBucket(burst=10, per_second=5, clock=clock, sleep=clock.sleep)
    bucket.fill()

    assert abs(bucket.wait_ready() - 0.4) < 1e-9
    assert bucket.acquire() == 0.0
    assert abs(bucket.acquire() - 0.2) < 1e-9
