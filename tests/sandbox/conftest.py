"""One Bitrix24 emulator per test module, served over real HTTP, and one receiver of its outgoing
deliveries (events, app installs) per module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge.sandbox.bitrix import BitrixControl, BitrixEmulator, parse_php_query
from bridge.sandbox.server import ServerThread


class Receiver:
    """Records every POST the emulator delivers, at any path: `path`, `content_type`, the `raw`
    form body and its `body` as PHP reads it. `/broken` answers 500."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.server = ServerThread(
            Starlette(routes=[Route("/{path:path}", self._record, methods=["POST"])])
        )

    async def _record(self, request: Request) -> PlainTextResponse:
        raw = (await request.body()).decode()
        path = "/" + request.path_params["path"]
        self.records.append(
            {
                "path": path,
                "content_type": request.headers["content-type"],
                "raw": raw,
                "body": parse_php_query(parse_qsl(raw, keep_blank_values=True)),
            }
        )
        if path == "/broken":
            return PlainTextResponse("boom", status_code=500)
        return PlainTextResponse("ok")

    def at(self, path: str) -> list[dict[str, Any]]:
        """The bodies delivered to `path`."""
        return [record["body"] for record in self.records if record["path"] == path]


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    server = ServerThread(BitrixEmulator(deliver_timeout_s=2.0).app)
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with receiver.server:
        yield receiver


@pytest.fixture
def control(
    emulator_url: str, receiver: Receiver, request: pytest.FixtureRequest
) -> Iterator[BitrixControl]:
    """A reset emulator with one webhook portal (the test module's MEMBER, DOMAIN and CODE) and
    the receiver's records cleared. Modules that need more (a bound hook, an app) build on it."""
    module = request.module
    with closing(BitrixControl(emulator_url, timeout=10.0)) as client:
        client.reset()
        receiver.records.clear()
        client.add_portal(module.MEMBER, module.DOMAIN, module.CODE)
        yield client


@pytest.fixture
def rest(
    control: BitrixControl, emulator_url: str, request: pytest.FixtureRequest
) -> Iterator[httpx.Client]:
    """The portal's incoming webhook, as the REST client calls it."""
    code = request.module.CODE
    with httpx.Client(base_url=f"{emulator_url}/rest/1/{code}/", timeout=10.0) as client:
        yield client
