"""A closed-loop HTTP/1.1 load generator on raw asyncio streams (keep-alive, no client library).

Each of `concurrency` connections sends a request, waits for the whole answer, and sends the
next, so concurrency is fixed. Parsing is the minimum HTTP/1.1 needs (status line and
Content-Length), which keeps the generator far cheaper per request than the servers it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.progress import Progress

Body = Callable[[int], bytes]


@dataclass
class LoadResult:
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, answers with status 200
    statuses: Counter[int] = field(default_factory=Counter)
    acked_at: dict[int, float] = field(default_factory=dict)  # request number → time.time()

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


def combined(results: list[LoadResult]) -> LoadResult:
    """One point's figures from the slices it was measured in."""
    whole = LoadResult(concurrency=results[0].concurrency)
    for result in results:
        whole.seconds += result.seconds
        whole.latencies += result.latencies
        whole.statuses += result.statuses
        whole.acked_at |= result.acked_at
    return whole


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Connection:
    """One keep-alive connection that POSTs form bodies to one path."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(
        self, body: bytes, content_type: str = "application/x-www-form-urlencoded"
    ) -> tuple[int, bytes]:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        await self._writer.drain()
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        closing = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "connection" and "close" in value.lower():
                closing = True
        answer = await self._reader.readexactly(length)
        if closing:
            await self.close()
        return status, answer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def run_load(
    url: str,
    body: Body,
    *,
    concurrency: int,
    seconds: float | None = None,
    requests: int | None = None,
    warmup: float = 0.0,
    progress: Progress | None = None,
    first: int = 0,
) -> LoadResult:
    """Load `url` for `seconds` (after `warmup`, not counted) or for `requests` requests.

    `body(n)` makes the n-th request's body, n counting from `first`.
    """
    result = LoadResult(concurrency=concurrency)
    numbers = itertools.count(first)
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + seconds if seconds is not None else float("inf")
    last = first + requests if requests is not None else None

    async def drive() -> None:
        connection = Connection(url)
        try:
            while True:
                number = next(numbers)
                if last is not None and number >= last:
                    return
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                status, _ = await connection.post(body(number))
                answered = time.perf_counter()
                if answered < measure_from or answered > stop_at:
                    continue
                result.statuses[status] += 1
                if status == 200:
                    result.latencies.append(answered - sent)
                    result.acked_at[number] = time.time()
                if progress is not None:
                    progress.advance()
        finally:
            await connection.close()

    await asyncio.gather(*(drive() for _ in range(concurrency)))
    result.seconds = min(time.perf_counter(), stop_at) - measure_from
    return result
