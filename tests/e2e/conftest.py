"""The real bridge (web under uvicorn, worker thread) wired to the emulators over HTTP."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bridge.app import create_app
from bridge.clients import PortalClients
from bridge.config import PortalConfig, Settings
from bridge.deployment import SandboxDeployment
from bridge.harness import Sandbox, bind_outgoing_webhook, demo_portal, free_port
from bridge.install_checks import Verdict, verify_waiting
from bridge.models import CalendarMapping, InboxEvent, InboxState
from bridge.notify import Notifier
from bridge.operations import sync_portals
from bridge.sandbox.bitrix import BitrixControl
from bridge.sandbox.google import GoogleControl
from bridge.sandbox.server import ServerThread
from bridge.status import portal_status
from bridge.tokens import TokenCipher, token_cipher
from bridge.worker import Worker

WAITING = (InboxState.PENDING, InboxState.WORKING)
# The environment's token key for app mode (bridge.tokens), one per test run.
TEST_ENV = {"BRIDGE_TOKEN_KEYS": Fernet.generate_key().decode()}


@dataclass
class Bridge:
    sandbox: Sandbox
    portal: PortalConfig
    engine: Engine
    web_url: str
    http: httpx.Client
    notifier: Notifier
    start_worker: Callable[[], None]
    client_id: str = ""
    cipher: TokenCipher | None = None

    def verify_installs(self) -> list[Verdict]:
        """What the worker does first for an app-mode portal, for tests that run no worker."""
        assert self.cipher is not None
        return verify_waiting(self.engine, self.cipher, self.portal)

    def install(self) -> dict[str, Any]:
        """The portal installs the app: ONAPPINSTALL reaches the bridge with the tokens (which
        the bridge trusts once the worker, or `verify_installs`, has verified them)."""
        handler = f"{self.web_url}/bitrix/events"
        installed: dict[str, Any] = self.bitrix.install(self.member_id, self.client_id, handler)
        self.flush_deliveries()
        return installed

    def app_state(self) -> dict[str, Any]:
        return self.bitrix.app(self.member_id)

    @property
    def subject(self) -> str:
        return self.portal.google.subject

    @property
    def member_id(self) -> str:
        return self.portal.member_id

    @property
    def bitrix(self) -> BitrixControl:
        return self.sandbox.bitrix

    @property
    def google(self) -> GoogleControl:
        return self.sandbox.google

    # Bitrix24 side
    def add_section(self, kind: str, owner: int, name: str, **fields: Any) -> dict[str, Any]:
        return self.bitrix.add_section(self.member_id, kind, owner, name, **fields)

    def update_section(self, section_id: str, **fields: Any) -> None:
        self.bitrix.update_section(self.member_id, section_id, **fields)

    def delete_section(self, section_id: str, *, deliver: bool = True) -> None:
        self.bitrix.delete_section(self.member_id, section_id, deliver=deliver)

    def patch_portal(self, **knobs: Any) -> dict[str, Any]:
        """Change the emulated portal (address, plan, rights, budget…) via the control API."""
        return self.bitrix.patch_portal(self.member_id, **knobs)

    def add_group(self, group_id: int, name: str) -> None:
        self.add_owners("groups", [{"ID": str(group_id), "NAME": name}])

    def add_owners(self, kind: str, rows: list[dict[str, Any]]) -> None:
        self.bitrix.add_owners(self.member_id, kind, rows)

    def flush_deliveries(self) -> list[dict[str, Any]]:
        return self.bitrix.flush_deliveries()

    def bitrix_requests(self) -> list[dict[str, Any]]:
        return self.bitrix.requests(self.member_id)

    def bitrix_fault(self, **fault: Any) -> None:
        self.bitrix.fault(member_id=self.member_id, **fault)

    # Google side
    def google_fault(self, **fault: Any) -> None:
        self.google.fault(**fault)

    def calendars(self) -> list[dict[str, Any]]:
        return self.google.calendars(owner=self.subject)

    def google_requests(self) -> list[dict[str, Any]]:
        return self.google.requests(user=self.subject)

    def acl(self, calendar_id: str) -> dict[str, str]:
        [calendar] = [c for c in self.calendars() if c["id"] == calendar_id]
        return {rule["id"]: rule["role"] for rule in calendar["acl"]}

    def list_entry(self, calendar_id: str) -> dict[str, Any]:
        [entry] = [e for e in self.google.calendar_list(self.subject) if e["id"] == calendar_id]
        return dict(entry)

    # The bridge
    def clients(self, portal: PortalConfig | None = None) -> PortalClients:
        return PortalClients(self.engine, portal or self.portal, self.cipher)

    def sync(self, portal: PortalConfig | None = None, **options: Any) -> tuple[int, str]:
        out = io.StringIO()
        code = sync_portals(
            self.engine,
            [portal or self.portal],
            out=out,
            **{"dry_run": False, "force": False, "cipher": self.cipher, **options},
        )
        return code, out.getvalue()

    def status_text(self) -> str:
        out = io.StringIO()
        portal_status(self.engine, [self.portal], out=out)
        return out.getvalue()

    def status_json(self) -> dict[str, Any]:
        out = io.StringIO()
        portal_status(self.engine, [self.portal], as_json=True, out=out)
        [portal] = json.loads(out.getvalue())["portals"]
        report: dict[str, Any] = portal
        return report

    def post_event(
        self, body: str | bytes, content_type: str = "application/x-www-form-urlencoded"
    ) -> httpx.Response:
        return self.http.post(
            f"{self.web_url}/bitrix/events", content=body, headers={"content-type": content_type}
        )

    def inbox(self) -> list[InboxEvent]:
        with Session(self.engine) as session:
            return list(session.exec(select(InboxEvent).order_by(col(InboxEvent.id))).all())

    def mappings(self) -> list[CalendarMapping]:
        with Session(self.engine) as session:
            return list(
                session.exec(select(CalendarMapping).order_by(col(CalendarMapping.id))).all()
            )

    def wait_applied(self, expected_rows: int, timeout: float = 20.0) -> list[InboxEvent]:
        self.flush_deliveries()
        """Until `expected_rows` inbox rows exist and none is pending."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.inbox()
            if len(rows) >= expected_rows and not any(r.state in WAITING for r in rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not applied in {timeout}s: {[(r.event, r.state, r.outcome) for r in rows]}"
                )
            time.sleep(0.05)


