"""What the people who run the bridge see: metrics, readiness, logs, status, checks, alerts."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.app import create_app
from bridge.db import create_db_engine
from bridge.deployment import SandboxDeployment, settled
from bridge.harness import Sandbox, demo_portal, wait_for
from bridge.migrate import migrate
from bridge.sandbox.google import generate_service_account
from bridge.sandbox.server import ServerThread
from tests.conftest import POSTGRES_URL, fresh_schema, schema_url
from tests.e2e.conftest import Bridge, Deploy

NO_AUTH = {
    "method": "batch",
    "kind": "error",
    "status": 401,
    "error": "NO_AUTH_FOUND",
    "description": "Wrong authorization data",
}


def samples(web_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{web_url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_parse_and_move_as_events_flow(bridge: Bridge) -> None:
    received = (
        "bridge_events_received_total",
        (("event", "ONCALENDARSECTIONADD"), ("outcome", "accepted"), ("portal", "acme")),
    )
    before = samples(bridge.web_url).get(received, 0.0)

    bridge.add_section("company_calendar", 0, "Counted")
    bridge.wait_applied(1)

    after = samples(bridge.web_url)
    assert after[received] == before + 1
    assert after[("bridge_inbox_events", (("portal", "acme"), ("state", "done")))] == 1
    assert after[("bridge_calendars", (("portal", "acme"), ("state", "active")))] == 1


class Proxy:
    """A TCP forwarder to PostgreSQL that can be cut and restored: the database 'goes down'."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        # shutdown() first: close() alone does not wake a thread blocked in accept() or recv().
        assert self._listener is not None
        for sock in (self._listener, *self._connections):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._connections += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for end in (source, target):
            end.close()


@pytest.fixture
def empty_schema() -> Iterator[str]:
    with fresh_schema("ready") as schema:
        yield schema


def test_readyz_fails_while_the_database_is_down_and_recovers(
    sandbox: Sandbox, empty_schema: str
) -> None:
    proxy = Proxy(("127.0.0.1", 5432))
    proxy.start()
    url = schema_url(
        empty_schema, POSTGRES_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    )
    engine = create_db_engine(url)
    portal = demo_portal(sandbox, key="acme")
    with ServerThread(create_app(portals=[portal], engine=engine)) as web:
        behind = httpx.get(f"{web.url}/readyz")
        assert behind.status_code == 503 and "bridge migrate" in behind.json()["database"]
        migrate(url)
        assert httpx.get(f"{web.url}/readyz").json() == {
            "status": "ok",
            "database": "ok",
            "portals": 1,
        }

        proxy.cut()
        down = httpx.get(f"{web.url}/readyz")
        assert down.status_code == 503 and "unreachable" in down.json()["database"]
        assert httpx.get(f"{web.url}/healthz").status_code == 200

        proxy.start()
        wait_for(
            lambda: httpx.get(f"{web.url}/readyz").status_code == 200, 20, "readiness to return"
        )
    engine.dispose()


def test_every_log_line_is_json_and_carries_no_secret(deploy: Deploy) -> None:
    deployment: SandboxDeployment = deploy()
    web, worker = deployment.start_web(), deployment.start("worker")
    deployment.add_section("Logged")
    wait_for(lambda: bool(deployment.calendars()), 20, "the calendar")

    outputs = [deployment.stop(process)[1] for process in (web, worker)]

    lines = [line for output in outputs for line in output.splitlines() if line.strip()]
    assert len(lines) >= 5
    records = [json.loads(line) for line in lines]
    assert any(r.get("portal") == "acme" and r.get("section_id") for r in records)
    code = deployment.portal.bitrix.webhook_url.rstrip("/").rsplit("/", 1)[-1]
    private_key_line = deployment.portal.google.service_account_info()["private_key"].splitlines()[
        1
    ]
    for line in lines:
        for secret in (deployment.portal.application_token, code, private_key_line):
            assert secret not in line


def test_status_and_check_config_against_the_emulators(deploy: Deploy) -> None:
    deployment: SandboxDeployment = deploy()
    good = deployment.run("check-config", "--online")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "acme: bitrix24 ok" in good.stdout and "acme: google ok" in good.stdout

    broken_hook = deployment.portal.bitrix.webhook_url.replace("/rest/1/", "/rest/1/x")
    stranger = generate_service_account(
        f"{deployment.sandbox.google_url}/token"
    )  # never registered
    deployment.env.update(
        ACME_BITRIX_WEBHOOK=broken_hook, GOOGLE_SERVICE_ACCOUNT=json.dumps(stranger)
    )
    bad = deployment.run("check-config", "--online")

    assert bad.returncode == 1
    assert "acme: bitrix24 failing" in bad.stdout and "NO_AUTH_FOUND" in bad.stdout
    assert "acme: google failing" in bad.stdout
    assert broken_hook.rsplit("/rest/", 1)[1] not in bad.stdout + bad.stderr

    deployment.start_web()
    deployment.add_section("Never mirrored")
    deployment.start("worker")
    wait_for(settled(deployment, 1), 30, "the event to be parked")
    status = json.loads(deployment.run("status", "--json").stdout)
    [portal] = status["portals"]
    assert portal["events"]["parked"] == 1
    assert portal["credentials"]["ok"] is False
    assert "NO_AUTH_FOUND" in portal["credentials"]["error"]


class Receiver:
    """A Slack-like webhook endpoint that records what it is sent."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

        async def hook(request: Request) -> Response:
            self.messages.append(json.loads(await request.body()))
            return Response("ok")

        self.server = ServerThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))


def test_alerts_go_out_once_per_cause_per_hour(make_bridge: Callable[..., Bridge]) -> None:
    receiver = Receiver()
    with receiver.server:
        bridge = make_bridge(
            notify={"webhook_url": f"{receiver.server.url}/hook", "bitrix_users": [1]}
        )
        bridge.bitrix_fault(count=2, **NO_AUTH)
        bridge.add_section("company_calendar", 0, "First")
        bridge.wait_applied(1)
        bridge.add_section("company_calendar", 0, "Second")
        bridge.wait_applied(2)
        bridge.notifier.wait_idle()

    causes = sorted(message["cause"] for message in receiver.messages)
    assert causes == ["credentials", "parked"]
    assert all(
        message["portal"] == "acme" and "acme" in message["text"] for message in receiver.messages
    )
    assert any("NO_AUTH_FOUND" in message["text"] for message in receiver.messages)
    in_bitrix = bridge.bitrix.notifications(bridge.member_id)
    assert [n["user_id"] for n in in_bitrix] == [1, 1]
    assert sorted(m["text"] for m in receiver.messages) == sorted(n["message"] for n in in_bitrix)


def test_a_log_of_secrets_is_redacted_even_when_code_logs_them(tmp_path: Path) -> None:
    import logging

    from bridge.logs import JsonFormatter, RedactSecrets

    stream = tmp_path / "log"
    handler = logging.FileHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets(["s3cr3t-token", "hook-code-123"]))
    logger = logging.getLogger("bridge.test.redaction")
    logger.addHandler(handler)
    logger.warning(
        "calling %s with %s",
        "https://x/rest/1/hook-code-123/",
        "s3cr3t-token",
        extra={"portal": "acme"},
    )
    handler.close()

    record = json.loads(stream.read_text())
    assert record["message"] == "calling https://x/rest/1/***/ with ***"
    assert record["portal"] == "acme"
