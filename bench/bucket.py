"""Bitrix24's leaky bucket (50 requests at once, then 2 a second) as a floor: the least time a
number of requests needs, and the least wait each event of a stream has before a read can
cover it."""

from __future__ import annotations

from collections.abc import Sequence

BURST, PER_SECOND = 50, 2.0  # Bitrix24's bucket, in the emulator and in the bridge's client
PER_READ = 50  # ids one `batch` request reads (`bridge.entry_reads.BATCH`)


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
