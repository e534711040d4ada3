"""The Bitrix24 client against the emulator: its leaky bucket keeps a portal under the limit (the
whole burst at once, then the drain rate), a 503 from a bucket another client filled is waited out,
and a batch's requests overlap while the bucket still paces them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from itertools import pairwise

import pytest

from bridge.bitrix import (
    BitrixAccessDenied,
    BitrixBlocked,
    BitrixClient,
    BitrixRateLimited,
    BitrixTimeBudgetExceeded,
)
from bridge.harness import Sandbox
from bridge.pacing import LeakyBucket


@pytest.fixture
def webhook(sandbox: Sandbox) -> Iterator[tuple[str, str]]:
    member_id = secrets.token_hex(16)
    added = sandbox.bitrix.add_portal(
        member_id,
        "bucket.bitrix24.com",
        secrets.token_hex(8),
        bucket_burst=5,
        bucket_drain_per_s=20,
    )
    yield added["webhook_url"], member_id


def portal(sandbox: Sandbox, **bucket: float) -> tuple[str, str]:
    """A portal of its own, with Bitrix24's bucket (50, then 2 a second) unless told."""
    member_id = secrets.token_hex(16)
    added = sandbox.bitrix.add_portal(member_id, "own.bitrix24.com", secrets.token_hex(8), **bucket)
    return added["webhook_url"], member_id


def statuses(sandbox: Sandbox, member_id: str) -> list[int]:
    return [r["status"] for r in sandbox.bitrix.requests(member_id)]


def test_the_bucket_keeps_a_burst_under_the_portal_limit(
    sandbox: Sandbox, webhook: tuple[str, str]
) -> None:
    url, member_id = webhook
    with BitrixClient(url, bucket=LeakyBucket(burst=5, per_second=20)) as client:
        for _ in range(30):
            client.call("calendar.resource.list")

    assert statuses(sandbox, member_id) == [200] * 30


def test_the_whole_burst_goes_at_once_against_bitrix24s_own_bucket_and_none_is_refused(
    sandbox: Sandbox,
) -> None:
    url, member_id = portal(sandbox)
    command = "calendar.section.get?type=company_calendar&ownerId=0"
    commands = {f"c{i}": command for i in range(2600)}
    with BitrixClient(url, bucket=LeakyBucket(burst=50, per_second=2)) as client:
        result = client.batch(commands, overlap=4)  # 52 requests, four in flight

    assert len(result.results) == 2600
    assert statuses(sandbox, member_id) == [200] * 52
    starts = sorted(r["t"] for r in sandbox.bitrix.requests(member_id))
    # The 51st waits for one slot to drain and the margin; the 52nd a slot more. A slot of
    # headroom (49 at once) would take 1.5 s.
    assert starts[50] - starts[0] >= 0.5
    assert 1.0 <= starts[51] - starts[0] < 1.4


def test_a_503_from_a_bucket_another_client_filled_is_waited_out_and_retried(
    sandbox: Sandbox,
) -> None:
    url, member_id = portal(sandbox, bucket_burst=5, bucket_drain_per_s=2)
    with BitrixClient(url, attempts=1) as other:  # another app on the portal spends its burst
        for _ in range(5):
            other.call("calendar.resource.list")
    with BitrixClient(url, bucket=LeakyBucket(burst=5, per_second=2), max_wait=0.01) as client:
        client.call("calendar.resource.list")
        client.call("calendar.resource.list")

    # Refused once; the bucket is then taken as full, so the retry and the next call wait their
    # slots instead of meeting the limit again.
    assert statuses(sandbox, member_id) == [200] * 5 + [503, 200, 200]


def test_without_the_bucket_the_same_burst_meets_503s(
    sandbox: Sandbox, webhook: tuple[str, str]
) -> None:
    url, member_id = webhook
    with BitrixClient(url, attempts=1) as client, pytest.raises(BitrixRateLimited):
        for _ in range(30):
            client.call("calendar.resource.list")

    assert 503 in statuses(sandbox, member_id)


def test_a_batch_splits_at_50_commands_and_keeps_per_command_errors(
    sandbox: Sandbox, webhook: tuple[str, str]
) -> None:
    url, member_id = webhook
    commands = {f"c{i}": "calendar.section.get?type=company_calendar&ownerId=0" for i in range(120)}
    commands["bad"] = "calendar.section.get?ownerId=0"
    with BitrixClient(url, bucket=LeakyBucket(burst=5, per_second=20)) as client:
        result = client.batch(commands)

    assert len(result.results) == 120
    assert list(result.errors) == ["bad"]
    assert "type" in result.errors["bad"].description
    assert len(statuses(sandbox, member_id)) == 3


