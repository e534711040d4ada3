"""One Bitrix24 emulator per test module, served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.sandbox.bitrix import BitrixEmulator
from bridge.sandbox.server import ServerThread


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    server = ServerThread(BitrixEmulator(deliver_timeout_s=2.0).app)
    yield server.start()
    server.stop()
