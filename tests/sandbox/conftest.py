"""One Bitrix24 emulator per test module, served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bridge.sandbox.bitrix import BitrixEmulator
from bridge.sandbox.server import ServerThread


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    server = ServerThread(BitrixEmulator(deliver_timeout_s=2.0).app)
    yield server.start()
    server.stop()


@pytest.fixture
def control(emulator_url: str, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A reset emulator with one webhook portal: the test module's MEMBER, DOMAIN and CODE.
    Modules that need more (a receiver of deliveries, an app) define their own."""
    module = request.module
    portal = {"member_id": module.MEMBER, "domain": module.DOMAIN, "webhook_code": module.CODE}
    with httpx.Client(base_url=emulator_url, timeout=10.0) as client:
        client.post("/_control/reset").raise_for_status()
        client.post("/_control/portals", json=portal).raise_for_status()
        yield client


@pytest.fixture
def rest(
    control: httpx.Client, emulator_url: str, request: pytest.FixtureRequest
) -> Iterator[httpx.Client]:
    """The portal's incoming webhook, as the REST client calls it."""
    code = request.module.CODE
    with httpx.Client(base_url=f"{emulator_url}/rest/1/{code}/", timeout=10.0) as client:
        yield client