def test_overlapped_batch_requests_wait_for_the_bucket_but_not_for_each_other(
    sandbox: Sandbox, webhook: tuple[str, str]
) -> None:
    url, member_id = webhook
    commands = {f"c{i}": "calendar.section.get?type=company_calendar&ownerId=0" for i in range(170)}
    commands["c60"] = "calendar.section.get?ownerId=0"  # errors in the second and fourth request
    commands["c160"] = "calendar.section.get?ownerId=0"
    # The first request to arrive is answered last: one after another the requests would start
    # >= 1.5 s apart, and merged as answered the first request's rows would come last.
    delay = 1.5
    sandbox.bitrix.fault(member_id=member_id, method="batch", kind="delay", seconds=delay)
    sandbox.bitrix.fault(member_id=member_id, method="batch", kind="delay", seconds=0.3, count=3)
    # One request every 0.2 s (the second 0.3 s after the first: the margin).
    spacing = LeakyBucket(burst=1, per_second=5)
    try:
        with BitrixClient(url, bucket=spacing) as client:
            result = client.batch(commands, overlap=4)
    finally:
        sandbox.bitrix.clear_faults()

    assert list(result.results) == [k for k in commands if k not in ("c60", "c160")]
    assert list(result.errors) == ["c60", "c160"]
    starts = sorted(r["t"] for r in sandbox.bitrix.requests(member_id))
    assert len(starts) == 4
    assert all(later - earlier >= 0.15 for earlier, later in pairwise(starts))
    assert starts[-1] - starts[0] < delay  # all sent before the first was answered


def test_an_overlapped_batch_raises_the_failure_and_sends_no_request_not_yet_started(
    sandbox: Sandbox, webhook: tuple[str, str]
) -> None:
    url, member_id = webhook
    commands = {f"c{i}": "calendar.resource.list" for i in range(300)}  # six requests
    sandbox.bitrix.fault(
        member_id=member_id, method="batch", status=403, error="ACCESS_DENIED", count=None
    )
    try:
        with (
            BitrixClient(url, bucket=LeakyBucket(burst=2, per_second=5)) as client,
            pytest.raises(BitrixAccessDenied),
        ):
            client.batch(commands, overlap=2)
    finally:
        sandbox.bitrix.clear_faults()

    # The first two start together; after the first failure, at most the one a freed worker
    # took meanwhile follows, not the other three.
    assert 2 <= len(statuses(sandbox, member_id)) <= 3


def test_a_429_is_dated_by_the_reset_of_the_last_successful_answer(
    sandbox: Sandbox, webhook: tuple[str, str]
) -> None:
    url, member_id = webhook
    sandbox.bitrix.patch_portal(
        member_id, operating_limit_s=30, method_cost_s={"calendar.resource.list": 20}
    )
    with BitrixClient(url) as client:
        answer = client.batch({"a": "calendar.resource.list", "b": "calendar.resource.list"})
        nested = client.operating_time("calendar.resource.list")
        with pytest.raises(BitrixTimeBudgetExceeded) as refused:
            client.call("calendar.resource.list")

    assert answer.errors == {}
    assert nested is not None and nested.operating == 40
    assert time.time() + 598 < nested.reset_at < time.time() + 602  # ten one-minute baskets
    assert client.operating_time("batch") is None  # the outer batch is not counted
    assert refused.value.reset_at == nested.reset_at
    assert statuses(sandbox, member_id) == [200, 429]  # not retried in the client


def test_overload_limit_is_a_block_and_not_retried(
    sandbox: Sandbox, webhook: tuple[str, str]
) -> None:
    url, member_id = webhook
    sandbox.bitrix.fault(member_id=member_id, status=503, error="OVERLOAD_LIMIT", count=None)
    try:
        with BitrixClient(url, max_wait=0.01) as client, pytest.raises(BitrixBlocked) as blocked:
            client.call("calendar.resource.list")
    finally:
        sandbox.bitrix.clear_faults()

    assert "contact Bitrix24 support" in str(blocked.value)
    assert statuses(sandbox, member_id) == [503]
