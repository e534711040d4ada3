"""Staying under upstream request limits instead of hitting them.

`LeakyBucket` mirrors a counter that rises by one per request and drains at a fixed rate (how
Bitrix24 meters a portal, and a fair model of Google's per-user minute quota): a caller waits just
long enough that the counter never passes the burst.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class LeakyBucket:
    def __init__(
        self,
        *,
        burst: int,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.burst = burst
        self.per_second = per_second
        self._clock = clock
        self._sleep = sleep
        self._level = 0.0
        self._at = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Count one request, first waiting while it would overflow; returns the wait."""
        with self._lock:
            wait = self._wait_needed()
            if wait:
                self._sleep(wait)
                self._drain()
            self._level += 1
            return wait

    def wait_ready(self) -> float:
        """Wait until a request could go at once, without counting one; returns the wait."""
        with self._lock:
            wait = self._wait_needed()
        if wait:
            self._sleep(wait)
        return wait

    def fill(self) -> None:
        """The other side says the bucket is full (other clients share it): wait a full turn."""
        with self._lock:
            self._drain()
            self._level = float(self.burst)

    def _wait_needed(self) -> float:
        self._drain()
        # One slot of headroom: the server meters arrivals, which jitter behind our sends.
        limit = max(1, self.burst - 1)
        return max(0.0, (self._level + 1 - limit) / self.per_second)

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._at) * self.per_second)
        self._at = now
