"""The bucket floor the latency benchmarks hold their figures against (`bench/bucket.py`)."""

from __future__ import annotations

from bench.bucket import Phase, against_floor, bucket_floor, phase_waits, read_waits


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


def test_a_later_phase_starts_with_the_bucket_the_earlier_one_left() -> None:
    first, second = Phase(10.0), Phase(10.0)
    first.arrived = {f"a{i}": i / 10 for i in range(100)}
    second.arrived = {f"b{i}": 10 + i / 10 for i in range(20)}

    waits = phase_waits([second, first])  # in time order, whatever the list's order

    assert [waits[f"a{i}"] for i in range(62)] == [0.0] * 62
    # The first phase spent the burst: the second's events wait from the start.
    assert all(waits[f"b{i}"] > 0 for i in range(20) if i % 5)
    assert (first.below_drain, Phase(1.5).below_drain) == (False, True)


def test_a_latency_is_held_against_its_wait_plus_the_processing() -> None:
    within = against_floor("e2e", "p50 ms", 330.0, 250.0, processing_ms=25.0)
    over = against_floor("e2e", "p50 ms", 340.0, 250.0, processing_ms=25.0)

    assert (within.floor, within.ratio, within.stands) == (275.0, 1.2, "met")
    assert (over.ratio is not None and over.ratio > 1.2, over.stands) == (True, "MISSED")
    assert within.value == "330 ms vs 275 ms (1.20x)"


def test_no_target_while_the_burst_covers_the_events() -> None:
    covered = against_floor("e2e", "p50 ms", 30.0, 0.0, processing_ms=25.0, more="more --events")

    assert covered.stands == "" and covered.floor is None and covered.number == 30.0
    assert "burst not spent; more --events" in covered.value
