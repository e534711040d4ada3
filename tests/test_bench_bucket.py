"""The bucket floor the entry benchmarks hold their latency against (`bench/bucket.py`)."""

from __future__ import annotations

from bench.bucket import bucket_floor, read_waits


def test_below_the_drain_rate_no_event_waits() -> None:
    arrivals = [i / 1.5 for i in range(100)]

    assert read_waits(arrivals) == [0.0] * 100


def test_above_the_drain_rate_the_burst_is_spent_then_reads_go_at_two_a_second() -> None:
    arrivals = [i / 10 for i in range(300)]

    waits = read_waits(arrivals)

    assert len(waits) == 300
    # 10 arrive and 2 leak a second: the burst of 50 lasts about 6 s, the first 62 events.
    assert waits[:62] == [0.0] * 62
    assert waits[62] > 0
    steady = waits[100:]
    assert max(steady) < 0.5 + 1e-9  # the next read is at most half a second away
    # Five events a read, waiting 0.5, 0.4 … 0.1 s.
    assert abs(sum(steady) / len(steady) - 0.3) < 1e-6


def test_one_read_covers_at_most_fifty_waiting_events() -> None:
    arrivals = [0.0] * 120

    waits = read_waits(arrivals, burst=1, per_second=1.0)

    # A bucket of one admits a read a second: at 0, 1 and 2 s, 50 events each at most.
    assert waits == [0.0] * 50 + [1.0] * 50 + [2.0] * 20


def test_the_floor_of_requests_made_back_to_back() -> None:
    assert bucket_floor(50) == 0
    assert bucket_floor(52) == 1.0
