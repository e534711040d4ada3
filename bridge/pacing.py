"""Staying under upstream request limits instead of hitting them.

`LeakyBucket` mirrors a counter that rises by one per request and drains at a fixed rate (how
Bitrix24 meters a portal, and a fair model of Google's per-user minute quota): a caller waits just
long enough that the counter never passes the burst.

Bitrix24 documents its bucket (`limits.md`) as a counter that each request raises by one and
that falls by `Y` (2) a second; past `X` (50), requests get 503 `QUERY_LIMIT_EXCEEDED`. "At an
intensity of no more than `Y` requests per second" none is refused, and more may go briefly. So
the whole burst of `X` goes at once, then `Y` a second. But the portal meters *arrivals*, and a
request can arrive later, relative to the others, than it was sent (a new connection's handshake,
a busy thread): an early request arriving late makes a run that needed the drain look shorter to
the portal than it was. Each request therefore starts to drain `margin` seconds after it was
sent: any `X` requests may go together, and every run of more than `X` spans the drain it needs
plus `margin`. That adds `margin` once, to the first wait after a spent burst (also after a pause
that ends just as a slot frees), not to every request: the steady pace stays `Y` a second.

The default, 0.1 s (a fifth of a slot at 2 a second), absorbs that much arrival jitter: a new
connection's handshake (two round trips) to a portal up to about 50 ms away (round trip). A slot
of headroom (`X` - 1 at once) absorbed 0.5 s, but cost every run a slot: 52 requests took 1.5 s,
not 1.0 s. An arrival later than the margin costs one 503, after which the client calls `fill()`
and retries (`bridge/bitrix.py`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

MARGIN = 0.1  # seconds of arrival jitter a paced run absorbs (see the module's docstring)


class LeakyBucket:
    def __init__(
        self,
        *,
        burst: int,
        per_second: float,
        margin: float = MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.burst = burst
        self.per_second = per_second
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        # The counter as of `margin` ago (`_level` at `_at`, draining from then on), and the
        # send times of the requests made since, which do not drain yet.
        self._level = 0.0
        self._at = clock()
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Count one request, first waiting while it would overflow; returns the wait."""
        with self._lock:
            wait = self._wait_needed()
            if wait:
                self._sleep(wait)
            self._recent.append(self._clock())
            return wait

    def wait_ready(self) -> float:
        """Wait until a request could go at once, without counting one; returns the wait."""
        with self._lock:
            wait = self._wait_needed()
        if wait:
            self._sleep(wait)
        return wait

    def fill(self) -> None:
        """The other side says the bucket is full (other clients share it): the next request
        waits one slot, plus the margin, from now."""
        with self._lock:
            self._recent.clear()
            self._level = float(self.burst)
            self._at = self._clock()

    def _wait_needed(self) -> float:
        """The least wait after which one more request keeps the counter within the burst for
        every arrival up to `margin` late."""
        origin = self._clock() - self.margin  # the counter's time: drain lags by the margin
        self._settle(origin)
        level, at = self._level, self._at
        since = origin  # `level` is the counter at `since` once drained from `at`
        pending = list(self._recent)
        for index, sent in enumerate([*pending, math.inf]):
            room = self.burst - 1 - (len(pending) - index)  # the drained counter that fits one
            if room >= 0:
                ready = since
                if level > room:
                    ready = max(since, at + (level - room) / self.per_second)
                if ready <= sent:  # before the next pending request starts to drain
                    return max(0.0, ready - origin)
            level, at = self._drained(level, at, sent) + 1, max(at, sent)
            since = sent
        raise AssertionError("unreachable: the last step has no pending request")

    def _settle(self, until: float) -> None:
        """Let the requests sent by `until` start draining."""
        while self._recent and self._recent[0] <= until:
            sent = self._recent.popleft()
            self._level = self._drained(self._level, self._at, sent) + 1
            self._at = max(self._at, sent)

    def _drained(self, level: float, at: float, until: float) -> float:
        return max(0.0, level - max(0.0, until - at) * self.per_second)