def clear_faults(sandbox: Sandbox) -> None:
    sandbox.bitrix.clear_faults()
    sandbox.google.clear_faults()


@pytest.fixture
def make_bridge(sandbox: Sandbox, engine: Engine) -> Iterator[Callable[..., Bridge]]:
    """Start the bridge for a new portal; keyword arguments go to `demo_portal`."""
    with ExitStack() as stack:
        stack.callback(clear_faults, sandbox)

        def make(
            *,
            app: dict[str, Any] | None = None,
            worker: bool = True,
            web: dict[str, Any] | None = None,
            **portal_options: Any,
        ) -> Bridge:
            """`app` switches the portal to app mode (OAuth) with these `bitrix` settings;
            `web` holds keyword arguments for `create_app` (timeouts)."""
            subject = f"owner-{uuid.uuid4().hex[:8]}@acme.example"
            portal_options.setdefault("mirror", {"groups": [12], "reconcile_interval_minutes": 0})
            portal = demo_portal(sandbox, key="acme", subject=subject, **portal_options)
            port = free_port()
            web_url = f"http://127.0.0.1:{port}"
            http = stack.enter_context(httpx.Client(timeout=15))
            client_id = ""
            # As `bridge serve` and `bridge worker` build it from BRIDGE_TOKEN_KEYS.
            cipher = token_cipher(Settings.from_env(TEST_ENV).token_keys, [])
            if app is not None:
                registered = sandbox.bitrix.add_app()
                client_id = registered["client_id"]
                raw = portal.model_dump()
                raw["application_token"] = None
                raw["bitrix"] = {
                    "oauth": {
                        "client_id": client_id,
                        "client_secret": registered["client_secret"],
                        "token_url": f"{sandbox.bitrix_url}/oauth/token/",
                        "server_endpoint": f"{sandbox.bitrix_url}/oauth/rest/",
                    },
                    "rest_url": f"{sandbox.bitrix_url}/rest/",
                    "handler_url": f"{web_url}/bitrix/events",
                    **app,
                }
                portal = PortalConfig.model_validate(raw)
            stack.enter_context(
                ServerThread(
                    create_app(portals=[portal], engine=engine, cipher=cipher, **(web or {})),
                    port=port,
                )
            )
            if app is None:
                bind_outgoing_webhook(sandbox, portal, f"{web_url}/bitrix/events")
            notifier = Notifier(engine, cipher)
            stack.callback(notifier.close)

            def start_worker() -> None:
                runner = Worker(
                    engine=engine,
                    portals=[portal],
                    name=f"test-{uuid.uuid4().hex[:6]}",
                    notifier=notifier,
                    cipher=cipher,
                )
                thread = threading.Thread(target=runner.run, daemon=True)
                thread.start()
                stack.callback(thread.join, 15)
                stack.callback(runner.stop)

            bridge = Bridge(
                sandbox=sandbox,
                portal=portal,
                engine=engine,
                web_url=web_url,
                http=http,
                notifier=notifier,
                start_worker=start_worker,
                client_id=client_id,
                cipher=cipher,
            )
            if worker:
                start_worker()
            return bridge

        yield make


@pytest.fixture
def bridge(make_bridge: Callable[..., Bridge]) -> Bridge:
    return make_bridge()


Deploy = Callable[..., SandboxDeployment]


@pytest.fixture
def deploy(sandbox: Sandbox, database_url: str, tmp_path: Path) -> Iterator[Deploy]:
    """Deployments whose processes (migrate, serve, worker) run as the Procfile runs them."""
    made: list[SandboxDeployment] = []

    def make(**options: Any) -> SandboxDeployment:
        deployment = SandboxDeployment(sandbox, database_url, tmp_path, **options)
        assert deployment.run("migrate").returncode == 0
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.close()
    clear_faults(sandbox)
